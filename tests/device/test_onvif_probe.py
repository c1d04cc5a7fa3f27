"""The probe's ONVIF cases against the in-process device: all PASS when secure, each flaw fails exactly its cases."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from device_fixtures import INITIAL_PASSWORD, PKI, StartDevice

from common.flaws import UnsafeFlaws
from conformance.calibration import FLAW_CASES
from conformance.model import Verdict
from conformance.probe import ProbeOptions, run_probe
from device.onvif import add_onvif_routes

ONVIF_CASES = ("ONVIF-01", "ONVIF-02", "ONVIF-03", "ONVIF-04", "ONVIF-05", "ONVIF-06")
ONVIF_FLAWS = ("onvif-preauth-open", "wsse-replay", "onvif-anonymous-default", "onvif-digest-md5-only")


@pytest.mark.parametrize("flaw", [None, *ONVIF_FLAWS])
async def test_onvif_cases_calibrate(start_device: StartDevice, device_pki: PKI, tmp_path: Path, flaw: str | None) -> None:
    flaws = UnsafeFlaws(frozenset({flaw} if flaw else set()))
    device = await start_device(extensions=[add_onvif_routes], flaws=flaws)
    device.clock.now = time.time()  # the probe signs UsernameTokens with the real clock
    root = tmp_path / "root.pem"
    root.write_bytes(device_pki.root_pem)
    options = ProbeOptions(
        target=f"https://127.0.0.1:{device.port}", ca_file=str(root), label_password=INITIAL_PASSWORD,
        only=ONVIF_CASES, plaintext_ports=(1,),
    )
    report = await asyncio.to_thread(run_probe, options)
    verdicts = {r.case_id: r.verdict for r in report.results if r.case_id in ONVIF_CASES}
    details = {r.case_id: [(u.unit, u.verdict.value, u.reason) for u in r.units] for r in report.results}
    assert set(verdicts) == set(ONVIF_CASES), details
    expected = FLAW_CASES[flaw] & set(ONVIF_CASES) if flaw else set()
    assert {c for c, v in verdicts.items() if v is Verdict.FAIL} == expected, json.dumps(details, indent=1)
    assert all(v is Verdict.PASS for c, v in verdicts.items() if c not in expected), json.dumps(details, indent=1)
