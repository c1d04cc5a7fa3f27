"""The probe's ONVIF target adapter: its credential and TLS cases against refcam's ONVIF side only."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from device_fixtures import INITIAL_PASSWORD, PKI, FakeClock, StartDevice

from common.flaws import UnsafeFlaws
from conformance.adapters import adapter_for
from conformance.errors import ProbeError
from conformance.model import Verdict
from conformance.onvif_adapter import OnvifAdapter
from conformance.probe import ProbeOptions, run_probe
from device.onvif import add_onvif_routes

CASES = ("CRED-01", "CRED-03", "CRED-06", "CRED-07", "TLS-01", "TLS-03", "TLS-07")


@pytest.fixture(autouse=True)
def real_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probe waits out back-offs in real time: the device must see time pass too."""
    monkeypatch.setattr(FakeClock, "__call__", lambda self: time.time())


async def probe(start_device: StartDevice, device_pki: PKI, tmp_path: Path, flaws: UnsafeFlaws) -> dict[str, list[tuple[str, str, str]]]:
    device = await start_device(extensions=[add_onvif_routes], flaws=flaws)
    root = tmp_path / "root.pem"
    root.write_bytes(device_pki.root_pem)
    options = ProbeOptions(
        target=f"https://127.0.0.1:{device.port}", ca_file=str(root), label_password=INITIAL_PASSWORD,
        only=CASES, plaintext_ports=(1,), adapter="onvif",
    )
    report = await asyncio.to_thread(run_probe, options)
    assert report.identity["adapter"] == "onvif" and report.identity["serial"] == "RCTEST000001"
    # every request the credential cases sent went to the ONVIF device service (or the TLS checks' paths)
    paths = {e.exchange.path for e in report.exchanges if e.case_id.startswith("CRED")}
    assert not {p for p in paths if p.startswith("/api/")}, paths
    return {r.case_id: [(u.unit, u.verdict.value, u.reason) for u in r.units] for r in report.results if r.case_id in CASES}


async def test_secure_unit_passes_through_onvif_alone(start_device: StartDevice, device_pki: PKI, tmp_path: Path) -> None:
    units = await probe(start_device, device_pki, tmp_path, UnsafeFlaws())
    verdicts = {(case, unit): verdict for case, us in units.items() for unit, verdict, _ in us}
    # CRED-01 b (the routes before the change) is ONVIF-02's job under this adapter
    assert verdicts.pop(("CRED-01", "b")) == Verdict.NOT_TESTED.value, json.dumps(units, indent=1)
    assert set(verdicts.values()) == {Verdict.PASS.value}, json.dumps(units, indent=1)


async def test_no_lockout_fails_brute_force_through_onvif(start_device: StartDevice, device_pki: PKI, tmp_path: Path) -> None:
    units = await probe(start_device, device_pki, tmp_path, UnsafeFlaws(frozenset({"no-lockout"})))
    assert [v for _, v, _ in units["CRED-06"]] == [Verdict.FAIL.value, Verdict.FAIL.value], json.dumps(units, indent=1)


def test_adapter_selection() -> None:
    assert isinstance(adapter_for(None, name="onvif"), OnvifAdapter)
    assert isinstance(adapter_for({"interface": "onvif", "auth": "ws-security", "admin_user": "root"}), OnvifAdapter)
    assert adapter_for({"interface": "onvif", "auth": "ws-security", "admin_user": "root"}).admin_user == "root"
    with pytest.raises(ProbeError, match="contradicts"):
        adapter_for({"interface": "refcam-api", "auth": "bearer"}, name="onvif")
