"""``refcam psirt ...`` end to end on a temporary database, with --at as the simulated clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from refcam.cli import main
from update_server import csaf
from update_server.psirt import model
from update_server.psirt.store import PSIRTStore

V31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "psirt.db"
    store = PSIRTStore.open(path)
    sub = model.parse_submission(
        {
            "title": "Hard-coded debug shell",
            "description": "d",
            "product": "RC-1080",
            "version": "1.0.0",
        }
    )
    store.create_report(sub, now=datetime(2026, 3, 1, tzinfo=UTC))
    store.create_report(sub, now=datetime(2026, 3, 2, tzinfo=UTC))
    store.close()
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_full_workflow_from_the_command_line(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--db", str(db)]
    steps = [
        ["ack", "R-2026-0001", "--at", "2026-03-02T00:00:00Z"],
        ["triage", "R-2026-0001", "--cvss", V31, "--at", "2026-03-02T01:00:00Z"],
        ["start-fix", "R-2026-0001", "--at", "2026-03-02T02:00:00Z"],
        ["fixed", "R-2026-0001", "--release", "refcam-rc1080-v1:1.0.1", "--at", "2026-03-10"],
        ["publish", "R-2026-0001", "--base-url", "https://vendor.example", "--at", "2026-03-11"],
        ["close", "R-2026-0001", "--at", "2026-03-12"],
    ]
    for step in steps:
        code, out, err = run(capsys, "psirt", *step, *d)
        assert (code, err) == (0, ""), step
    assert "closed" in out
    code, out, _ = run(capsys, "psirt", "list", *d)
    assert out.splitlines()[0].split()[:3] == ["R-2026-0001", "closed", "critical"]
    store = PSIRTStore.open(db)
    [advisory] = store.advisories()
    store.close()
    csaf.validate_advisory(advisory)
    assert advisory["document"]["tracking"]["id"] == "REFCAM-SA-2026-0001"
    code, out, _ = run(capsys, "psirt", "show", "R-2026-0001", *d)
    assert json.loads(out)["advisory_id"] == "REFCAM-SA-2026-0001"


def test_invalid_transition_is_one_line_and_exit_1(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys,
        "psirt",
        "fixed",
        "R-2026-0001",
        "--release",
        "refcam-rc1080-v1:1.0.1",
        "--db",
        str(db),
    )
    assert code == 1 and out == ""
    assert err == (
        "refcam: error: cannot move report R-2026-0001 from received to fixed "
        "(allowed: acknowledged, rejected, duplicate)\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["triage", "R-2026-0001", "--cvss", "CVSS:3.1/AV:Z"], "is malformed"),
        (["ack", "R-2026-0001", "--at", "yesterday"], "--at 'yesterday' is not an ISO 8601"),
        (["ack", "R-2026-0099"], "no report R-2026-0099"),
        (["ack", "bogus"], "report id 'bogus' is malformed"),
        (["publish", "R-2026-0001"], "mark it fixed first"),
        (["cra-report", "R-2026-0001", "--kind", "early_warning"], "not flagged actively"),
        (["sla", "--policy", "/nonexistent/sla.toml"], "cannot read the SLA policy"),
        (["list", "--db", "/nonexistent/psirt.db"], "no PSIRT database at /nonexistent/psirt.db"),
    ],
)
def test_user_errors_are_one_line(
    db: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    extra = [] if "--db" in argv else ["--db", str(db)]
    code, _, err = run(capsys, "psirt", *argv, *extra)
    assert code == 1
    assert err.startswith("refcam: error: ") and message in err and err.count("\n") == 1


def test_sla_json_and_table_with_a_simulated_clock(
    db: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    d = ["--db", str(db)]
    code, out, _ = run(
        capsys, "psirt", "sla", "--format", "json", "--at", "2026-03-08T00:00:00Z", *d
    )
    doc = json.loads(out)
    assert code == 0 and doc["breach_count"] == 0
    assert [x["report_id"] for x in doc["at_risk"]] == ["R-2026-0001", "R-2026-0002"]
    code, out, _ = run(
        capsys, "psirt", "sla", "--format", "json", "--at", "2026-03-08T00:00:01Z", *d
    )
    doc = json.loads(out)
    assert [x["report_id"] for x in doc["breached"]] == ["R-2026-0001"]
    assert doc["newly_audited_breaches"] == 1
    code, out, _ = run(capsys, "psirt", "sla", "--format", "json", "--at", "2026-03-08T06:00", *d)
    assert json.loads(out)["newly_audited_breaches"] == 0  # recorded once
    policy = tmp_path / "vendor.toml"
    policy.write_text("[acknowledge]\ndays = 30\n")
    code, out, _ = run(capsys, "psirt", "sla", "--policy", str(policy), "--at", "2026-03-08", *d)
    assert code == 0
    assert "0 breached" in out.splitlines()[0]
    assert "R-2026-0001   acknowledge" in out


def test_exploited_report_and_cra_submissions(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = ["--db", str(db)]
    assert run(capsys, "psirt", "ack", "R-2026-0002", "--at", "2026-03-02T01:00Z", *d)[0] == 0
    assert run(capsys, "psirt", "exploited", "R-2026-0002", "--at", "2026-03-02T02:00Z", *d)[0] == 0
    _code, out, _ = run(
        capsys, "psirt", "sla", "--format", "json", "--at", "2026-03-03T02:00:01Z", *d
    )
    breached = {(x["report_id"], x["kind"]) for x in json.loads(out)["breached"]}
    assert ("R-2026-0002", "cra_early_warning") in breached
    assert (
        run(
            capsys,
            "psirt",
            "cra-report",
            "R-2026-0002",
            "--kind",
            "notification",
            "--at",
            "2026-03-04T00:00Z",
            *d,
        )[0]
        == 0
    )
    assert (
        run(
            capsys,
            "psirt",
            "message",
            "R-2026-0002",
            "--body",
            "update",
            "--at",
            "2026-03-04T00:00Z",
            *d,
        )[0]
        == 0
    )
    assert run(capsys, "psirt", "duplicate", "R-2026-0001", "--of", "R-2026-0002", *d)[0] == 0
    _, out, _ = run(capsys, "psirt", "show", "R-2026-0002", *d)
    shown = json.loads(out)
    assert list(shown["cra_submitted"]) == ["notification"]
    assert shown["messages"][0]["body"] == "update"


def test_db_defaults_to_the_environment_variable(
    db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFCAM_PSIRT_DB", str(db))
    code, out, _ = run(capsys, "psirt", "list")
    assert code == 0 and out.count("R-2026-") == 2


def _fixed(db: Path, capsys: pytest.CaptureFixture[str], *triage: str) -> None:
    d = ["--db", str(db)]
    for step in (
        ["ack", "R-2026-0001", "--at", "2026-03-02T00:00:00Z"],
        ["triage", "R-2026-0001", "--cvss", V31, *triage, "--at", "2026-03-02T01:00:00Z"],
        ["start-fix", "R-2026-0001", "--at", "2026-03-02T02:00:00Z"],
        ["fixed", "R-2026-0001", "--release", "refcam-rc1080-v1:1.0.1", "--at", "2026-03-10"],
    ):
        assert run(capsys, "psirt", *step, *d)[0] == 0, step


def test_publish_names_the_publisher_the_vendor_server_announces(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fixed(db, capsys, "--cwe", "CWE-798", "--cwe-name", "Use of Hard-coded Credentials")
    d = ["--db", str(db), "--at", "2026-03-11"]
    code, _, err = run(capsys, "psirt", "publish", "R-2026-0001", *d)
    assert code == 1 and "no CSAF publisher recorded in" in err and err.count("\n") == 1
    store = PSIRTStore.open(db)
    server = csaf.Publisher.default("https://localhost:8443")
    store.record_publisher(server)  # what the vendor server does when it starts on this database
    store.close()
    code, _, err = run(capsys, "psirt", "publish", "R-2026-0001", *d, "--base-url", "https://vendor.example")
    assert code == 1 and err == (
        "refcam: error: --base-url https://vendor.example differs from the publisher the vendor server "
        "announces (https://localhost:8443); advisories must name their provider's publisher\n"
    )
    assert run(capsys, "psirt", "publish", "R-2026-0001", *d)[0] == 0
    store = PSIRTStore.open(db)
    [advisory] = store.advisories()
    store.close()
    assert advisory["document"]["publisher"] == server.to_json()
    assert advisory["vulnerabilities"][0]["cwe"] == {"id": "CWE-798", "name": "Use of Hard-coded Credentials"}


def test_cwe_needs_its_name(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "psirt", "triage", "R-2026-0001", "--cvss", V31, "--cwe", "CWE-798", "--db", str(db))
    assert code == 1 and "--cwe and --cwe-name go together" in err


def test_vex_of_a_release_names_the_advisories_that_affect_it(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fixed(db, capsys)
    d = ["--db", str(db)]
    assert run(capsys, "psirt", "publish", "R-2026-0001", *d, "--base-url", "https://vendor.example",
               "--at", "2026-03-11")[0] == 0  # fmt: skip
    out = tmp_path / "vex.json"
    code, text, _ = run(capsys, "psirt", "vex", "--release", "refcam-rc1080-v1:1.0.0", "-o", str(out), *d)
    assert code == 0 and "1 advisories, 1 affect refcam-rc1080-v1:1.0.0" in text
    (vuln,) = json.loads(out.read_text())["vulnerabilities"]
    assert vuln["analysis"]["state"] == "exploitable" and vuln["properties"][0]["value"] == "REFCAM-SA-2026-0001"
    code, text, _ = run(capsys, "psirt", "vex", "--release", "refcam-rc1080-v1:1.0.1", *d)
    assert code == 0 and json.loads(text)["vulnerabilities"][0]["analysis"]["state"] == "resolved"
