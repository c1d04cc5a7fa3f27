"""The probe catalogue is well-formed data, and every report format renders it faithfully."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from xml.etree import ElementTree as ET

import jsonschema
import pytest

from conformance.catalogue import KS_CONTROLS, load_catalogue, parse_catalogue
from conformance.errors import CatalogueError
from conformance.model import Evidence, UnitResult, Verdict, case_verdict, make_case_result
from conformance.report import ProbeReport, render_html, render_junit, render_table, write_reports

REQUIREMENT_ROWS = set(range(1, 37)) - {8}  # row 8 (factory reset) needs the pinhole button
REQUIREMENT_ROWS |= {44, 45}  # RTSPS (RTSP-01..04) and the signed stream (RTSP-05)


def test_catalogue_covers_every_network_testable_requirement_row() -> None:
    catalogue = load_catalogue()
    covered = {row for case in catalogue.cases for row in case.requirements}
    assert covered == REQUIREMENT_ROWS
    assert {c.ks for c in catalogue.cases} - {"-"} == set(KS_CONTROLS)


def test_every_case_has_lettered_units_and_a_ks_provenance_note() -> None:
    catalogue = load_catalogue()
    assert "no clause text" in catalogue.ks_provenance
    for case in catalogue.cases:
        letters = case.unit_letters
        assert letters == tuple("abcdefgh"[: len(letters)]), case.id


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.replace('ks = "C4"', 'ks = "C9"', 1), "unknown KS X 3020 control 'C9'"),
        (lambda s: s.replace("cls = 1", "cls = 7", 1), "CLS level must be 1..4"),
        (lambda s: s.replace('group = "CRED"', 'group = "NOPE"', 1), "unknown group 'NOPE'"),
        (lambda s: s.replace('id = "CRED-02"', 'id = "CRED-01"', 1), "duplicate case ids"),
        (lambda s: s + "\n[[case]]\nid = 3\n", "field 'id' must be str"),
        (lambda s: s + "\n[oops", "not valid TOML"),
    ],
)
def test_malformed_catalogue_is_refused_with_a_reason(edit, message: str) -> None:
    text = (resources.files("conformance") / "catalogue.toml").read_text()
    with pytest.raises(CatalogueError, match=message):
        parse_catalogue(edit(text))


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([Verdict.PASS, Verdict.PASS], Verdict.PASS),
        ([Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE], Verdict.FAIL),
        ([Verdict.PASS, Verdict.INCONCLUSIVE], Verdict.INCONCLUSIVE),
        ([Verdict.NOT_APPLICABLE, Verdict.NOT_APPLICABLE], Verdict.NOT_APPLICABLE),
        ([Verdict.NOT_APPLICABLE, Verdict.PASS], Verdict.PASS),
        ([], Verdict.INCONCLUSIVE),
    ],
)
def test_case_verdict_combines_units(verdicts: list[Verdict], expected: Verdict) -> None:
    assert case_verdict(verdicts) is expected


def _report(overrides: dict[str, Verdict]) -> ProbeReport:
    catalogue = load_catalogue()
    results = []
    for case in catalogue.cases:
        verdict = overrides.get(case.id, Verdict.PASS)
        unit = UnitResult(
            "a", verdict, f"<script>alert('{case.id}')</script> reason",
            (Evidence("http", "GET / -> 200", {"status": 200, "body": "<b>x</b>"}),),
        )
        results.append(make_case_result(case.id, [unit], duration=0.01, requests=1))
    return ProbeReport(
        target="https://localhost:8443", started="2026-11-22T06:00:00Z",
        finished="2026-11-22T06:01:00Z", catalogue=catalogue, results=tuple(results), options={},
    )


def test_cls_level_is_the_highest_level_whose_cases_all_pass() -> None:
    assert _report({}).cls_level() == 4
    assert _report({"UPD-03": Verdict.FAIL}).cls_level() == 3  # a CLS 4 case
    assert _report({"TLS-04": Verdict.INCONCLUSIVE}).cls_level() == 2  # a CLS 3 case
    assert _report({"CRED-01": Verdict.FAIL}).cls_level() == 0
    assert _report({"UPD-03": Verdict.NOT_APPLICABLE}).cls_level() == 4


def test_json_report_validates_against_its_published_schema(tmp_path: Path) -> None:
    report = _report({"TLS-01": Verdict.FAIL})
    paths = write_reports(report, tmp_path / "out")
    doc = json.loads(paths["json"].read_text())
    schema = json.loads((resources.files("conformance") / "report.schema.json").read_text())
    jsonschema.validate(doc, schema)
    assert doc["summary"]["failed"] == ["TLS-01"]
    assert doc["summary"]["ks_x_3020"]["C2"] == "FAIL"
    assert doc["summary"]["ks_x_3020"]["C1"] == "PASS"


def test_junit_marks_failures_and_html_escapes_evidence() -> None:
    report = _report({"CRED-03": Verdict.FAIL, "DISC-03": Verdict.NOT_APPLICABLE})
    root = ET.fromstring(render_junit(report))
    failures = [tc.get("name") for tc in root.iter("testcase") if tc.find("failure") is not None]
    assert failures == ["CRED-03 Mirai default credentials are never accepted"]
    page = render_html(report)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "CLS level reached: 3" in page or "CLS level reached: 0" in page
    assert "CRED-03" in render_table(report)
