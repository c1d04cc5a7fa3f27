"""Credential cases (KS X 3020 C4; EN 303 645 5.1, 5.6-2)."""

from __future__ import annotations

import json
import statistics
import string
from collections.abc import Sequence
from functools import partial
from importlib import resources
from typing import Any

from zxcvbn import zxcvbn

from ..adapters import Session
from ..case import ProbeContext, failed, inconclusive, not_tested, passed, register
from ..errors import ProbeError
from ..http import Exchange
from ..i18n import joined, msg
from ..model import Evidence, UnitResult
from ..verdicts import Reading, judge
from ._answers import stated_reason
from ._session import (
    Account,
    admin,
    change_password,
    json_field,
    login,
    opened,
    strong_password,
    test_user,
    token_of,
)

REFCAM_API = ("interface:refcam-api",)
USER_CASES = ("interface:refcam-api", "user-management")
ADAPTER_USER_CASES = ("user-management",)  # through the target adapter (refcam API or ONVIF)

# Routes every session may use, also before the password change.
SETUP_PATHS = {"/api/v1/session", "/api/v1/session/password"}
FALLBACK_ROUTES = ("/api/v1/status", "/api/v1/users", "/api/v1/audit", "/api/v1/update/status")
ENUMERATION_SAMPLES = 3
ENUMERATION_TIME_BOUND = 0.5  # the medians may differ by at most half the larger one...
ENUMERATION_TIME_FLOOR = 0.05  # ...or 50 ms, whichever is larger
ENUMERATION_CONFIRM_ROUNDS = 2  # fresh rounds that must show the same timing difference before it is a FAIL
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
    anonymous = ctx.adapter.anonymous(ctx.http)
    if 200 <= anonymous.status < 300:
        return [failed("a", msg("the management interface answers with content and no credential at all"),
                       anonymous.evidence("no credential sent"))]
    if ctx.options.label_password is None:
        return [not_tested(u, msg("needs the label password of a unit that has not been set up"), "--label-password")
                for u in ("a", "b")]
    session, ex = ctx.preflight_session, ctx.preflight_login
    if session is None or ex is None or ctx.cache.get("label_session_used"):
        return [inconclusive("a", msg("the label password's session was already used for the first change"))]
    if not session.must_change:
        return [failed("a", msg("the label password opened a full session without a forced change"), ex.evidence())]
    a = passed("a", msg("the label password session must change the password first"), ex.evidence("the preflight login"))
    if ctx.adapter.interface == "onvif":  # its operations before the change are ONVIF-02's to walk
        return [a, not_tested("b", msg("the ONVIF operations before the change are judged by ONVIF-02"), "ONVIF-02")]
    leaks: list[Evidence] = []
    undecided: list[Evidence] = []
    checked = 0
    for method, path in _routes(ctx):
        if path in SETUP_PATHS:
            continue
        body: Any = {} if method != "GET" else None
        r = ctx.http.request(method, path, json_body=body, token=session.token)
        checked += 1
        if r.status == 403 and json_field(r, "error") == "password_change_required":
            continue
        if r.status == 0 or r.status == 429 or r.status >= 500:
            undecided.append(r.evidence("no definite answer"))
        else:
            leaks.append(r.evidence("expected 403 password_change_required"))
    if leaks:
        return [a, failed("b", msg("{n_leaks} of {checked} routes did not refuse before the change", n_leaks=len(leaks), checked=checked), *leaks[:10])]
    if undecided:
        return [a, inconclusive("b", msg("{n_undecided} of {checked} routes gave no definite answer", n_undecided=len(undecided), checked=checked), *undecided[:10])]
    return [a, passed("b", msg("all {checked} routes answered 403 password_change_required", checked=checked))]


def _classes(password: str) -> int:
    groups = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
    n = sum(any(c in g for c in password) for g in groups)
    return n + (any(not c.isalnum() for c in password))


def _device_names(ctx: ProbeContext) -> list[str]:
    """Serial, model and vendor as the unit tells them (its info document, its certificate)."""
    names = [ctx.identity[k] for k in ("serial", "model", "vendor", "certificate_serial") if ctx.identity.get(k)]
    if not names:
        ex = ctx.http.request("GET", "/api/v1/info")
        doc = ex.json() if ex.status == 200 else None
        if isinstance(doc, dict):
            names = [str(doc.get(k)) for k in ("serial", "model", "vendor") if doc.get(k)]
    unique = list(dict.fromkeys(names))
    return [n for n in unique if len(n) >= 3]


@register("CRED-02", budget=4, order=2)
def initial_password_quality(ctx: ProbeContext) -> list[UnitResult]:
    password = ctx.options.label_password
    if password is None:
        return [not_tested(u, msg("needs the label password"), "--label-password") for u in ("a", "b", "c")]
    if ctx.preflight_session is None:  # never grade a string that was not shown to log in
        return [inconclusive("a", msg("the label password was not verified to log in"))]
    length, classes = len(password), _classes(password)
    a = (
        passed("a", msg("{length} characters, {classes} character classes", length=length, classes=classes))
        if length >= 12 and classes >= 2
        else failed("a", msg("only {length} characters and {classes} character classes", length=length, classes=classes))
    )
    names = _device_names(ctx)
    contained = [n for n in names if n.lower() in password.lower()]
    b = failed("b", msg("contains the device names {contained}", contained=', '.join(contained))) if contained else passed(
        "b", msg("contains none of {value}", value=', '.join(names) or msg("the device names"))
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
        return failed("c", msg("it is one of Mirai's built-in passwords"))
    estimate = zxcvbn(password[:100])
    guesses = float(estimate["guesses"])
    if guesses < GUESSES_FLOOR:
        warning = estimate["feedback"].get("warning") or "a common pattern"
        return failed("c", msg("zxcvbn estimates {guesses:.0e} guesses ({warning})", guesses=guesses, warning=warning))
    return passed("c", msg("not a Mirai password; zxcvbn estimates {guesses:.0e} guesses", guesses=guesses))


def _known_passwords(ctx: ProbeContext) -> dict[str, str]:
    """Accounts whose current password the probe holds, verified by a login it made."""
    known: dict[str, str] = {}
    if ctx.preflight_session is not None and not ctx.cache.get("label_session_used"):
        known[ctx.preflight_session.username] = ctx.preflight_session.password
    for value in ctx.cache.values():
        if isinstance(value, Account):
            known[value.username] = value.password
    return known


def _listed_accounts(ctx: ProbeContext) -> tuple[list[str] | None, Evidence | None]:
    try:
        boss = admin(ctx)
    except ProbeError:
        return None, None
    try:
        names = ctx.adapter.accounts(
            ctx.http, Session(boss.username, boss.password, {"Authorization": f"Bearer {boss.token}"}, boss.token, False)
        )
    except ProbeError:
        return None, None
    return names, Evidence("note", "the unit's account list (as admin)", {"accounts": names})


@register("CRED-03", budget=90, order=90, seconds=2.0)
def mirai_spray(ctx: ProbeContext) -> list[UnitResult]:
    """Every pair must be refused by a definite answer or by verified evidence; one session is a FAIL.

    A throttled, failed or dropped attempt refuses nothing (conformance.verdicts). Such a
    pair is decided only from what the probe verified itself: the accounts the unit lists
    to its admin, and the passwords the probe logged in with.
    """
    refused = 0
    undecided: list[tuple[str, str, str]] = []
    statuses: dict[str, int] = {}
    # listed before the spray: where every request authenticates (ONVIF), the spray's
    # failures put the admin's own listing behind the source's back-off
    accounts, listing = _listed_accounts(ctx)
    for user, password in MIRAI_PAIRS:
        j = ctx.judged(partial(ctx.adapter.login, ctx.http, user, password))
        statuses[str(j.exchange.status)] = statuses.get(str(j.exchange.status), 0) + 1
        if j.reading is Reading.ACCEPTED:
            summary = Evidence("note", "pairs tried before the first session", {"statuses": statuses})
            return [failed("a", msg("the Mirai pair {user}/{password}... opened a session", user=user, password=password[:1]), summary,
                           j.exchange.evidence(f"{user}/<redacted> accepted"))]
        if j.reading is Reading.REFUSED:
            refused += 1
        else:
            undecided.append((user, password, j.reason))
    summary = Evidence("note", f"{len(MIRAI_PAIRS)} pairs sprayed", {"statuses": statuses, "refused": refused})
    if not undecided:
        return [passed("a", msg("all {n_mirai_pairs} pairs were refused (401/403)", n_mirai_pairs=len(MIRAI_PAIRS)), summary)]
    known = _known_passwords(ctx)
    still: list[tuple[str, str, str]] = []
    by_evidence = 0
    for user, password, reason in undecided:
        if user in known and known[user] == password:
            return [failed("a", msg("the unit's {user} account has the Mirai password (verified by the probe's own login); the spray attempt itself was not answered: {reason}", user=user, reason=reason), summary)]
        if user in known or (accounts is not None and user not in accounts):
            by_evidence += 1
        else:
            still.append((user, password, reason))
    extra = (summary, listing) if listing else (summary,)
    if still:
        reasons = sorted({r for _, _, r in still})
        return [inconclusive("a", msg("{n_still} pairs undecided (e.g. {still}): {reasons}", n_still=len(still), still=still[0][0], reasons='; '.join(reasons[:3])),
                             *extra)]
    return [passed(
        "a",
        msg("{refused} pairs refused by the unit; {by_evidence} throttled pairs decided from verified evidence (no such account on the unit's list, or the account's password is the one the probe logged in with)", refused=refused, by_evidence=by_evidence),
        *extra,
    )]


@register("CRED-04", budget=20, order=30, requires=USER_CASES)
def policy_enforced(ctx: ProbeContext) -> list[UnitResult]:
    user = test_user(ctx, "viewer")
    current = user.password
    serial = next(iter(_device_names(ctx)), "RC00000000")
    results: list[UnitResult] = []
    for letter, candidates in (("a", ["Ab1!x"]), ("b", ["admin", "123456", serial])):
        bad: list[Evidence] = []
        undecided: list[Evidence] = []
        reasons: list[str] = []
        for weak in candidates:
            ex = change_password(ctx.http, user.token, current, weak)
            reason = stated_reason(ex)
            if ex.status == 0 or ex.status == 429 or ex.status >= 500:  # refuses nothing
                undecided.append(ex.evidence("no definite answer"))
            elif 400 <= ex.status < 500 and reason:
                reasons.append(msg("{weak}...: {reason}", weak=weak[:2], reason=reason))
            else:
                bad.append(ex.evidence("weak password not refused with a reason"))
                if ex.status in (200, 204):
                    current = weak
        if bad:
            results.append(failed(letter, msg("{n_bad} weak passwords accepted or refused without a reason", n_bad=len(bad)), *bad))
        elif undecided:
            results.append(inconclusive(letter, msg("{n_undecided} attempts got no definite answer", n_undecided=len(undecided)), *undecided))
        else:
            results.append(passed(letter, joined(reasons, " | ")))
    if current != user.password:  # a weak one was accepted: put a strong one back
        change_password(ctx.http, user.token, current, user.password)
    return results


@register("CRED-05", budget=12, order=40, requires=USER_CASES)
def change_effective(ctx: ProbeContext) -> list[UnitResult]:
    user = test_user(ctx, "operator")
    new = strong_password()
    ex = change_password(ctx.http, user.token, user.password, new)
    if ex.status not in (200, 204):
        return [failed("a", msg("the password change failed: HTTP {status}", status=ex.status), ex.evidence())]
    a = passed("a", msg("password changed"), ex.evidence())
    # New password first: a failed login with the old one may (rightly) start a back-off.
    with_new = login(ctx.http, user.username, new)
    c = passed("c", msg("the new password works"), with_new.evidence()) if token_of(with_new) else failed(
        "c", msg("the new password does not log in: HTTP {status}", status=with_new.status), with_new.evidence()
    )
    old = ctx.judged(lambda: login(ctx.http, user.username, user.password))
    if old.reading is Reading.ACCEPTED:
        b = failed("b", msg("the old password still logs in"), old.exchange.evidence())
    elif old.reading is Reading.REFUSED:
        b = passed("b", msg("the old password is refused (HTTP {status})", status=old.exchange.status), old.exchange.evidence())
    else:
        b = inconclusive("b", msg("the old password's login: {reason}", reason=old.reason), old.exchange.evidence())
    return [a, b, c]


@register("CRED-06", budget=BRUTE_FORCE_ATTEMPTS + 16, order=85, requires=ADAPTER_USER_CASES)
def brute_force(ctx: ProbeContext) -> list[UnitResult]:
    user = test_user(ctx, "viewer", purpose="brute-force")
    attempts = []
    throttled_at = None
    first: float | None = None
    for i in range(BRUTE_FORCE_ATTEMPTS):
        ex = ctx.adapter.login(ctx.http, user.username, f"wrong-{i}-" + strong_password())
        attempts.append({"attempt": i + 1, "status": ex.status, "elapsed_ms": round(ex.elapsed * 1000)})
        if ex.status == 0 or ex.status >= 500:  # a dropped or failed answer is not throttling
            ev = Evidence("note", "wrong-password attempts", {"attempts": attempts})
            return [inconclusive("a", msg("attempt {i}: {reason}", i=i + 1, reason=judge(ex, accepted=lambda e: False, refusal=ctx.adapter.is_refusal).reason),
                                 ev, ex.evidence())]
        first = ex.elapsed if first is None else first
        # Throttled: an explicit 429, or (a tarpit) answers slowing down well beyond the first
        # one. Never an absolute time: a loaded machine must not look like a throttling device.
        if ex.status == 429 or ex.elapsed - first >= TARPIT_DELAY:
            throttled_at = i + 1
            break
    ev = Evidence("note", "wrong-password attempts", {"attempts": attempts})
    a = (
        passed("a", msg("throttled after {throttled_at} wrong passwords", throttled_at=throttled_at), ev)
        if throttled_at
        else failed("a", msg("{brute_force_attempts} wrong passwords in a row were all answered normally", brute_force_attempts=BRUTE_FORCE_ATTEMPTS), ev)
    )
    right = ctx.adapter.login(ctx.http, user.username, user.password)
    if opened(ctx, right) and throttled_at:
        # A first back-off may be a second long and end between two answers on a loaded
        # machine. Provoke it again, back to back, before calling the acceptance a bypass.
        for i in range(2):
            again = ctx.adapter.login(ctx.http, user.username, f"again-{i}-" + strong_password())
            if again.status == 429:
                break
        right = ctx.adapter.login(ctx.http, user.username, user.password)
    if opened(ctx, right):
        b = failed("b", msg("the right password opened a session straight after the brute-force run"), right.evidence())
    elif right.status == 429 or ctx.adapter.is_refusal(right):
        b = passed("b", msg("the right password is refused while throttled (HTTP {status})", status=right.status), right.evidence())
    else:
        b = inconclusive("b", msg("the right password got no definite answer (HTTP {status})", status=right.status), right.evidence())
    return [a, b]


def _signature(ex: Exchange) -> tuple[int, Any]:
    return ex.status, ex.json() if ex.json() is not None else ex.text


def _signature_text(ex: Exchange) -> str:
    """An answer's status and body as text (JSON, never a Python repr)."""
    status, body = _signature(ex)
    return f"HTTP {status} {json.dumps(body, sort_keys=True) if not isinstance(body, str) else body}"


def _enumeration_round(ctx: ProbeContext, accounts: Sequence[Account]) -> tuple[list[Exchange], list[Exchange]]:
    """ENUMERATION_SAMPLES wrong passwords for existing accounts, each beside one for an unknown name."""
    known_ex: list[Exchange] = []
    unknown_ex: list[Exchange] = []
    for i in range(ENUMERATION_SAMPLES):
        account = accounts[min(i, len(accounts) - 1)]
        known_ex.append(ctx.adapter.login(ctx.http, account.username, "wrong-" + strong_password()))
        unknown_ex.append(ctx.adapter.login(ctx.http, f"nobody-{i}-{strong_password()[-8:]}", "wrong-" + strong_password()))
    return known_ex, unknown_ex


def _medians_apart(known_ex: Sequence[Exchange], unknown_ex: Sequence[Exchange]) -> int:
    """-1 if unknown names are answered faster beyond the bound, 1 if slower, 0 if alike."""
    t_known = statistics.median(e.elapsed for e in known_ex)
    t_unknown = statistics.median(e.elapsed for e in unknown_ex)
    if abs(t_known - t_unknown) <= max(ENUMERATION_TIME_FLOOR, ENUMERATION_TIME_BOUND * max(t_known, t_unknown)):
        return 0
    return -1 if t_unknown < t_known else 1


def _broken(exchanges: Sequence[Exchange]) -> list[Exchange]:
    return [e for e in exchanges if e.status == 0 or e.status >= 500]


@register("CRED-07", budget=4 * ENUMERATION_SAMPLES + 12 + ENUMERATION_CONFIRM_ROUNDS * (2 * ENUMERATION_SAMPLES + 12), order=80, requires=ADAPTER_USER_CASES)
def no_enumeration(ctx: ProbeContext) -> list[UnitResult]:
    # one wrong attempt per known account: later attempts would meet (fair) back-off
    known_ex, unknown_ex = _enumeration_round(ctx, [test_user(ctx, "viewer"), test_user(ctx, "operator"), test_user(ctx, "admin")])
    evidence = [known_ex[0].evidence("known user, wrong password"), unknown_ex[0].evidence("unknown user")]
    broken = _broken(known_ex + unknown_ex)
    if broken:
        return [inconclusive("a", msg("{n_broken} attempts got no answer or a server error", n_broken=len(broken)), *evidence,
                             broken[0].evidence()), inconclusive("b", msg("the samples are incomplete"))]
    known_sigs = {_signature_text(e) for e in known_ex}
    unknown_sigs = {_signature_text(e) for e in unknown_ex}
    a = (
        passed("a", msg("identical answers: {sorted}", sorted=sorted(known_sigs)[0][:120]), *evidence)
        if known_sigs == unknown_sigs and len(known_sigs) == 1
        else failed("a", msg("answers differ: known {sorted} vs unknown {sorted2}", sorted=' | '.join(sorted(known_sigs)), sorted2=' | '.join(sorted(unknown_sigs))), *evidence)
    )
    t_known = statistics.median(e.elapsed for e in known_ex)
    t_unknown = statistics.median(e.elapsed for e in unknown_ex)
    rounds = [{"known_ms": round(t_known * 1000, 1), "unknown_ms": round(t_unknown * 1000, 1)}]
    first = _medians_apart(known_ex, unknown_ex)
    if first == 0:
        timing = Evidence("note", "median login times", {"rounds": rounds})
        return [a, passed("b", msg("medians {t_known:.0f} ms vs {t_unknown:.0f} ms", t_known=t_known * 1000, t_unknown=t_unknown * 1000), timing)]
    # One slow answer on a loaded machine is noise; a device that skips the password hash for
    # unknown names is apart the same way every round. Confirm on fresh accounts (no back-off).
    agree = True
    for r in range(ENUMERATION_CONFIRM_ROUNDS):
        fresh = [test_user(ctx, role, purpose=f"enumeration-{r}") for role in ("viewer", "operator", "admin")]
        k_ex, u_ex = _enumeration_round(ctx, fresh)
        if _broken(k_ex + u_ex):
            return [a, inconclusive("b", msg("the samples are incomplete"))]
        rounds.append({"known_ms": round(statistics.median(e.elapsed for e in k_ex) * 1000, 1),
                       "unknown_ms": round(statistics.median(e.elapsed for e in u_ex) * 1000, 1)})
        if _medians_apart(k_ex, u_ex) != first:
            agree = False
            break
    timing = Evidence("note", "median login times", {"rounds": rounds})
    if agree:
        b = failed("b", msg("timing reveals users: {t_known:.0f} ms vs {t_unknown:.0f} ms", t_known=t_known * 1000, t_unknown=t_unknown * 1000), timing)
    else:
        b = passed("b", msg("medians differed once ({t_known:.0f} ms vs {t_unknown:.0f} ms), not when repeated",
                            t_known=t_known * 1000, t_unknown=t_unknown * 1000), timing)
    return [a, b]
