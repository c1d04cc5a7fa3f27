"""The probe against the secure reference device: every case it can decide passes.

This is the first half of the probe's calibration (the second half runs each
flaw profile, see test_probe_calibration.py): a golden device that fails a
case would mean a wrong case or a wrong device.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import jsonschema
import pytest

from conformance.model import Verdict
from conformance.probe import ProbeOptions, run_probe
from conformance.report import write_reports

from .conftest import Firmware, RunningVendor, refcam, start_device

pytestmark = pytest.mark.slow

def test_secure_device_passes_every_case(
    tmp_path: Path, provisioned: Path, firmware: Firmware, vendor: RunningVendor
) -> None:
    peer_state = tmp_path / "peer"
    refcam("device", "provision", "--state", str(peer_state), "--keys", str(firmware.keys),
           "--firmware", str(firmware.images["1.0.0"]))
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
            )
        )
    paths = write_reports(report, tmp_path / "report")
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
    jsonschema.validate(json.loads(paths["json"].read_text()), schema)
