"""Throw-away accounts a case may change at will (password, sessions), one per purpose.

The shared test users of :mod:`._session` keep their passwords for the whole
run; a case that changes a password, ends sessions or draws throttling gets
its own account, created through the admin API and deleted at the end::

    account = throwaway(ctx, "password-policy")
    account.password = new  # after a change the device accepted
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from ..case import ProbeContext
from ..errors import ProbeError
from ..i18n import msg
from ._session import (
    USERS,
    _delete_user,
    admin,
    change_password,
    login,
    must_change,
    strong_password,
    token_of,
)


@dataclass
class Throwaway:
    """Mutable: cases record the password they changed it to."""

    username: str
    password: str
    token: str
    role: str


def throwaway(ctx: ProbeContext, purpose: str, role: str = "viewer", *, log_in: bool = True) -> Throwaway:
    key = f"throwaway:{purpose}"
    cached = ctx.cache.get(key)
    if isinstance(cached, Throwaway):
        return cached
    boss = admin(ctx)
    username = f"probe-{purpose[:12]}-{secrets.token_hex(3)}"
    password = strong_password()
    ex = ctx.http.request(
        "POST", USERS, json_body={"username": username, "password": password, "role": role}, token=boss.token
    )
    if ex.status not in (200, 201):
        raise ProbeError(msg("cannot create a {role} account for {purpose}: HTTP {status} {text}", role=role, purpose=purpose, status=ex.status, text=ex.text[:200]))
    ctx.cleanups.append((f"delete test user {username}", lambda: _delete_user(ctx, boss, username)))
    token = ""
    if log_in:
        first = login(ctx.http, username, password)
        token = token_of(first) or ""
        if not token:
            raise ProbeError(msg("the new {role} account cannot log in: HTTP {status}", role=role, status=first.status))
        if must_change(first):
            new = strong_password()
            changed = change_password(ctx.http, token, password, new)
            if changed.status not in (200, 204):
                raise ProbeError(msg("the new {role} account cannot set its password: HTTP {status}", role=role, status=changed.status))
            password = new
            token = token_of(login(ctx.http, username, password)) or ""
            if not token:
                raise ProbeError(msg("the new {role} account cannot log in after its password change", role=role))
    account = Throwaway(username, password, token, role)
    ctx.cache[key] = account
    return account
