"""Logging in, the admin session and throw-away test users, shared by the cases.

The preflight (conformance.probe) logs in once with the given credentials,
before any case trips the device's throttling, and hands the session over
(``ctx.preflight_session``): the label password is never tried a second time.
The admin session completes a forced first change from that session. Test
users are created with random strong passwords and deleted at the end of the
run. Everything goes through the target adapter (``ctx.adapter``); the
module-level ``login``/``change_password`` keep the refcam API call shape.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from ..adapters import Session
from ..case import ProbeContext
from ..errors import MissingOption, ProbeError
from ..http import Exchange, ProbeHTTP
from ..i18n import msg

LOGIN = "/api/v1/session"
CHANGE = "/api/v1/session/password"
USERS = "/api/v1/users"


def login(http: ProbeHTTP, username: str, password: str) -> Exchange:
    return http.request("POST", LOGIN, json_body={"username": username, "password": password})


def token_of(ex: Exchange) -> str | None:
    doc = ex.json()
    if ex.status == 200 and isinstance(doc, dict) and isinstance(doc.get("token"), str):
        return str(doc["token"])
    return None


def must_change(ex: Exchange) -> bool:
    doc = ex.json()
    return isinstance(doc, dict) and bool(doc.get("password_change_required"))


def strong_password() -> str:
    return "probe-" + secrets.token_urlsafe(18)


def change_password(http: ProbeHTTP, token: str, current: str, new: str) -> Exchange:
    return http.request("POST", CHANGE, json_body={"current_password": current, "new_password": new}, token=token)


@dataclass(frozen=True)
class Account:
    username: str
    password: str
    token: str


def admin(ctx: ProbeContext) -> Account:
    """The admin session for the whole run; raises ProbeError (INCONCLUSIVE) without credentials."""
    cached = ctx.cache.get("admin")
    if isinstance(cached, Account):
        return cached
    if isinstance(cached, ProbeError):
        raise cached
    try:
        account = _admin_login(ctx)
    except ProbeError as exc:
        ctx.cache["admin"] = exc
        raise
    ctx.cache["admin"] = account
    return account


def _admin_login(ctx: ProbeContext) -> Account:
    """The admin account from the preflight's verified session (no second label login)."""
    opts = ctx.options
    session = ctx.preflight_session
    if session is None:
        raise MissingOption(msg("needs credentials"), "--label-password or --admin")
    if opts.admin is not None:
        if session.must_change:
            raise ProbeError(msg("the admin account “{username}” must still change its initial password", username=session.username))
        return Account(session.username, session.password, session.token or "")
    if not session.must_change:
        return Account(session.username, session.password, session.token or "")
    # First login: complete the forced change from the preflight's session, keep the new password.
    ctx.cache["label_session_used"] = True
    new = strong_password()
    changed = ctx.adapter.change_password(ctx.http, session, session.password, new)
    if changed.status not in (200, 204):
        raise ProbeError(msg("the forced password change failed: HTTP {status} {text}", status=changed.status, text=changed.text[:200]))
    ex = ctx.adapter.login(ctx.http, session.username, new)
    fresh = ctx.adapter.session(ex, session.username, new)
    if fresh is None:
        raise ProbeError(msg("login with the new admin password failed: HTTP {status}", status=ex.status))
    if opts.on_new_admin_password is not None:
        opts.on_new_admin_password(new)
    return Account(session.username, new, fresh.token or "")


def test_user(ctx: ProbeContext, role: str, *, purpose: str = "") -> Account:
    """A throw-away user with ``role``, created once per run and deleted at the end.

    A ``purpose`` gives a case an account of its own, so no failure counted by an
    earlier case (a back-off still running) decides what this one sees."""
    key = f"user:{role}:{purpose}" if purpose else f"user:{role}"
    cached = ctx.cache.get(key)
    if isinstance(cached, Account):
        return cached
    boss = admin(ctx)
    username = f"probe-{role}-{secrets.token_hex(3)}"
    password = strong_password()
    ex = ctx.adapter.create_user(ctx.http, session_of(boss), username, password, role)
    if ex.status not in (200, 201) or (ctx.adapter.interface == "onvif" and not opened_answer(ex)):
        raise ProbeError(msg("cannot create a {role} test user: HTTP {status} {text}", role=role, status=ex.status, text=ex.text[:200]))
    ctx.cleanups.append((f"delete test user {username}", lambda: _delete_user(ctx, boss, username)))
    ex = ctx.adapter.login(ctx.http, username, password)
    session = ctx.adapter.session(ex, username, password)
    if session is None:
        raise ProbeError(msg("the new test user cannot log in: HTTP {status}", status=ex.status))
    if session.must_change:
        new = strong_password()
        changed = ctx.adapter.change_password(ctx.http, session, password, new)
        if changed.status not in (200, 204):
            raise ProbeError(msg("test user password change failed: HTTP {status}", status=changed.status))
        password = new
        session = ctx.adapter.session(ctx.adapter.login(ctx.http, username, password), username, password)
        if session is None or session.must_change:
            raise ProbeError(msg("the test user cannot log in after its password change"))
    account = Account(username, password, session.token or "")
    ctx.cache[key] = account
    return account


def _delete_user(ctx: ProbeContext, boss: Account, username: str) -> None:
    ex = ctx.adapter.delete_user(ctx.http, session_of(boss), username)
    if ex.status not in (200, 204, 404):
        raise ProbeError(msg("HTTP {status} {text}", status=ex.status, text=ex.text[:200]))


def session_of(account: Account) -> Session:
    """The adapter session of an account the probe holds (bearer header where there is a token)."""
    headers = {"Authorization": f"Bearer {account.token}"} if account.token else {}
    return Session(account.username, account.password, headers, account.token or None, False)


def opened(ctx: ProbeContext, ex: Exchange) -> bool:
    """Whether a login answer opened a full session, in the target adapter's terms."""
    return ctx.adapter.session(ex, "", "") is not None


def opened_answer(ex: Exchange) -> bool:
    """A SOAP answer that is no fault (the ONVIF adapter's success)."""
    from ..onvifsoap import answered

    return answered(ex)


def json_field(ex: Exchange, name: str) -> Any:
    doc = ex.json()
    return doc.get(name) if isinstance(doc, dict) else None
