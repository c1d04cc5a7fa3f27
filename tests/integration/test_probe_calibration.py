"""The probe's mutation score: every flaw profile is detected, exactly where it should be.

For each flaw a fresh device runs with that flaw and the probe runs with
every option a lab would give it. The FAIL set must equal the calibration
table (conformance/calibration.py); every other case must PASS (under
self-signed-cert, cases that need a validated channel may be INCONCLUSIVE).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from common.flaws import FLAWS
from conformance.calibration import FLAW_CASES, PREFLIGHT_FLAWS, render_markdown
from conformance.errors import PreflightError
from conformance.model import Verdict
from conformance.probe import ProbeOptions, run_probe

from .conftest import Firmware, RunningVendor, refcam, start_device, start_vendor

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_every_flaw_profile_is_in_the_calibration_table() -> None:
    assert set(FLAW_CASES) == set(FLAWS)
    assert all(cases or flaw in PREFLIGHT_FLAWS for flaw, cases in FLAW_CASES.items()), "a flaw the probe cannot detect"


def test_flaw_table_in_the_docs_is_current() -> None:
    assert (ROOT / "docs" / "FLAWS.md").read_text() == render_markdown(), (
        "docs/FLAWS.md is stale: run python -m conformance.calibration > docs/FLAWS.md"
    )


@pytest.fixture(scope="session")
def attacker_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Working firmware signed with keys the vendor never fused or certified."""
    root = tmp_path_factory.mktemp("attacker")
    refcam("keys", "init", "--dir", str(root / "keys"))
    image = root / "evil-1.0.0.img"
    refcam("firmware", "build", "--keys", str(root / "keys"), "--version", "1.0.0", "--security-counter", "1",
           "-o", str(image))
    return image


@pytest.fixture(scope="session")
def sla_breached_vendor(tmp_path_factory: pytest.TempPathFactory, firmware: Firmware):  # type: ignore[no-untyped-def]
    server = start_vendor(tmp_path_factory.mktemp("flawed-vendor"), firmware.keys, flaws=["sla-breached"])
    yield server
    server.stop()


@pytest.mark.parametrize("flaw", sorted(FLAW_CASES))
def test_probe_fails_exactly_the_cases_of_each_flaw(
    flaw: str,
    tmp_path: Path,
    firmware: Firmware,
    vendor: RunningVendor,
    sla_breached_vendor: RunningVendor,
    attacker_image: Path,
) -> None:
    state = tmp_path / "state"
    refcam("device", "provision", "--state", str(state), "--keys", str(firmware.keys),
           "--firmware", str(firmware.images["1.0.0"]))
    peer_state = tmp_path / "peer"
    refcam("device", "provision", "--state", str(peer_state), "--keys", str(firmware.keys),
           "--firmware", str(firmware.images["1.0.0"]))
    if flaw == "boot-skips-signature":
        refcam("device", "flash", "--state", str(state), "--slot", "a", str(attacker_image))
    vendor_server = sla_breached_vendor if flaw == "sla-breached" else vendor
    device_flaws = [] if flaw == "sla-breached" else [flaw]
    with contextlib.ExitStack() as running:  # whatever started is stopped, even if a start fails
        device = start_device(state, flaws=device_flaws, vendor_url=vendor_server.url)
        running.callback(device.stop)
        peer = start_device(peer_state, vendor_url=vendor_server.url)
        running.callback(peer.stop)
        label = "admin" if flaw == "shared-default-password" else device.label_password
        options = ProbeOptions(
                target=device.url,
                ca_file=str(device.root_pem),
                label_password=label,
                image=firmware.images["2.0.0"],
                older_image=firmware.images["0.9.0"],
                signing_key=firmware.keys / "firmware-signing.key.pem",
                reference_values=firmware.reference_values,
                allow_destructive=True,
                peer=peer.url,
                vendor=vendor_server.url,
                vendor_ca_file=str(vendor_server.root_pem),
                plaintext_ports=(device.port + 1,),
                rtsps_port=device.rtsp_port,
                rtsp_plaintext_ports=(device.rtsp_port + 1,),
            )
        if flaw in PREFLIGHT_FLAWS:
            with pytest.raises(PreflightError, match=PREFLIGHT_FLAWS[flaw]):
                run_probe(options)
            return
        report = run_probe(options)
    verdicts = {r.case_id: r.verdict for r in report.results}
    details = {
        r.case_id: [(u.unit, u.verdict.value, u.reason[:300]) for u in r.units]
        for r in report.results
        if r.verdict is not Verdict.PASS
    }
    failing = {c for c, v in verdicts.items() if v is Verdict.FAIL}
    assert failing == FLAW_CASES[flaw], json.dumps(details, indent=1)
    others = {c for c, v in verdicts.items() if v not in (Verdict.PASS, Verdict.FAIL)}
    assert not others, json.dumps(details, indent=1)
