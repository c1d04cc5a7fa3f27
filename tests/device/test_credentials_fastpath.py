"""The in-memory success path of digest logins keeps every property of the SQLite throttle.

``CredentialStore.authenticate_proof_fast`` decides only the common case (no failure
and no lockout recorded for the account or the source, a right proof) without a
transaction; everything else goes through ``authenticate_proof`` and SQLite.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from device_fixtures import INITIAL_PASSWORD, NEW_PASSWORD
from test_digest import NOW, open_store

from device.errors import InvalidCredentials, Throttled

SRC = "127.0.0.9"


def right(password: str):  # type: ignore[no-untyped-def]
    return lambda secret: secret == password


def writes(store: object) -> int:
    return int(store._db.total_changes)  # type: ignore[attr-defined]


def test_a_clean_success_writes_nothing_and_needs_no_transaction(tmp_path: Path) -> None:
    store = open_store(tmp_path / "users.sqlite3", os.urandom(32))
    assert store.authenticate_proof_fast("admin", right(INITIAL_PASSWORD), source=SRC) is None  # nothing cached yet
    assert store.authenticate_proof("admin", right(INITIAL_PASSWORD), source=SRC, now=NOW, route="onvif").must_change
    before = writes(store)
    user = store.authenticate_proof_fast("admin", right(INITIAL_PASSWORD), source=SRC)
    assert user is not None and user.name == "admin" and user.must_change  # the forced change still shows
    assert store.authenticate_proof_fast("admin", right("a wrong guess"), source=SRC) is None  # never a refusal here
    assert store.authenticate_proof_fast("nobody", right(INITIAL_PASSWORD), source=SRC) is None
    assert writes(store) == before


def test_a_failure_sends_account_and_source_to_sqlite_until_a_success_clears_them(tmp_path: Path) -> None:
    store = open_store(tmp_path / "users.sqlite3", os.urandom(32))
    store.authenticate_proof("admin", right(INITIAL_PASSWORD), source=SRC, now=NOW, route="onvif")
    with pytest.raises(InvalidCredentials):
        store.authenticate_proof("admin", right("a wrong guess"), source="127.0.0.7", now=NOW, route="onvif")
    # the account has a failure recorded: even a right proof from a clean source is decided by SQLite
    assert store.authenticate_proof_fast("admin", right(INITIAL_PASSWORD), source=SRC) is None
    with pytest.raises(Throttled):  # the back-off after the failure holds for the right password too
        store.authenticate_proof("admin", right(INITIAL_PASSWORD), source=SRC, now=NOW + 0.5, route="onvif")
    store.authenticate_proof("admin", right(INITIAL_PASSWORD), source=SRC, now=NOW + 2, route="onvif")
    assert store.authenticate_proof_fast("admin", right(INITIAL_PASSWORD), source=SRC) is not None  # reset
    # the failing source stays marked while its failure is inside the window
    assert store.authenticate_proof_fast("admin", right(INITIAL_PASSWORD), source="127.0.0.7") is None


def test_a_locked_account_is_refused_even_with_the_right_proof(tmp_path: Path) -> None:
    store = open_store(tmp_path / "users.sqlite3", os.urandom(32))
    store.authenticate_proof("admin", right(INITIAL_PASSWORD), source=SRC, now=NOW, route="onvif")
    events: list[str] = []
    for i in range(5):
        with pytest.raises(InvalidCredentials):
            store.authenticate_proof(
                "admin", right("a wrong guess"), source=f"127.0.1.{i}", now=NOW + 100 * i, route="onvif",
                audit=lambda event, detail: events.append(event),
            )
    assert "lockout" in events and events.count("login_failure") == 5
    assert store.authenticate_proof_fast("admin", right(INITIAL_PASSWORD), source=SRC) is None
    with pytest.raises(Throttled):
        store.authenticate_proof("admin", right(INITIAL_PASSWORD), source=SRC, now=NOW + 401, route="onvif")


def test_marks_survive_a_restart(tmp_path: Path) -> None:
    key = os.urandom(32)
    store = open_store(tmp_path / "users.sqlite3", key)
    with pytest.raises(InvalidCredentials):
        store.authenticate_proof("admin", right("a wrong guess"), source=SRC, now=NOW, route="onvif")
    store.close()
    again = open_store(tmp_path / "users.sqlite3", key)
    with pytest.raises(Throttled):
        again.authenticate_proof("admin", right(INITIAL_PASSWORD), source=SRC, now=NOW + 0.5, route="onvif")
    assert again.authenticate_proof_fast("admin", right(INITIAL_PASSWORD), source=SRC) is None


def test_the_secret_cache_follows_change_reset_and_delete(tmp_path: Path) -> None:
    store = open_store(tmp_path / "users.sqlite3", os.urandom(32))
    store.authenticate_proof("admin", right(INITIAL_PASSWORD), source=SRC, now=NOW, route="onvif")
    store.change_password("admin", INITIAL_PASSWORD, NEW_PASSWORD, source=SRC, now=NOW + 1)
    assert store.authenticate_proof_fast("admin", right(INITIAL_PASSWORD), source=SRC) is None  # the old one is gone
    with pytest.raises(InvalidCredentials):
        store.authenticate_proof("admin", right(INITIAL_PASSWORD), source="127.0.0.8", now=NOW + 2, route="onvif")
    store.authenticate_proof("admin", right(NEW_PASSWORD), source=SRC, now=NOW + 10, route="onvif")
    user = store.authenticate_proof_fast("admin", right(NEW_PASSWORD), source=SRC)
    assert user is not None and not user.must_change
    store.create_user("olga", "viewer", "a viewer's own long passphrase", now=NOW)
    store.authenticate_proof("olga", right("a viewer's own long passphrase"), source=SRC, now=NOW + 20, route="onvif")
    store.reset_password("olga", "a reset passphrase for the viewer", now=NOW + 21)
    assert store.authenticate_proof_fast("olga", right("a viewer's own long passphrase"), source=SRC) is None
    store.authenticate_proof("olga", right("a reset passphrase for the viewer"), source=SRC, now=NOW + 22, route="onvif")
    assert store.authenticate_proof_fast("olga", right("a reset passphrase for the viewer"), source=SRC) is not None
    store.delete_user("olga")
    assert store.authenticate_proof_fast("olga", right("a reset passphrase for the viewer"), source=SRC) is None
