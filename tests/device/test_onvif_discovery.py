"""WS-Discovery on loopback: the pure answerer, and the `wsdiscovery` client finding the device."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import uuid

import pytest
import wsdiscovery.threaded as wsd_threaded
from device_fixtures import RunningDevice, StartDevice
from lxml import etree
from test_onvif import call
from wsdiscovery import QName
from wsdiscovery.discovery import ThreadedWSDiscovery

from device.onvif import add_onvif_routes
from device.onvif.discovery import WSD_NS, DiscoveryInfo, DiscoveryService, answer

INFO = DiscoveryInfo(
    endpoint=DiscoveryInfo.endpoint_for("RCTEST000001"),
    xaddrs=("https://127.0.0.1:8443/onvif/device_service",),
    scopes=("onvif://www.onvif.org/Profile/Streaming", "onvif://www.onvif.org/hardware/RC-1080"),
)


def probe(types: str = "dn:NetworkVideoTransmitter", scopes: str = "") -> bytes:
    return (
        '<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
        'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
        f"<e:Header><a:MessageID>urn:uuid:{uuid.uuid4()}</a:MessageID>"
        "<a:To>urn:schemas-xmlsoap-org:ws:2005:04:discovery</a:To>"
        "<a:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</a:Action></e:Header>"
        f"<e:Body><d:Probe><d:Types>{types}</d:Types><d:Scopes>{scopes}</d:Scopes></d:Probe></e:Body></e:Envelope>"
    ).encode()


def test_probe_match_types_and_scopes() -> None:
    reply = answer(probe(), INFO, instance=1, number=1)
    assert reply is not None
    root = etree.fromstring(reply)
    assert root.findtext(".//wsd:XAddrs", namespaces=WSD_NS) == INFO.xaddrs[0]
    assert answer(probe(scopes="onvif://www.onvif.org/Profile"), INFO, instance=1, number=2) is not None
    assert answer(probe(scopes="onvif://www.onvif.org/Prof"), INFO, instance=1, number=3) is None
    assert answer(probe(types="dn:Printer"), INFO, instance=1, number=4) is None
    for junk in (b"", b"<x/>", b"\xff" * 100, probe()[:50], b'<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>'):
        assert answer(junk, INFO, instance=1, number=5) is None


async def test_non_loopback_address_is_refused() -> None:
    with pytest.raises(ValueError, match="loopback"):
        await DiscoveryService.start(INFO, host="0.0.0.0", port=0, instance=1)


@pytest.fixture
def loopback_only_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """The client probes on every interface it finds; the tests keep it on loopback.

    (It also reads replies only on its per-interface multicast sockets, never on the
    socket it sends unicast probes from, so it is driven by a multicast probe on lo.)
    """

    def loopback(version: int) -> list[ipaddress.IPv4Address]:
        return [ipaddress.IPv4Address("127.0.0.1")] if version == socket.AF_INET else []

    monkeypatch.setattr(wsd_threaded, "_getNetworkAddrs", loopback)


@pytest.mark.usefixtures("loopback_only_client")
async def test_wsdiscovery_finds_the_device_and_its_xaddr_answers(start_device: StartDevice) -> None:
    device: RunningDevice = await start_device(extensions=[add_onvif_routes])
    info = DiscoveryInfo(
        endpoint=DiscoveryInfo.endpoint_for("RCTEST000001"),
        xaddrs=(f"https://127.0.0.1:{device.port}/onvif/device_service",),
        scopes=INFO.scopes,
    )
    service = await DiscoveryService.start(info, port=3702, multicast=True, instance=7)
    client = ThreadedWSDiscovery()
    try:
        await asyncio.to_thread(client.start)
        types = [QName("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter", "dn")]
        found = await asyncio.to_thread(client.searchServices, types=types, timeout=2)
    finally:
        await asyncio.to_thread(client.stop)
        await service.close()
    mine = [s for s in found if s.getEPR() == info.endpoint]
    assert [s.getXAddrs() for s in mine] == [list(info.xaddrs)]
    assert any("Profile/Streaming" in str(s) for s in mine[0].getScopes())
    # the XAddr it found is the device: the date answers before authentication
    status, _ = await call(device, "tds", "GetSystemDateAndTime", user=None)
    assert status == 200


async def test_unicast_resolve() -> None:
    service = await DiscoveryService.start(INFO, port=0, multicast=False, instance=3)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(2)
    try:
        resolve = probe().replace(b"<d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes></d:Scopes></d:Probe>",
                                  b"<d:Resolve><a:EndpointReference><a:Address>" + INFO.endpoint.encode()
                                  + b"</a:Address></a:EndpointReference></d:Resolve>")
        await asyncio.to_thread(sock.sendto, resolve, ("127.0.0.1", service.port))
        data, _ = await asyncio.to_thread(sock.recvfrom, 65535)
    finally:
        sock.close()
        await service.close()
    assert b"ResolveMatches" in data and INFO.endpoint.encode() in data
