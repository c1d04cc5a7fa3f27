"""The probe runner: catalogue cases -> registered case functions -> a report.

A case function (:mod:`conformance.case`) takes the :class:`ProbeContext` and
returns its units' results; the runner times it, bounds its requests, and turns
an unexpected failure into an INCONCLUSIVE verdict with the reason (a probe must
not crash on an odd camera). Before any case, :func:`validate_options` refuses
options it cannot use and the preflight (:mod:`conformance.preflight`) proves
the unit can be judged; both raise an exit-2 error with one line. Cases the
declaration rules out are NOT APPLICABLE, cases skipped for a missing option
or by ``only`` are NOT TESTED. The cases are the modules :data:`CASE_MODULES`
lists::

    report = run_probe(options, catalogue=load_catalogue())
"""

from __future__ import annotations

import dataclasses
import json
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from .adapters import adapter_for
from .case import REGISTRY, ProbeContext, ProbeOptions, inconclusive, not_applicable, not_tested
from .cases import CASE_MODULES
from .catalogue import Catalogue, load_catalogue
from .errors import MissingOption, PreflightError, ProbeBudgetExceeded, ProbeError, UsageError
from .http import ProbeHTTP, Recorded, Target, client_context
from .i18n import msg, said
from .model import CaseResult, UnitResult, make_case_result
from .preflight import check_channel, check_login
from .report import ProbeReport

__all__ = ["CASE_MODULES", "PreflightError", "ProbeOptions", "run_case", "run_probe", "validate_options"]


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_case(ctx: ProbeContext, case_id: str, letters: Sequence[str]) -> CaseResult:
    registered = REGISTRY.get(case_id)
    start = time.perf_counter()
    if registered is None:
        units: Sequence[UnitResult] = [
            inconclusive(letter, msg("this probe build has no implementation for the case")) for letter in letters
        ]
        return make_case_result(case_id, units, duration=0.0, requests=0)
    declaration = ctx.options.declaration
    absent = [f for f in registered.requires if declaration is not None and declaration.absent(f)]
    if absent:
        units = [not_applicable(letter, msg("the declaration says the unit has no {features}", features=", ".join(absent))) for letter in letters]
        return make_case_result(case_id, units, duration=0.0, requests=0)
    if registered.destructive and not ctx.options.allow_destructive:
        units = [
            not_tested(letter, msg("destructive case, not run"), "--allow-destructive") for letter in letters
        ]
        return make_case_result(case_id, units, duration=0.0, requests=0)
    ctx.http.start_case(registered.budget, case_id)
    ctx.deadline = ctx.http.clock() + registered.seconds
    try:
        units = list(registered.function(ctx))
    except MissingOption as exc:
        units = [not_tested(letter, said(exc), *exc.needs) for letter in letters]
    except ProbeBudgetExceeded as exc:
        units = [inconclusive(letters[0], said(exc))]
    except ProbeError as exc:
        units = [inconclusive(letters[0], said(exc))]
    except Exception as exc:  # noqa: BLE001 - an odd camera must not crash the probe run
        units = [inconclusive(letters[0], msg("probe error: {name}: {exc}", name=type(exc).__name__, exc=exc))]
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
    clock_start = time.perf_counter()
    validate_options(options, catalogue)
    target = Target.parse(options.target)
    declaration = options.declaration
    adapter = adapter_for(declaration.management if declaration else None, name=options.adapter)
    if options.vendor is None and declaration is not None and declaration.vendor_base_url:
        options = dataclasses.replace(options, vendor=declaration.vendor_base_url)
    context = client_context(options.ca_file) if target.scheme == "https" else None
    recorder: list[Recorded] = []
    http = ProbeHTTP(target, ssl_context=context, recorder=recorder)
    ctx = ProbeContext(options, target, http, adapter=adapter)
    started = _now_iso()
    _preflight(ctx)
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
    for case in catalogue.cases:  # not selected by --only: NOT TESTED, in the report all the same
        if case.id not in by_id:
            units = [not_tested(letter, msg("not selected (--only)"), "all cases (no --only)") for letter in case.unit_letters]
            by_id[case.id] = make_case_result(case.id, units, duration=0.0, requests=0)
    results = [by_id[c.id] for c in catalogue.cases if c.id in by_id]
    return ProbeReport(
        target=target.url,
        started=started,
        finished=_now_iso(),
        catalogue=catalogue,
        results=tuple(results),
        options=redacted_options(options, restore_errors),
        declaration=dict(declaration.document) if declaration else None,
        identity={**ctx.identity, "adapter": adapter.interface},
        channel=ctx.channel,
        exchanges=tuple(recorder),
        elapsed=time.perf_counter() - clock_start,
    )


def redacted_options(options: ProbeOptions, restore_errors: list[str]) -> dict[str, object]:
    """The options a run used, secrets replaced by what kind of secret was given."""
    return {
        "target": options.target,
        "ca_file": options.ca_file,
        "credentials": "admin" if options.admin else ("label" if options.label_password else "none"),
        "admin_user": options.admin[0] if options.admin else None,
        "label_password": "<redacted>" if options.label_password else None,
        "vendor": options.vendor,
        "vendor_ca_file": options.vendor_ca_file,
        "peer": options.peer,
        "reference_values": str(options.reference_values) if options.reference_values else None,
        "image": str(options.image) if options.image else None,
        "older_image": str(options.older_image) if options.older_image else None,
        "plaintext_ports": list(options.plaintext_ports),
        "allow_destructive": options.allow_destructive,
        "only": list(options.only),
        "declaration": "given" if options.declaration else None,
        "restore_errors": restore_errors,
    }


def _pem_certificates(path: str, option: str) -> None:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{option} {path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise UsageError(f"{option} {path}: not a PEM certificate file") from exc
    if not certs:
        raise UsageError(f"{option} {path}: no PEM certificate in it")
    try:
        ssl.create_default_context(cafile=path)
    except ssl.SSLError as exc:
        raise UsageError(f"{option} {path}: not usable as a TLS trust root ({exc})") from exc


def validate_options(options: ProbeOptions, catalogue: Catalogue) -> None:
    """Refuse what the probe cannot use, with one line each, before anything is sent."""
    known = {c.id for c in catalogue.cases}
    unknown = [c for c in options.only if c not in known]
    if unknown:
        raise UsageError(f"--only: unknown case id(s) {', '.join(unknown)} (see the catalogue: {', '.join(sorted(known))})")
    target = Target.parse(options.target)
    if target.scheme == "https" and not options.ca_file:
        raise UsageError("--ca: an https target needs the PEM root its chain must validate to")
    if options.ca_file:
        _pem_certificates(options.ca_file, "--ca")
    if options.vendor_ca_file:
        _pem_certificates(options.vendor_ca_file, "--vendor-ca")
    if options.reference_values is not None:
        try:
            json.loads(Path(options.reference_values).read_text("utf-8"))
        except OSError as exc:
            raise UsageError(f"--reference {options.reference_values}: cannot read it ({exc.strerror or exc})") from exc
        except ValueError as exc:
            raise UsageError(f"--reference {options.reference_values}: not JSON ({exc})") from exc
    for option, path in (("--image", options.image), ("--older-image", options.older_image)):
        if path is not None and not Path(path).is_file():
            raise UsageError(f"{option} {path}: no such file")
    for option, url in (("--vendor", options.vendor), ("--peer", options.peer)):
        if url is not None:
            try:
                Target.parse(url)
            except ProbeError as exc:
                raise UsageError(f"{option}: {exc}") from exc


def _preflight(ctx: ProbeContext) -> None:
    """Channel, then identity, then one login with the given credentials (conformance.preflight)."""
    ctx.channel = check_channel(ctx.target, ctx.http.ssl_context)
    ctx.http.start_case(8, "preflight")
    if ctx.channel.get("tls") is False:  # the TLS cases FAIL on this answer, with it as evidence
        plain = ctx.adapter.anonymous(ctx.http)
        if plain.status == 0:
            raise PreflightError(f"preflight: {ctx.target.url} accepted a connection but answered no HTTP: {plain.error}")
        ctx.cache["preflight_plaintext"] = plain
        ctx.channel["plaintext_answer"] = f"{plain.method} {plain.path} -> HTTP {plain.status}"
    opts = ctx.options
    if opts.admin is not None:
        ctx.preflight_session, ctx.preflight_login = check_login(
            ctx.http, ctx.adapter, opts.admin[0], opts.admin[1], what="the --admin credential"
        )
    elif opts.label_password is not None:
        ctx.preflight_session, ctx.preflight_login = check_login(
            ctx.http, ctx.adapter, ctx.adapter.admin_user, opts.label_password, what="the label password"
        )
    try:
        info = ctx.adapter.info(ctx.http, ctx.preflight_session)
        ctx.identity = ctx.adapter.identity(info)
    except ProbeError:
        ctx.identity = {}
    cert = ctx.channel.get("certificate") or {}
    if cert.get("serial_number_attribute"):
        ctx.identity.setdefault("serial", cert["serial_number_attribute"])
        ctx.identity["certificate_serial"] = cert["serial_number_attribute"]
    if cert.get("subject"):
        ctx.identity["certificate_subject"] = cert["subject"]


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
