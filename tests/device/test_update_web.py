"""The update routes on the real management server: admin only, typed refusals, upload limits.

Uses the ``start_device`` fixture of ``tests/device/conftest.py`` (a TLS management server).
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest
from update_fixtures import Camera, Vendor, make_camera, make_vendor, update_client, update_server

from device.appkeys import REBOOT_KEY
from device.update.client import UpdateClient
from device.update.policy import UpdateClientConfig, next_check_delay
from device.update.web import UPDATE_CLIENT_KEY, add_update_routes, update_extension


@pytest.fixture
def vendor(tmp_path: Path) -> Vendor:
    return make_vendor(tmp_path / "vendor")


@pytest.fixture
def camera(tmp_path: Path, vendor: Vendor) -> Camera:
    return make_camera(tmp_path / "cam", vendor, vendor.image("1.0.0", 1))


async def start(start_device: Any, client: UpdateClient) -> tuple[Any, dict[str, str]]:
    running: Any = await start_device(extensions=[lambda app: add_update_routes(app, client)])
    token = await running.admin_token()
    return running, {"Authorization": f"Bearer {token}"}


async def test_update_routes_refuse_anonymous_callers(
    start_device: Any, vendor: Vendor, camera: Camera
) -> None:
    client = update_client(camera.boot(), vendor, "https://localhost:1")
    running: Any = await start_device(extensions=[lambda app: add_update_routes(app, client)])
    async with running.client() as s:
        for method, path in (
            ("POST", "/api/v1/update/check"),
            ("POST", "/api/v1/update/install"),
            ("POST", "/api/v1/update/upload"),
            ("GET", "/api/v1/update/status"),
        ):
            async with s.request(method, running.url(path), data=b"x") as r:
                assert r.status == 401, path
                assert (await r.json())["error"] == "authentication_required"
    assert camera.boot().handoff.slots[1].state == "empty"


async def test_admin_upload_installs_and_reboots_into_a_trial(
    start_device: Any, vendor: Vendor, camera: Camera
) -> None:
    client = update_client(camera.boot(), vendor, "https://localhost:1")
    running, auth = await start(start_device, client)
    image = vendor.image("2.0.0", 2)
    async with running.client() as s, s.post(
        running.url("/api/v1/update/upload"),
        data=image,
        headers={**auth, "Content-Type": "application/octet-stream"},
    ) as r:
        assert r.status == 202, await r.text()
        body = await r.json()
    assert body["installed"]["version"] == "2.0.0" and body["slot"] == "b"
    await running.app[REBOOT_KEY].wait()
    trial = camera.boot().handoff
    assert (trial.firmware.version, trial.trial) == ("2.0.0", True)


async def test_upload_refusals_are_typed_4xx_and_install_nothing(
    start_device: Any, vendor: Vendor, camera: Camera
) -> None:
    client = update_client(camera.boot(), vendor, "https://localhost:1", max_image_size=64 * 1024)
    running, auth = await start(start_device, client)
    octet = {**auth, "Content-Type": "application/octet-stream"}
    async with running.client() as s:
        wrong = vendor.image("2.0.0", 2, hardware_id="refcam-rc4k-v2")
        async with s.post(running.url("/api/v1/update/upload"), data=wrong, headers=octet) as r:
            assert r.status == 422
            assert (await r.json())["error"] == "wrong_hardware_id"
        async with s.post(running.url("/api/v1/update/upload"), data=b"\0" * 70_000, headers=octet) as r:
            assert r.status == 413
            assert (await r.json())["error"] == "image_too_large"
        async with s.post(
            running.url("/api/v1/update/upload"), data=b"x", headers={**auth, "Content-Type": "text/plain"}
        ) as r:
            assert r.status == 415
        async with s.get(running.url("/api/v1/update/status"), headers=auth) as r:
            status = await r.json()
        async with s.get(running.url("/api/v1/audit?limit=50"), headers=auth) as r:
            audit = json.dumps(await r.json())
    assert status["state"] == "error"
    assert status["last_error"]["error"] == "wrong_hardware_id"
    # every refusal is a security event in the hash-chained audit log
    assert "update_upload_refused" in audit and "wrong_hardware_id" in audit and "image_too_large" in audit
    assert status["fused_counter"] == 1 and status["running"]["version"] == "1.0.0"
    assert camera.boot().handoff.slots[1].state == "empty"


async def test_check_and_install_over_tuf_through_the_api(
    start_device: Any, vendor: Vendor, camera: Camera
) -> None:
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")
    with update_server(vendor) as url:
        client = update_client(camera.boot(), vendor, url)
        running, auth = await start(start_device, client)
        async with running.client() as s:
            async with s.post(running.url("/api/v1/update/check"), headers=auth) as r:
                assert r.status == 200
                assert (await r.json())["available"]["version"] == "2.0.0"
            async with s.get(running.url("/api/v1/update/status"), headers=auth) as r:
                status = await r.json()
            assert status["metadata"]["timestamp"]["version"] == 2
            async with s.post(running.url("/api/v1/update/install"), headers=auth) as r:
                assert r.status == 202
    assert camera.boot().handoff.firmware.version == "2.0.0"


async def test_extension_runs_automatic_checks_and_reports_them(start_device: Any) -> None:
    """EN 303 645 5.3-4: checks run by themselves; their outcome shows in the status."""
    config = UpdateClientConfig(repository_url="https://localhost:1", check_interval=0.05, check_jitter=0)
    running: Any = await start_device(extensions=[update_extension(config)])
    token = await running.admin_token()
    client = running.app[UPDATE_CLIENT_KEY]
    for _ in range(200):
        if client.status.last_error is not None:
            break
        await asyncio.sleep(0.02)
    async with running.client() as s, s.get(
        running.url("/api/v1/update/status"), headers={"Authorization": f"Bearer {token}"}
    ) as r:
        status = await r.json()
    assert status["automatic_checks"] == {"enabled": True, "interval_s": 0.05}
    assert status["last_error"]["error"] in ("untrusted_metadata", "transport_error")


def test_check_delay_spreads_around_the_interval() -> None:
    rng = random.Random(7)
    delays = [next_check_delay(3600, 0.1, rng) for _ in range(200)]
    assert 3240 <= min(delays) < 3400 and 3800 < max(delays) <= 3960
    with pytest.raises(ValueError, match="off"):
        next_check_delay(0, 0.1, rng)
