"""The probe against the secure reference device: every case it can decide passes.

This is the first half of the probe's calibration (the second half runs each
flaw profile, see test_probe_calibration.py): a golden device that fails a
case would mean a wrong case or a wrong device.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
from pathlib import Path

import jsonschema
import pytest

from conformance.catalogue import KS_CONTROLS
from conformance.declaration import parse_declaration
from conformance.model import Verdict
from conformance.probe import ProbeOptions, run_probe
from conformance.report import write_reports
from refcam.cli import main as refcam_main

from .conftest import Firmware, RunningVendor, refcam, start_device

pytestmark = pytest.mark.slow

def test_secure_device_passes_every_case(
    tmp_path: Path, provisioned: Path, firmware: Firmware, vendor: RunningVendor
) -> None:
    peer_state = tmp_path / "peer"
    refcam("device", "provision", "--state", str(peer_state), "--keys", str(firmware.keys),
           "--firmware", str(firmware.images["1.0.0"]))
    declaration_file = tmp_path / "declaration.json"
    refcam("device", "declaration", "--state", str(provisioned), "--vendor-url", vendor.url,
           "-o", str(declaration_file))
    declaration = parse_declaration(declaration_file.read_text())
    with contextlib.ExitStack() as running:  # whatever started is stopped, even if a start fails
        device = start_device(provisioned, vendor_url=vendor.url)
        running.callback(device.stop)
        peer = start_device(peer_state, vendor_url=vendor.url)
        running.callback(peer.stop)
        report = run_probe(
            ProbeOptions(
                target=device.url,
                ca_file=str(device.root_pem),
                label_password=device.label_password,
                image=firmware.images["2.0.0"],
                older_image=firmware.images["0.9.0"],
                signing_key=firmware.keys / "firmware-signing.key.pem",
                allow_destructive=True,
                peer=peer.url,
                vendor=vendor.url,
                vendor_ca_file=str(vendor.root_pem),
                reference_values=firmware.reference_values,
                plaintext_ports=(device.port + 1,),
                rtsps_port=device.rtsp_port,
                rtsp_plaintext_ports=(device.rtsp_port + 1,),
                declaration=declaration,
            )
        )
    paths = write_reports(report, tmp_path / "report")
    print(f"probe run time: {report.elapsed:.1f} s, {len(report.exchanges)} HTTP exchanges")
    verdicts = {r.case_id: r.verdict for r in report.results}
    details = {
        r.case_id: [(u.unit, u.verdict.value, u.reason) for u in r.units]
        for r in report.results
        if r.verdict is not Verdict.PASS
    }
    failed = {c for c, v in verdicts.items() if v is Verdict.FAIL}
    assert not failed, json.dumps({c: details[c] for c in failed}, indent=1)
    undecided = {c for c, v in verdicts.items() if v is not Verdict.PASS}
    assert not undecided, json.dumps({c: details[c] for c in undecided}, indent=1)
    schema = json.loads(Path("conformance/report.schema.json").read_text())
    doc = json.loads(paths["json"].read_text())
    jsonschema.validate(doc, schema)
    # the report names the CLS level and each KS X 3020 control, and the declaration it used
    assert report.cls_level() == 4
    assert set(doc["summary"]["ks_x_3020"]) == set(KS_CONTROLS)
    assert doc["declaration"] == declaration.document
    page = paths["html"].read_text()
    assert "CLS level reached: 4" in page and all(f"<td>{c}</td>" in page for c in KS_CONTROLS)
    # the page opens with the unit's identity (model, serial from its certificate and info)
    assert page.index("Unit under test") < page.index("KS X 3020 controls") < page.index("Test cases")
    assert report.identity.get("serial") and report.identity.get("model") and report.identity.get("firmware")
    _assert_no_python_reprs(page, paths["table"].read_text(), json.dumps(doc))
    _assert_bundle(paths["manifest"].parent, device.label_password)
    # The target is 20 s on this machine when it is otherwise idle (the report prints its own
    # time); on a shared, loaded CI machine the bound only catches runaway waits.
    assert report.elapsed < 60.0, f"the full probe run took {report.elapsed:.1f} s"


_REPR = re.compile(r"\['|'\]|\{'|': |\(\d+, |<class |\bNone\b|object at 0x")


def _assert_no_python_reprs(*texts: str) -> None:
    found = [text[max(0, m.start() - 80):m.end() + 80] for text in texts for m in _REPR.finditer(text)]
    assert not found, "raw Python reprs in the report:\n" + "\n".join(found)


def _assert_bundle(directory: Path, label_password: str) -> None:
    har = json.loads((directory / "exchanges.har").read_text())
    assert har["log"]["version"] == "1.2" and har["log"]["entries"]
    entry = har["log"]["entries"][0]
    assert {"startedDateTime", "time", "request", "response", "cache", "timings"} <= set(entry)
    assert entry["comment"] == "preflight"
    for name in ("declaration.json", "versions.json", "identity.json", "options.json", "report.json", "report.html"):
        assert (directory / name).is_file(), name
    versions = json.loads((directory / "versions.json").read_text())
    assert versions["catalogue_version"] and versions["tool"]["version"]
    every_file = "".join(p.read_text() for p in directory.iterdir() if p.is_file() and p.name != "admin-password.txt")
    assert label_password not in every_file, "a secret in the evidence bundle"
    lines = (directory / "MANIFEST.sha256").read_text().splitlines()
    listed = {}
    for line in lines:
        digest, _, name = line.partition("  ")
        listed[name] = digest
    assert {"exchanges.har", "report.json", "declaration.json"} <= set(listed)
    for name, digest in listed.items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest, name


def test_a_wrong_label_password_is_one_line_exit_2_and_one_failed_login(
    tmp_path: Path, provisioned: Path, vendor: RunningVendor, capsys: pytest.CaptureFixture[str]
) -> None:
    device = start_device(provisioned, vendor_url=vendor.url)
    try:
        capsys.readouterr()
        code = refcam_main(["probe", device.url, "--ca", str(device.root_pem), "--label-password",
                            device.label_password + "x", "--report", str(tmp_path / "report")])
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    finally:
        device.stop()
    assert code == 2
    assert len(err) == 1 and "label password does not log in" in err[0], err
    assert not (tmp_path / "report").exists()
    db = sqlite3.connect(provisioned / "data" / "runtime" / "audit.sqlite3")
    try:
        failures = db.execute("SELECT COUNT(*) FROM audit WHERE event = 'login_failure'").fetchone()[0]
    finally:
        db.close()
    assert failures == 1
