"""Access control (REQUIREMENTS row 17) and robustness (row 36) cases.

State-changing requests are sent with empty or invalid bodies, so even a
device that wrongly accepts the caller cannot act on them: a 400 for an
anonymous caller is still a FAIL (authentication must come first).
"""

from __future__ import annotations

from ..case import ProbeContext, failed, inconclusive, passed, register, undone
from ..errors import ProbeError
from ..i18n import N_, msg
from ..model import Evidence, UnitResult
from ..verdicts import undecided
from ._session import admin, test_user
from .credentials import SETUP_PATHS, _routes

ADMIN_ONLY = (
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/audit"),
    ("POST", "/api/v1/update/upload"),
)
ADMIN_READS = ("/api/v1/users", "/api/v1/audit")
REFCAM_API = ("interface:refcam-api",)


_undecided = undecided  # no answer, throttled or a server error (conformance.verdicts)


def _unit(letter: str, bad: list[Evidence], undecided: list[Evidence], fail: str, ok: str) -> UnitResult:
    if bad:
        return failed(letter, msg(fail, n=len(bad)), *bad[:10])
    if undecided:
        return inconclusive(letter, msg("{n_undecided} answers were no answer, throttled or a server error", n_undecided=len(undecided)),
                            *undecided[:10])
    return passed(letter, ok)


@register("ACC-01", budget=120, order=20, requires=REFCAM_API)
def access_matrix(ctx: ProbeContext) -> list[UnitResult]:
    routes = [r for r in _routes(ctx) if r[1] not in SETUP_PATHS]
    anon_bad: list[Evidence] = []
    token_bad: list[Evidence] = []
    undecided: list[Evidence] = []
    for method, path in routes:
        body: dict[str, object] | None = {} if method != "GET" else None
        r = ctx.http.request(method, path, json_body=body)
        if _undecided(r):
            undecided.append(r.evidence("anonymous: no definite answer"))
        elif r.status != 401:
            anon_bad.append(r.evidence("anonymous: expected 401"))
        r = ctx.http.request(method, path, json_body=body, token="probe-forged-" + "0" * 43)
        if _undecided(r):
            undecided.append(r.evidence("forged token: no definite answer"))
        elif r.status != 401:
            token_bad.append(r.evidence("bad bearer token: expected 401"))
    anon_undecided = [e for e in undecided if e.summary.endswith("(anonymous: no definite answer)")]
    token_undecided = [e for e in undecided if e not in anon_undecided]
    a = _unit("a", anon_bad, anon_undecided, N_("{n} routes did not answer 401 to anonymous callers"),
              msg("{n} protected routes answer 401 to anonymous callers", n=len(routes)))
    b = _unit("b", token_bad, token_undecided, N_("{n} routes accepted or mis-handled a forged token"),
              msg("{n} protected routes answer 401 to a forged bearer token", n=len(routes)))
    try:
        viewer = test_user(ctx, "viewer")
        boss = admin(ctx)
    except ProbeError as exc:  # reported as the verdict reason
        return [a, b, undone("c", exc), undone("d", exc)]
    viewer_bad: list[Evidence] = []
    viewer_undecided: list[Evidence] = []
    for method, path in ADMIN_ONLY:
        r = ctx.http.request(method, path, json_body={} if method != "GET" else None, token=viewer.token)
        if _undecided(r):
            viewer_undecided.append(r.evidence("viewer: no definite answer"))
        elif not (r.status == 403 and ctx.adapter.is_refusal(r)):
            viewer_bad.append(r.evidence("viewer: expected 403"))
    c = _unit("c", viewer_bad, viewer_undecided, N_("a viewer reached {n} admin routes"),
              msg("a viewer is refused on {n} admin routes (403)", n=len(ADMIN_ONLY)))
    admin_bad: list[Evidence] = []
    admin_undecided: list[Evidence] = []
    for path in ADMIN_READS:
        r = ctx.http.request("GET", path, token=boss.token)
        if _undecided(r):
            admin_undecided.append(r.evidence("admin: no definite answer"))
        elif r.status != 200:
            admin_bad.append(r.evidence("admin: expected 200"))
    d = _unit("d", admin_bad, admin_undecided, N_("an admin could not read {n} admin routes"),
              msg("an admin reads {routes}", routes=", ".join(ADMIN_READS)))
    return [a, b, c, d]


MALFORMED = (
    ("a", b'{"username": "x", ', "application/json", msg("malformed JSON")),
    ("b", b'{"username": ["x"], "password": 7}', "application/json", msg("wrong types")),
    ("c", b'{"username": "' + b"x" * (256 * 2**10) + b'"}', "application/json", msg("oversized body (256 KiB)")),
    ("d", b'{"username": "\xff\xfe", "password": "\xc3"}', "application/json", msg("invalid UTF-8")),
)


@register("ROB-01", budget=16, order=70, requires=REFCAM_API)
def malformed_input(ctx: ProbeContext) -> list[UnitResult]:
    try:
        token: str | None = admin(ctx).token
    except Exception:  # noqa: BLE001 - anonymous probing still tests the login parser
        token = None
    targets = ["/api/v1/session"] + (["/api/v1/users"] if token else [])
    results = []
    for letter, body, ctype, what in MALFORMED:
        bad = []
        throttled = []
        for path in targets:
            r = ctx.http.request(
                "POST", path, raw_body=body, headers={"Content-Type": ctype},
                token=token if path != "/api/v1/session" else None,
            )
            if r.status == 429:  # throttled before the parser ran: the input was not judged
                throttled.append(r.evidence(f"{what}: throttled"))
            elif not 400 <= r.status < 500:  # a 5xx or a dropped connection IS the robustness failure
                bad.append(r.evidence(f"{what}: expected 4xx"))
        if bad:
            results.append(failed(letter, msg("{what}: a server error or dropped connection", what=what), *bad))
        elif throttled:
            results.append(inconclusive(letter, msg("{what}: throttled (429) before the body was parsed", what=what), *throttled))
        else:
            results.append(passed(letter, msg("{what}: 4xx on {targets}", what=what, targets=', '.join(targets))))
    return results
