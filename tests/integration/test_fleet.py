"""Fleet mode end to end: `refcam fleet provision` / `fleet run` / `fleet status` / `fleet labels`.

A small fleet of real units (each booted through ROM -> bootloader -> verified
payload) on 127.0.1.x, hosted by two worker processes; one unit's port is
taken and one unit's state is damaged before the run, so those two are
reported in one line each while the rest serve. The conformance probe CLI
checks two units by address; a unit's metrics are read over TLS as admin;
then a staged rollout through the vendor's signed TUF metadata goes to 50 %
and to 100 % with no unit left behind.
"""

from __future__ import annotations

import csv
import json
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from refcam.cli import main as refcam_main

from .conftest import RunningVendor, _start, free_port, refcam, start_vendor, stop_process

pytestmark = pytest.mark.slow

UNITS = 8
PORT_TAKEN = 6  # unit index whose address:port is occupied before the run
DAMAGED = 7  # unit index whose state is damaged before the run
HEALTHY = UNITS - 2
READY = r"fleet: \d+ of \d+ units listening"
NEW_PASSWORD = "correct horse battery staple 42"


@dataclass
class Fleet:
    root: Path
    dir: Path
    keys: Path
    repo: Path
    images: dict[str, Path]
    port: int
    vendor: RunningVendor
    output: list[str]
    plan: dict[str, Any] = field(default_factory=dict)

    def status(self) -> dict[str, Any]:
        from refcam.fleet import read_status, summarize

        rows = read_status(self.dir)
        return {"summary": summarize(rows), "units": rows}

    def unit(self, index: int) -> dict[str, Any]:
        return dict(self.plan["units"][index])

    def label_password(self, index: int) -> str:
        return (self.dir / "units" / self.unit(index)["name"] / "label.txt").read_text().split(
            "initial password: ")[1].split()[0]

    def call(self, index: int, method: str, path: str, *, token: str | None = None,
             body: Any = None) -> tuple[int, bytes, str]:
        ctx = ssl.create_default_context(cafile=str(self.dir / "fleet-ca.pem"))  # verifies the IP address
        url = f"https://{self.unit(index)['address']}:{self.port}{path}"
        request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                         method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, context=ctx, timeout=30) as response:
                return response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def wait_for(predicate: Any, timeout: float, what: str, fleet: Fleet) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}; status:\n{json.dumps(fleet.status(), indent=1)[:6000]}\n"
                         + "\n".join(fleet.output[-40:]))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    keys, repo = root / "keys", root / "repo"
    refcam("keys", "init", "--dir", str(keys))
    refcam("repo", "init", "--dir", str(repo), "--keys", str(keys))
    images = {}
    for version, counter in (("1.0.0", "1"), ("2.0.0", "2")):
        images[version] = root / f"fw-{version}.img"
        refcam("firmware", "build", "--keys", str(keys), "--version", version, "--security-counter", counter,
               "--tuf-root", str(repo / "metadata" / "1.root.json"), "-o", str(images[version]))
    fleet_dir = root / "F"
    refcam("fleet", "provision", "--count", str(UNITS), "--keys", str(keys), "--firmware",
           str(images["1.0.0"]), "--dir", str(fleet_dir), "--workers", "2")
    plan = json.loads((fleet_dir / "fleet.json").read_text())
    # A damaged unit: its board description is garbage.
    (fleet_dir / "units" / plan["units"][DAMAGED]["name"] / "hardware.json").write_text("{not json")
    port = free_port()
    squatter = socket.socket()
    squatter.bind((plan["units"][PORT_TAKEN]["address"], port))
    squatter.listen()
    vendor = start_vendor(root / "vendor", keys, repo=repo)
    proc, output = _start(
        ["fleet", "run", "--dir", str(fleet_dir), "--workers", "2", "--port", str(port),
         "--update-url", vendor.url, "--update-check-interval", "2", "--update-auto-install", "on"],
        __import__("re").compile(READY),
    )
    fleet = Fleet(root, fleet_dir, keys, repo, images, port, vendor, output, plan)
    try:
        yield fleet
    finally:
        stop_process(proc)
        vendor.stop()
        squatter.close()


def test_count_larger_than_the_address_range_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = refcam_main(["fleet", "provision", "--count", "70000", "--keys", str(tmp_path / "k"),
                        "--firmware", str(tmp_path / "fw.img"), "--dir", str(tmp_path / "F")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "larger than the loopback address range" in err
    assert not (tmp_path / "F").exists()


def test_port_in_use_and_damaged_unit_are_one_line_each_rest_serve(fleet: Fleet) -> None:
    taken, damaged = fleet.unit(PORT_TAKEN), fleet.unit(DAMAGED)
    lines = [line for line in fleet.output if line.startswith("fleet: u")]
    assert any(taken["name"] in line and "cannot serve" in line and "in use" in line for line in lines), lines
    assert any(damaged["name"] in line and "did not boot" in line for line in lines), lines
    assert not any("Traceback" in line for line in fleet.output)
    status = fleet.status()
    assert status["summary"]["states"] == {"listening": HEALTHY, "failed": 2}
    assert status["summary"]["versions"] == {"1.0.0": HEALTHY}
    by_name = {row["name"]: row for row in status["units"]}
    assert by_name[damaged["name"]]["boot_failures"] == 1
    ctx = ssl.create_default_context(cafile=str(fleet.dir / "fleet-ca.pem"))
    for index in range(HEALTHY):  # each unit on its own address, with its own certificate
        code, _body, _ = fleet.call(index, "GET", "/api/v1/info")
        assert code == 200
        address = fleet.unit(index)["address"]
        with socket.create_connection((address, fleet.port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname=address) as tls:
            names = [value.lower() for _kind, value in tls.getpeercert()["subjectAltName"]]
        assert address in names and f"cam-{fleet.unit(index)['serial'].lower()}.local" in names


def test_labels_sheet(fleet: Fleet, tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    refcam("fleet", "labels", "--dir", str(fleet.dir), "--out", str(out))
    rows = list(csv.DictReader(out.open()))
    assert [r["address"] for r in rows] == [u["address"] for u in fleet.plan["units"]]
    assert rows[0]["initial_password"] == fleet.label_password(0) and rows[0]["must_change"] == "yes"
    assert out.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("index", [0, 3])
def test_probe_units_by_address(fleet: Fleet, index: int, tmp_path: Path) -> None:
    unit = fleet.unit(index)
    code = refcam_main([
        "probe", f"https://{unit['address']}:{fleet.port}", "--ca", str(fleet.dir / "fleet-ca.pem"),
        "--label-password", fleet.label_password(index), "--report", str(tmp_path / "report"),
        "--only", "TLS-01", "--only", "TLS-02", "--only", "CRED-01", "--only", "CRED-03",
    ])
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    chosen = {"TLS-01", "TLS-02", "CRED-01", "CRED-03"}
    verdicts = {case["id"]: case["verdict"] for case in report["cases"] if case["id"] in chosen}
    details = {case["id"]: case.get("units") for case in report["cases"] if case["id"] in chosen}
    assert code == 0, verdicts
    # the others are NOT TESTED (--only). With the label password alone the probe cannot read
    # the user list, so Mirai pairs the unit throttled stay undecided: CRED-03 may be
    # INCONCLUSIVE (never PASS from a 429), but nothing may FAIL.
    assert {k: v for k, v in verdicts.items() if k != "CRED-03"} == dict.fromkeys(chosen - {"CRED-03"}, "PASS"), details
    assert verdicts["CRED-03"] in ("PASS", "INCONCLUSIVE"), details


def test_device_metrics_admin_only_over_tls(fleet: Fleet) -> None:
    index = 1
    code, _body, _ = fleet.call(index, "GET", "/api/v1/metrics")
    assert code == 401
    password = fleet.label_password(index)
    code, body, _ = fleet.call(index, "POST", "/api/v1/session", body={"username": "admin", "password": "wrong-" + password})
    assert code == 401
    time.sleep(2)  # the refused login is throttled (retry_after)
    code, body, _ = fleet.call(index, "POST", "/api/v1/session", body={"username": "admin", "password": password})
    assert code == 200, body
    token = json.loads(body)["token"]
    code, _, _ = fleet.call(index, "POST", "/api/v1/session/password", token=token,
                            body={"current_password": password, "new_password": NEW_PASSWORD})
    assert code == 204
    code, body, _ = fleet.call(index, "POST", "/api/v1/session", body={"username": "admin", "password": NEW_PASSWORD})
    token = json.loads(body)["token"]
    code, body, content_type = fleet.call(index, "GET", "/api/v1/metrics", token=token)
    assert code == 200 and content_type.startswith("text/plain")
    text = body.decode()
    assert f'serial="{fleet.unit(index)["serial"]}"' in text and 'firmware="1.0.0"' in text
    refused = [line for line in text.splitlines() if line.startswith("refcam_device_logins_refused ")]
    assert refused and float(refused[0].split()[1]) >= 1
    # the fleet summary counts it too
    wait_for(lambda: fleet.status()["summary"]["logins_refused"] >= 1, 20, "the fleet summary", fleet)


def _rollout_rule(repo: Path) -> dict[str, Any]:
    metadata = repo / "metadata"
    newest = max(metadata.glob("*.models-refcam-rc1080-v1.json"), key=lambda p: int(p.name.split(".")[0]))
    targets = json.loads(newest.read_text())["signed"]["targets"]
    return dict(targets["refcam-rc1080-v1/fw-2.0.0.img"]["custom"]["rollout"])


def test_staged_rollout_50_then_100_percent_no_bricks(fleet: Fleet) -> None:
    from device.update.rollout import cohort_point

    refcam("repo", "publish", str(fleet.repo), str(fleet.images["2.0.0"]), "--keys", str(fleet.keys),
           "--rollout", "50")
    rule = _rollout_rule(fleet.repo)
    assert rule["basis_points"] == 5000 and rule["halted"] is False
    healthy = [fleet.unit(i) for i in range(HEALTHY)]
    cohort = {u["name"] for u in healthy if cohort_point(u["serial"], rule["salt"]) < 50}

    def at_50() -> bool:
        rows = {r["name"]: r for r in fleet.status()["units"]}
        for unit in healthy:
            row = rows[unit["name"]]
            view = (row.get("device") or {}).get("rollout") or {}
            want = "2.0.0" if unit["name"] in cohort else "1.0.0"
            if row["firmware"] != want or row["state"] != "listening" or view.get("percent") != 50:
                return False
            if view.get("in_cohort") != (unit["name"] in cohort) or row["device"].get("trial"):
                return False
        return True

    wait_for(at_50, 150, "the 50 % stage", fleet)
    time.sleep(5)  # more checks: the units outside the cohort stay where they are
    assert at_50()

    refcam("repo", "rollout", str(fleet.repo), "--version", "2.0.0", "--percent", "100", "--keys", str(fleet.keys))
    assert _rollout_rule(fleet.repo)["salt"] == rule["salt"]  # widening keeps every admitted unit admitted

    def at_100() -> bool:
        rows = {r["name"]: r for r in fleet.status()["units"]}
        return all(
            rows[u["name"]]["firmware"] == "2.0.0" and rows[u["name"]]["state"] == "listening"
            and not rows[u["name"]]["device"].get("trial")
            for u in healthy
        )

    wait_for(at_100, 150, "the 100 % stage", fleet)
    summary = fleet.status()["summary"]
    assert summary["versions"] == {"2.0.0": HEALTHY}
    assert summary["crashes"] == 0 and summary["boot_failures"] == 1  # only the damaged unit, at start
    prom = (fleet.dir / "run" / "fleet.prom")
    wait_for(lambda: f'refcam_fleet_firmware_units{{version="2.0.0"}} {HEALTHY}.0' in prom.read_text(), 10,
             "the fleet summary metrics", fleet)
