"""The SLA engine: deadlines, at-risk and breached lists, and figures, at a given ``now``.

Pure: it takes reports, an :class:`SLAPolicy` and ``now`` and returns a frozen
:class:`SLAStatus`. Boundary rule (documented in the disclosure policy): a
deadline is met if the action happens at or before ``due``; an open deadline
is breached only once ``now`` is strictly after ``due``; it is at risk while
``due - margin <= now <= due`` where ``margin = min(fraction * window,
max_hours)``.

Deadlines per report:

* ``acknowledge``: receipt + ``acknowledge``; met by the first PSIRT response
  (acknowledged, rejected or duplicate).
* ``fix``: receipt + window of the triaged CVSS severity; met when fixed.
  Dropped for rejected/duplicate reports.
* ``status_update``: every gap between PSIRT contacts (state changes, PSIRT
  messages), starting at the acknowledgement, while the report is open.
* ``cra_early_warning`` / ``cra_notification``: exploited flag + 24 h / 72 h;
  ``cra_final_report``: fix + 14 days (EU CRA Art. 14(2)(a)-(c)).

Example::

    status = evaluate(reports, load_policy(), now=datetime.now(UTC))
    for d in status.breached: print(d.report_id, d.kind, d.due)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .model import TERMINAL_STATES, Report, State
from .policy import SLAPolicy

MET = "met"
MET_LATE = "met_late"  # the action happened, after the deadline: a (closed) breach
OPEN = "open"
AT_RISK = "at_risk"
BREACHED = "breached"  # still not done and past the deadline


@dataclass(frozen=True)
class Deadline:
    report_id: str
    kind: str  # acknowledge, fix, status_update, cra_early_warning, cra_notification, ...
    start: datetime
    due: datetime
    done_at: datetime | None
    status: str  # MET, MET_LATE, OPEN, AT_RISK, BREACHED

    @property
    def is_breach(self) -> bool:
        return self.status in (MET_LATE, BREACHED)

    @property
    def key(self) -> str:
        """Stable identity for the audit log (one entry per breached deadline)."""
        return f"{self.report_id}/{self.kind}/{self.start.isoformat()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "kind": self.kind,
            "start": self.start.isoformat(),
            "due": self.due.isoformat(),
            "done_at": self.done_at.isoformat() if self.done_at else None,
            "status": self.status,
        }


@dataclass(frozen=True)
class SLAStatus:
    now: datetime
    deadlines: tuple[Deadline, ...]
    median_time_to_acknowledge: timedelta | None
    median_time_to_fix: Mapping[str, timedelta]  # severity -> median (severities with fixes)
    open_reports: int

    @property
    def at_risk(self) -> tuple[Deadline, ...]:
        return tuple(d for d in self.deadlines if d.status == AT_RISK)

    @property
    def breached(self) -> tuple[Deadline, ...]:
        return tuple(d for d in self.deadlines if d.is_breach)

    @property
    def breach_count(self) -> int:
        return len(self.breached)

    def to_json(self) -> dict[str, Any]:
        def hours(d: timedelta) -> float:
            return round(d / timedelta(hours=1), 3)

        ack = self.median_time_to_acknowledge
        return {
            "now": self.now.isoformat(),
            "open_reports": self.open_reports,
            "breach_count": self.breach_count,
            "median_time_to_acknowledge_hours": hours(ack) if ack is not None else None,
            "median_time_to_fix_hours": {k: hours(v) for k, v in self.median_time_to_fix.items()},
            "at_risk": [d.to_json() for d in self.at_risk],
            "breached": [d.to_json() for d in self.breached],
            "deadlines": [d.to_json() for d in self.deadlines],
        }


def _median(values: list[timedelta]) -> timedelta:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _deadline(
    report_id: str,
    kind: str,
    start: datetime,
    window: timedelta,
    done_at: datetime | None,
    policy: SLAPolicy,
    now: datetime,
) -> Deadline:
    due = start + window
    if done_at is not None and done_at <= now:
        status = MET if done_at <= due else MET_LATE
    elif now > due:
        status = BREACHED
    elif now >= due - policy.at_risk_margin(window):
        status = AT_RISK
    else:
        status = OPEN
    return Deadline(
        report_id, kind, start, due, done_at if status in (MET, MET_LATE) else None, status
    )


def _entered_by(report: Report, state: State, now: datetime) -> bool:
    at = report.entered_at(state)
    return at is not None and at <= now


def _first_response(report: Report) -> datetime | None:
    times = [
        t
        for s in (State.ACKNOWLEDGED, State.REJECTED, State.DUPLICATE)
        if (t := report.entered_at(s)) is not None
    ]
    return min(times) if times else None


def report_deadlines(report: Report, policy: SLAPolicy, now: datetime) -> list[Deadline]:
    """Every SLA deadline of one report, evaluated at ``now``."""
    rid = report.report_id
    out = [
        _deadline(
            rid,
            "acknowledge",
            report.received_at,
            policy.acknowledge,
            _first_response(report),
            policy,
            now,
        )
    ]
    # Fix clock (CISA BOD 19-02 style: from receipt), once the severity is known.
    # Only what had happened by ``now`` counts, so ``--at`` can replay the past.
    closed_unfixed = _entered_by(report, State.REJECTED, now) or _entered_by(
        report, State.DUPLICATE, now
    )
    if report.score is not None and _entered_by(report, State.TRIAGED, now) and not closed_unfixed:
        out.append(
            _deadline(
                rid,
                "fix",
                report.received_at,
                policy.fix_window(report.score.severity),
                report.entered_at(State.FIXED),
                policy,
                now,
            )
        )
    # Status updates: each silence between PSIRT contacts, from the first response on.
    contacts = [t for t in report.psirt_contacts() if t <= now]
    if contacts:
        ended = next(
            (e.at for e in report.history if e.kind in {s.value for s in TERMINAL_STATES}), None
        )
        for i, start in enumerate(contacts):
            if ended is not None and start >= ended:
                break
            following = contacts[i + 1] if i + 1 < len(contacts) else None
            out.append(
                _deadline(rid, "status_update", start, policy.status_update, following, policy, now)
            )
    # EU CRA Art. 14(2): only for actively exploited vulnerabilities.
    if report.exploited_at is not None and report.exploited_at <= now:
        ex = report.exploited_at
        out.append(
            _deadline(
                rid,
                "cra_early_warning",
                ex,
                policy.cra_early_warning,
                report.cra_submitted.get("early_warning"),
                policy,
                now,
            )
        )
        out.append(
            _deadline(
                rid,
                "cra_notification",
                ex,
                policy.cra_notification,
                report.cra_submitted.get("notification"),
                policy,
                now,
            )
        )
        fixed_at = report.entered_at(State.FIXED)
        if fixed_at is not None and fixed_at <= now:
            out.append(
                _deadline(
                    rid,
                    "cra_final_report",
                    fixed_at,
                    policy.cra_final_report,
                    report.cra_submitted.get("final_report"),
                    policy,
                    now,
                )
            )
    return out


def evaluate(reports: Iterable[Report], policy: SLAPolicy, *, now: datetime) -> SLAStatus:
    """All deadlines of all reports received by ``now``, with figures."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    visible = [r for r in reports if r.received_at <= now]
    deadlines: list[Deadline] = []
    ack_times: list[timedelta] = []
    fix_times: dict[str, list[timedelta]] = {}
    for report in visible:
        deadlines.extend(report_deadlines(report, policy, now))
        responded = _first_response(report)
        if responded is not None and responded <= now:
            ack_times.append(responded - report.received_at)
        fixed = report.entered_at(State.FIXED)
        if fixed is not None and fixed <= now and report.score is not None:
            fix_times.setdefault(report.score.severity, []).append(fixed - report.received_at)
    open_reports = sum(
        1
        for r in visible
        if not any(e.kind in {s.value for s in TERMINAL_STATES} and e.at <= now for e in r.history)
    )
    return SLAStatus(
        now=now,
        deadlines=tuple(sorted(deadlines, key=lambda d: (d.due, d.report_id, d.kind))),
        median_time_to_acknowledge=_median(ack_times) if ack_times else None,
        median_time_to_fix={k: _median(v) for k, v in sorted(fix_times.items())},
        open_reports=open_reports,
    )
