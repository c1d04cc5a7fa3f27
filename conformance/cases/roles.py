"""The role matrix (OWASP ASVS 4.0.3 V4.1.3, V4.2.1; requirement row 17; KS X 3020 C4).

The device's own OpenAPI document (fetched from it) lists every route and the
role it needs (``x-refcam-access``). Every state-changing route (POST, PUT,
PATCH, DELETE; not the public or set-up ones) is tried as a viewer and as an
operator, created through the admin API for the run. A route above the
caller's role must answer a definite 403 and have no effect: the user list,
the settings and the audit log (no entry by the caller but its logins) are
compared before and after, and ``{name}`` routes target a throw-away user, so
a route that wrongly acts shows it. Bodies are empty JSON objects: a refused
route never reads them, an open one cannot do much with them::

    forbidden_routes(openapi, "viewer")  # [("PATCH", "/api/v1/settings", "admin"), ...]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..case import ProbeContext, failed, inconclusive, passed, register
from ..http import Exchange
from ..i18n import joined, msg
from ..model import Evidence, UnitResult
from ._accounts import throwaway
from ._answers import patiently, undecided
from ._session import admin, test_user

OPENAPI = "/api/v1/openapi.json"
ROLE_RANK = {"viewer": 1, "operator": 2, "admin": 3}
STATE_CHANGING = ("POST", "PUT", "PATCH", "DELETE")
ACCESS_FIELD = "x-refcam-access"
SESSION_ONLY_EVENTS = frozenset({"login_success", "login_failure", "logout", "lockout", "lockout_end"})


def forbidden_routes(openapi: Any, role: str) -> list[tuple[str, str, str]]:
    """(method, path template, required role) of each state-changing route above ``role``."""
    routes = []
    paths = openapi.get("paths") if isinstance(openapi, dict) else None
    for path, ops in (paths or {}).items():
        if not isinstance(ops, dict):
            continue
        for method, op in ops.items():
            if method.upper() not in STATE_CHANGING or not isinstance(op, dict):
                continue
            needed = op.get(ACCESS_FIELD)
            if needed in ROLE_RANK and ROLE_RANK[str(needed)] > ROLE_RANK[role]:
                routes.append((method.upper(), str(path), str(needed)))
    return sorted(routes)


def declares_roles(openapi: Any) -> bool:
    paths = openapi.get("paths") if isinstance(openapi, dict) else None
    return isinstance(paths, dict) and any(
        isinstance(op, dict) and ACCESS_FIELD in op
        for ops in paths.values() if isinstance(ops, dict) for op in ops.values()
    )  # fmt: skip


def fill_path(template: str, victim: str) -> str:
    """``/api/v1/users/{name}`` -> ``/api/v1/users/<victim>``; other parameters become ``probe``."""
    parts = []
    for part in template.split("/"):
        if part.startswith("{") and part.endswith("}"):
            parts.append(victim if part[1:-1].split(":", 1)[0] == "name" else "probe")
        else:
            parts.append(part)
    return "/".join(parts)


def judge_route(ex: Exchange) -> str:
    """"refused" (a definite 403), "undecided" (429, 5xx, no answer, 401) or "reached"."""
    if ex.status == 403:
        return "refused"
    if undecided(ex) is not None or ex.status == 401:  # 401: the session itself was not accepted
        return "undecided"
    return "reached"


def _snapshot(ctx: ProbeContext, token: str) -> dict[str, Any]:
    users = ctx.http.request("GET", "/api/v1/users", token=token).json()
    settings = ctx.http.request("GET", "/api/v1/settings", token=token).json()
    head = ctx.http.request("GET", "/api/v1/audit?limit=1", token=token).json()
    return {
        "users": sorted((u.get("username"), u.get("role")) for u in users.get("users", []))
        if isinstance(users, dict) else None,
        "settings": settings if isinstance(settings, dict) else None,
        "audit_seq": head.get("head", {}).get("seq") if isinstance(head, dict) else None,
    }


def effects(before: dict[str, Any], after: dict[str, Any], audit: Any, actors: set[str]) -> list[str]:
    """What changed between two snapshots, and audit entries the callers caused (pure)."""
    changes = []
    if before["users"] != after["users"]:
        changes.append(f"the user list changed: {before['users']} -> {after['users']}")
    if before["settings"] != after["settings"]:
        changes.append(f"the settings changed: {before['settings']} -> {after['settings']}")
    entries = audit.get("entries", []) if isinstance(audit, dict) else []
    for entry in entries:
        if isinstance(entry, dict) and entry.get("actor") in actors and entry.get("event") not in SESSION_ONLY_EVENTS:
            changes.append(f"audit entry {entry.get('seq')}: {entry.get('event')} by {entry.get('actor')}")
    return changes


def _sender(ctx: ProbeContext, method: str, path: str, token: str) -> Callable[[], Exchange]:
    return lambda: ctx.http.request(method, path, json_body={}, token=token)



def _who(role: str) -> str:
    """ "a viewer", "an operator": the role as a reason names it."""
    return msg("an {role}", role=role) if role[:1] in ("a", "e", "i", "o", "u") else msg("a {role}", role=role)

@register("ROLE-01", budget=90, order=36, requires=("interface:refcam-api", "user-management"))
def role_matrix(ctx: ProbeContext) -> list[UnitResult]:
    ex = ctx.http.request("GET", OPENAPI)
    openapi = ex.json()
    if ex.status != 200 or not declares_roles(openapi):
        return [inconclusive("a", msg("the device's OpenAPI document declares no role per route"), ex.evidence())]
    boss = admin(ctx)
    victim = throwaway(ctx, "role-victim", "viewer", log_in=False)
    callers = {role: test_user(ctx, role) for role in ("viewer", "operator")}
    before = _snapshot(ctx, boss.token)
    results: list[UnitResult] = []
    for letter, role in (("a", "viewer"), ("b", "operator")):
        routes = forbidden_routes(openapi, role)
        reached: list[Evidence] = []
        unsure: list[Evidence] = []
        for method, template, needed in routes:
            path = fill_path(template, victim.username)
            token = callers[role].token
            answer = patiently(_sender(ctx, method, path, token))
            verdict = judge_route(answer)
            if verdict == "reached":
                reached.append(answer.evidence(f"{role} on a {needed} route: expected 403"))
            elif verdict == "undecided":
                unsure.append(answer.evidence(f"{role}: {undecided(answer) or 'the session was not accepted'}"))
        if reached:
            results.append(failed(letter, msg("{who} reached {n_reached} of {n_routes} routes above its role", who=_who(role), n_reached=len(reached), n_routes=len(routes)),
                                  *reached[:10]))
        elif unsure:
            results.append(inconclusive(letter, msg("{n_unsure} of {n_routes} routes gave no definite answer", n_unsure=len(unsure), n_routes=len(routes)),
                                        *unsure[:10]))
        else:
            results.append(passed(letter, msg("{who} is refused (403) on all {n_routes} state-changing routes above its role", who=_who(role), n_routes=len(routes))))
    after = _snapshot(ctx, boss.token)
    seq = before["audit_seq"]
    audit = ctx.http.request("GET", f"/api/v1/audit?after={seq}&limit=500", token=boss.token) if isinstance(
        seq, int) else None
    state = Evidence("note", "device state before and after the matrix", {"before": before, "after": after})
    if before["users"] is None or before["settings"] is None or audit is None or audit.status != 200:
        results.append(inconclusive("c", msg("the admin API did not give the users, settings and audit log"), state))
        return results
    changed = effects(before, after, audit.json(), {c.username for c in callers.values()})
    results.append(
        failed("c", joined(changed[:5]), state, audit.evidence()) if changed
        else passed("c", msg("users, settings and audit log show no effect of the refused requests"), state)
    )
    return results
