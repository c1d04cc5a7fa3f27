"""The probe's reports in Korean: a complete catalogue, translated pages, times in the lab's zone.

The catalogue check is not a word list: scripts/i18n.py extracts every
``msg(...)``/``N_(...)`` text of ``conformance/`` and every text of
``catalogue.toml`` (Babel), and each must have a Korean translation that keeps
its ``{placeholders}``. The rendered Korean page is then checked against the
same extraction: no English msgid text may be left in what a reader sees.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import string
from importlib import resources
from pathlib import Path
from types import ModuleType
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from conformance import report as report_module
from conformance.cases.sessions import cookie_problems, timeout_problems
from conformance.cases.throttling import Attempt, judge_symmetry
from conformance.catalogue import KS_CONTROLS, load_catalogue
from conformance.http import Exchange
from conformance.i18n import Message, joined, load_messages, msg, translate
from conformance.model import Evidence, UnitResult, Verdict, make_case_result
from conformance.report import (
    ProbeReport,
    Speech,
    render_html,
    render_junit,
    render_table,
    write_reports,
)
from conformance.verdicts import judge
from refcam.cli import main

ROOT = Path(__file__).resolve().parents[2]
SEOUL = Speech("ko", ZoneInfo("Asia/Seoul"))


def i18n_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("refcam_i18n_tool_probe", ROOT / "scripts" / "i18n.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_probe_text_has_a_korean_translation_with_its_placeholders() -> None:
    tool = i18n_tool()
    assert tool.missing("ko", "probe") == []
    ids = {m.id for m in tool.build_template("probe") if m.id}
    catalogue = load_catalogue()
    # catalogue.toml's texts are in the extraction, not only the code's
    for case in catalogue.cases:
        assert {case.title, case.purpose, case.verdict_rule, *case.units} <= ids, case.id
    assert set(catalogue.groups.values()) <= ids and catalogue.ks_provenance in ids
    assert set(KS_CONTROLS.values()) <= ids
    # the cases' reasons (templates with named placeholders) are in it too
    assert "throttled after {throttled_at} wrong passwords" in ids
    assert len(ids) > 600
    ko = load_messages("ko")
    assert ko["Firmware signature verification"] == "펌웨어 서명 검증"
    assert ko["throttled after {throttled_at} wrong passwords"].count("{throttled_at}") == 1


def test_a_missing_translation_or_a_lost_placeholder_fails_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tool = i18n_tool()
    po = tmp_path / "probe.po"
    shutil.copy(tool.po_path("ko", "probe"), po)
    text = po.read_text("utf-8")
    text = text.replace('msgstr "틀린 비밀번호 {throttled_at}회 후 속도 제한됨"', 'msgstr "틀린 비밀번호 후 속도 제한됨"')
    text = text.replace('msgstr "요약"', 'msgstr ""')
    po.write_text(text, "utf-8")
    monkeypatch.setattr(tool, "po_path", lambda language, domain="webui": po)
    problems = tool.missing("ko", "probe")
    assert "no ko translation of 'Summary'" in problems
    assert any("throttled after {throttled_at} wrong passwords" in p and "placeholders" in p for p in problems)


def test_texts_inside_the_renderers_f_strings_are_listed_for_extraction() -> None:
    """Babel does not read f-strings on Python 3.11: report.py lists what they hold."""
    source = (ROOT / "conformance" / "report.py").read_text("utf-8")
    inline = set(re.findall(r"""(?:N_|msg)\('([^']*)'""", source))
    assert inline and inline <= set(report_module._INLINE_TEXTS)


def test_a_reason_is_english_text_that_keeps_its_template() -> None:
    reason = msg("throttled after {throttled_at} wrong passwords", throttled_at=5)
    assert reason == "throttled after 5 wrong passwords" and isinstance(reason, str)
    assert translate(reason, "en") == "throttled after 5 wrong passwords"
    assert translate(reason, "ko") == "틀린 비밀번호 5회 후 속도 제한됨"
    nested = judge_symmetry([Attempt(429, 5.0, 0.01)], [Attempt(401, None, 0.01)])[0].reason
    assert str(nested).startswith("throttling reached the existing name only: existing name [429]")
    assert translate(nested, "ko") == "속도 제한이 있는 이름에만 걸림: 있는 이름 [429], 없는 이름 [401]"
    # each item said in the language; text the device sent stays as it is
    problems = joined(["password is too short (device text)", msg("no Path attribute")])
    assert str(problems) == "password is too short (device text); no Path attribute"
    assert translate(problems, "ko") == "password is too short (device text); Path 속성 없음"


def _sample_values(template: str) -> dict[str, object]:
    return {name: 7 for _, name, _, _ in string.Formatter().parse(template) if name}


def _realistic_report() -> ProbeReport:
    """Every case of the catalogue with reasons the probe's own code builds, plus every reason
    template of conformance/ filled in, so the page shows each text the probe can say."""
    catalogue = load_catalogue()
    tool = i18n_tool()
    reasons: list[str] = []
    for message in tool.build_template("probe"):
        paths = {path for path, _ in message.locations}
        if message.id and any(p.startswith("conformance/cases/") or p == "conformance/verdicts.py" for p in paths):
            reasons.append(Message(str(message.id), **_sample_values(str(message.id))))
    def exchange(status: int, body: bytes = b"", **headers: str) -> Exchange:
        return Exchange("POST", "/api/v1/login", {}, None, status, headers, body, 0.01)
    reasons += [
        judge(exchange(429, **{"Retry-After": "3"}), accepted=lambda ex: False, refusal=lambda ex: True).reason,
        judge(exchange(0), accepted=lambda ex: False, refusal=lambda ex: True).reason,
        *[u.reason for u in judge_symmetry([Attempt(429, 5.0, 0.01)] * 3, [Attempt(401, None, 0.2)] * 3)],
        msg("session cookie {name}: {problems}", name="sid", problems=joined(
            cookie_problems(type("C", (), {"name": "sid", "attributes": {}})())  # type: ignore[arg-type]
        )),
        joined(timeout_problems(None, 86400.0, "90000")),
    ]
    verdicts = list(Verdict)
    results = []
    for index, case in enumerate(catalogue.cases):
        units = [
            UnitResult(letter.split(":")[0], verdicts[(index + i) % len(verdicts)], reasons[(index * 7 + i) % len(reasons)],
                       (Evidence("http", "POST /api/v1/login -> 401", {"status": 401}),),
                       ("--ca",) if verdicts[(index + i) % len(verdicts)] is Verdict.NOT_TESTED else ())
            for i, letter in enumerate(case.units)
        ]
        results.append(make_case_result(case.id, units, duration=0.2, requests=3))
    extra = [UnitResult("z", Verdict.FAIL, r) for r in reasons]  # every reason at least once
    results[0] = make_case_result(results[0].case_id, (*results[0].units, *extra), duration=0.2, requests=3)
    return ProbeReport(
        target="https://127.0.0.1:8443", started="2026-11-22T06:00:00Z", finished="2026-11-22T06:01:30Z",
        catalogue=catalogue, results=tuple(results), options={},
        identity={"vendor": "refcam", "model": "RC-1", "serial": "RC1-0001", "firmware": "1.0.0"},
        elapsed=90.0,
    )


def test_the_korean_html_report_holds_no_english_text_and_shows_seoul_time() -> None:
    tool = i18n_tool()
    report = _realistic_report()
    english = render_html(report)
    korean = render_html(report, SEOUL)
    # the check itself finds English: the English page is full of it
    assert len(tool.untranslated_in_page(english, "ko")) > 100
    assert tool.untranslated_in_page(korean, "ko") == []
    assert "<html lang='ko'>" in korean and "Noto Sans KR" in korean
    assert "시험 대상 기기" in korean and "펌웨어 서명 검증" in korean and "부적합" in korean
    # times: stored UTC 06:00 is 15:00 in Seoul
    assert "2026. 11. 22. 오후 3:00:00 (Asia/Seoul, UTC+09:00)" in korean
    # ids, verdict codes (as CSS classes), mappings and evidence stay as they are
    assert "CRED-01" in korean and "class='FAIL'" in korean and "5.1-1 M" in korean
    assert "POST /api/v1/login -&gt; 401" in korean
    table = render_table(report, SEOUL)
    assert "판정" in table and "오후 3:01:30" in table and "Asia/Seoul" in table
    assert "적합" in render_junit(report, SEOUL)


def test_the_korean_json_keeps_codes_utc_times_and_the_english(tmp_path: Path) -> None:
    report = _realistic_report()
    paths = write_reports(report, tmp_path / "out", SEOUL)
    doc = json.loads(paths["json"].read_text("utf-8"))
    jsonschema.validate(doc, json.loads((resources.files("conformance") / "report.schema.json").read_text()))
    assert doc["language"] == "ko" and doc["time_zone"] == "Asia/Seoul"
    assert doc["started"] == "2026-11-22T06:00:00Z"  # stored in UTC
    case = doc["cases"][0]
    assert case["id"] == "CRED-01" and case["title"] == "초기 비밀번호를 바꾸기 전에는 설정 동작만 가능하다"
    assert case["title_en"] == "Only the set-up action works until the initial password is changed"
    assert {u["verdict"] for c in doc["cases"] for u in c["units"]} <= {v.value for v in Verdict}
    assert all(re.search("[가-힣]", u["reason"]) or u["reason"] == u["reason_en"]
               for c in doc["cases"] for u in c["units"])
    assert set(doc["summary"]["ks_x_3020"].values()) <= {v.value for v in Verdict}


@pytest.mark.parametrize(
    ("option", "expected"),
    [(["--lang", "fr"], "--lang 'fr'"), (["--tz", "Mars/Olympus_Mons"], "--tz 'Mars/Olympus_Mons'"),
     (["--tz", "../../etc/passwd"], "--tz")],
)
def test_a_bad_language_or_zone_is_one_line_and_exit_2(
    option: list[str], expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["probe", "https://127.0.0.1:1", *option, "--report", str(tmp_path / "r")])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2
    assert len(err) == 1 and expected in err[0] and "Traceback" not in err[0], err
    assert not (tmp_path / "r").exists()
