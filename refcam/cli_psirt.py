"""``refcam psirt ...``: work the vulnerability reports in the vendor PSIRT database.

The database is ``--db PATH``, else ``$REFCAM_PSIRT_DB``, else
``./vendor-data/psirt.db``. Every command acts at ``--at DATE`` (ISO 8601;
UTC if no offset is given), default the current time, so SLA scenarios can
be replayed on a simulated clock.

Example::

    refcam psirt ack R-2026-0001
    refcam psirt triage R-2026-0001 --cvss CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H \\
        --cwe CWE-287 --cwe-name "Improper Authentication"
    refcam psirt start-fix R-2026-0001
    refcam psirt fixed R-2026-0001 --release refcam-rc1080-v1:1.0.1
    refcam psirt publish R-2026-0001      # as the publisher the vendor server announces

``publish`` names the CSAF publisher that the vendor server running on the
same database announces in its ``provider-metadata.json`` (the server
records it at start). ``--base-url`` (or ``$REFCAM_VENDOR_URL``) may say the
same origin again, never another one: an advisory whose publisher differs
from its provider's is refused by CSAF aggregators.
    refcam psirt vex --release refcam-rc1080-v1:1.0.0 -o rc-1.0.0.vex.cdx.json
    refcam psirt sla --format json
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from refcam.i18n import N_, _
from update_server import csaf
from update_server.psirt import model
from update_server.psirt.cvss import score_vector
from update_server.psirt.errors import PSIRTInputError
from update_server.psirt.policy import SLAPolicy, load_policy
from update_server.psirt.sla import evaluate
from update_server.psirt.store import PSIRTStore

DEFAULT_DB = Path("vendor-data/psirt.db")
DB_ENV = "REFCAM_PSIRT_DB"
VENDOR_URL_ENV = "REFCAM_VENDOR_URL"


def _db_path(args: argparse.Namespace) -> Path:
    if args.db is not None:
        return Path(args.db)
    return Path(os.environ.get(DB_ENV) or DEFAULT_DB)


def parse_at(text: str | None) -> datetime:
    """``--at`` value: an ISO 8601 date or date-time, UTC when it has no offset."""
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PSIRTInputError(
            _("--at {text!r} is not an ISO 8601 date such as 2026-03-01T12:00:00Z").format(text=text)
        ) from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _policy(args: argparse.Namespace) -> SLAPolicy:
    path = getattr(args, "policy", None)
    if path is None:
        return load_policy()
    try:
        text = Path(path).read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PSIRTInputError(_("cannot read the SLA policy {path}: {exc}").format(path=path, exc=exc)) from exc
    return load_policy(text, where=str(path))


def _open(args: argparse.Namespace) -> PSIRTStore:
    path = _db_path(args)
    if not path.is_file():
        raise PSIRTInputError(
            _("no PSIRT database at {path}; pass --db PATH or set ${DB_ENV} (the vendor server creates it on the first report)").format(path=path, DB_ENV=DB_ENV)
        )
    return PSIRTStore.open(path, create=False)


def _summary(report: model.Report) -> str:
    severity = report.severity or "-"
    return f"{report.report_id}  {report.state.value:<18} {severity:<8} {report.submission.title}"


def _cmd_list(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        reports = store.all()
        if args.json:
            print(json.dumps([model.report_to_json(r) for r in reports], indent=1))
        else:
            for report in reports:
                print(_summary(report))
    finally:
        store.close()
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    store = _open(args)
    try:
        print(json.dumps(model.report_to_json(store.get(args.report_id)), indent=1))
    finally:
        store.close()
    return 0


def _change(
    make: Callable[[argparse.Namespace, datetime], Callable[[model.Report], model.Report]],
) -> Callable[[argparse.Namespace], int]:
    """A command that applies one pure model step to one stored report."""

    def handler(args: argparse.Namespace) -> int:
        now = parse_at(args.at)
        step = make(args, now)
        store = _open(args)
        try:
            report = store.update(args.report_id, step)
        finally:
            store.close()
        print(_summary(report))
        return 0

    return handler


def _publisher(store: PSIRTStore, base_url: str | None) -> csaf.Publisher | None:
    """The publisher the vendor server announces (None: let the store use it); ``base_url``
    may only confirm it."""
    recorded = store.publisher()
    if base_url is None:
        return recorded
    given = csaf.Publisher.default(base_url)
    if recorded is not None and recorded.namespace != given.namespace:
        raise PSIRTInputError(
            _("--base-url {base_url} differs from the publisher the vendor server announces ({namespace}); advisories must name their provider's publisher").format(base_url=base_url, namespace=recorded.namespace)
        )
    return recorded or given


def _cmd_publish(args: argparse.Namespace) -> int:
    now = parse_at(args.at)
    base_url = args.base_url or os.environ.get(VENDOR_URL_ENV) or None
    store = _open(args)
    try:
        report, doc = store.publish(
            args.report_id,
            publisher=_publisher(store, base_url),
            vendor=args.vendor,
            model_name=args.model,
            now=now,
            cve=args.cve,
        )
    finally:
        store.close()
    print(f"{_summary(report)}\n{report.advisory_id} -> {csaf.advisory_path(doc)}")
    return 0


def _triage(args: argparse.Namespace, now: datetime) -> Callable[[model.Report], model.Report]:
    if (args.cwe is None) != (args.cwe_name is None):
        raise PSIRTInputError(_("--cwe and --cwe-name go together (the CSAF cwe member needs both)"))
    score = score_vector(args.cvss)
    score_v3 = score_vector(args.cvss_v3) if args.cvss_v3 else None
    cwe = model.CWE.parse(args.cwe, args.cwe_name) if args.cwe else None
    return lambda r: model.triage(r, score, now=now, score_v3=score_v3, cwe=cwe)


def _format_hours(delta: timedelta | None) -> str:
    return "n/a" if delta is None else f"{delta / timedelta(hours=1):.1f} h"


def _cmd_vex(args: argparse.Namespace) -> int:
    """The CycloneDX VEX of one release: which published advisories affect it."""
    from update_server.sbom import build_vex  # cyclonedx is only needed here

    release = model.FirmwareRelease.parse(args.release)
    store = _open(args)
    try:
        advisories = store.advisories()
    finally:
        store.close()
    text = build_vex(
        advisories, hardware_id=release.hardware_id, version=release.version, model=args.model, now=parse_at(args.at)
    )
    if args.output is None:
        print(text)
    else:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
        states = [v["analysis"]["state"] for v in json.loads(text).get("vulnerabilities", [])]
        print(_("wrote {output}: {len} advisories, {count} affect {release}").format(output=args.output, len=len(states), count=states.count('exploitable'), release=release))
    return 0


def _cmd_sla(args: argparse.Namespace) -> int:
    now = parse_at(args.at)
    policy = _policy(args)
    store = _open(args)
    try:
        status = evaluate(store.all(), policy, now=now)
        new = store.record_breaches(list(status.breached), now=now)
    finally:
        store.close()
    if args.format == "json":
        doc: dict[str, Any] = status.to_json()
        doc["newly_audited_breaches"] = len(new)
        print(json.dumps(doc, indent=1))
        return 0
    print(
        _("SLA status at {isoformat}: {open_reports} open, {len} at risk, {breach_count} breached").format(isoformat=now.isoformat(), open_reports=status.open_reports, len=len(status.at_risk), breach_count=status.breach_count)
    )
    print(_("median time to acknowledge: {format_hours}").format(format_hours=_format_hours(status.median_time_to_acknowledge)))
    for severity, median in status.median_time_to_fix.items():
        print(_("median time to fix ({severity}): {format_hours}").format(severity=severity, format_hours=_format_hours(median)))
    print(f"{'report':<13} {'deadline':<18} {'due':<26} status")
    for d in status.deadlines:
        print(f"{d.report_id:<13} {d.kind:<18} {d.due.isoformat():<26} {d.status}")
    return 0


def register(groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    psirt = groups["psirt"]

    def add(
        name: str,
        help_text: str,
        handler: Callable[[argparse.Namespace], int],
        *,
        report: bool = True,
    ) -> argparse.ArgumentParser:
        p = psirt.add_parser(name, help=_(help_text))
        p.add_argument(
            "--db", default=None, help=_("PSIRT database (default ${DB_ENV} or {DEFAULT_DB})").format(DB_ENV=DB_ENV, DEFAULT_DB=DEFAULT_DB)
        )
        p.add_argument("--at", default=None, help=_("act at this ISO 8601 time (default: now)"))
        if report:
            p.add_argument("report_id", metavar="REPORT", help=_("tracking id, e.g. R-2026-0001"))
        p.set_defaults(handler=handler)
        return p

    p = add("list", N_("list reports"), _cmd_list, report=False)
    p.add_argument("--json", action="store_true", help=_("print the reports as a JSON array"))
    add("show", N_("show one report as JSON"), _cmd_show)
    add(
        "ack",
        N_("acknowledge a report"),
        _change(lambda a, now: lambda r: model.acknowledge(r, now=now)),
    )
    p = add("triage", N_("score a report with a CVSS v3.1/v4.0 vector (and name its CWE)"), _change(_triage))
    p.add_argument("--cvss", required=True, metavar="VECTOR")
    p.add_argument(
        "--cvss-v3", metavar="VECTOR", help=_("with a CVSS v4.0 --cvss: the v3.1 vector the CSAF 2.0 advisory carries")
    )
    p.add_argument("--cwe", metavar="CWE-ID", help=_("the weakness, e.g. CWE-287 (with --cwe-name)"))
    p.add_argument("--cwe-name", metavar="NAME", help=_("its name in the CWE catalogue, e.g. 'Improper Authentication'"))
    add(
        "start-fix",
        N_("start working on a fix"),
        _change(lambda a, now: lambda r: model.start_fix(r, now=now)),
    )
    p = add(
        "fixed",
        N_("link the report to the firmware release that fixes it"),
        _change(
            lambda a, now: (
                lambda r: model.mark_fixed(r, model.FirmwareRelease.parse(a.release), now=now)
            )
        ),
    )
    p.add_argument("--release", required=True, metavar="HWID:VERSION")
    p = add("publish", N_("publish the CSAF 2.0 advisory of a fixed report"), _cmd_publish)
    p.add_argument(
        "--base-url",
        default=None,
        help=_("vendor https origin (default ${VENDOR_URL_ENV}, else the publisher the vendor server recorded)").format(VENDOR_URL_ENV=VENDOR_URL_ENV),
    )
    p.add_argument("--cve", default=None)
    p.add_argument("--vendor", default="refcam")
    p.add_argument("--model", default="RC-1080")
    add("close", N_("close a report"), _change(lambda a, now: lambda r: model.close(r, now=now)))
    p = add(
        "reject",
        N_("reject a report"),
        _change(lambda a, now: lambda r: model.reject(r, a.reason, now=now)),
    )
    p.add_argument("--reason", required=True)
    p = add(
        "duplicate",
        N_("mark a report a duplicate of another"),
        _change(lambda a, now: lambda r: model.mark_duplicate(r, a.of, now=now)),
    )
    p.add_argument("--of", required=True, metavar="REPORT")
    add(
        "exploited",
        N_("flag as actively exploited (starts the EU CRA clocks)"),
        _change(lambda a, now: lambda r: model.mark_exploited(r, now=now)),
    )
    p = add(
        "cra-report",
        N_("record an EU CRA submission to the CSIRT/ENISA"),
        _change(lambda a, now: lambda r: model.record_cra_submission(r, a.kind, now=now)),
    )
    p.add_argument("--kind", required=True, choices=model.CRA_KINDS)
    p = add(
        "message",
        N_("send the reporter a status update"),
        _change(lambda a, now: lambda r: model.add_message(r, "psirt", a.body, now=now)),
    )
    p.add_argument("--body", required=True)
    p = add("vex", N_("write the CycloneDX VEX of a release (which advisories affect it)"), _cmd_vex, report=False)
    p.add_argument("--release", required=True, metavar="HWID:VERSION")
    p.add_argument("--model", default="RC-1080")
    p.add_argument("-o", "--output", default=None, help=_("output file (default: stdout)"))
    p = add("sla", N_("SLA deadlines, at-risk and breached lists, figures"), _cmd_sla, report=False)
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.add_argument("--policy", default=None, help=_("vendor SLA policy TOML (overrides defaults)"))
