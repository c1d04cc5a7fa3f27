"""Judging rules of the session, role-matrix, password-policy and throttling cases (issue 12).

Pure rules are driven with values; case functions with a scripted fake
transport, one per kind of answer a device can give (401, 403, 429 with
Retry-After, 500, a reset, a timeout): only a definite 401/403 is a refusal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from conformance.case import ProbeContext, ProbeOptions
from conformance.cases import _answers, credentials, passwordpolicy, roles, sessions, throttling
from conformance.cases._accounts import Throwaway
from conformance.cases._session import Account
from conformance.catalogue import load_catalogue, parse_catalogue
from conformance.errors import CatalogueError
from conformance.http import Exchange, ProbeHTTP, Target
from conformance.model import Verdict


def ex(status: int, body: Any = None, *, headers: dict[str, str] | None = None, error: str | None = None,
       cookies: tuple[str, ...] = (), method: str = "GET", path: str = "/x", elapsed: float = 0.01) -> Exchange:
    raw = json.dumps(body).encode() if body is not None else b""
    return Exchange(method, path, {}, None, status, headers or {}, raw, elapsed, error=error, set_cookies=cookies)


RESET = ex(0, error="ConnectionResetError: [Errno 104] Connection reset by peer")
TIMEOUT = ex(0, error="TimeoutError: timed out")
THROTTLED = ex(429, {"error": "throttled"}, headers={"Retry-After": "2"})
SERVER_ERROR = ex(500, {"error": "internal"})
UNDECIDABLE = [RESET, TIMEOUT, THROTTLED, SERVER_ERROR]


# -- answers ---------------------------------------------------------------


@pytest.mark.parametrize("answer", UNDECIDABLE)
def test_429_5xx_resets_and_timeouts_are_never_a_refusal(answer: Exchange) -> None:
    assert not _answers.refused(answer)
    assert _answers.undecided(answer)


@pytest.mark.parametrize("status", [401, 403])
def test_only_401_and_403_are_refusals(status: int) -> None:
    assert _answers.refused(ex(status)) and _answers.undecided(ex(status)) is None
    assert not _answers.refused(ex(400)) and not _answers.refused(ex(404))


def test_a_429_is_waited_out_within_the_budget_then_asked_again() -> None:
    answers = iter([THROTTLED, ex(401)])
    slept: list[float] = []
    final = _answers.patiently(lambda: next(answers), sleep=slept.append)
    assert final.status == 401 and slept == [2.0]


def test_a_429_longer_than_the_budget_or_without_retry_after_is_returned_undecided() -> None:
    slept: list[float] = []
    long = ex(429, headers={"Retry-After": "60"})
    assert _answers.patiently(lambda: long, sleep=slept.append).status == 429
    bare = ex(429)
    assert _answers.patiently(lambda: bare, sleep=slept.append).status == 429
    assert slept == []
    assert _answers.retry_after(ex(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) is None


# -- sessions --------------------------------------------------------------

SECURE = "refcam_session=tok; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800"


def test_a_secure_session_cookie_has_no_problems() -> None:
    cookie = sessions.parse_set_cookie(SECURE)
    assert (cookie.name, cookie.value, cookie.attributes["max-age"]) == ("refcam_session", "tok", "28800")
    assert sessions.cookie_problems(cookie) == [] and sessions.scope_problems(cookie) == []


def test_an_insecure_cookie_is_named_for_each_missing_attribute() -> None:
    problems = sessions.cookie_problems(sessions.parse_set_cookie("s=tok; Path=/; SameSite=None"))
    assert [p.split(" (")[0] for p in problems] == [
        "no Secure attribute", "no HttpOnly attribute", "SameSite is None, not Strict or Lax",
    ]
    wide = sessions.parse_set_cookie("s=tok; Secure; HttpOnly; SameSite=Lax; Domain=.example.com")
    assert sessions.scope_problems(wide) == ["Domain=.example.com widens it to other hosts", "no Path attribute"]


@pytest.mark.parametrize(
    ("idle", "absolute", "max_age", "expected"),
    [
        (900.0, 28800.0, "28800", []),
        (None, 28800.0, None, ["no idle timeout declared (found nothing)"]),
        (7200.0, 28800.0, None, ["idle timeout 7200 s is not within 1..1800 s"]),
        (900.0, 86400.0 * 30, None, ["absolute timeout 2592000 s is not within 1..43200 s"]),
        (900.0, 28800.0, "31536000", ["the cookie's Max-Age 31536000 s outlives the absolute timeout 28800 s"]),
        (True, 28800.0, None, ["no idle timeout declared (found True)"]),
    ],
)
def test_declared_timeouts_are_held_to_asvs_v3_3_2(idle: Any, absolute: Any, max_age: Any, expected: list[str]) -> None:
    assert sessions.timeout_problems(idle, absolute, max_age) == expected


def test_a_session_that_must_be_over_passes_only_on_a_definite_refusal() -> None:
    assert sessions._judge_dead("b", "old token", ex(401)).verdict is Verdict.PASS
    assert sessions._judge_dead("b", "old token", ex(200, {})).verdict is Verdict.FAIL
    for answer in UNDECIDABLE:
        assert sessions._judge_dead("b", "old token", answer).verdict is Verdict.INCONCLUSIVE


class FakeHTTP(ProbeHTTP):
    """Answers from a function of (method, path, headers, token); records every request."""

    def __init__(self, answer: Callable[[str, str, dict[str, str], str | None], Exchange]) -> None:
        super().__init__(Target("https", "127.0.0.1", 1), ssl_context=None)
        self.answer = answer
        self.sent_requests: list[tuple[str, str, dict[str, str], str | None]] = []

    def request(self, method: str, path: str, *, json_body: Any = None, raw_body: bytes | None = None,
                headers: Any = None, token: str | None = None) -> Exchange:
        self.sent_requests.append((method, path, dict(headers or {}), token))
        return self.answer(method, path, dict(headers or {}), token)


def _ctx(answer: Callable[[str, str, dict[str, str], str | None], Exchange]) -> ProbeContext:
    ctx = ProbeContext(ProbeOptions(target="https://127.0.0.1:1", ca_file=None), Target("https", "127.0.0.1", 1),
                       FakeHTTP(answer))
    ctx.cache["user:viewer"] = Account("probe-viewer", "pw", "viewer-token")
    return ctx


LOGIN_OK = ex(200, {"token": "new-token", "csrf_token": "c"}, cookies=(SECURE.replace("tok", "new-token"),))


@pytest.mark.parametrize(
    ("after_logout", "verdict"),
    [(ex(401), Verdict.PASS), (ex(200, {}), Verdict.FAIL), (THROTTLED, Verdict.INCONCLUSIVE),
     (SERVER_ERROR, Verdict.INCONCLUSIVE), (RESET, Verdict.INCONCLUSIVE), (TIMEOUT, Verdict.INCONCLUSIVE)],
)
def test_logout_case_reads_the_old_session_only_from_a_definite_answer(after_logout: Exchange, verdict: Verdict) -> None:
    state = {"logged_out": False}

    def answer(method: str, path: str, headers: dict[str, str], token: str | None) -> Exchange:
        if method == "POST":
            return LOGIN_OK
        if method == "DELETE":
            state["logged_out"] = True
            return ex(204)
        return after_logout if state["logged_out"] else ex(200, {})

    results = {u.unit: u.verdict for u in sessions.logout_ends_session(_ctx(answer))}
    assert results["a"] is Verdict.PASS
    assert results["b"] is verdict and results["c"] is verdict


@pytest.mark.parametrize(
    ("cross_origin", "verdict"),
    [(ex(403, {"error": "csrf"}), Verdict.PASS), (ex(204), Verdict.FAIL), (ex(400, {}), Verdict.FAIL),
     (THROTTLED, Verdict.INCONCLUSIVE), (SERVER_ERROR, Verdict.INCONCLUSIVE), (RESET, Verdict.INCONCLUSIVE)],
)
def test_csrf_case_needs_a_definite_403_for_the_cookie_only_request(cross_origin: Exchange, verdict: Verdict) -> None:
    def answer(method: str, path: str, headers: dict[str, str], token: str | None) -> Exchange:
        if method == "POST" and path == "/api/v1/session":
            return LOGIN_OK
        if "Origin" in headers:
            return cross_origin
        if method == "DELETE":
            return ex(204) if headers.get("X-CSRF-Token") == "c" else ex(403)
        return ex(200, {})

    results = {u.unit: u.verdict for u in sessions.csrf_protection(_ctx(answer))}
    assert results["a"] is verdict and results["b"] is verdict
    assert results["c"] is Verdict.PASS


# -- role matrix -----------------------------------------------------------

OPENAPI = {
    "paths": {
        "/api/v1/settings": {"get": {"x-refcam-access": "admin"}, "patch": {"x-refcam-access": "admin"}},
        "/api/v1/users/{name}": {"delete": {"x-refcam-access": "admin"}, "parameters": []},
        "/api/v1/update/check": {"post": {"x-refcam-access": "operator"}},
        "/api/v1/attestation": {"post": {"x-refcam-access": "viewer"}},
        "/api/v1/session": {"delete": {"x-refcam-access": "password-change"}, "post": {"x-refcam-access": "public"}},
    }
}


def test_the_matrix_holds_every_state_changing_route_above_the_role() -> None:
    assert roles.forbidden_routes(OPENAPI, "viewer") == [
        ("DELETE", "/api/v1/users/{name}", "admin"), ("PATCH", "/api/v1/settings", "admin"),
        ("POST", "/api/v1/update/check", "operator"),
    ]
    assert roles.forbidden_routes(OPENAPI, "operator") == [
        ("DELETE", "/api/v1/users/{name}", "admin"), ("PATCH", "/api/v1/settings", "admin"),
    ]
    assert roles.declares_roles(OPENAPI) and not roles.declares_roles({"paths": {"/x": {"get": {}}}})
    assert roles.fill_path("/api/v1/users/{name}/password", "victim") == "/api/v1/users/victim/password"


@pytest.mark.parametrize(
    ("answer", "judged"),
    [(ex(403), "refused"), (ex(400, {}), "reached"), (ex(204), "reached"), (ex(404, {}), "reached"),
     (ex(401), "undecided"), (THROTTLED, "undecided"), (SERVER_ERROR, "undecided"), (RESET, "undecided"),
     (TIMEOUT, "undecided")],
)
def test_a_route_is_refused_only_by_a_definite_403(answer: Exchange, judged: str) -> None:
    assert roles.judge_route(answer) == judged


def test_effects_are_found_in_the_users_settings_and_audit_log() -> None:
    before = {"users": [("admin", "admin"), ("victim", "viewer")], "settings": {"p": 1}, "audit_seq": 5}
    assert roles.effects(before, dict(before), {"entries": [
        {"seq": 6, "event": "login_success", "actor": "op"}]}, {"op"}) == []
    after = {**before, "users": [("admin", "admin")]}
    found = roles.effects(before, after, {"entries": [{"seq": 7, "event": "user_delete", "actor": "op"}]}, {"op"})
    assert found[0].startswith("the user list changed") and found[1] == "audit entry 7: user_delete by op"


# -- password policy -------------------------------------------------------


@pytest.mark.parametrize("profile", sorted(passwordpolicy.PROFILES))
def test_boundary_candidates_are_exactly_one_below_and_at_each_minimum(profile: str) -> None:
    rules = passwordpolicy.PROFILES[profile]
    for (length, classes), (_, short, at_min) in zip(rules, passwordpolicy.below_minimum(profile), strict=True):
        assert len(short) == length - 1 and len(at_min) == length
        assert passwordpolicy._plain(short) and passwordpolicy._plain(at_min)
        for candidate in (short, at_min):
            present = sum(any(c in group for c in candidate) for group in passwordpolicy.CLASSES)
            assert present == classes


def test_an_unknown_policy_profile_is_an_error_not_a_guess() -> None:
    from conformance.errors import ProbeError

    with pytest.raises(ProbeError, match="unknown password policy profile “corporate”"):
        passwordpolicy.below_minimum("corporate")


def test_label_variants_and_identity_passwords() -> None:
    variants = dict(passwordpolicy.label_variants("k7QmZ-2xR9p"))
    assert variants == {"upper-cased": "K7QMZ-2XR9P", "separators dropped": "k7QmZ2xR9p",
                        "'!' appended": "k7QmZ-2xR9p!", "'1' appended": "k7QmZ-2xR9p1"}
    built = dict(passwordpolicy.identity_passwords(["RC7KQ2M4XZPA", "RC-1080", "refcam", "RC7KQ2M4XZPA"]))
    assert built == {"built from “RC7KQ2M4XZPA”": "RC7KQ2M4XZPA-RC-1080",
                     "built from “RC-1080”": "RC-1080-refcam-RC7KQ2M4XZPA",
                     "built from “refcam”": "refcam-RC7KQ2M4XZPA"}
    assert passwordpolicy.identity_passwords(["ab"]) == []


def test_a_policy_refusal_counts_only_as_a_4xx_with_a_reason() -> None:
    locked = ex(429, {"error": "throttled"}, headers={"Retry-After": "60"})  # longer than a case may wait
    answers = iter([ex(400, {"reasons": ["too short"]}), ex(204), locked, ex(422, {})])
    ctx = _ctx(lambda *_: next(answers))
    account = Throwaway("u", "old", "t", "viewer")
    refused = passwordpolicy._judge_refusals("a", ctx, account, [("short", "x")], label="short ones")
    assert refused.verdict is Verdict.PASS and account.password == "old"
    taken = passwordpolicy._judge_refusals("a", ctx, account, [("short", "y")], label="short ones")
    assert taken.verdict is Verdict.FAIL and account.password == "y"  # the accepted one is now current
    throttled = passwordpolicy._judge_refusals("a", ctx, account, [("short", "z")], label="short ones")
    assert throttled.verdict is Verdict.INCONCLUSIVE
    silent = passwordpolicy._judge_refusals("a", ctx, account, [("short", "w")], label="short ones")
    assert silent.verdict is Verdict.FAIL and "without a reason" in silent.evidence[0].summary


# -- throttling symmetry ---------------------------------------------------

A = throttling.Attempt


def test_names_throttled_alike_pass() -> None:
    known = [A(401, None, 0.2), A(429, 1.0, 0.01), A(429, 1.0, 0.01)]
    unknown = [A(401, None, 0.21), A(429, 1.0, 0.01), A(429, 1.0, 0.01)]
    assert [r.verdict for r in throttling.judge_symmetry(known, unknown)] == [Verdict.PASS, Verdict.PASS]
    never = [A(401, None, 0.2)] * 3  # a device without throttling treats both alike (CRED-06 judges that)
    assert throttling.judge_symmetry(never, never)[0].verdict is Verdict.PASS


def test_unknown_names_never_throttled_fail() -> None:
    known = [A(401, None, 0.2), A(429, 1.0, 0.01), A(429, 1.0, 0.01)]
    unknown = [A(401, None, 0.2)] * 3
    a, _ = throttling.judge_symmetry(known, unknown)
    assert a.verdict is Verdict.FAIL and "the existing name only" in a.reason


def test_different_retry_after_or_timing_fail_and_broken_answers_are_inconclusive() -> None:
    known = [A(401, None, 0.2), A(429, 1.0, 0.01)]
    assert throttling.judge_symmetry(known, [A(401, None, 0.2), A(429, 30.0, 0.01)])[0].verdict is Verdict.FAIL
    fast = [A(401, None, 0.005), A(429, 1.0, 0.01)]
    # one round apart is not yet a finding: the case confirms it on fresh names first
    assert throttling.judge_symmetry(known, fast)[1].verdict is Verdict.INCONCLUSIVE
    for broken in (0, 500, 503):
        result = throttling.judge_symmetry(known, [A(broken, None, 0.0), A(429, 1.0, 0.01)])
        assert [r.verdict for r in result] == [Verdict.INCONCLUSIVE]


def test_a_timing_difference_is_a_fail_only_when_every_confirmation_shows_it() -> None:
    known, fast = [0.2], [0.005]
    leak = [([0.19], [0.004]), ([0.21], [0.006])]
    assert throttling.judge_timing(known, fast, confirm=leak).verdict is Verdict.FAIL
    noise = [([0.19], [0.2]), ([0.21], [0.004])]  # a loaded machine: once apart, then alike
    assert throttling.judge_timing(known, fast, confirm=noise).verdict is Verdict.PASS
    reversed_once = [([0.2], [0.5]), ([0.2], [0.004])]  # apart the other way is not the same finding
    assert throttling.judge_timing(known, fast, confirm=reversed_once).verdict is Verdict.PASS
    assert throttling.judge_timing([0.2], [0.21], confirm=leak).verdict is Verdict.PASS  # alike at once


# -- catalogue -------------------------------------------------------------

NEW_CASES = ("SESS-01", "SESS-02", "SESS-03", "SESS-04", "SESS-05", "ROLE-01", "PWD-01", "PWD-02", "PWD-03", "THR-01")


def test_every_new_case_maps_to_owasp_asvs_v2_v3_or_v4() -> None:
    catalogue = load_catalogue()
    for case_id in NEW_CASES:
        asvs = catalogue.case(case_id).asvs
        assert asvs and all(a.split(".")[0] in ("V2", "V3", "V4") for a in asvs), case_id


def test_a_malformed_asvs_id_is_a_catalogue_error() -> None:
    text = (
        '[groups]\nX = "x"\n[[case]]\nid = "X-01"\ngroup = "X"\ntitle = "t"\npurpose = "p"\nunits = ["a: u"]\n'
        'verdict_rule = "r"\nrequirements = [1]\nks = "C4"\nen = "5.1-1"\nen_status = "M"\ncls = 1\nnist = "LA"\n'
    )
    assert parse_catalogue(text + 'asvs = ["V3.4.1"]\n').cases[0].asvs == ("V3.4.1",)
    with pytest.raises(CatalogueError, match="asvs must be a list of ASVS 4.0.3 ids"):
        parse_catalogue(text + 'asvs = ["3.4.1"]\n')


def test_cookie_case_judges_the_session_cookie_and_the_others_apart() -> None:
    device_cookie = "refcam_device=v1.x; Secure; HttpOnly; SameSite=Strict; Path=/api/v1/session"
    insecure = ex(200, {"token": "new-token"}, cookies=("refcam_session=new-token; Path=/", device_cookie))
    ctx = _ctx(lambda *_: insecure)
    results = {u.unit: u.verdict for u in sessions.cookie_attributes(ctx)}
    assert results == {"a": Verdict.FAIL, "b": Verdict.PASS, "c": Verdict.PASS}


@pytest.mark.parametrize(("after_idle", "verdict"), [(ex(401), Verdict.PASS), (ex(200, {}), Verdict.FAIL),
                                                     (SERVER_ERROR, Verdict.INCONCLUSIVE)])
def test_a_short_declared_idle_timeout_is_waited_out_and_observed(after_idle: Exchange, verdict: Verdict) -> None:
    short = ex(200, {"token": "new-token", "idle_timeout": 0.05, "absolute_timeout": 3600},
               cookies=(SECURE.replace("tok", "new-token").replace("28800", "3600"),))
    ctx = _ctx(lambda method, *_: short if method == "POST" else after_idle)
    a, b = sessions.session_expiry(ctx)
    assert a.verdict is Verdict.PASS and b.verdict is verdict


def test_a_long_idle_timeout_is_judged_from_the_declaration_only() -> None:
    ctx = _ctx(lambda *_: ex(200, {"token": "t", "idle_timeout": 900, "absolute_timeout": 28800}))
    assert [u.verdict for u in sessions.session_expiry(ctx)] == [Verdict.PASS]
    unbounded = _ctx(lambda *_: ex(200, {"token": "t", "idle_timeout": None, "absolute_timeout": 28800}))
    assert [u.verdict for u in sessions.session_expiry(unbounded)] == [Verdict.FAIL]


# -- user enumeration (CRED-07) ----------------------------------------------


class _LoginHTTP(FakeHTTP):
    """Login answers from a function of the user name (the JSON body is what tells them apart)."""

    def request(self, method: str, path: str, *, json_body: Any = None, raw_body: bytes | None = None,
                headers: Any = None, token: str | None = None) -> Exchange:
        name = (json_body or {}).get("username", "")
        self.sent_requests.append((method, path, {"username": name}, token))
        return self.answer(method, path, {"username": name}, token)


def _enumeration_ctx(elapsed: Callable[[int, bool], float]) -> tuple[ProbeContext, list[str]]:
    """CRED-07 against a device whose wrong-password answers take ``elapsed(round, unknown)``."""
    names: list[str] = []

    def answer(method: str, path: str, headers: dict[str, str], token: str | None) -> Exchange:
        name = headers["username"]
        names.append(name)
        round_ = (len(names) - 1) // (2 * credentials.ENUMERATION_SAMPLES)
        return ex(401, {"error": "invalid credentials"}, method="POST", path="/api/v1/session",
                  elapsed=elapsed(round_, name.startswith("nobody-")))

    ctx = ProbeContext(ProbeOptions(target="https://127.0.0.1:1", ca_file=None), Target("https", "127.0.0.1", 1),
                       _LoginHTTP(answer))
    for role in ("viewer", "operator", "admin"):
        ctx.cache[f"user:{role}"] = Account(f"probe-{role}", "pw", "t")
        for r in range(credentials.ENUMERATION_CONFIRM_ROUNDS):
            ctx.cache[f"user:{role}:enumeration-{r}"] = Account(f"probe-{role}-{r}", "pw", "t")
    return ctx, names


def test_cred07_fails_a_timing_difference_only_when_fresh_accounts_show_it_every_round() -> None:
    samples = 2 * credentials.ENUMERATION_SAMPLES
    leak, names = _enumeration_ctx(lambda r, unknown: 0.005 if unknown else 0.2)  # skips the hash
    a, b = credentials.no_enumeration(leak)
    assert a.verdict is Verdict.PASS and b.verdict is Verdict.FAIL and "timing reveals users" in b.reason
    assert len(names) == samples * (1 + credentials.ENUMERATION_CONFIRM_ROUNDS)
    assert {"probe-viewer-0", "probe-operator-1"} <= set(names)  # the confirmations use fresh accounts

    noise, names = _enumeration_ctx(lambda r, unknown: 0.005 if unknown and r == 0 else 0.2)  # one slow patch
    a, b = credentials.no_enumeration(noise)
    assert b.verdict is Verdict.PASS and "not when repeated" in b.reason
    assert len(names) == 2 * samples

    alike, names = _enumeration_ctx(lambda r, unknown: 0.2)
    assert credentials.no_enumeration(alike)[1].verdict is Verdict.PASS and len(names) == samples
