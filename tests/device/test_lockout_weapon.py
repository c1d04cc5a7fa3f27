"""Lockout as a weapon (issue 13, defect 3): OWASP device cookies.

An attacker anywhere keeps hammering the admin account; the owner, whose
browser holds a device cookie from an earlier login, still gets in. Brute
force stays impracticable: per-source throttle first, per-account back-off and
lockout for untrusted clients, per-cookie limits for trusted ones, all 429 with
Retry-After, and every lockout decision and its end in the audit log.
"""

from __future__ import annotations

from typing import Any

import aiohttp
from device_fixtures import NEW_PASSWORD, RunningDevice

from device.devicecookies import (
    DEVICE_COOKIE,
    device_cookie_nonce,
    issue_device_cookie,
    new_device_key,
)

WRONG = "wrong wrong wrong wrong"
LOGIN = "/api/v1/session"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _post(s: aiohttp.ClientSession, device: RunningDevice, username: str, password: str) -> tuple[int, Any, Any]:
    async with s.post(device.url(LOGIN), json={"username": username, "password": password}) as r:
        return r.status, await r.json(), r.headers


def _device_cookie(s: aiohttp.ClientSession) -> str | None:
    for cookie in s.cookie_jar:
        if cookie.key == DEVICE_COOKIE:
            return cookie.value
    return None


def test_device_cookie_is_bound_to_key_user_and_age() -> None:
    key = new_device_key()
    cookie = issue_device_cookie(key, "admin", now=1000.0)
    assert device_cookie_nonce(key, cookie, "admin", now=1000.0, max_age=100) is not None
    assert device_cookie_nonce(key, cookie, "kim", now=1000.0, max_age=100) is None  # another user
    assert device_cookie_nonce(new_device_key(), cookie, "admin", now=1000.0, max_age=100) is None  # forged
    assert device_cookie_nonce(key, cookie, "admin", now=1101.0, max_age=100) is None  # too old
    tampered = cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB")
    assert device_cookie_nonce(key, tampered, "admin", now=1000.0, max_age=100) is None
    for junk in (None, "", "v1", "v1.a.b.c.d", "x" * 600, "v1.\ud800.a.1.b", "v1.YWRtaW4.00.².x"):
        assert device_cookie_nonce(key, junk, "admin", now=1000.0, max_age=100) is None
    assert issue_device_cookie(key, "admin", now=1.0) != issue_device_cookie(key, "admin", now=1.0)  # fresh nonce


async def test_an_attacker_cannot_keep_the_owner_with_a_device_cookie_out(device: RunningDevice) -> None:
    token = await device.admin_token()
    owner = device.client()  # the owner's browser: keeps its cookies
    status, _, _ = await _post(owner, device, "admin", NEW_PASSWORD)
    assert status == 200 and _device_cookie(owner)
    attacker = device.client(cookie_jar=aiohttp.DummyCookieJar())
    attacker_statuses = []
    owner_statuses = []
    for _ in range(30):  # 300 s of an attacker who tries whenever allowed, and more
        for _ in range(3):
            status, body, headers = await _post(attacker, device, "admin", WRONG)
            attacker_statuses.append(status)
            if status == 429:
                assert int(headers["Retry-After"]) == body["retry_after"] >= 1
        status, body, _ = await _post(owner, device, "admin", NEW_PASSWORD)
        owner_statuses.append(status)
        device.clock.advance(10)
    assert owner_statuses == [200] * 30, owner_statuses
    assert attacker_statuses.count(401) <= 12 and 429 in attacker_statuses  # the attacker is slowed down
    # a client the device does not recognise is still locked out: brute force stays impracticable
    stranger = device.client(cookie_jar=aiohttp.DummyCookieJar())
    status, body, headers = await _post(stranger, device, "admin", NEW_PASSWORD)
    assert status == 429 and body["error"] == "throttled" and "Retry-After" in headers
    async with device.client() as s, s.get(device.url("/api/v1/audit?limit=500"), headers=bearer(token)) as r:
        entries = (await r.json())["entries"]
    lockouts = [e for e in entries if e["event"] == "lockout"]
    assert lockouts and all(e["detail"]["scope"] == "account" and e["detail"]["seconds"] > 0 for e in lockouts)
    ends = [e for e in entries if e["event"] == "lockout_end"]
    assert ends and all(e["detail"]["scope"] == "account" for e in ends)
    failures = [e for e in entries if e["event"] == "login_failure"]
    assert all(not e["detail"]["trusted_client"] for e in failures)


async def test_a_device_cookie_is_itself_limited_and_only_for_its_user(device: RunningDevice) -> None:
    await device.admin_token()
    owner = device.client()
    assert (await _post(owner, device, "admin", NEW_PASSWORD))[0] == 200
    # a cookie for admin does not make a login as another name trusted
    status, _, _ = await _post(owner, device, "mallory", WRONG)
    assert status == 401
    status, _, _ = await _post(owner, device, "mallory", WRONG)
    assert status == 429  # the untrusted account back-off applies to mallory
    # a stolen cookie gives no free guesses: back-off, then lockout of that cookie
    waits = []
    for _ in range(6):
        status, _, _ = await _post(owner, device, "admin", WRONG)
        assert status == 401
        status, body, headers = await _post(owner, device, "admin", NEW_PASSWORD)
        assert status == 429 and headers["Retry-After"] == str(body["retry_after"])
        waits.append(body["retry_after"])
        device.clock.advance(float(body["retry_after"]))
    assert waits == [1, 2, 4, 8, 60, 120]
    # meanwhile the account itself was never locked for untrusted clients by these failures
    stranger = device.client(cookie_jar=aiohttp.DummyCookieJar())
    assert (await _post(stranger, device, "admin", NEW_PASSWORD))[0] == 200


async def test_per_source_throttle_comes_first_and_its_lockout_is_audited(device: RunningDevice) -> None:
    token = await device.admin_token()
    attacker = device.client(cookie_jar=aiohttp.DummyCookieJar())
    statuses = []
    for i in range(25):  # many accounts from one source: the source throttle stops it
        statuses.append((await _post(attacker, device, f"user{i}", WRONG))[0])
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
    device.clock.advance(61)
    async with device.client() as s:
        # the source lockout ended; its end is recorded with the next attempt from it
        assert (await _post(s, device, "admin", NEW_PASSWORD))[0] == 200
        async with s.get(device.url("/api/v1/audit?limit=500"), headers=bearer(token)) as r:
            entries = (await r.json())["entries"]
    scopes = [(e["event"], e["detail"].get("scope")) for e in entries if e["event"].startswith("lockout")]
    assert ("lockout", "source") in scopes and ("lockout_end", "source") in scopes


async def test_failures_of_the_empty_user_name_are_no_source_lockout(device: RunningDevice) -> None:
    token = await device.admin_token()
    attacker = device.client(cookie_jar=aiohttp.DummyCookieJar())
    for _ in range(3):
        assert (await _post(attacker, device, "", WRONG))[0] == 401
        device.clock.advance(10)
    async with device.client() as s, s.get(device.url("/api/v1/audit?limit=500"), headers=bearer(token)) as r:
        entries = (await r.json())["entries"]
    assert not [e for e in entries if e["event"] == "lockout"], entries
