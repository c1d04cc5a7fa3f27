"""ONVIF over the management TLS server: operations, WS-Security, HTTP Digest, forced change, hostile input."""

from __future__ import annotations

import os
from typing import Any

import pytest
from device_fixtures import INITIAL_PASSWORD, NEW_PASSWORD, RunningDevice, StartDevice
from onvif_client import (
    NS,
    PATHS,
    digest_authorization,
    el,
    fault,
    parse,
    request,
    tt,
    username_token,
)

from common.flaws import UnsafeFlaws
from device.appkeys import AUDIT_KEY
from device.onvif import add_onvif_routes
from device.onvif.services import OPERATIONS

SOAP = {"Content-Type": "application/soap+xml; charset=utf-8"}
PREFIX = {v: k for k, v in NS.items()}


async def call(
    device: RunningDevice, service: str, operation: str, *children: Any, user: str | None = "admin",
    password: str = INITIAL_PASSWORD, token: Any = None, headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    if token is None and user is not None:
        token = username_token(user, password, now=device.clock())
    body = request(service, operation, *children, token=token)
    async with device.client() as s, s.post(device.url(PATHS[service]), data=body, headers={**SOAP, **(headers or {})}) as r:
        return r.status, await r.read()


@pytest.fixture
async def onvif(start_device: StartDevice) -> RunningDevice:
    device: RunningDevice = await start_device(extensions=[add_onvif_routes])
    return device


async def change_password(device: RunningDevice) -> None:
    status, body = await call(
        device, "tds", "SetUser",
        el("tds", "User", tt("Username", "admin"), tt("Password", NEW_PASSWORD), tt("UserLevel", "Administrator")),
    )
    assert status == 200, body


def audit_events(device: RunningDevice) -> list[Any]:
    return list(device.app[AUDIT_KEY].entries())


async def test_only_get_system_date_and_time_answers_without_credentials(onvif: RunningDevice) -> None:
    status, body = await call(onvif, "tds", "GetSystemDateAndTime", user=None)
    assert status == 200
    assert parse(body).find(".//tt:UTCDateTime/tt:Date/tt:Year", NS) is not None
    for (namespace, name), op in OPERATIONS.items():
        if op.level == "pre-auth":
            continue
        status, body = await call(onvif, PREFIX[namespace], name, user=None)
        assert status == 401, (name, body)
        codes, _ = fault(body) or ([], "")
        assert codes == ["env:Sender", "ter:NotAuthorized"], name


async def test_every_operation_refused_until_the_forced_change(onvif: RunningDevice) -> None:
    for (namespace, name), op in OPERATIONS.items():
        if op.level == "pre-auth":
            continue
        status, body = await call(onvif, PREFIX[namespace], name)
        parsed = fault(body)
        assert parsed is not None and status == 400, (name, status, body)
        codes, reason = parsed
        assert codes == ["env:Sender", "ter:NotAuthorized"], name
        assert "password must be changed" in reason, name
    # a weak new password: the web login's policy, the ONVIF subcode
    status, body = await call(
        onvif, "tds", "SetUser",
        el("tds", "User", tt("Username", "admin"), tt("Password", "password1"), tt("UserLevel", "Administrator")),
    )
    codes, reason = fault(body) or ([], "")
    assert status == 400 and codes == ["env:Sender", "ter:OperationProhibited", "ter:PasswordTooWeak"], body
    # the label password itself is refused as the new one
    status, body = await call(
        onvif, "tds", "SetUser",
        el("tds", "User", tt("Username", "admin"), tt("Password", INITIAL_PASSWORD), tt("UserLevel", "Administrator")),
    )
    assert status == 400 and "label" in (fault(body) or ([], ""))[1]
    # SetUser that also changes the level is not the own-password change
    status, body = await call(
        onvif, "tds", "SetUser",
        el("tds", "User", tt("Username", "admin"), tt("Password", NEW_PASSWORD), tt("UserLevel", "User")),
    )
    assert "password must be changed" in (fault(body) or ([], ""))[1]
    await change_password(onvif)
    status, body = await call(onvif, "tds", "GetDeviceInformation", password=NEW_PASSWORD)
    assert status == 200
    info = parse(body)
    assert info.findtext(".//tds:SerialNumber", namespaces=NS) == "RCTEST000001"
    # the label password no longer works at all
    status, body = await call(onvif, "tds", "GetDeviceInformation")
    assert status == 400 and "invalid user name or password" in (fault(body) or ([], ""))[1]
    events = [e.event for e in audit_events(onvif)]
    assert "password_change" in events and "login_failure" in events


async def test_operations_after_the_change_describe_the_device(onvif: RunningDevice) -> None:
    await change_password(onvif)
    pw = NEW_PASSWORD

    async def ok(service: str, op: str, *children: Any) -> Any:
        status, body = await call(onvif, service, op, *children, password=pw)
        assert status == 200, (op, body)
        return parse(body)

    mac = (await ok("tds", "GetNetworkInterfaces")).findtext(".//tt:HwAddress", namespaces=NS)
    assert mac is not None and len(mac.split(":")) == 6
    caps = await ok("tds", "GetCapabilities", el("tds", "Category", "All"))
    assert caps.findtext(".//tt:Media/tt:XAddr", namespaces=NS) == onvif.url("/onvif/media_service").replace(
        "localhost", "127.0.0.1"
    )
    services = await ok("tds", "GetServices", el("tds", "IncludeCapability", "true"))
    assert len(services.findall(".//tds:Service", NS)) == 3
    for op in ("GetServiceCapabilities", "GetScopes", "GetHostname", "GetNetworkProtocols", "GetUsers"):
        await ok("tds", op)
    await ok("tds", "GetSystemLog", el("tds", "LogType", "System"))
    profiles = await ok("trt", "GetProfiles")
    tokens = [p.get("token") for p in profiles.findall(".//trt:Profiles", NS)]
    assert tokens == ["mjpeg_main"]
    assert profiles.findtext(".//tt:Encoding", namespaces=NS) == "JPEG"
    for op in ("GetVideoSources", "GetVideoSourceConfigurations", "GetVideoEncoderConfigurations", "GetServiceCapabilities"):
        await ok("trt", op)
    uri = (await ok("trt", "GetSnapshotUri", el("trt", "ProfileToken", "mjpeg_main"))).findtext(".//tt:Uri", namespaces=NS)
    assert uri is not None and uri.startswith("https://127.0.0.1:") and uri.endswith("/onvif/snapshot.jpg")
    stream = await ok("trt", "GetStreamUri", el("trt", "ProfileToken", "mjpeg_main"))
    assert (stream.findtext(".//tt:Uri", namespaces=NS) or "").startswith("https://")
    for op in ("GetProfiles", "GetVideoSourceConfigurations", "GetVideoEncoderConfigurations", "GetServiceCapabilities"):
        await ok("tr2", op)
    assert (await ok("tr2", "GetStreamUri", el("tr2", "Protocol", "RTSP"), el("tr2", "ProfileToken", "mjpeg_main"))) is not None
    # unknown operation: ActionNotSupported (what Home Assistant tolerates)
    status, body = await call(onvif, "tds", "GetZeroConfiguration", password=pw)
    assert status == 400 and (fault(body) or ([], ""))[0] == ["env:Receiver", "ter:ActionNotSupported"]


async def test_user_levels_map_onto_roles(onvif: RunningDevice) -> None:
    await change_password(onvif)
    viewer_pw = "quiet lanterns over the eastern bay"
    status, body = await call(
        onvif, "tds", "CreateUsers",
        el("tds", "User", tt("Username", "watcher"), tt("Password", viewer_pw), tt("UserLevel", "User")),
        password=NEW_PASSWORD,
    )
    assert status == 200, body
    # a new user must change the password too; they may, over ONVIF
    status, body = await call(onvif, "tds", "GetDeviceInformation", user="watcher", password=viewer_pw)
    assert "password must be changed" in (fault(body) or ([], ""))[1]
    new_viewer_pw = "seven orange kites above the dunes"
    status, body = await call(
        onvif, "tds", "SetUser",
        el("tds", "User", tt("Username", "watcher"), tt("Password", new_viewer_pw), tt("UserLevel", "User")),
        user="watcher", password=viewer_pw,
    )
    assert status == 200, body
    status, _ = await call(onvif, "tds", "GetDeviceInformation", user="watcher", password=new_viewer_pw)
    assert status == 200
    for op in ("GetUsers", "SystemReboot", "StartFirmwareUpgrade"):
        status, body = await call(onvif, "tds", op, user="watcher", password=new_viewer_pw)
        codes, reason = fault(body) or ([], "")
        assert codes == ["env:Sender", "ter:NotAuthorized"] and "Administrator" in reason, op
    status, users = await call(onvif, "tds", "GetUsers", password=NEW_PASSWORD)
    levels = {u.findtext("tt:Username", namespaces=NS): u.findtext("tt:UserLevel", namespaces=NS) for u in parse(users).iter(f"{{{NS['tds']}}}User")}
    assert levels == {"admin": "Administrator", "watcher": "User"}
    status, body = await call(onvif, "tds", "DeleteUsers", el("tds", "Username", "watcher"), password=NEW_PASSWORD)
    assert status == 200, body


async def test_replayed_and_stale_tokens_are_refused_and_audited(onvif: RunningDevice) -> None:
    await change_password(onvif)
    token = username_token("admin", NEW_PASSWORD, now=onvif.clock(), nonce=os.urandom(16))
    status, _ = await call(onvif, "tds", "GetDeviceInformation", token=token)
    assert status == 200
    status, body = await call(onvif, "tds", "GetDeviceInformation", token=token)
    assert status == 400 and "replay" in (fault(body) or ([], ""))[1]
    stale = username_token("admin", NEW_PASSWORD, now=onvif.clock() - 600)
    status, body = await call(onvif, "tds", "GetDeviceInformation", token=stale)
    assert status == 400 and "Created" in (fault(body) or ([], ""))[1]
    future = username_token("admin", NEW_PASSWORD, now=onvif.clock() + 600)
    status, body = await call(onvif, "tds", "GetDeviceInformation", token=future)
    assert status == 400
    refused = [e.detail["reason"] for e in audit_events(onvif) if e.event == "onvif_token_refused"]
    assert refused == ["replay", "stale", "stale"]


async def test_http_digest_sha256_and_the_snapshot_uri(onvif: RunningDevice) -> None:
    await change_password(onvif)
    body = request("tds", "GetDeviceInformation")
    async with onvif.client() as s:
        async with s.post(onvif.url(PATHS["tds"]), data=body, headers=SOAP) as r:
            assert r.status == 401
            challenge = r.headers["WWW-Authenticate"]
            assert "algorithm=SHA-256" in challenge and "MD5" not in challenge
        auth = digest_authorization(challenge, user="admin", password=NEW_PASSWORD, method="POST", uri=PATHS["tds"])
        async with s.post(onvif.url(PATHS["tds"]), data=body, headers={**SOAP, "Authorization": auth}) as r:
            assert r.status == 200, await r.text()
        async with s.post(onvif.url(PATHS["tds"]), data=body, headers={**SOAP, "Authorization": auth}) as r:
            assert r.status == 401  # the same nc again: a replay
        wrong = digest_authorization(challenge, user="admin", password="nope", method="POST", uri=PATHS["tds"])
        async with s.post(onvif.url(PATHS["tds"]), data=body, headers={**SOAP, "Authorization": wrong}) as r:
            assert r.status == 401
        async with s.get(onvif.url("/onvif/snapshot.jpg")) as r:
            assert r.status == 401
            snap_challenge = r.headers["WWW-Authenticate"]
        auth = digest_authorization(snap_challenge, user="admin", password=NEW_PASSWORD, method="GET", uri="/onvif/snapshot.jpg")
        async with s.get(onvif.url("/onvif/snapshot.jpg"), headers={"Authorization": auth}) as r:
            assert r.status == 404  # this test device has no stream pipeline: said as a fault, not a 500
            assert fault(await r.read()) is not None


async def test_digest_md5_only_flaw(start_device: StartDevice) -> None:
    device = await start_device(extensions=[add_onvif_routes], flaws=UnsafeFlaws(frozenset({"onvif-digest-md5-only"})))
    async with device.client() as s, s.post(device.url(PATHS["tds"]), data=request("tds", "GetHostname"), headers=SOAP) as r:
        assert "algorithm=MD5" in r.headers["WWW-Authenticate"] and "SHA-256" not in r.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("flaw", "operation", "opens"),
    [
        ("onvif-preauth-open", "GetDeviceInformation", True),
        ("onvif-preauth-open", "GetUsers", False),
        ("onvif-anonymous-default", "GetUsers", True),
    ],
)
async def test_anonymous_flaws(start_device: StartDevice, flaw: str, operation: str, opens: bool) -> None:
    device = await start_device(extensions=[add_onvif_routes], flaws=UnsafeFlaws(frozenset({flaw})))
    status, _ = await call(device, "tds", operation, user=None)
    assert (status == 200) is opens


async def test_wsse_replay_flaw_accepts_a_replay(start_device: StartDevice) -> None:
    device = await start_device(extensions=[add_onvif_routes], flaws=UnsafeFlaws(frozenset({"wsse-replay"})))
    await change_password(device)
    token = username_token("admin", NEW_PASSWORD, now=device.clock())
    for _ in range(2):
        status, _ = await call(device, "tds", "GetDeviceInformation", token=token)
        assert status == 200


HOSTILE = [
    b"",
    b"not xml at all",
    b"<?xml version='1.0'?><a>",
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><x>&lol2;</x></e:Body></e:Envelope>',
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><x>&xxe;</x></e:Body></e:Envelope>',
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><GetSystemDateAndTime '
    b'xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>',
    b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body/></e:Envelope>',
    b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope">' + b"<a>" * 100 + b"</a>" * 100 + b"</e:Envelope>",
    "<e:Envelope xmlns:e='http://www.w3.org/2003/05/soap-envelope'><e:Body><\u00e9\u6f22 xmlns='urn:x'>\U0001f4f7</\u00e9\u6f22></e:Body></e:Envelope>".encode(),
    b"\xff\xfe\x00<",
    b"<e:Envelope xmlns:e='http://www.w3.org/2003/05/soap-envelope'><e:Header><wsse:Security xmlns:wsse='"
    + NS["wsse"].encode() + b"'><wsse:UsernameToken><wsse:Username>\xe2\x80\xae</wsse:Username></wsse:UsernameToken>"
    b"</wsse:Security></e:Header><e:Body><GetDeviceInformation xmlns='http://www.onvif.org/ver10/device/wsdl'/></e:Body></e:Envelope>",
]


@pytest.mark.parametrize("body", HOSTILE)
async def test_hostile_bodies_get_a_fault_never_a_500(onvif: RunningDevice, body: bytes) -> None:
    async with onvif.client() as s, s.post(onvif.url(PATHS["tds"]), data=body, headers=SOAP) as r:
        assert 400 <= r.status < 500, (r.status, await r.text())
        assert fault(await r.read()) is not None


async def test_huge_body_is_refused_unread(onvif: RunningDevice) -> None:
    async with onvif.client() as s, s.post(onvif.url(PATHS["tds"]), data=b"<" * (300 * 1024), headers=SOAP) as r:
        assert r.status == 413


async def test_every_operation_as_every_level_never_500(onvif: RunningDevice) -> None:
    await change_password(onvif)
    for level, name in (("Operator", "opal"), ("User", "ursa")):
        pw = f"{name[::-1]} crosses the long wooden bridge at dawn"
        status, body = await call(
            onvif, "tds", "CreateUsers",
            el("tds", "User", tt("Username", name), tt("Password", pw), tt("UserLevel", level)), password=NEW_PASSWORD,
        )
        assert status == 200, body
        await call(
            onvif, "tds", "SetUser",
            el("tds", "User", tt("Username", name), tt("Password", pw + "!x"), tt("UserLevel", level)), user=name, password=pw,
        )
    for user, pw in (("admin", NEW_PASSWORD), ("opal", "lapo crosses the long wooden bridge at dawn!x"), ("ursa", "asru crosses the long wooden bridge at dawn!x")):
        for (namespace, op), _ in OPERATIONS.items():
            if op in ("SystemReboot", "DeleteUsers", "SetUser"):
                continue  # would change what the next calls see; covered above
            status, body = await call(onvif, PREFIX[namespace], op, user=user, password=pw)
            assert status in (200, 400), (user, op, status, body)
            # every namespace is declared once, on the Envelope (the element makers declare none)
            text = body if isinstance(body, str) else body.decode()
            root_tag, rest = text.split("<env:Body>", 1)
            assert "xmlns" not in rest and "ns0:" not in text, (op, text[:400])
            assert 'xmlns:tt="http://www.onvif.org/ver10/schema"' in root_tag


async def test_concurrent_requests_of_one_client_do_not_throttle_each_other(onvif: RunningDevice) -> None:
    import asyncio

    await change_password(onvif)
    results = await asyncio.gather(*(call(onvif, "tds", "GetHostname", password=NEW_PASSWORD) for _ in range(12)))
    assert [status for status, _ in results] == [200] * 12


async def test_system_log_with_hostile_audit_actors_is_well_formed(onvif: RunningDevice) -> None:
    await change_password(onvif)
    async with onvif.client() as s, s.post(
        onvif.url("/api/v1/session"), json={"username": "ev\u0001il", "password": "x"}
    ) as r:
        assert r.status in (400, 401)
    status, body = await call(onvif, "tds", "GetSystemLog", el("tds", "LogType", "System"), password=NEW_PASSWORD)
    assert status == 200, body
    assert "ev\\x01il" in (parse(body).findtext(".//tt:String", namespaces=NS) or "")


async def test_system_reboot_answers_then_reboots(onvif: RunningDevice) -> None:
    import asyncio

    from device.appkeys import REBOOT_KEY

    await change_password(onvif)
    status, body = await call(onvif, "tds", "SystemReboot", password=NEW_PASSWORD)
    assert status == 200 and parse(body).findtext(".//tds:Message", namespaces=NS)
    await asyncio.wait_for(onvif.app[REBOOT_KEY].wait(), timeout=5)
    assert "reboot_requested" in [e.event for e in audit_events(onvif)]
