"""v1 -> v2 through TUF on a running device: publish, check, install, reboot, trial, confirm.

Everything is the real thing: `refcam repo publish` signs the target, the
vendor server serves it over TLS, the device's update client verifies it
against the TUF root embedded in its own verified firmware, writes the
inactive slot, reboots through ROM and bootloader, boots v2 as a trial,
passes its health check and confirms; only then does the fused counter move.
A rollback to v1 is then refused.
"""

from __future__ import annotations

import json
import shutil
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import device as device_package

from .conftest import Firmware, RunningDevice, RunningVendor, refcam, start_device, start_vendor

pytestmark = pytest.mark.slow

NEW_PASSWORD = "correct horse battery staple 42"


def call(device: RunningDevice, method: str, path: str, *, token: str | None = None,
         body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
    ctx = ssl.create_default_context(cafile=str(device.root_pem))
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(device.url + path, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/octet-stream" if raw is not None else "application/json")
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=60) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        text = exc.read()
        return exc.code, json.loads(text) if text else None


def admin_token(device: RunningDevice) -> str:
    status, doc = call(device, "POST", "/api/v1/session", body={"username": "admin", "password": device.label_password})
    assert status == 200 and doc["password_change_required"]
    status, _ = call(device, "POST", "/api/v1/session/password", token=doc["token"],
                     body={"current_password": device.label_password, "new_password": NEW_PASSWORD})
    assert status == 204
    status, doc = call(device, "POST", "/api/v1/session", body={"username": "admin", "password": NEW_PASSWORD})
    assert status == 200
    return str(doc["token"])


def wait_for(predicate: Any, timeout: float = 120.0, *, output: list[str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("timed out; device output:\n" + "\n".join((output or [])[-60:]))


def test_v1_to_v2_through_tuf_with_trial_boot_and_confirm(
    tmp_path: Path, provisioned: Path, firmware: Firmware, vendor: RunningVendor
) -> None:
    refcam("repo", "publish", str(firmware.repo), str(firmware.images["2.0.0"]), "--keys", str(firmware.keys))
    device = start_device(provisioned, vendor_url=vendor.url)
    try:
        token = admin_token(device)
        status, doc = call(device, "POST", "/api/v1/update/check", token=token, body={})
        assert status == 200, doc
        assert doc["available"]["version"] == "2.0.0", doc
        status, doc = call(device, "POST", "/api/v1/update/install", token=token, body={})
        assert status in (200, 202), doc

        def running_v2() -> Any:
            code, state = call(device, "GET", "/api/v1/update/status", token=token)
            return state if code == 200 and state["running"]["version"] == "2.0.0" and not state["running"]["trial"] else None

        state = wait_for(running_v2, output=device.output)
        assert state["fused_counter"] == 2  # moved only after the confirmed trial
        assert any("passed its health check and is confirmed" in line for line in device.output)

        # Rollback: the genuinely signed 1.0.0 is refused, nothing is written.
        status, doc = call(device, "POST", "/api/v1/update/upload", token=token,
                           raw=firmware.images["1.0.0"].read_bytes())
        assert 400 <= status < 500, doc
        status, after = call(device, "GET", "/api/v1/update/status", token=token)
        assert status == 200, after
        assert after["running"]["version"] == "2.0.0" and after["fused_counter"] == 2
    finally:
        device.stop()


def test_a_trial_that_fails_its_health_check_reverts_by_itself(
    tmp_path: Path, provisioned: Path, firmware: Firmware
) -> None:
    """A genuinely signed 2.1.0 whose management API is broken: it boots as a trial, its
    health check fails, it reboots, and the bootloader brings 1.0.0 back; the counter
    never moves. Nobody has to do anything."""
    source = tmp_path / "broken" / "device"
    shutil.copytree(Path(device_package.__file__).parent, source,
                    ignore=shutil.ignore_patterns("__pycache__"))
    api = source / "api.py"
    broken = api.read_text().replace(
        "async def get_info(request: web.Request) -> web.Response:\n",
        "async def get_info(request: web.Request) -> web.Response:\n"
        "    raise RuntimeError('release bug: /api/v1/info is broken')\n",
    )
    assert broken != api.read_text()
    api.write_text(broken)
    image = tmp_path / "fw-2.1.0-broken.img"  # newer than anything the shared repository has
    refcam("firmware", "build", "--keys", str(firmware.keys), "--version", "2.1.0", "--security-counter", "2",
           "--tuf-root", str(firmware.repo / "metadata" / "1.root.json"), "--source", str(source),
           "-o", str(image))
    repo = tmp_path / "repo"  # this vendor's own copy: the shared repository stays as it was
    shutil.copytree(firmware.repo, repo)
    refcam("repo", "publish", str(repo), str(image), "--keys", str(firmware.keys))
    vendor = start_vendor(tmp_path / "vendor", firmware.keys, repo=repo)
    device = start_device(provisioned, vendor_url=vendor.url)
    try:
        token = admin_token(device)
        status, doc = call(device, "POST", "/api/v1/update/install", token=token, body={})
        assert status == 202, doc
        wait_for(lambda: any("failed its health check" in line for line in device.output), output=device.output)

        def back_on_v1() -> Any:
            code, state = call(device, "GET", "/api/v1/update/status", token=token)
            return state if code == 200 and state["running"]["version"] == "1.0.0" else None

        state = wait_for(back_on_v1, output=device.output)
        assert state["running"]["slot"] == "a" and not state["running"]["trial"]
        assert state["fused_counter"] == 1  # the failed trial never advanced it
        status, audit = call(device, "GET", "/api/v1/audit?limit=200", token=token)
        assert status == 200, audit
        assert "update_trial_failed" in json.dumps(audit)
    finally:
        device.stop()
        vendor.stop()
