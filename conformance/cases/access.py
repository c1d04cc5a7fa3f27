"""Access control (REQUIREMENTS row 17) and robustness (row 36) cases.

State-changing requests are sent with empty or invalid bodies, so even a
device that wrongly accepts the caller cannot act on them: a 400 for an
anonymous caller is still a FAIL (authentication must come first).
"""

from __future__ import annotations

from ..case import ProbeContext, failed, inconclusive, passed, register
from ..model import Evidence, UnitResult
from ._session import admin, test_user
from .credentials import SETUP_PATHS, _routes

ADMIN_ONLY = (
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/audit"),
    ("POST", "/api/v1/update/upload"),
)
ADMIN_READS = ("/api/v1/users", "/api/v1/audit")


@register("ACC-01", budget=120, order=20)
def access_matrix(ctx: ProbeContext) -> list[UnitResult]:
    routes = [r for r in _routes(ctx) if r[1] not in SETUP_PATHS]
    anon_bad: list[Evidence] = []
    token_bad: list[Evidence] = []
    for method, path in routes:
        body: dict[str, object] | None = {} if method != "GET" else None
        r = ctx.http.request(method, path, json_body=body)
        if r.status != 401:
            anon_bad.append(r.evidence("anonymous: expected 401"))
        r = ctx.http.request(method, path, json_body=body, token="probe-forged-" + "0" * 43)
        if r.status != 401:
            token_bad.append(r.evidence("bad bearer token: expected 401"))
    a = failed("a", f"{len(anon_bad)} routes did not answer 401 to anonymous callers", *anon_bad[:10]) if anon_bad else passed(
        "a", f"{len(routes)} protected routes answer 401 to anonymous callers"
    )
    b = failed("b", f"{len(token_bad)} routes accepted or mis-handled a forged token", *token_bad[:10]) if token_bad else passed(
        "b", f"{len(routes)} protected routes answer 401 to a forged bearer token"
    )
    try:
        viewer = test_user(ctx, "viewer")
        boss = admin(ctx)
    except Exception as exc:  # noqa: BLE001 - reported as the verdict reason
        return [a, b, inconclusive("c", str(exc)), inconclusive("d", str(exc))]
    viewer_bad = []
    for method, path in ADMIN_ONLY:
        r = ctx.http.request(method, path, json_body={} if method != "GET" else None, token=viewer.token)
        if r.status != 403:
            viewer_bad.append(r.evidence("viewer: expected 403"))
    c = failed("c", f"a viewer reached {len(viewer_bad)} admin routes", *viewer_bad) if viewer_bad else passed(
        "c", f"a viewer is refused on {len(ADMIN_ONLY)} admin routes (403)"
    )
    admin_bad = []
    for path in ADMIN_READS:
        r = ctx.http.request("GET", path, token=boss.token)
        if r.status != 200:
            admin_bad.append(r.evidence("admin: expected 200"))
    d = failed("d", "an admin could not read admin routes", *admin_bad) if admin_bad else passed(
        "d", f"an admin reads {', '.join(ADMIN_READS)}"
    )
    return [a, b, c, d]


MALFORMED = (
    ("a", b'{"username": "x", ', "application/json", "malformed JSON"),
    ("b", b'{"username": ["x"], "password": 7}', "application/json", "wrong types"),
    ("c", b'{"username": "' + b"x" * (256 * 2**10) + b'"}', "application/json", "oversized body (256 KiB)"),
    ("d", b'{"username": "\xff\xfe", "password": "\xc3"}', "application/json", "invalid UTF-8"),
)


@register("ROB-01", budget=16, order=70)
def malformed_input(ctx: ProbeContext) -> list[UnitResult]:
    try:
        token: str | None = admin(ctx).token
    except Exception:  # noqa: BLE001 - anonymous probing still tests the login parser
        token = None
    targets = ["/api/v1/session"] + (["/api/v1/users"] if token else [])
    results = []
    for letter, body, ctype, what in MALFORMED:
        bad = []
        for path in targets:
            r = ctx.http.request(
                "POST", path, raw_body=body, headers={"Content-Type": ctype},
                token=token if path != "/api/v1/session" else None,
            )
            if not 400 <= r.status < 500:
                bad.append(r.evidence(f"{what}: expected 4xx"))
        results.append(
            failed(letter, f"{what}: a server error or dropped connection", *bad)
            if bad
            else passed(letter, f"{what}: 4xx on {', '.join(targets)}")
        )
    return results
