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

from .adapters import RefcamAPIAdapter, Session, TargetAdapter
from .declaration import Declaration
from .errors import MissingOption
from .http import Exchange, ProbeHTTP, Target, client_context
from .i18n import said
from .model import Evidence, UnitResult, Verdict
from .verdicts import Judgement, attempt

CaseFunction = Callable[["ProbeContext"], Sequence[UnitResult]]
DEFAULT_CASE_SECONDS = 4.0  # seconds a case may spend waiting out Retry-After


@dataclass(frozen=True)
class _Registered:
    function: CaseFunction
    budget: int  # maximum requests
    destructive: bool
    order: int  # run order: cases that trip throttling (spray, brute force) run last
    requires: tuple[str, ...] = ()  # declaration features (conformance.declaration); absent -> N/A
    seconds: float = DEFAULT_CASE_SECONDS  # time the case may spend waiting out Retry-After


REGISTRY: dict[str, _Registered] = {}


def register(
    case_id: str,
    *,
    budget: int = 20,
    destructive: bool = False,
    order: int = 50,
    requires: tuple[str, ...] = (),
    seconds: float = DEFAULT_CASE_SECONDS,
) -> Callable[[CaseFunction], CaseFunction]:
    def decorate(function: CaseFunction) -> CaseFunction:
        REGISTRY[case_id] = _Registered(function, budget, destructive, order, requires, seconds)
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
    declaration: Declaration | None = None  # the supplier's declaration (--declaration)
    # called with the admin password the probe set during a first login (never in the report)
    on_new_admin_password: Callable[[str], None] | None = None
    rtsps_port: int = 322  # the camera's RTSPS port (RTSP-*)
    rtsp_plaintext_ports: tuple[int, ...] = ()  # checked for plaintext RTSP besides 554 and 8554
    rtsp_paths: tuple[str, ...] = ("/h264", "/mjpeg")  # stream paths; the first must be H.264 (RTSP-05)
    adapter: str | None = None  # --adapter: the target adapter without a declaration (conformance.adapters)


@dataclass
class ProbeContext:
    options: ProbeOptions
    target: Target
    http: ProbeHTTP
    cache: dict[str, Any] = field(default_factory=dict)
    # undo actions (delete test users, restore settings), run in reverse at the end
    cleanups: list[tuple[str, Callable[[], None]]] = field(default_factory=list)
    adapter: TargetAdapter = field(default_factory=RefcamAPIAdapter)
    deadline: float = 0.0  # clock time by which the running case stops waiting out 429s
    # set by the preflight: the verified login with the given credentials (the label
    # password logs in once, here), the unit's identity, and how the channel was secured
    preflight_session: Session | None = None
    preflight_login: Exchange | None = None
    identity: dict[str, str] = field(default_factory=dict)
    channel: dict[str, Any] = field(default_factory=dict)

    def judged(self, send: Callable[[], Exchange], *, accepted: Callable[[Exchange], bool] | None = None) -> Judgement:
        """Send through the central verdict rule (conformance.verdicts) within the case's time budget.

        ``accepted`` defaults to "the answer is a session" for the target's adapter.
        """

        def is_session(ex: Exchange) -> bool:
            return self.adapter.session(ex, "", "") is not None

        return attempt(
            send,
            accepted=accepted or is_session,
            refusal=self.adapter.is_refusal,
            clock=self.http.clock,
            sleep=self.http.sleep,
            deadline=self.deadline,
        )

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
            self.cache["vendor_http"] = ProbeHTTP(
                Target.parse(self.options.vendor), ssl_context=client_context(ca), recorder=self.http.recorder
            )
        client: ProbeHTTP = self.cache["vendor_http"]
        client.start_case(max(client.budget, 50), self.http.case_id)
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
    """Only for a feature the declaration says the unit does not have."""
    return unit(letter, Verdict.NOT_APPLICABLE, reason)


def not_tested(letter: str, reason: str, *needs: str) -> UnitResult:
    """Skipped for a missing option; ``needs`` names the options that would run it."""
    return UnitResult(letter, Verdict.NOT_TESTED, reason, (), tuple(needs))


def undone(letter: str, exc: Exception, *evidence: Evidence) -> UnitResult:
    """A unit that could not run: NOT TESTED for a missing option, else INCONCLUSIVE with the reason."""
    if isinstance(exc, MissingOption):
        return not_tested(letter, said(exc), *exc.needs)
    return inconclusive(letter, said(exc), *evidence)
