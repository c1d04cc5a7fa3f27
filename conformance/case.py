"""What a probe case is: its context, its verdict helpers, and how it is registered.

Case modules (``conformance/cases/``) import this module only; the runner
(:mod:`conformance.probe`) imports the cases package, which lists every case
module, and reads :data:`REGISTRY`. So the runner depends on the cases and the
cases on this module, with no cycle::

    @register("TLS-07", budget=4)
    def hsts(ctx: ProbeContext) -> list[UnitResult]: ...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .http import ProbeHTTP, Target, client_context
from .model import Evidence, UnitResult, Verdict

CaseFunction = Callable[["ProbeContext"], Sequence[UnitResult]]


@dataclass(frozen=True)
class _Registered:
    function: CaseFunction
    budget: int  # maximum requests
    destructive: bool
    order: int  # run order: cases that trip throttling (spray, brute force) run last


REGISTRY: dict[str, _Registered] = {}


def register(
    case_id: str, *, budget: int = 20, destructive: bool = False, order: int = 50
) -> Callable[[CaseFunction], CaseFunction]:
    def decorate(function: CaseFunction) -> CaseFunction:
        REGISTRY[case_id] = _Registered(function, budget, destructive, order)
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
    signing_key: Path | None = None  # the vendor's Ed25519 firmware key: re-signs the images above (UPD-08)
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
