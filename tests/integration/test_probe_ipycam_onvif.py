"""The probe's ONVIF adapter against a camera no one here wrote: ipycam's ONVIF device service.

ipycam answers ONVIF without authentication by default: through the adapter
(``--adapter onvif``) the probe must FAIL CRED-01 with the anonymous
GetDeviceInformation as evidence, read the identity from GetDeviceInformation,
and PASS nothing it cannot see.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refcam.cli import main as refcam_main

from .conftest import stop_process
from .test_probe_ipycam import _start_ipycam, free_port

pytestmark = pytest.mark.slow


def test_onvif_adapter_fails_ipycam_anonymous_onvif(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    http_port, rtsp_port = free_port(), free_port()
    process, output = _start_ipycam(http_port, rtsp_port)
    try:
        capsys.readouterr()
        code = refcam_main([
            "probe", f"http://127.0.0.1:{http_port}", "--adapter", "onvif", "--only", "CRED-01",
            "--plaintext-ports", str(http_port + 1), "--report", str(tmp_path / "report"),
        ])
        captured = capsys.readouterr()
    finally:
        stop_process(process)
    assert "Traceback" not in captured.err + captured.out
    assert code == 1, captured.err + "\n".join(output)
    doc = json.loads((tmp_path / "report" / "report.json").read_text())
    cred01 = next(c for c in doc["cases"] if c["id"] == "CRED-01")
    assert cred01["verdict"] == "FAIL", cred01
    assert "no credential at all" in cred01["units"][0]["reason"]
    request = cred01["units"][0]["evidence"][0]["detail"]["request"]
    assert "/onvif/device_service" in json.dumps(request), request
    assert doc["identity"]["adapter"] == "onvif"
    assert doc["identity"]["model"] == "VirtualCam-1" and doc["identity"]["serial"] == "PY-000001"  # from GetDeviceInformation
    assert not [c["id"] for c in doc["cases"] if c["verdict"] == "PASS"]
