"""The probe against a camera no one here wrote: PyPI ``ipycam`` on loopback.

ipycam is a virtual ONVIF camera with a web UI and REST API over plain HTTP,
authentication off by default. Its declaration (tests/conformance/
ipycam-declaration.json) names the web UI with HTTP Basic as the management
interface, so the probe talks to it through the HTTP Basic adapter. The probe
must not crash, must PASS nothing it cannot see, and must FAIL the TLS and
default-credential requirements with the exchanges that show it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from refcam.cli import main as refcam_main

from .conftest import free_port, stop_process

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
DECLARATION = HERE.parent / "conformance" / "ipycam-declaration.json"
READY = re.compile(r"ipycam serving (http://\S+)")
TLS_CASES = {"TLS-01", "TLS-02", "TLS-03", "TLS-05", "TLS-06", "TLS-07", "TLS-08"}
CREDENTIAL_CASES = {"CRED-01", "CRED-03"}


def test_probe_judges_ipycam_without_crashing_or_false_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    http_port, rtsp_port = free_port(), free_port()
    process, output = _start_ipycam(http_port, rtsp_port)
    try:
        capsys.readouterr()
        code = refcam_main([
            "probe", f"http://127.0.0.1:{http_port}", "--declaration", str(DECLARATION),
            "--plaintext-ports", str(http_port + 1), "--rtsp-plaintext-ports", str(rtsp_port),
            "--report", str(tmp_path / "report"),
        ])
        captured = capsys.readouterr()
    finally:
        stop_process(process)
    assert "Traceback" not in captured.err + captured.out
    assert code == 1, captured.err + "\n".join(output)
    doc = json.loads((tmp_path / "report" / "report.json").read_text())
    verdicts = {c["id"]: c["verdict"] for c in doc["cases"]}
    assert not [c for c, v in verdicts.items() if v == "PASS"], verdicts  # nothing it cannot see
    assert {c for c in TLS_CASES | CREDENTIAL_CASES if verdicts[c] != "FAIL"} == set(), verdicts
    for case in doc["cases"]:
        if case["id"] in TLS_CASES | CREDENTIAL_CASES:
            for u in case["units"]:
                if u["verdict"] == "FAIL":
                    assert u["evidence"], f"{case['id']} {u['unit']} FAILs without evidence"
    cred01 = next(c for c in doc["cases"] if c["id"] == "CRED-01")
    assert "no credential at all" in cred01["units"][0]["reason"]
    assert cred01["units"][0]["evidence"][0]["detail"]["response"]["status"] == 200
    # the unit's identity comes from its own info document
    assert doc["identity"]["model"] == "VirtualCam-1" and doc["identity"]["serial"] == "PY-000001"
    assert doc["summary"]["cls_level_reached"] is None  # NOT TESTED cases: no level claimed
    # its plaintext RTSP (ipycam serves no RTSPS) is found and judged, with evidence
    assert verdicts["RTSP-01"] == "FAIL", verdicts
    har = json.loads((tmp_path / "report" / "exchanges.har").read_text())
    assert any(e["request"]["url"].endswith("/api/config") for e in har["log"]["entries"])


def _start_ipycam(http_port: int, rtsp_port: int):  # type: ignore[no-untyped-def]
    """ipycam_loopback.py as a subprocess (the conftest starter runs ``python -m refcam.cli``)."""
    import queue
    import subprocess
    import threading
    import time

    proc = subprocess.Popen(
        [sys.executable, str(HERE / "ipycam_loopback.py"), str(http_port), str(rtsp_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line.rstrip())
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + 60
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("ipycam did not start:\n" + "\n".join(output))
        if READY.search(line):
            return proc, output
