"""ONVIF cases (Profile S/T devices): pre-auth surface, forced change, WS-Security freshness, Digest.

The probe's own ONVIF adapter, independent of the camera's code: SOAP 1.2
envelopes built with lxml, WS-Security UsernameToken PasswordDigest
(``Base64(SHA-1(nonce + created + password))``, OASIS WSS UsernameToken
Profile 1.0), and fault reading. The device service is expected at the
standard ``/onvif/device_service`` of the management target; a target without
it makes every case NOT APPLICABLE.

A refusal counts only when it is definite: a SOAP fault with the
``ter:NotAuthorized`` subcode, or HTTP 401. 429, 5xx, timeouts and anything
unreadable are INCONCLUSIVE.
"""

from __future__ import annotations

import time

from lxml.builder import ElementMaker

from ..case import ProbeContext, failed, inconclusive, not_tested, passed, register
from ..http import Exchange, ProbeHTTP, Target
from ..i18n import msg
from ..model import UnitResult
from ..onvifsoap import (  # the probe's own ONVIF client, shared with its ONVIF target adapter
    DEVICE_SERVICE,
    NS,
    SOAP_HEADERS,
    answered,
    envelope,
    fault_codes,
    fault_reason,
    refused,
    soap,
    username_token,
)
from ..onvifsoap import (
    parse_answer as _root,
)
from ._session import admin

# ONVIF Core 5.9.4.3: the PRE_AUTH access class, which a device may answer without credentials
PRE_AUTH = {"GetWsdlUrl", "GetServices", "GetServiceCapabilities", "GetCapabilities", "GetHostname",
            "GetSystemDateAndTime", "GetEndpointReference"}
# Operations outside PRE_AUTH that a Profile S device implements (READ_SYSTEM, READ_MEDIA, ...)
PROTECTED = (("tds", "GetDeviceInformation"), ("tds", "GetScopes"), ("tds", "GetNetworkInterfaces"),
             ("tds", "GetUsers"), ("tds", "GetSystemLog"), ("trt", "GetProfiles"), ("trt", "GetVideoSources"))
WEAK_PASSWORDS = ("password1", "admin")
STALE_SECONDS = 3600  # a Created one hour old: far outside any sane freshness window


def _onvif_present(ctx: ProbeContext) -> bool:
    if "onvif_present" not in ctx.cache:
        ex = soap(ctx.http, "tds", "GetSystemDateAndTime")
        ctx.cache["onvif_present"] = ex.status in (200, 400, 401) and _root(ex) is not None
    return bool(ctx.cache["onvif_present"])


def _not_onvif(ctx: ProbeContext) -> list[UnitResult]:
    """No ONVIF device service answered. NOT APPLICABLE comes only from the declaration
    (the runner gives it for a declared-absent ``interface:onvif``); a unit declared to
    speak ONVIF that does not FAILs; without a declaration the case is NOT TESTED."""
    reason = msg("the target serves no ONVIF device service at {device_service}", device_service=DEVICE_SERVICE)
    declaration = ctx.options.declaration
    if declaration is not None and declaration.features().get("interface:onvif"):
        return [failed("a", msg("{reason}, although its declaration names ONVIF", reason=reason))]
    return [not_tested("a", reason, "--declaration (saying whether the unit speaks ONVIF)")]


def _inconclusive_answer(letter: str, what: str, ex: Exchange) -> UnitResult:
    return inconclusive(letter, msg("{what}: no definite answer (HTTP {value})", what=what, value=ex.status or ex.error), ex.evidence())


@register("ONVIF-01", budget=12, order=3, requires=("interface:onvif",))
def preauth_surface(ctx: ProbeContext) -> list[UnitResult]:
    if not _onvif_present(ctx):
        return _not_onvif(ctx)
    opened, unclear = [], []
    for service, op in PROTECTED:
        ex = soap(ctx.http, service, op)
        if answered(ex):
            opened.append(ex.evidence(f"{op} answered without credentials"))
        elif not refused(ex):
            unclear.append(ex)
    if opened:
        return [failed("a", msg("{n_opened} operations outside ONVIF's PRE_AUTH class answered without credentials", n_opened=len(opened)), *opened)]
    if unclear:
        return [_inconclusive_answer("a", msg("{n_unclear} operations", n_unclear=len(unclear)), unclear[0])]
    return [passed("a", msg("all {n_protected} operations outside PRE_AUTH refused an anonymous caller", n_protected=len(PROTECTED)))]


@register("ONVIF-02", budget=12, order=0, requires=("interface:onvif",))
def forced_change_over_onvif(ctx: ProbeContext) -> list[UnitResult]:
    if not _onvif_present(ctx):
        return _not_onvif(ctx)
    label = ctx.options.label_password
    if label is None:
        return [inconclusive("a", msg("needs the label password of a unit that has not been set up"))]
    leaks, unclear = [], []
    for service, op in PROTECTED:
        ex = soap(ctx.http, service, op, token=username_token("admin", label, now=time.time()))
        if answered(ex):
            leaks.append(ex.evidence(f"{op} answered the label password"))
        elif not refused(ex):
            unclear.append(ex)
    if leaks:
        return [failed("a", msg("the label password operated {n_leaks} ONVIF operations without a password change", n_leaks=len(leaks)), *leaks)]
    if unclear:
        return [_inconclusive_answer("a", msg("operations with the label password"), unclear[0])]
    return [passed("a", msg("with the label password all {n_protected} operations answered NotAuthorized", n_protected=len(PROTECTED)))]


@register("ONVIF-05", budget=6, order=0, requires=("interface:onvif",))
def password_policy_via_set_user(ctx: ProbeContext) -> list[UnitResult]:
    if not _onvif_present(ctx):
        return _not_onvif(ctx)
    label = ctx.options.label_password
    if label is None:
        return [inconclusive("a", msg("needs the label password of a unit that has not been set up"))]
    tt = ElementMaker(namespace=NS["tt"], nsmap=NS)
    tds = ElementMaker(namespace=NS["tds"], nsmap=NS)
    results = []
    for letter, weak in zip("ab", WEAK_PASSWORDS, strict=True):
        user = tds.User(tt.Username("admin"), tt.Password(weak), tt.UserLevel("Administrator"))
        ex = soap(ctx.http, "tds", "SetUser", user, token=username_token("admin", label, now=time.time()))
        codes = fault_codes(ex)
        if answered(ex):
            results.append(failed(letter, msg("SetUser accepted the weak password “{weak}”", weak=weak), ex.evidence()))
        elif codes is not None and ex.status in (400, 403) and "NotAuthorized" not in codes:
            results.append(passed(letter, msg("SetUser refused “{weak}”: {fault_reason}", weak=weak, fault_reason=fault_reason(ex)[:160]), ex.evidence()))
        elif refused(ex):
            results.append(inconclusive(letter, msg("the label password was not accepted for SetUser (unit already set up?)"), ex.evidence()))
        else:
            results.append(_inconclusive_answer(letter, msg("SetUser"), ex))
    return results


def _admin_password(ctx: ProbeContext) -> tuple[str, str]:
    account = admin(ctx)  # raises ProbeError (INCONCLUSIVE) without credentials
    return account.username, account.password


@register("ONVIF-03", budget=8, order=72, requires=("interface:onvif",))
def replayed_token_refused(ctx: ProbeContext) -> list[UnitResult]:
    if not _onvif_present(ctx):
        return _not_onvif(ctx)
    user, password = _admin_password(ctx)
    token = username_token(user, password, now=time.time())
    first = soap(ctx.http, "tds", "GetDeviceInformation", token=token)
    if not answered(first):
        return [inconclusive("a", msg("a fresh UsernameToken of the admin was not accepted"), first.evidence())]
    again = soap(ctx.http, "tds", "GetDeviceInformation", token=token)
    if answered(again):
        return [failed("a", msg("the same UsernameToken (same nonce) was accepted twice"), first.evidence(), again.evidence())]
    if refused(again):
        return [passed("a", msg("the replayed UsernameToken was refused"), again.evidence())]
    return [_inconclusive_answer("a", msg("the replayed token"), again)]


@register("ONVIF-04", budget=8, order=73, requires=("interface:onvif",))
def stale_token_refused(ctx: ProbeContext) -> list[UnitResult]:
    if not _onvif_present(ctx):
        return _not_onvif(ctx)
    user, password = _admin_password(ctx)
    fresh = soap(ctx.http, "tds", "GetDeviceInformation", token=username_token(user, password, now=time.time()))
    if not answered(fresh):
        return [inconclusive("a", msg("a fresh UsernameToken of the admin was not accepted"), fresh.evidence())]
    stale = soap(
        ctx.http, "tds", "GetDeviceInformation", token=username_token(user, password, now=time.time() - STALE_SECONDS)
    )
    if answered(stale):
        return [failed("a", msg("a UsernameToken created {stale_seconds} s ago was accepted", stale_seconds=STALE_SECONDS), stale.evidence())]
    if refused(stale):
        return [passed("a", msg("a UsernameToken created {stale_seconds} s ago was refused", stale_seconds=STALE_SECONDS), stale.evidence())]
    return [_inconclusive_answer("a", msg("the stale token"), stale)]


def _digest_challenges(ex: Exchange) -> list[str]:
    values = [v for k, v in ex.headers.items() if k.lower() == "www-authenticate"]
    return [v for v in values if v.lower().startswith("digest")]


@register("ONVIF-06", budget=8, order=4, requires=("interface:onvif",))
def digest_only_over_tls(ctx: ProbeContext) -> list[UnitResult]:
    if not _onvif_present(ctx):
        return _not_onvif(ctx)
    exposed = []
    for port in ctx.options.plaintext_ports:
        plain = ProbeHTTP(Target("http", ctx.host, port), ssl_context=None, timeout=3.0)
        plain.start_case(1)
        ex = soap(plain, "tds", "GetDeviceInformation")
        if ex.status in (200, 400, 401, 500) and (_root(ex) is not None or _digest_challenges(ex)):
            exposed.append(ex.evidence(f"ONVIF over plain http on port {port}"))
    a = (
        failed("a", msg("the ONVIF device service answers over plain HTTP (Digest and SOAP without TLS)"), *exposed)
        if exposed
        else passed("a", msg("no ONVIF service over plain HTTP on ports {list}", list=list(ctx.options.plaintext_ports)))
    )
    # a Digest attempt with no usable fields: any device must answer it with a challenge
    ex = ctx.http.request(
        "POST", DEVICE_SERVICE, raw_body=envelope("tds", "GetDeviceInformation"),
        headers={**SOAP_HEADERS, "Authorization": 'Digest username="probe"'},
    )
    challenges = _digest_challenges(ex)
    if ex.status != 401:
        return [a, _inconclusive_answer("b", msg("an unauthenticated request got no HTTP challenge"), ex)]
    algorithms = {part.split("=", 1)[1].strip().strip('"').upper()
                  for c in challenges for part in c.split(",") if part.strip().lower().startswith(("algorithm=", "digest algorithm="))}
    if not challenges:
        b = passed("b", msg("no HTTP Digest offered (WS-Security only)"), ex.evidence())
    elif "SHA-256" in algorithms or "SHA-256-SESS" in algorithms:
        b = passed("b", msg("HTTP Digest offers {sorted}", sorted=', '.join(sorted(algorithms))), ex.evidence())
    else:
        b = failed("b", msg("HTTP Digest offers only {value} (RFC 7616 wants SHA-256)", value=', '.join(sorted(algorithms)) or 'MD5'), ex.evidence())
    return [a, b]

