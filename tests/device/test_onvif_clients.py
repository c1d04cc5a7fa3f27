"""Real ONVIF clients against the device, TLS verification ON (the manufacturer root trusted).

* ``onvif-python`` as a second client (its own folder ``.venv/onvif-python``, made by
  ``make venv``: it installs into the same ``onvif`` package name as onvif-zeep-async),
  in a subprocess with ``verify_ssl=True`` and ``REQUESTS_CA_BUNDLE`` = the root.

* ``onvif-zeep-async`` (the library Home Assistant's ONVIF integration uses),
  doing what Home Assistant's set-up does: GetSystemDateAndTime, services,
  GetDeviceInformation, GetCapabilities, GetNetworkInterfaces, Media
  GetProfiles / GetStreamUri / GetSnapshotUri, the snapshot fetched with HTTP
  Digest from the URI the device gave, user management. Before and after the
  forced password change.

onvif-zeep-async builds its aiohttp connectors from one module-level SSL
context that does not verify (``onvif.client._NO_VERIFY_SSL_CONTEXT``) and
offers no parameter for it; the test swaps in a *verifying* context (the
manufacturer root, hostname checked) before any connector is built, so the
library's own code runs with verification on. A camera certificate that did
not chain to the root would fail these tests.
"""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import onvif
import onvif.client
import pytest
from device_fixtures import INITIAL_PASSWORD, NEW_PASSWORD, PKI, StartDevice
from stream_fixtures import device_stream_signer, make_pki, pem
from zeep.exceptions import Fault

from common import tls
from device.onvif import add_onvif_routes
from device.stream.pipeline import PipelineConfig, StreamPipeline
from device.stream.sources import SyntheticSource
from device.stream.web import add_stream_routes

WSDL_DIR = str(Path(onvif.__file__).parent / "wsdl")


@pytest.fixture
def verifying(monkeypatch: pytest.MonkeyPatch, device_pki: PKI, tmp_path: Path) -> ssl.SSLContext:
    root = tmp_path / "manufacturer-root.pem"
    root.write_bytes(device_pki.root_pem)
    context = tls.client_context(root)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    monkeypatch.setattr(onvif.client, "_NO_VERIFY_SSL_CONTEXT", context)
    return context


async def test_home_assistant_flow_before_and_after_the_forced_change(
    start_device: StartDevice, device_pki: PKI, verifying: ssl.SSLContext
) -> None:
    pipeline = StreamPipeline(
        lambda: SyntheticSource(160, 120, 15, paced=False),
        device_stream_signer(device_pki.device_ca_key, device_pki.device_ca_cert),
        PipelineConfig(frames_per_segment=5, workers=1),
    )
    device = await start_device(extensions=[lambda app: add_stream_routes(app, pipeline), add_onvif_routes])
    device.clock.now = time.time()  # real clients sign with the real clock (Created)

    # before the change: only the date answers; everything else says the password must change
    camera = onvif.client.ONVIFCamera("https://127.0.0.1", device.port, "admin", INITIAL_PASSWORD, WSDL_DIR)
    try:
        mgmt = await camera.create_devicemgmt_service()
        when = await mgmt.GetSystemDateAndTime()
        assert when.UTCDateTime.Date.Year >= 2024
        with pytest.raises(Fault, match="password must be changed"):
            await mgmt.GetDeviceInformation()
        with pytest.raises(Fault, match="password refused"):
            await mgmt.SetUser({"User": [{"Username": "admin", "Password": "password123", "UserLevel": "Administrator"}]})
        await mgmt.SetUser({"User": [{"Username": "admin", "Password": NEW_PASSWORD, "UserLevel": "Administrator"}]})
    finally:
        await camera.close()

    # after the change: Home Assistant's set-up, step by step
    camera = onvif.client.ONVIFCamera("https://127.0.0.1", device.port, "admin", NEW_PASSWORD, WSDL_DIR)
    try:
        await camera.update_xaddrs()
        mgmt = await camera.create_devicemgmt_service()
        info = await mgmt.GetDeviceInformation()
        assert info.SerialNumber == "RCTEST000001" and info.Manufacturer == "refcam"
        capabilities = await camera.get_capabilities()
        assert capabilities is not None and capabilities["Media"]["XAddr"].startswith("https://")
        interfaces = await mgmt.GetNetworkInterfaces()
        assert interfaces[0].Info.HwAddress.count(":") == 5
        media = await camera.create_media_service()
        profiles = await media.GetProfiles()
        assert [p.VideoEncoderConfiguration.Encoding for p in profiles] == ["JPEG"]
        token = profiles[0].token
        uri = await media.GetStreamUri({"ProfileToken": token, "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "HTTP"}}})
        assert uri.Uri.startswith("https://127.0.0.1:")
        snapshot = await camera.get_snapshot(token)  # HTTP Digest at the URI the device gave
        assert snapshot is not None and snapshot[:2] == b"\xff\xd8"
        await mgmt.CreateUsers({"User": [{"Username": "viewer1", "Password": "amber gulls sleep on the breakwater", "UserLevel": "User"}]})
        users = {u.Username: u.UserLevel for u in await mgmt.GetUsers()}
        assert users == {"admin": "Administrator", "viewer1": "User"}
        await mgmt.DeleteUsers({"Username": ["viewer1"]})
    finally:
        await camera.close()


async def test_an_unverifiable_certificate_is_refused(
    start_device: StartDevice, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The same client with a root that did not sign the camera: the TLS handshake fails."""
    other = make_pki()  # a fresh manufacturer root that never signed this camera
    root = tmp_path / "other-root.pem"
    root.write_bytes(pem(other.root))
    monkeypatch.setattr(onvif.client, "_NO_VERIFY_SSL_CONTEXT", tls.client_context(root))
    device = await start_device(extensions=[add_onvif_routes])
    device.clock.now = time.time()  # real clients sign with the real clock (Created)
    camera = onvif.client.ONVIFCamera("https://127.0.0.1", device.port, "admin", INITIAL_PASSWORD, WSDL_DIR)
    try:
        mgmt = await camera.create_devicemgmt_service()
        with pytest.raises(Exception) as info:
            await mgmt.GetSystemDateAndTime()
        assert "certificate" in repr(info.value).lower() or "ssl" in repr(info.value).lower()
    finally:
        await camera.close()


ONVIF_PYTHON = Path(__file__).resolve().parents[2] / ".venv" / "onvif-python"  # `make venv` puts it there


async def _onvif_python(port: int, root: Path, *args: str, expect_ok: bool = True) -> dict[str, object]:
    import asyncio
    import json
    import os
    import sys

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ONVIF_PYTHON), os.environ.get("PYTHONPATH", "")]),
        "REQUESTS_CA_BUNDLE": str(root),  # verify_ssl=True checks against the manufacturer root
        "HOME": str(root.parent),  # its WSDL cache, if any, stays in the test's folder
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("onvif_python_flow.py")), str(port), *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    if not expect_ok:
        assert proc.returncode != 0
        return {"stderr": err.decode()}
    assert proc.returncode == 0, err.decode()[-2000:]
    result: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_onvif_python_before_and_after_the_forced_change(
    start_device: StartDevice, device_pki: PKI, tmp_path: Path
) -> None:
    assert ONVIF_PYTHON.is_dir(), "onvif-python is missing: `make venv` installs it into .venv/onvif-python"
    root = tmp_path / "manufacturer-root.pem"
    root.write_bytes(device_pki.root_pem)
    device = await start_device(extensions=[add_onvif_routes])
    device.clock.now = time.time()  # real clients sign with the real clock (Created)
    foreign = tmp_path / "foreign" / "root.pem"  # a root that never signed this camera
    foreign.parent.mkdir()
    foreign.write_bytes(pem(make_pki().root))
    refused = await _onvif_python(device.port, foreign, "admin", INITIAL_PASSWORD, "before", NEW_PASSWORD, expect_ok=False)
    assert "CERTIFICATE_VERIFY_FAILED" in str(refused["stderr"])
    before = await _onvif_python(device.port, root, "admin", INITIAL_PASSWORD, "before", NEW_PASSWORD)
    assert str(before["onvif"]).startswith(str(ONVIF_PYTHON))  # really the second client
    assert int(str(before["year"])) >= 2024
    assert "password must be changed" in str(before["info_error"]) and before["set_user"] == "ok"
    after = await _onvif_python(device.port, root, "admin", NEW_PASSWORD, "after")
    assert after["serial"] == "RCTEST000001" and after["profiles"] == ["mjpeg_main"]
    assert str(after["snapshot_uri"]).startswith("https://127.0.0.1:") and after["users"] == ["admin"]
