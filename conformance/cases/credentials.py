"""Credential cases (KS X 3020 C4; EN 303 645 5.1, 5.6-2)."""

from __future__ import annotations

import statistics
import string
from importlib import resources
from typing import Any

from zxcvbn import zxcvbn

from ..case import ProbeContext, failed, inconclusive, passed, register
from ..http import Exchange
from ..model import Evidence, UnitResult
from ._session import (
    change_password,
    json_field,
    login,
    must_change,
    strong_password,
    test_user,
    token_of,
)

# Routes every session may use, also before the password change.
SETUP_PATHS = {"/api/v1/session", "/api/v1/session/password"}
FALLBACK_ROUTES = ("/api/v1/status", "/api/v1/users", "/api/v1/audit", "/api/v1/update/status")
ENUMERATION_SAMPLES = 3
ENUMERATION_TIME_BOUND = 0.5  # the medians may differ by at most half the larger one...
ENUMERATION_TIME_FLOOR = 0.05  # ...or 50 ms, whichever is larger
BRUTE_FORCE_ATTEMPTS = 8
TARPIT_DELAY = 3.0  # seconds of added delay, relative to the first attempt, that count as throttling


def _routes(ctx: ProbeContext) -> list[tuple[str, str]]:
    """(method, path) of every protected, non-streaming route the device documents."""
    if "routes" in ctx.cache:
        return list(ctx.cache["routes"])
    ex = ctx.http.request("GET", "/api/v1/openapi.json")
    doc = ex.json()
    routes: list[tuple[str, str]] = []
    if isinstance(doc, dict) and isinstance(doc.get("paths"), dict):
        for path, ops in doc["paths"].items():
            if not isinstance(ops, dict):
                continue
            for method, op in ops.items():
                if method.upper() not in ("GET", "POST", "PUT", "PATCH", "DELETE") or not isinstance(op, dict):
                    continue
                if op.get("security") == [] or path.endswith(".mjpeg"):
                    continue  # public, or an endless stream
                routes.append((method.upper(), path.replace("{", "").replace("}", "")))
    else:
        routes = [("GET", p) for p in FALLBACK_ROUTES]
    ctx.cache["routes"] = routes
    return routes


@register("CRED-01", budget=80, order=1)
def forced_change(ctx: ProbeContext) -> list[UnitResult]:
    if ctx.options.label_password is None:
        return [inconclusive("a", "needs the label password of a unit that has not been set up")]
    ex = login(ctx.http, "admin", ctx.options.label_password)
    token = token_of(ex)
    if token is None:
        return [inconclusive("a", f"the label password does not log in (HTTP {ex.status}); unit already set up?", ex.evidence())]
    if not must_change(ex):
        return [failed("a", "the label password opened a full session without a forced change", ex.evidence())]
    a = passed("a", "the label password session must change the password first", ex.evidence())
    leaks: list[Evidence] = []
    checked = 0
    for method, path in _routes(ctx):
        if path in SETUP_PATHS:
            continue
        body: Any = {} if method != "GET" else None
        r = ctx.http.request(method, path, json_body=body, token=token)
        checked += 1
        if not (r.status == 403 and json_field(r, "error") == "password_change_required"):
            leaks.append(r.evidence("expected 403 password_change_required"))
    if leaks:
        return [a, failed("b", f"{len(leaks)} of {checked} routes did not refuse before the change", *leaks[:10])]
    return [a, passed("b", f"all {checked} routes answered 403 password_change_required")]


def _classes(password: str) -> int:
    groups = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
    n = sum(any(c in g for c in password) for g in groups)
    return n + (any(not c.isalnum() for c in password))


def _device_names(ctx: ProbeContext) -> list[str]:
    ex = ctx.http.request("GET", "/api/v1/info")
    doc = ex.json() if ex.status == 200 else None
    names = []
    if isinstance(doc, dict):
        names = [str(doc.get(k)) for k in ("serial", "model", "vendor") if doc.get(k)]
    return [n for n in names if len(n) >= 3]


@register("CRED-02", budget=4, order=2)
def initial_password_quality(ctx: ProbeContext) -> list[UnitResult]:
    password = ctx.options.label_password
    if password is None:
        return [inconclusive("a", "needs the label password")]
    length, classes = len(password), _classes(password)
    a = (
        passed("a", f"{length} characters, {classes} character classes")
        if length >= 12 and classes >= 2
        else failed("a", f"only {length} characters and {classes} character classes")
    )
    names = _device_names(ctx)
    contained = [n for n in names if n.lower() in password.lower()]
    b = failed("b", f"contains device names {contained}") if contained else passed(
        "b", f"contains none of {names or 'the device names'}"
    )
    c = _guessable(password)
    return [a, b, c]


def _mirai_pairs() -> tuple[tuple[str, str], ...]:
    """Mirai's credential pairs, from the probe's own data file."""
    text = (resources.files("conformance") / "mirai-credentials.txt").read_text(encoding="utf-8")
    return tuple(
        (user, password)
        for line in text.splitlines()
        if line and not line.startswith("#")
        for user, _, password in [line.partition("\t")]
    )


MIRAI_PAIRS = _mirai_pairs()
GUESSES_FLOOR = 1e10  # zxcvbn's estimate: below it, an offline attack finds the password


def _guessable(password: str) -> UnitResult:
    """Judged by Mirai's list and an independent estimator (zxcvbn), never the camera's lists."""
    if any(password.lower() == p.lower() for _, p in MIRAI_PAIRS):
        return failed("c", "it is one of Mirai's built-in passwords")
    estimate = zxcvbn(password[:100])
    guesses = float(estimate["guesses"])
    if guesses < GUESSES_FLOOR:
        warning = estimate["feedback"].get("warning") or "a common pattern"
        return failed("c", f"zxcvbn estimates {guesses:.0e} guesses ({warning})")
    return passed("c", f"not a Mirai password; zxcvbn estimates {guesses:.0e} guesses")


@register("CRED-03", budget=70, order=90)
def mirai_spray(ctx: ProbeContext) -> list[UnitResult]:
    accepted: list[Evidence] = []
    statuses: dict[int, int] = {}
    for user, password in MIRAI_PAIRS:
        ex = login(ctx.http, user, password)
        statuses[ex.status] = statuses.get(ex.status, 0) + 1
        if token_of(ex) is not None:
            accepted.append(ex.evidence(f"{user}/<redacted> accepted"))
    summary = Evidence("note", f"{len(MIRAI_PAIRS)} pairs sprayed", {"statuses": statuses})
    if accepted:
        return [failed("a", f"{len(accepted)} Mirai pairs opened a session", summary, *accepted[:5])]
    return [passed("a", f"none of the {len(MIRAI_PAIRS)} pairs opened a session", summary)]


def _reason(ex: Exchange) -> str | None:
    doc = ex.json()
    if not isinstance(doc, dict):
        return None
    reasons = doc.get("reasons")
    if isinstance(reasons, list) and reasons:
        return "; ".join(str(r) for r in reasons)
    message = doc.get("message")
    return str(message) if message else None


@register("CRED-04", budget=20, order=30)
def policy_enforced(ctx: ProbeContext) -> list[UnitResult]:
    user = test_user(ctx, "viewer")
    current = user.password
    serial = next(iter(_device_names(ctx)), "RC00000000")
    results: list[UnitResult] = []
    for letter, candidates in (("a", ["Ab1!x"]), ("b", ["admin", "123456", serial])):
        bad: list[Evidence] = []
        reasons: list[str] = []
        for weak in candidates:
            ex = change_password(ctx.http, user.token, current, weak)
            reason = _reason(ex)
            if 400 <= ex.status < 500 and reason:
                reasons.append(f"{weak[:2]}...: {reason}")
            else:
                bad.append(ex.evidence("weak password not refused with a reason"))
                if ex.status in (200, 204):
                    current = weak
        results.append(
            failed(letter, f"{len(bad)} weak passwords accepted or refused without a reason", *bad)
            if bad
            else passed(letter, " | ".join(reasons))
        )
    if current != user.password:  # a weak one was accepted: put a strong one back
        change_password(ctx.http, user.token, current, user.password)
    return results


@register("CRED-05", budget=12, order=40)
def change_effective(ctx: ProbeContext) -> list[UnitResult]:
    user = test_user(ctx, "operator")
    new = strong_password()
    ex = change_password(ctx.http, user.token, user.password, new)
    if ex.status not in (200, 204):
        return [failed("a", f"the password change failed: HTTP {ex.status}", ex.evidence())]
    a = passed("a", "password changed", ex.evidence())
    # New password first: a failed login with the old one may (rightly) start a back-off.
    with_new = login(ctx.http, user.username, new)
    c = passed("c", "the new password works", with_new.evidence()) if token_of(with_new) else failed(
        "c", f"the new password does not log in: HTTP {with_new.status}", with_new.evidence()
    )
    with_old = login(ctx.http, user.username, user.password)
    b = failed("b", "the old password still logs in", with_old.evidence()) if token_of(with_old) else passed(
        "b", f"the old password is refused (HTTP {with_old.status})", with_old.evidence()
    )
    return [a, b, c]


@register("CRED-06", budget=BRUTE_FORCE_ATTEMPTS + 6, order=85)
def brute_force(ctx: ProbeContext) -> list[UnitResult]:
    user = test_user(ctx, "viewer")
    attempts = []
    throttled_at = None
    first: float | None = None
    for i in range(BRUTE_FORCE_ATTEMPTS):
        ex = login(ctx.http, user.username, f"wrong-{i}-" + strong_password())
        attempts.append({"attempt": i + 1, "status": ex.status, "elapsed_ms": round(ex.elapsed * 1000)})
        first = ex.elapsed if first is None else first
        # Throttled: an explicit 429, or (a tarpit) answers slowing down well beyond the first
        # one. Never an absolute time: a loaded machine must not look like a throttling device.
        if ex.status == 429 or ex.elapsed - first >= TARPIT_DELAY:
            throttled_at = i + 1
            break
    ev = Evidence("note", "wrong-password attempts", {"attempts": attempts})
    a = (
        passed("a", f"throttled after {throttled_at} wrong passwords", ev)
        if throttled_at
        else failed("a", f"{BRUTE_FORCE_ATTEMPTS} wrong passwords in a row were all answered normally", ev)
    )
    right = login(ctx.http, user.username, user.password)
    b = (
        failed("b", "the right password opened a session straight after the brute-force run", right.evidence())
        if token_of(right)
        else passed("b", f"the right password is refused while throttled (HTTP {right.status})", right.evidence())
    )
    return [a, b]


def _signature(ex: Exchange) -> tuple[int, Any]:
    return ex.status, ex.json() if ex.json() is not None else ex.text


@register("CRED-07", budget=4 * ENUMERATION_SAMPLES + 12, order=80)
def no_enumeration(ctx: ProbeContext) -> list[UnitResult]:
    known = [test_user(ctx, "viewer"), test_user(ctx, "operator")]
    known_ex: list[Exchange] = []
    unknown_ex: list[Exchange] = []
    for i in range(ENUMERATION_SAMPLES):
        # one wrong attempt per known account: later attempts would meet (fair) back-off
        account = known[i % len(known)] if i < len(known) else test_user(ctx, "admin")
        known_ex.append(login(ctx.http, account.username, "wrong-" + strong_password()))
        unknown_ex.append(login(ctx.http, f"nobody-{i}-{strong_password()[-8:]}", "wrong-" + strong_password()))
    known_sigs = {repr(_signature(e)) for e in known_ex}
    unknown_sigs = {repr(_signature(e)) for e in unknown_ex}
    evidence = [known_ex[0].evidence("known user, wrong password"), unknown_ex[0].evidence("unknown user")]
    a = (
        passed("a", f"identical answers: {sorted(known_sigs)[0][:120]}", *evidence)
        if known_sigs == unknown_sigs and len(known_sigs) == 1
        else failed("a", f"answers differ: known {sorted(known_sigs)} vs unknown {sorted(unknown_sigs)}", *evidence)
    )
    t_known = statistics.median(e.elapsed for e in known_ex)
    t_unknown = statistics.median(e.elapsed for e in unknown_ex)
    bound = max(ENUMERATION_TIME_FLOOR, ENUMERATION_TIME_BOUND * max(t_known, t_unknown))
    timing = Evidence("note", "median login times", {"known_ms": round(t_known * 1000, 1), "unknown_ms": round(t_unknown * 1000, 1)})
    b = (
        passed("b", f"medians {t_known * 1000:.0f} ms vs {t_unknown * 1000:.0f} ms", timing)
        if abs(t_known - t_unknown) <= bound
        else failed("b", f"timing reveals users: {t_known * 1000:.0f} ms vs {t_unknown * 1000:.0f} ms", timing)
    )
    return [a, b]
