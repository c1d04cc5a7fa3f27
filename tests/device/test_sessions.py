"""Sessions: hashed tokens, idle and absolute expiry on an injected clock, logout, password change."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from device_fixtures import NOW, RunningDevice

from device.config import SessionConfig
from device.errors import SessionError
from device.sessions import SessionStore, check_session_times


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def whoami(device: RunningDevice, token: str) -> int:
    async with device.client() as s, s.get(device.url("/api/v1/session"), headers=auth(token)) as r:
        return r.status


def test_store_keeps_only_token_digests(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = SessionStore.open(tmp_path / "s.sqlite3", config=SessionConfig())
    issued = store.create("admin", now=NOW)
    store.close()
    dump = "\n".join(sqlite3.connect(tmp_path / "s.sqlite3").iterdump())
    assert issued.token not in dump and issued.csrf_token not in dump
    assert hashlib.sha256(issued.token.encode()).hexdigest() in dump
    assert len(issued.token) >= 43  # 32 random bytes, URL-safe base64


def test_expiry_rule_names_the_limit() -> None:
    store_cfg = SessionConfig()
    from device.sessions import Session

    s = Session("id", "admin", created=0.0, last_seen=0.0)
    check_session_times(s, now=899.0, config=store_cfg)
    with pytest.raises(SessionError, match="idle for 900 s, at most 900 s allowed"):
        check_session_times(s, now=900.0, config=store_cfg)
    old = Session("id", "admin", created=0.0, last_seen=28_799.0)
    with pytest.raises(SessionError, match="28800 s since login, at most 28800 s allowed"):
        check_session_times(old, now=28_800.0, config=store_cfg)


async def test_idle_session_expires_after_15_minutes(device: RunningDevice) -> None:
    token = (await device.login())["token"]
    device.clock.advance(14 * 60)
    assert await whoami(device, token) == 200  # activity keeps it alive
    device.clock.advance(14 * 60)
    assert await whoami(device, token) == 200
    device.clock.advance(15 * 60)
    assert await whoami(device, token) == 401
    device.clock.advance(-15 * 60)  # and it stays gone
    assert await whoami(device, token) == 401


async def test_active_session_ends_after_8_hours(device: RunningDevice) -> None:
    token = (await device.login())["token"]
    for _ in range(47):  # every 10 minutes for 7 h 50 min
        device.clock.advance(600)
        assert await whoami(device, token) == 200
    device.clock.advance(600)
    assert await whoami(device, token) == 401


async def test_logout_ends_the_session(device: RunningDevice) -> None:
    token = (await device.login())["token"]
    async with device.client() as s, s.delete(device.url("/api/v1/session"), headers=auth(token)) as r:
        assert r.status == 204
    assert await whoami(device, token) == 401


async def test_password_change_ends_the_other_sessions(device: RunningDevice) -> None:
    other = (await device.login())["token"]
    device.clock.advance(2)
    kept = await device.admin_token()
    assert await whoami(device, kept) == 200
    assert await whoami(device, other) == 401


async def test_garbage_tokens_are_401_not_500(device: RunningDevice) -> None:
    for header in ("Bearer ", "Bearer \udcff", "Basic YWRtaW46YWRtaW4=", "Bearer " + "A" * 5000, "bearer x y"):
        async with device.client() as s, s.get(
            device.url("/api/v1/status"), headers={"Authorization": header.encode("utf-8", "replace").decode()}
        ) as r:
            assert r.status in (400, 401), header
