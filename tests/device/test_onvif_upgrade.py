"""ONVIF StartFirmwareUpgrade feeds the signed update path: tampered refused with its reason, valid -> trial -> confirm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from device_fixtures import NEW_PASSWORD, RunningDevice
from onvif_client import NS, digest_authorization, el, fault, parse, tt
from test_onvif import call
from update_fixtures import make_camera, make_vendor, update_client

from device.appkeys import AUDIT_KEY, REBOOT_KEY
from device.onvif import add_onvif_routes
from device.update.web import add_update_routes


async def upload(device: RunningDevice, uri: str, image: bytes, *, password: str = NEW_PASSWORD) -> tuple[int, bytes]:
    path = uri.split(f":{device.port}", 1)[1]
    headers = {"Content-Type": "application/octet-stream"}
    async with device.client() as s:
        async with s.post(device.url(path), data=b"", headers=headers) as r:
            assert r.status == 401
            challenge = r.headers["WWW-Authenticate"]
        auth = digest_authorization(challenge, user="admin", password=password, method="POST", uri=path)
        async with s.post(device.url(path), data=image, headers={**headers, "Authorization": auth}) as r:
            return r.status, await r.read()


async def start_upgrade(device: RunningDevice) -> str:
    status, body = await call(device, "tds", "StartFirmwareUpgrade", password=NEW_PASSWORD)
    assert status == 200, body
    uri = parse(body).findtext(".//tds:UploadUri", namespaces=NS)
    assert uri is not None and uri.startswith("https://127.0.0.1:")
    return uri


async def test_onvif_firmware_upgrade_tampered_then_valid(start_device: Any, tmp_path: Path) -> None:
    vendor = make_vendor(tmp_path / "vendor")
    camera = make_camera(tmp_path / "cam", vendor, vendor.image("1.0.0", 1))
    client = update_client(camera.boot(), vendor, "https://localhost:1")
    device: RunningDevice = await start_device(extensions=[lambda app: add_update_routes(app, client), add_onvif_routes])
    status, body = await call(
        device, "tds", "SetUser",
        el("tds", "User", tt("Username", "admin"), tt("Password", NEW_PASSWORD), tt("UserLevel", "Administrator")),
    )
    assert status == 200, body

    image = bytearray(vendor.image("2.0.0", 2))
    image[len(image) // 2] ^= 0x01  # one bit flipped in the payload
    uri = await start_upgrade(device)
    status, body = await upload(device, uri, bytes(image))
    parsed = fault(body)
    assert parsed is not None and 400 <= status < 500, (status, body)
    codes, reason = parsed
    assert codes[:2] == ["env:Sender", "ter:InvalidArgVal"] and "\n" not in reason and reason
    events = [e.event for e in device.app[AUDIT_KEY].entries()]
    assert "update_upload_refused" in events and "onvif_firmware_upgrade_started" in events
    # the ticket was used: the same URI does not take a second image
    status, body = await upload(device, uri, vendor.image("2.0.0", 2))
    assert "StartFirmwareUpgrade" in (fault(body) or ([], ""))[1]

    uri = await start_upgrade(device)
    status, body = await upload(device, uri, vendor.image("2.0.0", 2))
    assert status == 200, body
    await device.app[REBOOT_KEY].wait()
    trial = camera.boot().handoff
    assert (trial.firmware.version, trial.trial) == ("2.0.0", True)
    trial.services.confirm()  # what device.main.confirm_trial does after the health check
    confirmed = camera.boot().handoff
    assert (confirmed.firmware.version, confirmed.trial) == ("2.0.0", False)
