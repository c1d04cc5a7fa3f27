"""Session management cases (OWASP ASVS 4.0.3 V3; KS X 3020 C2, C4).

Judged from everything a login reveals (the ``Set-Cookie`` headers and the
timeouts in its answer) and from what the device then does with the session:
the old token and cookie after a logout, a second session after a password
change, a cookie-only request from another origin. A refusal counts only as a
definite 401/403 (:mod:`._answers`); the pure rules (:func:`parse_set_cookie`,
:func:`cookie_problems`, :func:`timeout_problems`) are unit-tested::

    parse_set_cookie("s=1; Secure; HttpOnly; SameSite=Strict; Path=/").attributes["samesite"]  # "Strict"
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..case import ProbeContext, failed, inconclusive, not_tested, passed, register
from ..http import Exchange
from ..i18n import Items, joined, msg
from ..model import Evidence, UnitResult
from ._accounts import throwaway
from ._answers import accepted, patiently, refused, undecided
from ._session import LOGIN, change_password, login, strong_password, test_user, token_of

WHOAMI = LOGIN  # GET: who am I (any live session)
CROSS_ORIGIN = "https://attacker.invalid"
IDLE_MAX = 30 * 60.0  # seconds: ASVS 4.0.3 V3.3.2 (L2), re-authentication after 30 minutes idle
ABSOLUTE_MAX = 12 * 3600.0  # seconds: ASVS 4.0.3 V3.3.2 (L2), and at most 12 hours in all
OBSERVE_IDLE_MAX = 5.0  # seconds: an idle timeout this short is waited out and observed


@dataclass(frozen=True)
class SetCookie:
    name: str
    value: str
    attributes: Mapping[str, str] = field(default_factory=dict)  # lower-case name -> value ("" for flags)


def parse_set_cookie(header: str) -> SetCookie:
    """One ``Set-Cookie`` header (RFC 6265 5.2): name=value, then ``;``-separated attributes."""
    first, *rest = header.split(";")
    name, _, value = first.partition("=")
    attributes: dict[str, str] = {}
    for part in rest:
        key, _, val = part.strip().partition("=")
        if key:
            attributes[key.strip().lower()] = val.strip()
    return SetCookie(name.strip(), value.strip(), attributes)


def cookie_problems(cookie: SetCookie) -> list[str]:
    """What an ASVS V3.4 session cookie lacks (empty when it has everything)."""
    a = cookie.attributes
    problems: list[str] = []
    if "secure" not in a:
        problems.append(msg("no Secure attribute (V3.4.1)"))
    if "httponly" not in a:
        problems.append(msg("no HttpOnly attribute (V3.4.2)"))
    if a.get("samesite", "").lower() not in ("strict", "lax"):
        problems.append(msg("SameSite is {value}, not Strict or Lax (V3.4.3)", value=a.get('samesite') or msg("absent")))
    return problems


def scope_problems(cookie: SetCookie) -> list[str]:
    """A cookie scoped wider than its origin: a Domain attribute, or no Path (V3.4.5)."""
    problems: list[str] = []
    if "domain" in cookie.attributes:
        problems.append(msg("Domain={attributes} widens it to other hosts", attributes=cookie.attributes['domain']))
    if not cookie.attributes.get("path", "").startswith("/"):
        problems.append(msg("no Path attribute"))
    return problems


def timeout_problems(idle: object, absolute: object, max_age: object) -> list[str]:
    """Declared timeouts against ASVS V3.3.2 (L2): idle <= 30 min, absolute <= 12 h;
    a cookie Max-Age must not outlive the absolute timeout."""
    problems: list[str] = []
    for what, value, bound in ((msg("idle"), idle, IDLE_MAX), (msg("absolute"), absolute, ABSOLUTE_MAX)):
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            problems.append(msg("no {what} timeout declared (found {value})", what=what, value=msg("nothing") if value is None else value))
        elif not 0 < value <= bound:
            problems.append(msg("{what} timeout {value:.0f} s is not within 1..{bound:.0f} s", what=what, value=value, bound=bound))
    outlives = (
        isinstance(max_age, str) and max_age.strip().isdigit() and isinstance(absolute, int | float)
        and int(max_age) > absolute
    )
    if outlives:
        problems.append(msg("the cookie's Max-Age {max_age} s outlives the absolute timeout {absolute:.0f} s", max_age=max_age, absolute=absolute))
    return problems


def _session_login(ctx: ProbeContext) -> Exchange:
    """One login of the viewer test user, shared by the cookie and timeout cases."""
    cached = ctx.cache.get("sessions:login")
    if isinstance(cached, Exchange):
        return cached
    user = test_user(ctx, "viewer")
    ex = patiently(lambda: login(ctx.http, user.username, user.password))
    ctx.cache["sessions:login"] = ex
    return ex


def _cookies(ex: Exchange) -> list[SetCookie]:
    return [parse_set_cookie(h) for h in ex.set_cookies]


def _session_cookie(ex: Exchange) -> SetCookie | None:
    """The cookie that carries the session: its value is the token, else its name says so."""
    cookies, token = _cookies(ex), token_of(ex)
    for cookie in cookies:
        if token and cookie.value == token:
            return cookie
    return next((c for c in cookies if "session" in c.name.lower() and c.value), None)


def _cookie_header(cookie: SetCookie) -> dict[str, str]:
    return {"Cookie": f"{cookie.name}={cookie.value}"}


@register("SESS-01", budget=16, order=31, requires=("interface:refcam-api", "user-management"))
def cookie_attributes(ctx: ProbeContext) -> list[UnitResult]:
    ex = _session_login(ctx)
    if (why := undecided(ex)) is not None or token_of(ex) is None:
        return [inconclusive("a", why or msg("the test user's login failed: HTTP {status}", status=ex.status), ex.evidence())]
    session = _session_cookie(ex)
    if session is None:
        return [not_tested("a", msg("the login sets no session cookie (bearer tokens only)"), "--declaration (declaring no web UI)")]
    headers = Evidence("note", "Set-Cookie headers of the login", {"cookies": [
        {"name": c.name, "attributes": dict(c.attributes)} for c in _cookies(ex)
    ]})  # fmt: skip
    problems = cookie_problems(session)
    a = failed("a", msg("session cookie {name}: {problems}", name=session.name, problems=Items(problems, "; ")), headers) if problems else passed(
        "a", msg("session cookie {name} is Secure, HttpOnly, SameSite={attributes}", name=session.name, attributes=session.attributes['samesite']), headers
    )
    scope = {c.name: scope_problems(c) for c in _cookies(ex) if scope_problems(c)}
    b = failed("b", joined(msg("{name}: {problems}", name=n, problems=Items(p, ", ")) for n, p in scope.items()), headers) if scope else passed(
        "b", msg("every cookie is host-only (no Domain) with a Path"), headers
    )
    others = {c.name: cookie_problems(c) for c in _cookies(ex) if c.name != session.name and cookie_problems(c)}
    c = failed("c", joined(msg("{name}: {problems}", name=n, problems=Items(p, ", ")) for n, p in others.items()), headers) if others else passed(
        "c", msg("the {n__cookies} other cookies are Secure, HttpOnly and SameSite too", n__cookies=len(_cookies(ex)) - 1), headers
    )
    return [a, b, c]


@register("SESS-02", budget=18, order=32, requires=("interface:refcam-api", "user-management"))
def logout_ends_session(ctx: ProbeContext) -> list[UnitResult]:
    user = test_user(ctx, "viewer")
    ex = patiently(lambda: login(ctx.http, user.username, user.password))
    token, cookie = token_of(ex), _session_cookie(ex)
    if token is None:
        return [inconclusive("a", undecided(ex) or msg("the test user's login failed: HTTP {status}", status=ex.status), ex.evidence())]
    alive = ctx.http.request("GET", WHOAMI, token=token)
    if alive.status != 200:
        return [inconclusive("a", msg("the new session does not work: HTTP {status}", status=alive.status), alive.evidence())]
    out = patiently(lambda: ctx.http.request("DELETE", LOGIN, token=token))
    if not accepted(out):
        return [inconclusive("a", undecided(out) or msg("logout answered HTTP {status}", status=out.status), out.evidence())]
    a = passed("a", msg("logout answered HTTP {status}", status=out.status), out.evidence())
    results = [a]
    again = patiently(lambda: ctx.http.request("GET", WHOAMI, token=token))
    results.append(_judge_dead("b", msg("the logged-out bearer token"), again))
    if cookie is None:
        results.append(not_tested("c", msg("the login set no session cookie"), "--declaration (declaring no web UI)"))
    else:
        by_cookie = patiently(lambda: ctx.http.request("GET", WHOAMI, headers=_cookie_header(cookie)))
        results.append(_judge_dead("c", msg("the logged-out session cookie"), by_cookie))
    return results


def _judge_dead(letter: str, what: str, ex: Exchange) -> UnitResult:
    """A session that must be over: 401 passes, 200 fails, anything else decides nothing."""
    if refused(ex):
        return passed(letter, msg("{what} is refused (HTTP {status})", what=what, status=ex.status), ex.evidence())
    if accepted(ex):
        return failed(letter, msg("{what} still works on the server (HTTP {status})", what=what, status=ex.status), ex.evidence())
    return inconclusive(letter, undecided(ex) or msg("{what}: unexpected HTTP {status}", what=what, status=ex.status), ex.evidence())


@register("SESS-03", budget=22, order=33, requires=("interface:refcam-api", "user-management"))
def password_change_ends_sessions(ctx: ProbeContext) -> list[UnitResult]:
    account = throwaway(ctx, "sessions")
    other = account.token  # the session opened when the account was set up
    second = patiently(lambda: login(ctx.http, account.username, account.password))
    token = token_of(second)
    if token is None:
        return [inconclusive("a", undecided(second) or msg("second login failed: HTTP {status}", status=second.status), second.evidence())]
    before = ctx.http.request("GET", WHOAMI, token=other)
    if before.status != 200:
        return [inconclusive("a", msg("the first session does not work before the change: HTTP {status}", status=before.status),
                             before.evidence())]
    new = strong_password()
    ex = patiently(lambda: change_password(ctx.http, token, account.password, new))
    if not accepted(ex):
        return [inconclusive("a", undecided(ex) or msg("the password change answered HTTP {status}", status=ex.status), ex.evidence())]
    account.password, account.token = new, token
    a = passed("a", msg("password changed from a second session"), ex.evidence())
    after = patiently(lambda: ctx.http.request("GET", WHOAMI, token=other))
    return [a, _judge_dead("b", msg("the user's other session, after the password change,"), after)]


@register("SESS-04", budget=20, order=34, requires=("interface:refcam-api", "user-management"))
def csrf_protection(ctx: ProbeContext) -> list[UnitResult]:
    user = test_user(ctx, "viewer")
    ex = patiently(lambda: login(ctx.http, user.username, user.password))
    cookie = _session_cookie(ex)
    if token_of(ex) is None:
        return [inconclusive("a", undecided(ex) or msg("the test user's login failed: HTTP {status}", status=ex.status), ex.evidence())]
    if cookie is None:
        return [not_tested("a", msg("the login sets no session cookie, so a browser sends no ambient credential"), "--declaration (declaring no web UI)")]
    doc = ex.json()
    csrf = doc.get("csrf_token") if isinstance(doc, dict) else None
    forged = {**_cookie_header(cookie), "Origin": CROSS_ORIGIN, "Referer": CROSS_ORIGIN + "/"}
    # (b) a cross-origin password change with only the cookie (an empty body: no effect even if reached)
    # (sent first: it cannot end the session, the logout below may)
    change = patiently(lambda: ctx.http.request("POST", "/api/v1/session/password", json_body={}, headers=forged))
    if (why := undecided(change)) is not None or change.status == 401:
        b = inconclusive("b", why or msg("the cookie session was not accepted at all (401)"), change.evidence())
    elif change.status == 403:
        b = passed("b", msg("a cross-origin password change with only the cookie is refused (403)"), change.evidence())
    else:
        b = failed("b", msg("a cross-origin password change reached the handler (HTTP {status})", status=change.status), change.evidence())
    # (a) a cross-origin logout carrying only the cookie: refused, and the session lives on
    cross = patiently(lambda: ctx.http.request("DELETE", LOGIN, headers=forged))
    alive = ctx.http.request("GET", WHOAMI, headers=_cookie_header(cookie))
    if undecided(cross) or undecided(alive):
        a = inconclusive("a", undecided(cross) or undecided(alive) or "", cross.evidence(), alive.evidence())
    elif cross.status == 403 and alive.status == 200:
        a = passed("a", msg("a cross-origin logout with only the cookie is refused (403); the session lives on"),
                   cross.evidence(), alive.evidence())
    elif accepted(cross) or alive.status == 401:
        a = failed("a", msg("a cross-origin request with only the cookie ended the session (HTTP {status})", status=cross.status),
                   cross.evidence(), alive.evidence())
    else:
        a = failed("a", msg("a cross-origin logout with only the cookie answered HTTP {status}, not 403", status=cross.status),
                   cross.evidence(), alive.evidence())
    # (c) the control: the same logout with the session's CSRF token works, so (a) was the CSRF check
    if not isinstance(csrf, str) or not csrf:
        return [a, b, inconclusive("c", msg("the login answer gives no csrf_token to send"), ex.evidence())]
    if alive.status != 200:
        return [a, b, inconclusive("c", msg("the session was already over; no control request possible"))]
    with_token = patiently(lambda: ctx.http.request(
        "DELETE", LOGIN, headers={**_cookie_header(cookie), "X-CSRF-Token": csrf}
    ))  # fmt: skip
    c = passed("c", msg("with its CSRF token the cookie session acts (HTTP {status})", status=with_token.status), with_token.evidence()) \
        if accepted(with_token) else inconclusive(
            "c", undecided(with_token) or msg("with its CSRF token the logout answered HTTP {status}", status=with_token.status),
            with_token.evidence())  # fmt: skip
    return [a, b, c]


@register("SESS-05", budget=14, order=35, requires=("interface:refcam-api", "user-management"))
def session_expiry(ctx: ProbeContext) -> list[UnitResult]:
    ex = _session_login(ctx)
    doc = ex.json()
    if token_of(ex) is None or not isinstance(doc, dict):
        return [inconclusive("a", undecided(ex) or msg("the test user's login failed: HTTP {status}", status=ex.status), ex.evidence())]
    idle, absolute = doc.get("idle_timeout"), doc.get("absolute_timeout")
    cookie = _session_cookie(ex)
    max_age = cookie.attributes.get("max-age") if cookie else None
    declared = Evidence("note", "timeouts the login declares", {
        "idle_timeout": idle, "absolute_timeout": absolute, "cookie_max_age": max_age,
    })  # fmt: skip
    if "idle_timeout" not in doc and "absolute_timeout" not in doc:
        return [inconclusive("a", msg("the login answer declares no session timeouts"), declared)]
    problems = timeout_problems(idle, absolute, max_age)
    a = failed("a", joined(problems), declared) if problems else passed(
        "a", msg("idle {idle:.0f} s, absolute {absolute:.0f} s (ASVS V3.3.2 L2 bounds)", idle=idle, absolute=absolute), declared
    )
    if problems or not isinstance(idle, int | float) or idle > OBSERVE_IDLE_MAX:
        return [a]
    # A short (configured) idle timeout is waited out and observed, not just read.
    token = token_of(ex)
    time.sleep(float(idle) + 0.5)
    after = patiently(lambda: ctx.http.request("GET", WHOAMI, token=token))
    return [a, _judge_dead("b", msg("a session idle for {idle:.1f} s", idle=idle + 0.5), after)]
