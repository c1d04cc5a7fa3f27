"""The probe runner: catalogue cases -> registered case functions -> a report.

A case function (:mod:`conformance.case`) takes the :class:`ProbeContext` and
returns its units' results; the runner times it, bounds its requests, and turns
an unexpected failure into an INCONCLUSIVE verdict with the reason (a probe must
not crash on an odd camera). The cases are the modules :data:`CASE_MODULES`
lists::

    report = run_probe(options, catalogue=load_catalogue())
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from .case import REGISTRY, ProbeContext, ProbeOptions, inconclusive, not_applicable
from .cases import CASE_MODULES
from .catalogue import Catalogue, load_catalogue
from .errors import ProbeBudgetExceeded, ProbeError
from .http import ProbeHTTP, Target, client_context
from .model import CaseResult, UnitResult, make_case_result
from .report import ProbeReport

__all__ = ["CASE_MODULES", "ProbeOptions", "run_case", "run_probe"]


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_case(ctx: ProbeContext, case_id: str, letters: Sequence[str]) -> CaseResult:
    registered = REGISTRY.get(case_id)
    start = time.perf_counter()
    if registered is None:
        units: Sequence[UnitResult] = [
            inconclusive(letter, "this probe build has no implementation for the case") for letter in letters
        ]
        return make_case_result(case_id, units, duration=0.0, requests=0)
    if registered.destructive and not ctx.options.allow_destructive:
        units = [not_applicable(letter, "destructive case; run with --allow-destructive") for letter in letters]
        return make_case_result(case_id, units, duration=0.0, requests=0)
    ctx.http.start_case(registered.budget)
    try:
        units = list(registered.function(ctx))
    except ProbeBudgetExceeded as exc:
        units = [inconclusive(letters[0], str(exc))]
    except ProbeError as exc:
        units = [inconclusive(letters[0], str(exc))]
    except Exception as exc:  # noqa: BLE001 - an odd camera must not crash the probe run
        units = [inconclusive(letters[0], f"probe error: {type(exc).__name__}: {exc}")]
    return make_case_result(
        case_id, units, duration=time.perf_counter() - start, requests=ctx.http.sent
    )


def run_probe(
    options: ProbeOptions,
    *,
    catalogue: Catalogue | None = None,
    on_case: Callable[[int, int, str], None] | None = None,
) -> ProbeReport:
    """Run the selected cases; ``on_case(done, total, case_id)`` after each (progress)."""

    catalogue = catalogue or load_catalogue()
    target = Target.parse(options.target)
    if target.scheme != "https":
        raise ProbeError("the management target must be an https:// URL")
    ctx = ProbeContext(options, target, ProbeHTTP(target, ssl_context=client_context(options.ca_file)))
    started = _now_iso()
    selected = [c for c in catalogue.cases if not options.only or c.id in options.only]
    selected.sort(key=lambda c: REGISTRY[c.id].order if c.id in REGISTRY else 50)
    by_id = {}
    try:
        for done, case in enumerate(selected, start=1):
            by_id[case.id] = run_case(ctx, case.id, case.unit_letters)
            if on_case is not None:
                on_case(done, len(selected), case.id)
    finally:
        restore_errors = _run_cleanups(ctx)
    results = [by_id[c.id] for c in catalogue.cases if c.id in by_id]
    return ProbeReport(
        target=target.url,
        started=started,
        finished=_now_iso(),
        catalogue=catalogue,
        results=tuple(results),
        options={
            "ca_file": options.ca_file,
            "credentials": "admin" if options.admin else ("label" if options.label_password else "none"),
            "vendor": options.vendor,
            "peer": options.peer,
            "allow_destructive": options.allow_destructive,
            "only": list(options.only),
            "restore_errors": restore_errors,
        },
    )


def _run_cleanups(ctx: ProbeContext) -> list[str]:
    """Undo what the probe changed; failures are reported, never hidden."""
    errors = []
    ctx.http.start_case(10 * len(ctx.cleanups) + 10)
    while ctx.cleanups:
        what, action = ctx.cleanups.pop()
        try:
            action()
        except Exception as exc:  # noqa: BLE001 - keep restoring the rest, report each failure
            errors.append(f"{what}: {type(exc).__name__}: {exc}")
    return errors
