"""Hostile input (issue 13, defect 1): every input is validated before any effect, an
effect and its audit record commit together or not at all, and an unexpected
exception is a 500 with no effect and an ``internal_error`` audit entry.
"""

from __future__ import annotations

from typing import Any

import pytest
from device_fixtures import INITIAL_PASSWORD, NEW_PASSWORD, RunningDevice, StartDevice

from device import audit as audit_module
from device import credentials as credentials_module
from device.appkeys import AUDIT_KEY
from device.errors import StorageError

SURROGATE = "\ud800"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _audit(device: RunningDevice, token: str) -> list[dict[str, Any]]:
    async with device.client() as s, s.get(device.url("/api/v1/audit?limit=500"), headers=bearer(token)) as r:
        assert r.status == 200, await r.text()
        entries: list[dict[str, Any]] = (await r.json())["entries"]
        return entries


async def test_lone_surrogate_logins_are_400_and_neither_count_nor_lock(device: RunningDevice) -> None:
    async with device.client() as s:
        for body in (
            {"username": "admin", "password": SURROGATE},
            {"username": "admin" + SURROGATE, "password": "x"},
            {"username": "admin", "password": "ok", SURROGATE: 1},
        ):
            for _ in range(9):
                async with s.post(device.url("/api/v1/session"), json=body) as r:
                    assert r.status == 400, await r.text()
                    assert (await r.json())["error"] == "bad_encoding"
    # nothing was counted: the owner logs in at once, no lockout, no back-off
    token = await device.admin_token()
    events = [e["event"] for e in await _audit(device, token)]
    assert "lockout" not in events and "login_failure" not in events


async def test_settings_with_a_surrogate_change_nothing(device: RunningDevice) -> None:
    token = await device.admin_token()
    async with device.client() as s:
        async with s.get(device.url("/api/v1/settings"), headers=bearer(token)) as r:
            before = await r.json()
        head = device.app[AUDIT_KEY].head()
        for body in (
            {"password_policy": "kr-terminal", "update_url": "https://x" + SURROGATE},
            {"password_policy": "kr-terminal", "update_url": "https://[::1"},
            {"password_policy": "kr-terminal", "update_url": "https://exa mple"},
            {"update_url": "https://host:99999"},
        ):
            async with s.patch(device.url("/api/v1/settings"), json=body, headers=bearer(token)) as r:
                assert r.status == 400, (body, await r.text())
                assert (await r.json())["error"] in {"bad_value", "bad_encoding"}
        async with s.get(device.url("/api/v1/settings"), headers=bearer(token)) as r:
            assert await r.json() == before
        assert device.app[AUDIT_KEY].head() == head


@pytest.mark.parametrize("query", ["limit=²", "limit=١٢", "after=%C2%B2", "limit=+5", "limit= 5", "limit=0x10"])
async def test_audit_query_integers_are_ascii_digits_only(device: RunningDevice, query: str) -> None:
    token = await device.admin_token()
    async with device.client() as s, s.get(device.url(f"/api/v1/audit?{query}"), headers=bearer(token)) as r:
        assert r.status == 400, await r.text()
        assert (await r.json())["error"] == "bad_query"


async def test_an_unexpected_exception_is_a_500_with_no_effect_and_an_audit_entry(
    device: RunningDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await device.admin_token()

    def broken(password: str, encoded: str) -> None:
        raise RuntimeError("simulated bug in the password check")

    with monkeypatch.context() as m:
        m.setattr(credentials_module, "verify_password", broken)
        async with device.client() as s, s.post(
            device.url("/api/v1/session"), json={"username": "admin", "password": NEW_PASSWORD}
        ) as r:
            assert r.status == 500
            assert (await r.json())["error"] == "internal"
    # no effect: the pessimistic failure was undone, so no back-off meets the next login
    await device.login(password=NEW_PASSWORD)
    entries = await _audit(device, token)
    internal = [e for e in entries if e["event"] == "internal_error"]
    assert len(internal) == 1
    assert internal[0]["detail"]["path"] == "/api/v1/session"
    assert internal[0]["detail"]["exception"] == "RuntimeError"
    assert "login_failure" not in [e["event"] for e in entries]


async def test_an_effect_whose_audit_record_fails_is_undone(
    device: RunningDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await device.admin_token()
    original = audit_module.AuditLog.record

    def failing(self: audit_module.AuditLog, event: str, *args: Any, **kwargs: Any) -> Any:
        if event in {"user_create", "config_change", "user_role", "user_delete", "password_change"}:
            raise StorageError("simulated: audit disk full")
        return original(self, event, *args, **kwargs)

    new_user = {"username": "kim", "role": "viewer", "password": "a quiet river under old bridges"}
    async with device.client() as s:
        async with s.get(device.url("/api/v1/settings"), headers=bearer(token)) as r:
            settings_before = await r.json()
        with monkeypatch.context() as m:
            m.setattr(audit_module.AuditLog, "record", failing)
            async with s.post(device.url("/api/v1/users"), json=new_user, headers=bearer(token)) as r:
                assert r.status == 503, await r.text()
            async with s.patch(
                device.url("/api/v1/settings"), json={"password_policy": "kr-terminal"}, headers=bearer(token)
            ) as r:
                assert r.status == 503, await r.text()
            async with s.patch(
                device.url("/api/v1/users/admin"), json={"role": "admin"}, headers=bearer(token)
            ) as r:
                assert r.status == 503, await r.text()
            async with s.post(
                device.url("/api/v1/session/password"),
                json={"current_password": NEW_PASSWORD, "new_password": "another long passphrase for the owner"},
                headers=bearer(token),
            ) as r:
                assert r.status == 503, await r.text()
        async with s.get(device.url("/api/v1/users/kim"), headers=bearer(token)) as r:
            assert r.status == 404  # not created
        async with s.get(device.url("/api/v1/settings"), headers=bearer(token)) as r:
            assert await r.json() == settings_before  # not changed
    await device.login(password=NEW_PASSWORD)  # the password did not change
    assert INITIAL_PASSWORD != NEW_PASSWORD


async def test_check_update_url_never_raises_anything_but_config_error(start_device: StartDevice) -> None:
    from device.config import check_update_url
    from device.errors import ConfigError

    for value in ("https://[::1", "https://[zz]/", "https://h:99999", "https://x\ud800", "https://h/\x00",
                  "https://h\n.example", "https://", 5, None):
        with pytest.raises(ConfigError):
            check_update_url(value)
    assert check_update_url("https://[::1]:9443/") == "https://[::1]:9443"
