"""The probe runner: catalogue cases -> registered case functions -> a report.

A case function takes the :class:`ProbeContext` and returns its units'
results; the runner times it, bounds its requests, and turns an unexpected
failure into an INCONCLUSIVE verdict with the reason (a probe must not crash
on an odd camera)::

    @register("TLS-07", budget=4)
    def hsts(ctx: ProbeContext) -> list[UnitResult]: ...
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .catalogue import Catalogue, load_catalogue
from .errors import ProbeBudgetExceeded, ProbeError
from .http import ProbeHTTP, Target, client_context
from .model import CaseResult, Evidence, UnitResult, Verdict, make_case_result
from .report import ProbeReport

CaseFunction = Callable[["ProbeContext"], Sequence[UnitResult]]


@dataclass(frozen=True)
class _Registered:
    function: CaseFunction
    budget: int  # maximum requests
    destructive: bool
    order: int  # run order: cases that trip throttling (spray, brute force) run last


_REGISTRY: dict[str, _Registered] = {}


def register(
    case_id: str, *, budget: int = 20, destructive: bool = False, order: int = 50
) -> Callable[[CaseFunction], CaseFunction]:
    def decorate(function: CaseFunction) -> CaseFunction:
        _REGISTRY[case_id] = _Registered(function, budget, destructive, order)
        return function

    return decorate


@dataclass
class ProbeOptions:
    target: str
    ca_file: str | None
    label_password: str | None = None
    admin: tuple[str, str] | None = None  # (user, password)
    vendor: str | None = None
    vendor_ca_file: str | None = None
    peer: str | None = None
    reference_values: Path | None = None
    image: Path | None = None  # a vendor-signed image of the target's model (bit-flip case)
    older_image: Path | None = None
    plaintext_ports: tuple[int, ...] = (80, 8080, 8000)
    allow_destructive: bool = False
    only: tuple[str, ...] = ()  # case ids; empty = all
    # called with the admin password the probe set during a first login (never in the report)
    on_new_admin_password: Callable[[str], None] | None = None


@dataclass
class ProbeContext:
    options: ProbeOptions
    target: Target
    http: ProbeHTTP
    cache: dict[str, Any] = field(default_factory=dict)
    # undo actions (delete test users, restore settings), run in reverse at the end
    cleanups: list[tuple[str, Callable[[], None]]] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.target.host

    @property
    def port(self) -> int:
        return self.target.port

    def vendor_http(self) -> ProbeHTTP | None:
        if not self.options.vendor:
            return None
        if "vendor_http" not in self.cache:
            ca = self.options.vendor_ca_file or self.options.ca_file
            self.cache["vendor_http"] = ProbeHTTP(Target.parse(self.options.vendor), ssl_context=client_context(ca))
        client: ProbeHTTP = self.cache["vendor_http"]
        client.start_case(max(client.budget, 50))
        return client


def unit(letter: str, verdict: Verdict, reason: str, *evidence: Evidence) -> UnitResult:
    return UnitResult(letter, verdict, reason, tuple(evidence))


def passed(letter: str, reason: str, *evidence: Evidence) -> UnitResult:
    return unit(letter, Verdict.PASS, reason, *evidence)


def failed(letter: str, reason: str, *evidence: Evidence) -> UnitResult:
    return unit(letter, Verdict.FAIL, reason, *evidence)


def inconclusive(letter: str, reason: str, *evidence: Evidence) -> UnitResult:
    return unit(letter, Verdict.INCONCLUSIVE, reason, *evidence)


def not_applicable(letter: str, reason: str) -> UnitResult:
    return unit(letter, Verdict.NOT_APPLICABLE, reason)


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_case(ctx: ProbeContext, case_id: str, letters: Sequence[str]) -> CaseResult:
    registered = _REGISTRY.get(case_id)
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
    from . import cases  # noqa: F401 - registers the case functions

    catalogue = catalogue or load_catalogue()
    target = Target.parse(options.target)
    if target.scheme != "https":
        raise ProbeError("the management target must be an https:// URL")
    ctx = ProbeContext(options, target, ProbeHTTP(target, ssl_context=client_context(options.ca_file)))
    started = _now_iso()
    selected = [c for c in catalogue.cases if not options.only or c.id in options.only]
    selected.sort(key=lambda c: _REGISTRY[c.id].order if c.id in _REGISTRY else 50)
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
