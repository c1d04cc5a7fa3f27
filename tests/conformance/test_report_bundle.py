"""Reports and the evidence bundle, from a made-up run (no camera).

NOT TESTED blocks any CLS claim and names the options that would complete the
run; the HTML opens with the unit and the KS X 3020 verdicts, failed cases
first; the bundle's HAR is HAR 1.2 with secrets redacted, and its manifest
hashes every file.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from conformance.catalogue import KS_CONTROLS, load_catalogue
from conformance.http import Exchange, Recorded
from conformance.model import Evidence, UnitResult, Verdict, case_verdict, make_case_result
from conformance.report import ProbeReport, render_html, render_table, write_reports

SECRET = "label-Secret-Pw-123"  # a made-up secret the bundle must not contain


def _report(overrides: dict[str, UnitResult]) -> ProbeReport:
    catalogue = load_catalogue()
    results = []
    for case in catalogue.cases:
        unit = overrides.get(case.id, UnitResult("a", Verdict.PASS, "fine"))
        results.append(make_case_result(case.id, [unit], duration=0.01, requests=1))
    login = Exchange(
        "POST", "/api/v1/session", {"Content-Type": "application/json"}, {"username": "admin", "password": SECRET},
        200, {"Content-Type": "application/json", "Set-Cookie": "refcam_session=abc"},
        json.dumps({"token": "tok-" + "x" * 40, "password_change_required": True}).encode(), 0.01,
    )
    return ProbeReport(
        target="https://localhost:8443", started="2026-12-04T20:00:00Z", finished="2026-12-04T20:00:10Z",
        catalogue=catalogue, results=tuple(results), options={"label_password": "<redacted>"},
        declaration={"declaration": "refcam-device-declaration/1"},
        identity={"vendor": "refcam", "model": "RC-1080", "serial": "RC0123456789", "firmware": "1.0.0"},
        channel={"tls": True}, exchanges=(Recorded("2026-12-04T20:00:00.000Z", "https://localhost:8443/api/v1/session",
                                                   login, "preflight"),),
        elapsed=9.5,
    )


def test_not_tested_is_its_own_verdict_and_blocks_the_cls_claim() -> None:
    assert case_verdict([Verdict.PASS, Verdict.NOT_TESTED]) is Verdict.NOT_TESTED
    assert case_verdict([Verdict.NOT_TESTED, Verdict.FAIL]) is Verdict.FAIL
    report = _report({"TLS-04": UnitResult("a", Verdict.NOT_TESTED, "needs a second unit", (), ("--peer",))})
    assert report.cls_level() is None
    assert report.missing_options() == ["--peer"]
    assert "no CLS level claimed" in render_table(report) and "--peer" in render_table(report)
    assert report.to_json()["summary"]["cls_level_reached"] is None
    assert _report({}).cls_level() == 4


def test_html_opens_with_the_unit_then_ks_controls_then_failed_cases_first() -> None:
    report = _report({"UPD-03": UnitResult("a", Verdict.FAIL, "older image installed")})
    page = render_html(report)
    assert page.index("Unit under test") < page.index("KS X 3020 controls") < page.index("Test cases")
    assert "RC0123456789" in page and "RC-1080" in page
    assert all(f"<td>{c}</td>" in page for c in KS_CONTROLS)
    cases = re.findall(r"<tr class='\w+'><td>([A-Z]+-\d\d)</td>", page)
    assert cases[0] == "UPD-03"
    assert not re.search(r"\['|\{'|<class |object at 0x", page)


def test_the_bundle_has_har_declaration_versions_identity_options_and_a_manifest(tmp_path: Path) -> None:
    paths = write_reports(_report({}), tmp_path / "out")
    directory = tmp_path / "out"
    har = json.loads(paths["har"].read_text())["log"]
    assert har["version"] == "1.2" and har["creator"]["name"] == "refcam probe"
    entry = har["entries"][0]
    assert entry["comment"] == "preflight" and entry["request"]["method"] == "POST"
    assert entry["response"]["status"] == 200
    for name in ("declaration.json", "versions.json", "identity.json", "options.json"):
        assert (directory / name).is_file()
    everything = "".join(p.read_text() for p in directory.iterdir())
    assert SECRET not in everything and "tok-xxxx" not in everything and "abc" not in entry["response"]["headers"][1]["value"]
    manifest = dict(
        reversed(line.split("  ", 1)) for line in (directory / "MANIFEST.sha256").read_text().splitlines()
    )
    assert set(manifest) == {p.name for p in directory.iterdir()} - {"MANIFEST.sha256"}
    for name, digest in manifest.items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest


def test_evidence_in_reports_is_json_not_python_reprs(tmp_path: Path) -> None:
    unit = UnitResult("a", Verdict.FAIL, "answers differ", (Evidence("note", "statuses", {"statuses": {"401": 3}}),))
    paths = write_reports(_report({"CRED-07": unit}), tmp_path / "out")
    for key in ("html", "json", "table", "junit"):
        text = paths[key].read_text()
        assert not re.search(r"\{'|\['|<class |object at 0x", text), key
