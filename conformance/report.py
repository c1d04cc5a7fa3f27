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
from xml.etree import ElementTree as ET

from .bundle import write_bundle
from .catalogue import KS_CONTROLS, Catalogue, TestCase
from .errors import ReportError
from .http import Recorded
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
            return (
                f"no CLS level claimed: {len(self.not_tested)} cases NOT TESTED"
                + (f" (complete the run with {', '.join(self.missing_options())})" if self.missing_options() else "")
            )
        return f"CLS level reached: {level}"

    def to_json(self) -> dict[str, Any]:
        cases = []
        for case, result in self._pairs():
            cases.append(
                {
                    "id": case.id,
                    "group": case.group,
                    "title": case.title,
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
                            "reason": u.reason,
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
            "ks_x_3020_provenance": self.catalogue.ks_provenance,
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


def render_table(report: ProbeReport) -> str:
    rows = [("case", "verdict", "KS", "EN 303 645", "CLS", "title")]
    for case, result in report._pairs():
        rows.append((case.id, result.verdict.value, case.ks, case.en, str(case.cls), case.title))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = []
    for i, row in enumerate(rows):
        cells = [row[j].ljust(widths[j]) for j in range(5)]
        lines.append("  ".join(cells) + "  " + row[5])
        if i == 0:
            lines.append("-" * (sum(widths) + 10 + 40))
    counts = report.counts()
    lines.append("")
    lines.append("  ".join(f"{k}: {v}" for k, v in counts.items()) + f"   {report.cls_text()}")
    lines.append(
        "KS X 3020: " + ", ".join(f"{k} {v}" for k, v in report.ks_controls().items())
    )
    if report.elapsed:
        lines.append(f"run time: {report.elapsed:.1f} s ({len(report.exchanges)} HTTP exchanges)")
    return "\n".join(lines)


_SKIPPED = (Verdict.INCONCLUSIVE, Verdict.NOT_APPLICABLE, Verdict.NOT_TESTED)


def render_junit(report: ProbeReport) -> str:
    suites = ET.Element("testsuites", name="refcam probe", tests=str(len(report.results)))
    by_group: dict[str, list[tuple[TestCase, CaseResult]]] = {}
    for case, result in report._pairs():
        by_group.setdefault(case.group, []).append((case, result))
    for group, pairs in by_group.items():
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{group}: {report.catalogue.groups.get(group, '')}",
            tests=str(len(pairs)),
            failures=str(sum(r.verdict is Verdict.FAIL for _, r in pairs)),
            skipped=str(sum(r.verdict in _SKIPPED for _, r in pairs)),
        )
        for case, result in pairs:
            tc = ET.SubElement(
                suite, "testcase", classname=f"refcam.probe.{group}", name=f"{case.id} {case.title}",
                time=f"{result.duration:.3f}",
            )
            detail = "\n".join(f"{u.unit}: {u.verdict.value}: {u.reason}" for u in result.units)
            if result.verdict is Verdict.FAIL:
                failing = [u for u in result.units if u.verdict is Verdict.FAIL]
                ET.SubElement(tc, "failure", message=failing[0].reason if failing else "FAIL").text = detail
            elif result.verdict in _SKIPPED:
                ET.SubElement(tc, "skipped", message=result.verdict.value).text = detail
            ET.SubElement(tc, "system-out").text = detail
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2125;max-width:72rem}
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


def render_html(report: ProbeReport) -> str:
    """The page a lab reads: the unit, the verdict per KS X 3020 control, failed cases first."""
    e = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>refcam probe report: {e(report.target)}</title><style>{_CSS}</style></head><body>",
        f"<h1>Conformance report for {e(report.target)}</h1>",
        "<h2>Unit under test</h2><table>",
    ]
    identity = report.identity or {}
    for key in ("vendor", "model", "serial", "firmware", "certificate_serial", "certificate_subject", "adapter"):
        if key in identity:
            parts.append(f"<tr><th>{e(key.replace('_', ' '))}</th><td>{e(_plain(identity[key]))}</td></tr>")
    if not identity:
        parts.append("<tr><td>the unit did not tell its identity</td></tr>")
    parts.append("</table>")
    parts.append("<h2>KS X 3020 controls</h2><table><tr><th>control</th><th>name</th><th>verdict</th></tr>")
    for control, verdict in report.ks_controls().items():
        parts.append(f"<tr class='{_cls(verdict)}'><td>{control}</td><td>{e(KS_CONTROLS[control])}</td>"
                     f"<td>{e(verdict)}</td></tr>")
    parts.append(f"</table><p class='small'>{e(report.catalogue.ks_provenance)}</p>")
    parts.append(f"<p><strong>Singapore CLS: {e(report.cls_text())}</strong> "
                 "(the highest level whose cases all pass or do not apply).</p>")
    parts.append(
        f"<p class='small'>refcam probe {e(TOOL_VERSION)}, catalogue {e(report.catalogue.version)}; "
        f"run {e(report.started)} to {e(report.finished)} ({report.elapsed:.1f} s, "
        f"{len(report.exchanges)} HTTP exchanges).</p>"
    )
    parts.append("<h2>Summary</h2><table><tr><th>verdict</th><th>cases</th></tr>")
    for verdict, count in report.counts().items():
        parts.append(f"<tr class='{_cls(verdict)}'><td>{e(verdict)}</td><td>{count}</td></tr>")
    parts.append("</table>")
    parts.append("<h2>Test cases (failed first)</h2><table><tr><th>case</th><th>title</th><th>verdict</th>"
                 "<th>KS</th><th>EN</th><th>CLS</th><th>NIST</th><th>ASVS</th><th>units and evidence</th></tr>")
    pairs = sorted(report._pairs(), key=lambda pair: _ORDER.get(pair[1].verdict, 9))
    for case, result in pairs:
        units = []
        for u in result.units:
            evidence = "".join(
                f"<details><summary>{e(ev.kind)}: {e(ev.summary)}</summary>"
                f"<pre>{e(json.dumps(dict(ev.detail), indent=1, default=str))}</pre></details>"
                for ev in u.evidence
            )
            needs = f" (needs {e(', '.join(u.needs))})" if u.needs else ""
            units.append(f"<div><strong>{e(u.unit)}</strong> {e(u.verdict.value)}: {e(u.reason)}{needs}{evidence}</div>")
        parts.append(
            f"<tr class='{_cls(result.verdict.value)}'><td>{e(case.id)}</td><td>{e(case.title)}"
            f"<div class='small'>{e(case.purpose)}</div></td><td>{e(result.verdict.value)}</td>"
            f"<td>{e(case.ks)}</td><td>{e(case.en)} {e(case.en_status)}</td><td>{case.cls}</td>"
            f"<td>{e(case.nist)}</td><td>{e(' '.join(case.asvs))}</td><td>{''.join(units)}</td></tr>"
        )
    parts.append("</table><h2>ETSI EN 303 645 provisions</h2><table><tr><th>provision</th><th>verdict</th></tr>")
    for provision, verdict in report.en_provisions().items():
        parts.append(f"<tr class='{_cls(verdict)}'><td>{e(provision)}</td><td>{e(verdict)}</td></tr>")
    parts.append("</table><h2>Declaration used</h2>")
    if report.declaration is None:
        parts.append("<p>No declaration was given: no case was judged NOT APPLICABLE.</p>")
    else:
        parts.append(f"<pre>{e(json.dumps(report.declaration, indent=1))}</pre>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_reports(report: ProbeReport, directory: Path) -> dict[str, Path]:
    """Write report.json, junit.xml, report.html, summary.txt and the evidence bundle
    (exchanges.har, declaration.json, versions.json, identity.json, options.json,
    MANIFEST.sha256); returns their paths."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        paths = {
            "json": directory / "report.json",
            "junit": directory / "junit.xml",
            "html": directory / "report.html",
            "table": directory / "summary.txt",
        }
        paths["json"].write_text(json.dumps(report.to_json(), indent=2, default=str) + "\n")
        paths["junit"].write_text(render_junit(report))
        paths["html"].write_text(render_html(report))
        paths["table"].write_text(render_table(report) + "\n")
        paths.update(write_bundle(report, directory, report_files=list(paths.values())))
    except OSError as exc:
        raise ReportError(f"cannot write reports to {directory}: {exc}") from exc
    return paths
