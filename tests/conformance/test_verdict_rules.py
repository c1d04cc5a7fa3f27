"""The central verdict rule against a fake transport: what counts as a refusal, and what never does.

Each answer a device can give (401, 403, 429 with Retry-After, 500, a reset, a
timeout) is produced by a fake transport, so the rule is tested without a
device and without waiting: the clock and sleep are fakes too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest

from conformance.adapters import HTTPBasicAdapter, RefcamAPIAdapter, Session
from conformance.case import ProbeContext, ProbeOptions
from conformance.cases.credentials import MIRAI_PAIRS, mirai_spray
from conformance.http import ProbeHTTP, RawResponse, Target
from conformance.model import Verdict
from conformance.verdicts import Reading, attempt, judge

REFUSAL = json.dumps({"error": "invalid_credentials", "message": "invalid user name or password"}).encode()
THROTTLED = json.dumps({"error": "throttled", "message": "too many failed logins"}).encode()


def _json(status: int, body: bytes, *extra: tuple[str, str]) -> RawResponse:
    return RawResponse(status, (("Content-Type", "application/json"), *extra), body)


@dataclass
class FakeClock:
    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class FakeTransport:
    """Answers each request with the next item: a RawResponse, or an exception to raise."""

    answers: list[RawResponse | BaseException] | Callable[[str, Mapping[str, str], bytes | None], RawResponse]
    sent: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> RawResponse:
        self.sent.append((method, path))
        if callable(self.answers):
            return self.answers(path, headers, body)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def _http(transport: FakeTransport, clock: FakeClock) -> ProbeHTTP:
    http = ProbeHTTP(
        Target.parse("https://camera.test:8443"), ssl_context=None, transport=transport, clock=clock, sleep=clock.sleep
    )
    http.start_case(200, "TEST")
    return http


ADAPTER = RefcamAPIAdapter()


def _attempt(answers: list[RawResponse | BaseException], *, budget: float = 10.0) -> tuple[Reading, str, FakeClock]:
    clock = FakeClock()
    http = _http(FakeTransport(answers), clock)
    j = attempt(
        lambda: ADAPTER.login(http, "admin", "admin"),
        accepted=lambda ex: ADAPTER.session(ex, "", "") is not None,
        refusal=ADAPTER.is_refusal,
        clock=clock,
        sleep=clock.sleep,
        deadline=clock.now + budget,
    )
    return j.reading, j.reason, clock


def test_401_with_the_devices_refusal_body_is_a_refusal() -> None:
    reading, reason, _ = _attempt([_json(401, REFUSAL)])
    assert reading is Reading.REFUSED and "401" in reason


def test_403_with_the_devices_refusal_body_is_a_refusal() -> None:
    reading, _, _ = _attempt([_json(403, json.dumps({"error": "forbidden"}).encode())])
    assert reading is Reading.REFUSED


def test_401_without_the_refusal_body_is_not_read_as_a_refusal() -> None:
    reading, reason, _ = _attempt([RawResponse(401, (), b"<html>proxy says no</html>")])
    assert reading is Reading.UNDECIDED and "refusal body" in reason


def test_429_is_waited_out_within_the_budget_and_the_retry_decides() -> None:
    token = json.dumps({"token": "t" * 43, "password_change_required": False}).encode()
    reading, _, clock = _attempt([_json(429, THROTTLED, ("Retry-After", "3")), _json(200, token)])
    assert reading is Reading.ACCEPTED
    assert clock.slept == [3.0]


def test_429_beyond_the_budget_is_undecided_never_a_refusal() -> None:
    reading, reason, clock = _attempt([_json(429, THROTTLED, ("Retry-After", "60"))], budget=5.0)
    assert reading is Reading.UNDECIDED
    assert "429" in reason and "Retry-After 60" in reason
    assert clock.slept == []


def test_429_without_retry_after_is_undecided() -> None:
    reading, reason, _ = _attempt([_json(429, THROTTLED)])
    assert reading is Reading.UNDECIDED and "no Retry-After" in reason


def test_500_is_never_a_refusal() -> None:
    reading, reason, _ = _attempt([_json(500, json.dumps({"error": "storage"}).encode())])
    assert reading is Reading.UNDECIDED and "500" in reason


def test_a_reset_connection_is_never_a_refusal() -> None:
    reading, reason, _ = _attempt([ConnectionResetError(104, "Connection reset by peer")])
    assert reading is Reading.UNDECIDED and "ConnectionResetError" in reason


def test_a_timeout_is_never_a_refusal() -> None:
    reading, reason, _ = _attempt([TimeoutError("timed out")])
    assert reading is Reading.UNDECIDED and "TimeoutError" in reason


def test_http_basic_refusal_needs_the_challenge() -> None:
    basic = HTTPBasicAdapter(protected_route="/api/config", info_route=None)
    http = _http(FakeTransport([RawResponse(401, (("WWW-Authenticate", 'Basic realm="x"'),), b"")]), FakeClock())
    ex = basic.login(http, "admin", "admin")
    assert judge(ex, accepted=lambda e: False, refusal=basic.is_refusal).reading is Reading.REFUSED
    plain = _http(FakeTransport([RawResponse(401, (), b"")]), FakeClock())
    ex = basic.login(plain, "admin", "admin")
    assert judge(ex, accepted=lambda e: False, refusal=basic.is_refusal).reading is Reading.UNDECIDED


# -- CRED-03 (Mirai spray) on a throttling unit -------------------------------------------------


def _throttling_unit(accepts: tuple[str, str] | None, *, free_attempts: int, retry_after: str = "60"):  # type: ignore[no-untyped-def]
    """A unit that answers `free_attempts` logins, then only 429 with Retry-After."""
    count = {"n": 0}

    def answer(path: str, headers: Mapping[str, str], body: bytes | None) -> RawResponse:
        if path == "/api/v1/users":
            return _json(200, json.dumps({"users": [{"username": "admin", "role": "admin"}]}).encode())
        count["n"] += 1
        if count["n"] > free_attempts:
            return _json(429, THROTTLED, ("Retry-After", retry_after))
        doc = json.loads(body or b"{}")
        if accepts and (doc.get("username"), doc.get("password")) == accepts:
            return _json(200, json.dumps({"token": "t" * 43, "password_change_required": False}).encode())
        return _json(401, REFUSAL)

    return answer


def _spray(answer, preflight: Session | None):  # type: ignore[no-untyped-def]
    clock = FakeClock()
    http = _http(FakeTransport(answer), clock)
    ctx = ProbeContext(ProbeOptions(target="https://camera.test:8443", ca_file=None), http.target, http)
    ctx.preflight_session = preflight
    ctx.deadline = clock.now + 5.0
    return mirai_spray(ctx)


def test_a_throttling_unit_that_accepts_admin_admin_fails_never_passes() -> None:
    # every spray answer is 429 (the three runs: FAIL, FAIL, PASS); the label
    # password "admin" was verified by the preflight, so the unit's admin password is known
    preflight = Session("admin", "admin", {"Authorization": "Bearer x"}, "x", False)
    units = _spray(_throttling_unit(("admin", "admin"), free_attempts=0), preflight)
    assert [u.verdict for u in units] == [Verdict.FAIL]
    assert "Mirai password" in units[0].reason


def test_a_throttling_unit_without_verified_evidence_is_inconclusive() -> None:
    units = _spray(_throttling_unit(("admin", "admin"), free_attempts=0), None)
    assert [u.verdict for u in units] == [Verdict.INCONCLUSIVE]
    assert "429" in units[0].reason


def test_a_short_throttle_is_waited_out_and_the_accepted_pair_found() -> None:
    inner = _throttling_unit(("admin", "admin"), free_attempts=10**6)
    calls = {"n": 0}

    def answer(path: str, headers: Mapping[str, str], body: bytes | None) -> RawResponse:
        calls["n"] += 1
        if calls["n"] % 2:  # every other answer: throttled for one second
            return _json(429, THROTTLED, ("Retry-After", "1"))
        return inner(path, headers, body)

    clock = FakeClock()
    http = _http(FakeTransport(answer), clock)
    ctx = ProbeContext(ProbeOptions(target="https://camera.test:8443", ca_file=None), http.target, http)
    ctx.deadline = clock.now + 100.0
    units = mirai_spray(ctx)
    assert units[0].verdict is Verdict.FAIL
    assert clock.slept and all(s == 1.0 for s in clock.slept)


def test_a_unit_refusing_every_pair_passes() -> None:
    units = _spray(_throttling_unit(None, free_attempts=10**6), None)
    assert units[0].verdict is Verdict.PASS
    assert str(len(MIRAI_PAIRS)) in units[0].reason


def test_throttled_pairs_are_decided_only_from_verified_evidence() -> None:
    # the preflight verified admin's strong password; the unit lists only admin
    preflight = Session("admin", "S3cure-unique-label-pw", {"Authorization": "Bearer x"}, "x", False)
    units = _spray(_throttling_unit(None, free_attempts=5), preflight)
    assert units[0].verdict is Verdict.PASS, units[0].reason
    assert "5 pairs refused" in units[0].reason


@pytest.mark.parametrize("status", [500, 503])
def test_server_errors_in_the_spray_are_inconclusive(status: int) -> None:
    def answer(path: str, headers: Mapping[str, str], body: bytes | None) -> RawResponse:
        return _json(status, json.dumps({"error": "storage"}).encode())

    units = _spray(answer, None)
    assert units[0].verdict is Verdict.INCONCLUSIVE and str(status) in units[0].reason


# -- the preflight's credential check -----------------------------------------------------------


def test_preflight_spends_one_attempt_on_a_wrong_password() -> None:
    from conformance.errors import PreflightError
    from conformance.preflight import check_login

    transport = FakeTransport([_json(401, REFUSAL), _json(401, REFUSAL)])
    http = _http(transport, FakeClock())
    with pytest.raises(PreflightError, match="does not log in"):
        check_login(http, ADAPTER, "admin", "typo", what="the label password")
    assert len(transport.sent) == 1


def test_preflight_waits_out_a_throttle_the_device_did_not_judge_the_password_in() -> None:
    from conformance.preflight import check_login

    token = json.dumps({"token": "t" * 43, "password_change_required": True}).encode()
    clock = FakeClock()
    transport = FakeTransport([_json(429, THROTTLED, ("Retry-After", "30")), _json(200, token)])
    session, _ = check_login(_http(transport, clock), ADAPTER, "admin", "label", what="the label password")
    assert session.must_change and clock.slept == [30.0]


def test_preflight_gives_up_on_a_long_throttle_with_one_line() -> None:
    from conformance.errors import PreflightError
    from conformance.preflight import check_login

    transport = FakeTransport([_json(429, THROTTLED, ("Retry-After", "900"))])
    with pytest.raises(PreflightError, match="throttled"):
        check_login(_http(transport, FakeClock()), ADAPTER, "admin", "label", what="the label password")
