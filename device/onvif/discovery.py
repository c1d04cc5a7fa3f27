"""WS-Discovery (2005/04, as ONVIF Core 7.3 uses it) on UDP 3702, loopback only.

Pure core: :func:`answer` turns one received datagram into the reply (a
``ProbeMatches`` for a matching ``Probe``, a ``ResolveMatches`` for a
``Resolve`` of our endpoint) or None; :func:`hello` and :func:`bye` build the
announcements. They carry https XAddrs and the Profile S/T scopes.

Adapter: :class:`DiscoveryService` binds 127.0.0.1 (unicast probes) and, where
the host allows, joins 239.255.255.250 on the loopback interface only (socket
bound to the group address, membership and outgoing interface 127.0.0.1): it
never listens or sends on another interface. A non-loopback address is refused.

Example::

    service = await DiscoveryService.start(info, port=3702)
    ...
    await service.close()   # sends Bye
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import uuid
from dataclasses import dataclass
from typing import cast

from lxml import etree
from lxml.builder import ElementMaker

from .errors import OnvifFault
from .soap import parse_envelope

log = logging.getLogger(__name__)

PORT = 3702
MULTICAST_GROUP = "239.255.255.250"
MAX_DATAGRAM = 65535
WSD_NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "wsd": "http://schemas.xmlsoap.org/ws/2005/04/discovery",
    "dn": "http://www.onvif.org/ver10/network/wsdl",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
}
WSD_TO = "urn:schemas-xmlsoap-org:ws:2005:04:discovery"
ANONYMOUS = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous"
ACTION = "http://schemas.xmlsoap.org/ws/2005/04/discovery/"
RFC3986 = "http://schemas.xmlsoap.org/ws/2005/04/discovery/rfc3986"
TYPES = ((WSD_NS["dn"], "NetworkVideoTransmitter"), (WSD_NS["tds"], "Device"))

_E = ElementMaker(namespace=WSD_NS["env"], nsmap=WSD_NS)
_A = ElementMaker(namespace=WSD_NS["wsa"], nsmap=WSD_NS)
_D = ElementMaker(namespace=WSD_NS["wsd"], nsmap=WSD_NS)


@dataclass(frozen=True)
class DiscoveryInfo:
    """What the device announces: its endpoint, service address and scopes."""

    endpoint: str  # urn:uuid:..., stable per device
    xaddrs: tuple[str, ...]  # https://.../onvif/device_service
    scopes: tuple[str, ...]
    metadata_version: int = 1

    @staticmethod
    def endpoint_for(serial: str) -> str:
        return "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"refcam:{serial}"))


def _envelope(action: str, body: etree._Element, *, relates_to: str | None, to: str, instance: int, number: int) -> bytes:
    header = [
        _A.MessageID(f"urn:uuid:{uuid.uuid4()}"),
        *([_A.RelatesTo(relates_to)] if relates_to else []),
        _A.To(to),
        _A.Action(ACTION + action),
        _D.AppSequence(InstanceId=str(instance), MessageNumber=str(number)),
    ]
    root = _E.Envelope(_E.Header(*header), _E.Body(body))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _match_children(info: DiscoveryInfo) -> list[etree._Element]:
    return [
        _A.EndpointReference(_A.Address(info.endpoint)),
        _D.Types("dn:NetworkVideoTransmitter tds:Device"),
        _D.Scopes(" ".join(info.scopes)),
        _D.XAddrs(" ".join(info.xaddrs)),
        _D.MetadataVersion(str(info.metadata_version)),
    ]


def _types_match(element: etree._Element | None) -> bool:
    if element is None or not (element.text or "").strip():
        return True
    for qname in (element.text or "").split():
        prefix, _, local = qname.rpartition(":")
        namespace = element.nsmap.get(prefix or None)
        if (namespace, local) not in TYPES:
            return False
    return True


def _scope_matches(wanted: str, ours: str) -> bool:
    """RFC 3986 matching (WS-Discovery 5.1): ``wanted`` equals ``ours`` or is a segment prefix of it."""
    wanted, ours = wanted.rstrip("/"), ours.rstrip("/")
    return ours == wanted or ours.startswith(wanted + "/")


def _scopes_match(element: etree._Element | None, info: DiscoveryInfo) -> bool:
    if element is None or not (element.text or "").strip():
        return True
    if element.get("MatchBy", RFC3986) != RFC3986:
        return False  # only the default rule is offered
    return all(any(_scope_matches(w, s) for s in info.scopes) for w in (element.text or "").split())


def answer(datagram: bytes, info: DiscoveryInfo, *, instance: int, number: int) -> bytes | None:
    """The reply to one datagram, or None (not for us, not a Probe/Resolve, malformed)."""
    if len(datagram) > MAX_DATAGRAM:
        return None
    try:
        env = parse_envelope(datagram)
    except OnvifFault:
        return None
    if env.header is None or env.namespace != WSD_NS["wsd"]:
        return None
    message_id = (env.header.findtext("wsa:MessageID", namespaces=WSD_NS) or "").strip()
    if not message_id or len(message_id) > 256:
        return None
    op = env.operation
    if env.name == "Probe":
        if not (_types_match(op.find("wsd:Types", WSD_NS)) and _scopes_match(op.find("wsd:Scopes", WSD_NS), info)):
            return None
        body = _D.ProbeMatches(_D.ProbeMatch(*_match_children(info)))
        return _envelope("ProbeMatches", body, relates_to=message_id, to=ANONYMOUS, instance=instance, number=number)
    if env.name == "Resolve":
        address = (op.findtext("wsa:EndpointReference/wsa:Address", namespaces=WSD_NS) or "").strip()
        if address != info.endpoint:
            return None
        body = _D.ResolveMatches(_D.ResolveMatch(*_match_children(info)))
        return _envelope("ResolveMatches", body, relates_to=message_id, to=ANONYMOUS, instance=instance, number=number)
    return None


def hello(info: DiscoveryInfo, *, instance: int, number: int) -> bytes:
    return _envelope("Hello", _D.Hello(*_match_children(info)), relates_to=None, to=WSD_TO, instance=instance, number=number)


def bye(info: DiscoveryInfo, *, instance: int, number: int) -> bytes:
    body = _D.Bye(_A.EndpointReference(_A.Address(info.endpoint)))
    return _envelope("Bye", body, relates_to=None, to=WSD_TO, instance=instance, number=number)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, service: DiscoveryService) -> None:
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        host = str(addr[0])
        if not ipaddress.ip_address(host).is_loopback:  # cannot happen on lo; never answer elsewhere
            return
        reply = answer(data, self.service.info, instance=self.service.instance, number=self.service.next_number())
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, (host, int(str(addr[1]))))


class DiscoveryService:
    """The running WS-Discovery responder (see the module docstring)."""

    def __init__(self, info: DiscoveryInfo, instance: int) -> None:
        self.info = info
        self.instance = instance  # AppSequence InstanceId: changes at every start
        self._number = 0
        self._transports: list[asyncio.DatagramTransport] = []
        self._multicast_out: socket.socket | None = None
        self.port = 0

    def next_number(self) -> int:
        self._number += 1
        return self._number

    @classmethod
    async def start(
        cls, info: DiscoveryInfo, *, host: str = "127.0.0.1", port: int = PORT, multicast: bool = True, instance: int
    ) -> DiscoveryService:
        if not ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).version != 4:
            raise ValueError(f"WS-Discovery listens on IPv4 loopback only, not {host}")
        service = cls(info, instance)
        loop = asyncio.get_running_loop()
        unicast = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        unicast.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # clients bind ('', 3702) too
        unicast.bind((host, port))
        service.port = unicast.getsockname()[1]
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(service), sock=unicast)
        service._transports.append(transport)
        if multicast:
            service._join_loopback_multicast(loop)
            await service._start_multicast(loop)
        service._send_multicast(hello(info, instance=instance, number=service.next_number()))
        return service

    def _join_loopback_multicast(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
            out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            out.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            out.bind(("127.0.0.1", 0))
            self._multicast_out = out
        except OSError as exc:
            log.info("WS-Discovery: no multicast on loopback here (%s); unicast probes only", exc)
            self._multicast_out = None

    async def _start_multicast(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((MULTICAST_GROUP, self.port))  # only datagrams addressed to the group
            membership = socket.inet_aton(MULTICAST_GROUP) + socket.inet_aton("127.0.0.1")
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)  # on lo only
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
        except OSError as exc:
            log.info("WS-Discovery: cannot join %s on loopback (%s); unicast probes only", MULTICAST_GROUP, exc)
            return
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        self._transports.append(transport)

    def _send_multicast(self, data: bytes) -> None:
        if self._multicast_out is None:
            return
        try:
            self._multicast_out.sendto(data, (MULTICAST_GROUP, self.port))
        except OSError as exc:
            log.info("WS-Discovery: announcement not sent on loopback: %s", exc)

    async def close(self) -> None:
        self._send_multicast(bye(self.info, instance=self.instance, number=self.next_number()))
        for transport in self._transports:
            transport.close()
        if self._multicast_out is not None:
            self._multicast_out.close()
