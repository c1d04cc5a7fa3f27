"""Verdicts, evidence and results of a probe run (pure).

TS 103 701 style: each case has lettered test units; each unit gets a verdict
with the evidence that decided it; a case's verdict combines its units::

    case_verdict([Verdict.PASS, Verdict.INCONCLUSIVE]) is Verdict.INCONCLUSIVE
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Verdict(enum.StrEnum):
    PASS = "PASS"  # noqa: S105 - a verdict, not a password
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    NOT_APPLICABLE = "NOT APPLICABLE"  # the declaration says the feature is absent
    NOT_TESTED = "NOT TESTED"  # skipped: a missing option, --only, or --allow-destructive not given


@dataclass(frozen=True)
class Evidence:
    """What decided a verdict: an HTTP exchange, a scan result, or a note."""

    kind: str  # "http", "tls-scan", "note"
    summary: str
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UnitResult:
    unit: str  # "a", "b", ...
    verdict: Verdict
    reason: str
    evidence: tuple[Evidence, ...] = ()
    needs: tuple[str, ...] = ()  # NOT TESTED: the options that would let the unit run


@dataclass(frozen=True)
class CaseResult:
    case_id: str
    verdict: Verdict
    units: tuple[UnitResult, ...]
    duration: float  # seconds
    requests: int  # requests the case sent


def case_verdict(verdicts: Iterable[Verdict]) -> Verdict:
    """FAIL if any unit failed; else INCONCLUSIVE if any was; else NOT TESTED if any was
    skipped; else PASS unless all N/A."""
    seen = list(verdicts)
    if not seen:
        return Verdict.INCONCLUSIVE
    if Verdict.FAIL in seen:
        return Verdict.FAIL
    if Verdict.INCONCLUSIVE in seen:
        return Verdict.INCONCLUSIVE
    if Verdict.NOT_TESTED in seen:
        return Verdict.NOT_TESTED
    if all(v is Verdict.NOT_APPLICABLE for v in seen):
        return Verdict.NOT_APPLICABLE
    return Verdict.PASS


def make_case_result(
    case_id: str, units: Iterable[UnitResult], *, duration: float, requests: int
) -> CaseResult:
    units = tuple(units)
    return CaseResult(case_id, case_verdict(u.verdict for u in units), units, duration, requests)
