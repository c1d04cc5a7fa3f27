"""Probe reports: terminal table, versioned JSON, JUnit XML and a self-contained HTML page.

The JSON document is the source of truth (schema ``refcam-probe-report/1``,
``conformance/report.schema.json``, described in docs/PROBE.md); the other
formats are rendered from the same :class:`ProbeReport`. Roll-ups per scheme:
KS X 3020 control, EN 303 645 provision, and the CLS level reached (the
highest level whose cases all PASS or are NOT APPLICABLE; INCONCLUSIVE blocks
a level, because a lab cannot claim what it could not show, and a run with
NOT TESTED cases claims no level at all). The evidence bundle beside the
reports is :mod:`conformance.bundle`.
"""

from __future__ import annotations

import html
import importlib.metadata
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unicodedata import east_asian_width
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from .bundle import write_bundle
from .catalogue import KS_CONTROLS, Catalogue, TestCase
from .errors import ReportError
from .http import Recorded
from .i18n import N_, SOURCE_LANGUAGE, format_time, gettext, msg, translate
from .model import CaseResult, Verdict, case_verdict


def _tool_version() -> str:
    """The installed distribution's version (the probe imports nothing else of refcam)."""
    try:
        return importlib.metadata.version("refcam")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


TOOL_VERSION = _tool_version()

REPORT_SCHEMA = "refcam-probe-report/1"
NOT_TESTED = "NOT TESTED"
UTC_ZONE = ZoneInfo("UTC")
# verdict codes (language-neutral, kept in the JSON) -> the name a reader sees
VERDICT_NAMES = {
    "PASS": N_("PASS"),
    "FAIL": N_("FAIL"),
    "INCONCLUSIVE": N_("INCONCLUSIVE"),
    "NOT APPLICABLE": N_("NOT APPLICABLE"),
    "NOT TESTED": N_("NOT TESTED"),
}
IDENTITY_LABELS = {
    "vendor": N_("vendor"),
    "model": N_("model"),
    "serial": N_("serial"),
    "firmware": N_("firmware"),
    "certificate_serial": N_("certificate serial"),
    "certificate_subject": N_("certificate subject"),
    "adapter": N_("adapter"),
}


# Texts written inside the renderers' f-strings, listed here so Babel (which does not look
# into f-strings on Python 3.11) extracts them; tests/conformance/test_probe_i18n.py checks the list.
_INLINE_TEXTS = (
    N_("refcam probe report: {target}"),
    N_("Conformance report for {target}"),
    N_("Unit under test"),
    N_("the unit did not tell its identity"),
    N_("KS X 3020 controls"),
    N_("control"),
    N_("name"),
    N_("verdict"),
    N_("Singapore CLS: {result}"),
    N_("(the highest level whose cases all pass or do not apply)."),
    N_("Summary"),
    N_("cases"),
    N_("Test cases (failed first)"),
    N_("units and evidence"),
    N_("needs {options}"),
    N_("ETSI EN 303 645 provisions"),
    N_("provision"),
    N_("Declaration used"),
    N_("No declaration was given: no case was judged NOT APPLICABLE."),
)


@dataclass(frozen=True)
class Speech:
    """The language and time zone a report is written in (ids, codes and evidence never change)."""

    language: str = SOURCE_LANGUAGE
    zone: ZoneInfo = UTC_ZONE

    def __call__(self, text: str) -> str:
        return translate(text, self.language)

    def verdict(self, code: str) -> str:
        return gettext(VERDICT_NAMES.get(code, code), self.language)

    def time(self, stamp: str) -> str:
        return format_time(stamp, self.language, self.zone)


ENGLISH = Speech()
# Where the scheme names come from, under the EN 303 645 table (KS X 3020's note is in catalogue.toml).
SCHEMES_NOTE = N_(
    "ETSI EN 303 645 provision numbers and Singapore CLS levels as the schemes publish them; "
    "neither scheme publishes an official Korean text, so their names stay in English."
)


@dataclass(frozen=True)
class ProbeReport:
    target: str
    started: str  # ISO 8601, UTC
    finished: str
    catalogue: Catalogue
    results: tuple[CaseResult, ...]
    options: dict[str, Any]
    declaration: dict[str, Any] | None = None  # the device declaration the run used
    identity: dict[str, str] = field(default_factory=dict)  # model, serial, firmware, certificate
    channel: dict[str, Any] = field(default_factory=dict)  # the preflight's connection facts
    exchanges: tuple[Recorded, ...] = ()  # every request and response (the HAR file)
    elapsed: float = 0.0  # seconds, the whole run

    def result(self, case_id: str) -> CaseResult:
        for result in self.results:
            if result.case_id == case_id:
                return result
        raise ReportError(f"no result for case {case_id}")

    def _pairs(self) -> Iterable[tuple[TestCase, CaseResult]]:
        by_id = {r.case_id: r for r in self.results}
        for case in self.catalogue.cases:
            if case.id in by_id:
                yield case, by_id[case.id]

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(r.case_id for r in self.results if r.verdict is Verdict.FAIL)

    def counts(self) -> dict[str, int]:
        counts = {v.value: 0 for v in Verdict}
        for result in self.results:
            counts[result.verdict.value] += 1
        return counts

    def ks_controls(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for control in KS_CONTROLS:
            verdicts = [r.verdict for c, r in self._pairs() if c.ks == control]
            out[control] = case_verdict(verdicts).value if verdicts else NOT_TESTED
        return out

    def en_provisions(self) -> dict[str, str]:
        provisions: dict[str, list[Verdict]] = {}
        for case, result in self._pairs():
            provisions.setdefault(f"{case.en} {case.en_status}", []).append(result.verdict)
        return {k: case_verdict(v).value for k, v in sorted(provisions.items())}

    @property
    def not_tested(self) -> tuple[str, ...]:
        return tuple(r.case_id for r in self.results if r.verdict is Verdict.NOT_TESTED)

    def missing_options(self) -> list[str]:
        """The options that would turn this run's NOT TESTED units into tested ones."""
        needs: list[str] = []
        for result in self.results:
            for u in result.units:
                if u.verdict is Verdict.NOT_TESTED:
                    needs += [n for n in u.needs if n not in needs]
        return needs

    def cls_level(self) -> int | None:
        """The highest CLS level whose cases all PASS or do not apply; None (no claim) if any case
        was NOT TESTED: a partial run cannot claim a level."""
        if self.not_tested:
            return None
        reached = 0
        for level in range(1, 5):
            verdicts = [r.verdict for c, r in self._pairs() if c.cls <= level]
            if any(v in (Verdict.FAIL, Verdict.INCONCLUSIVE) for v in verdicts):
                break
            reached = level
        return reached

    def cls_text(self) -> str:
        level = self.cls_level()
        if level is None:
            if self.missing_options():
                return msg(
                    "no CLS level claimed: {n} cases NOT TESTED (complete the run with {options})",
                    n=len(self.not_tested), options=", ".join(self.missing_options()),
                )
            return msg("no CLS level claimed: {n} cases NOT TESTED", n=len(self.not_tested))
        return msg("CLS level reached: {level}", level=level)

    def to_json(self, speech: Speech = ENGLISH) -> dict[str, Any]:
        """The JSON document; human-readable fields in ``speech``'s language (English beside them)."""
        say = speech
        cases = []
        for case, result in self._pairs():
            cases.append(
                {
                    "id": case.id,
                    "group": case.group,
                    "title": say(case.title),
                    "title_en": case.title,
                    "verdict": result.verdict.value,
                    "mapping": {
                        "ks_x_3020": case.ks,
                        "ks_x_3020_clause": case.ks_clause,
                        "en_303_645": case.en,
                        "en_303_645_status": case.en_status,
                        "cls_level": case.cls,
                        "nist_ir_8259a": case.nist,
                        "requirements": list(case.requirements),
                        "owasp_asvs": list(case.asvs),
                    },
                    "duration_s": round(result.duration, 3),
                    "requests": result.requests,
                    "units": [
                        {
                            "unit": u.unit,
                            "verdict": u.verdict.value,
                            "reason": say(u.reason),
                            "reason_en": str(u.reason),
                            "needs": list(u.needs),
                            "evidence": [
                                {"kind": e.kind, "summary": e.summary, "detail": dict(e.detail)}
                                for e in u.evidence
                            ],
                        }
                        for u in result.units
                    ],
                }
            )
        return {
            "schema": REPORT_SCHEMA,
            "tool": {"name": "refcam probe", "version": TOOL_VERSION},
            "target": self.target,
            "started": self.started,
            "finished": self.finished,
            "catalogue_version": self.catalogue.version,
            "ks_x_3020_provenance": say(self.catalogue.ks_provenance),
            "language": say.language,
            "time_zone": say.zone.key,
            "options": self.options,
            "identity": self.identity,
            "channel": self.channel,
            "declaration": self.declaration,
            "elapsed_s": round(self.elapsed, 3),
            "summary": {
                "counts": self.counts(),
                "failed": list(self.failed),
                "not_tested": list(self.not_tested),
                "missing_options": self.missing_options(),
                "ks_x_3020": self.ks_controls(),
                "en_303_645": self.en_provisions(),
                "cls_level_reached": self.cls_level(),
            },
            "cases": cases,
        }


def _width(text: str) -> int:
    """Terminal columns: Hangul and other wide characters take two."""
    return sum(2 if east_asian_width(c) in ("W", "F") else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def render_table(report: ProbeReport, speech: Speech = ENGLISH) -> str:
    say = speech
    rows = [(say(N_("case")), say(N_("verdict")), "KS", "EN 303 645", "CLS", say(N_("title")))]
    for case, result in report._pairs():
        rows.append((case.id, say.verdict(result.verdict.value), case.ks, case.en, str(case.cls), say(case.title)))
    widths = [max(_width(r[i]) for r in rows) for i in range(5)]
    lines = []
    for i, row in enumerate(rows):
        cells = [_pad(row[j], widths[j]) for j in range(5)]
        lines.append("  ".join(cells) + "  " + row[5])
        if i == 0:
            lines.append("-" * (sum(widths) + 10 + 40))
    counts = report.counts()
    lines.append("")
    lines.append("  ".join(f"{say.verdict(k)}: {v}" for k, v in counts.items()) + f"   {say(report.cls_text())}")
    lines.append(
        "KS X 3020: " + ", ".join(f"{k} {say.verdict(v)}" for k, v in report.ks_controls().items())
    )
    if report.elapsed:
        lines.append(say(msg(
            "run time: {seconds:.1f} s ({exchanges} HTTP exchanges)",
            seconds=report.elapsed, exchanges=len(report.exchanges),
        )))
    if report.started:
        lines.append(say(msg("run {started} to {finished}", started=say.time(report.started),
                             finished=say.time(report.finished))))
    return "\n".join(lines)


_SKIPPED = (Verdict.INCONCLUSIVE, Verdict.NOT_APPLICABLE, Verdict.NOT_TESTED)


def render_junit(report: ProbeReport, speech: Speech = ENGLISH) -> str:
    say = speech
    suites = ET.Element("testsuites", name="refcam probe", tests=str(len(report.results)))
    by_group: dict[str, list[tuple[TestCase, CaseResult]]] = {}
    for case, result in report._pairs():
        by_group.setdefault(case.group, []).append((case, result))
    for group, pairs in by_group.items():
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{group}: {say(report.catalogue.groups.get(group, ''))}",
            tests=str(len(pairs)),
            failures=str(sum(r.verdict is Verdict.FAIL for _, r in pairs)),
            skipped=str(sum(r.verdict in _SKIPPED for _, r in pairs)),
        )
        for case, result in pairs:
            tc = ET.SubElement(
                suite, "testcase", classname=f"refcam.probe.{group}", name=f"{case.id} {say(case.title)}",
                time=f"{result.duration:.3f}",
            )
            detail = "\n".join(f"{u.unit}: {say.verdict(u.verdict.value)}: {say(u.reason)}" for u in result.units)
            if result.verdict is Verdict.FAIL:
                failing = [u for u in result.units if u.verdict is Verdict.FAIL]
                ET.SubElement(
                    tc, "failure", message=say(failing[0].reason) if failing else say.verdict("FAIL")
                ).text = detail
            elif result.verdict in _SKIPPED:
                ET.SubElement(tc, "skipped", message=say.verdict(result.verdict.value)).text = detail
            ET.SubElement(tc, "system-out").text = detail
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


_CSS = """
body{font-family:system-ui,"Noto Sans KR","Apple SD Gothic Neo","Malgun Gothic",sans-serif;margin:2rem;color:#1d2125;max-width:72rem}
:lang(ko){word-break:keep-all;line-height:1.6}
h1{font-size:1.5rem}table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border:1px solid #ccd;padding:.3rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
th{background:#f1f3f7}.PASS{background:#e3f6e6}.FAIL{background:#fbe1e1}
.INCONCLUSIVE{background:#fff4d6}.NA{background:#eef0f3}details{margin:.2rem 0}
code,pre{font-size:.8rem;white-space:pre-wrap;word-break:break-all}.small{color:#555;font-size:.85rem}
"""


def _cls(verdict: str) -> str:
    return {"NOT APPLICABLE": "NA", NOT_TESTED: "NA"}.get(verdict, verdict)


_ORDER = {Verdict.FAIL: 0, Verdict.INCONCLUSIVE: 1, Verdict.NOT_TESTED: 2, Verdict.PASS: 3, Verdict.NOT_APPLICABLE: 4}


def _plain(value: Any) -> str:
    """A value as a reader sees it: strings bare, lists joined, never a Python repr."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    return json.dumps(value, default=str)


def render_html(report: ProbeReport, speech: Speech = ENGLISH) -> str:
    """The page a lab reads: the unit, the verdict per KS X 3020 control, failed cases first."""
    e = html.escape
    say = speech

    def t(text: str) -> str:
        return e(say(text))

    parts = [
        f"<!doctype html><html lang='{e(say.language)}'><head><meta charset='utf-8'>",
        f"<title>{t(msg('refcam probe report: {target}', target=report.target))}</title>"
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{t(msg('Conformance report for {target}', target=report.target))}</h1>",
        f"<h2>{t(N_('Unit under test'))}</h2><table>",
    ]
    identity = report.identity or {}
    for key, label in IDENTITY_LABELS.items():
        if key in identity:
            parts.append(f"<tr><th>{t(label)}</th><td>{e(_plain(identity[key]))}</td></tr>")
    if not identity:
        parts.append(f"<tr><td>{t(N_('the unit did not tell its identity'))}</td></tr>")
    parts.append("</table>")
    parts.append(f"<h2>{t(N_('KS X 3020 controls'))}</h2><table><tr><th>{t(N_('control'))}</th>"
                 f"<th>{t(N_('name'))}</th><th>{t(N_('verdict'))}</th></tr>")
    for control, verdict in report.ks_controls().items():
        parts.append(f"<tr class='{_cls(verdict)}'><td>{control}</td><td>{t(KS_CONTROLS[control])}</td>"
                     f"<td>{e(say.verdict(verdict))}</td></tr>")
    parts.append(f"</table><p class='small'>{t(report.catalogue.ks_provenance)}</p>")
    parts.append(f"<p><strong>{t(msg('Singapore CLS: {result}', result=say(report.cls_text())))}</strong> "
                 f"{t(N_('(the highest level whose cases all pass or do not apply).'))}</p>")
    parts.append(
        "<p class='small'>"
        + t(msg(
            "refcam probe {version}, catalogue {catalogue}; run {started} to {finished} "
            "({seconds:.1f} s, {exchanges} HTTP exchanges).",
            version=TOOL_VERSION, catalogue=report.catalogue.version, started=say.time(report.started),
            finished=say.time(report.finished), seconds=report.elapsed, exchanges=len(report.exchanges),
        ))
        + "</p>"
    )
    parts.append(f"<h2>{t(N_('Summary'))}</h2><table><tr><th>{t(N_('verdict'))}</th><th>{t(N_('cases'))}</th></tr>")
    for verdict, count in report.counts().items():
        parts.append(f"<tr class='{_cls(verdict)}'><td>{e(say.verdict(verdict))}</td><td>{count}</td></tr>")
    parts.append("</table>")
    heads = (N_("case"), N_("title"), N_("verdict"))
    parts.append(f"<h2>{t(N_('Test cases (failed first)'))}</h2><table><tr>"
                 + "".join(f"<th>{t(h)}</th>" for h in heads)
                 + f"<th>KS</th><th>EN</th><th>CLS</th><th>NIST</th><th>ASVS</th><th>{t(N_('units and evidence'))}</th></tr>")
    pairs = sorted(report._pairs(), key=lambda pair: _ORDER.get(pair[1].verdict, 9))
    for case, result in pairs:
        units = []
        for u in result.units:
            evidence = "".join(
                f"<details><summary>{e(ev.kind)}: {e(ev.summary)}</summary>"
                f"<pre>{e(json.dumps(dict(ev.detail), indent=1, default=str))}</pre></details>"
                for ev in u.evidence
            )
            needs = f" ({t(msg('needs {options}', options=', '.join(u.needs)))})" if u.needs else ""
            units.append(f"<div><strong>{e(u.unit)}</strong> {e(say.verdict(u.verdict.value))}: "
                         f"{t(u.reason)}{needs}{evidence}</div>")
        parts.append(
            f"<tr class='{_cls(result.verdict.value)}'><td>{e(case.id)}</td><td>{t(case.title)}"
            f"<div class='small'>{t(case.purpose)}</div></td><td>{e(say.verdict(result.verdict.value))}</td>"
            f"<td>{e(case.ks)}</td><td>{e(case.en)} {e(case.en_status)}</td><td>{case.cls}</td>"
            f"<td>{e(case.nist)}</td><td>{e(' '.join(case.asvs))}</td><td>{''.join(units)}</td></tr>"
        )
    parts.append(f"</table><h2>{t(N_('ETSI EN 303 645 provisions'))}</h2><table><tr><th>{t(N_('provision'))}</th>"
                 f"<th>{t(N_('verdict'))}</th></tr>")
    for provision, verdict in report.en_provisions().items():
        parts.append(f"<tr class='{_cls(verdict)}'><td>{e(provision)}</td><td>{e(say.verdict(verdict))}</td></tr>")
    parts.append(f"</table><p class='small'>{t(SCHEMES_NOTE)}</p><h2>{t(N_('Declaration used'))}</h2>")
    if report.declaration is None:
        parts.append(f"<p>{t(N_('No declaration was given: no case was judged NOT APPLICABLE.'))}</p>")
    else:
        parts.append(f"<pre>{e(json.dumps(report.declaration, indent=1))}</pre>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_reports(report: ProbeReport, directory: Path, speech: Speech = ENGLISH) -> dict[str, Path]:
    """Write report.json, junit.xml, report.html, summary.txt and the evidence bundle
    (exchanges.har, declaration.json, versions.json, identity.json, options.json,
    MANIFEST.sha256), human text in ``speech``'s language and zone; returns their paths."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": directory / "report.json",
            "junit": directory / "junit.xml",
            "html": directory / "report.html",
            "table": directory / "summary.txt",
        }
        paths["json"].write_text(json.dumps(report.to_json(speech), indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        paths["junit"].write_text(render_junit(report, speech), encoding="utf-8")
        paths["html"].write_text(render_html(report, speech), encoding="utf-8")
        paths["table"].write_text(render_table(report, speech) + "\n", encoding="utf-8")
        paths.update(write_bundle(report, directory, report_files=list(paths.values())))
    except OSError as exc:
        raise ReportError(f"cannot write reports to {directory}: {exc}") from exc
    return paths

