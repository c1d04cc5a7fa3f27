"""Login sessions: random bearer tokens, stored only as SHA-256, with idle and absolute expiry.

A login issues a 32-byte token from ``secrets`` (URL-safe base64); the
database keeps only its SHA-256 digest, so a copy of the database lets nobody
in. The CSRF token is ``HMAC-SHA256(key=token, "refcam csrf v1")``: bound to
the session, unforgeable without the (HttpOnly) session cookie, and
re-derivable, so ``GET /api/v1/session`` can hand it again to a reloaded page. A session ends on logout, after
``idle_timeout`` seconds without a request, or ``absolute_timeout`` seconds
after login, whichever is first (:func:`check_session_times`, a pure rule).

Example::

    store = SessionStore.open(path, config=SessionConfig())
    issued = store.create("admin", now=now)
    session = store.resolve(issued.token, now=now + 60)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from common.sqlitedb import open_database

from .config import SessionConfig
from .errors import SessionError, StorageError
from .i18n import msg

TOKEN_BYTES = 32
CSRF_LABEL = b"refcam csrf v1"


def token_digest(token: str) -> str:
    """Hex SHA-256 of a token: what the database stores and what identifies the session."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Session:
    session_id: str  # hex SHA-256 of the token
    username: str
    created: float  # seconds since the epoch
    last_seen: float


@dataclass(frozen=True)
class IssuedSession:
    token: str  # given to the client once, never stored
    csrf_token: str
    session: Session


def csrf_token_for(token: str) -> str:
    """The CSRF token bound to session ``token`` (a keyed hash; the token stays secret)."""
    mac = hmac.new(token.encode("utf-8", "surrogatepass"), CSRF_LABEL, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def check_session_times(session: Session, *, now: float, config: SessionConfig) -> None:
    """Raise :class:`SessionError` if ``session`` has expired at ``now``."""
    if now - session.created >= config.absolute_timeout:
        raise SessionError(msg(
            "session expired: {age:.0f} s since login, at most {limit:.0f} s allowed",
            age=now - session.created, limit=config.absolute_timeout,
        ))
    if now - session.last_seen >= config.idle_timeout:
        raise SessionError(msg(
            "session expired: idle for {idle:.0f} s, at most {limit:.0f} s allowed",
            idle=now - session.last_seen, limit=config.idle_timeout,
        ))


_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    created REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions (username);
"""


class SessionStore:
    def __init__(self, connection: sqlite3.Connection, *, config: SessionConfig) -> None:
        self._db = connection
        self._lock = threading.Lock()
        # Sessions read from the database, by token digest; writes go to both.
        # Only this process writes the database (one running firmware per device).
        self._cache: dict[str, Session] = {}
        self.config = config

    @classmethod
    def open(cls, path: Path, *, config: SessionConfig) -> SessionStore:
        try:
            # losing a last-seen update to a power cut is harmless
            db = open_database(path, schema=_SCHEMA, synchronous="NORMAL")
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the session database {path}: {exc}") from exc
        return cls(db, config=config)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def create(
        self, username: str, *, now: float, commit_hook: Callable[[], object] | None = None
    ) -> IssuedSession:
        """A new session; ``commit_hook`` (the audit record) runs before COMMIT, and if it
        raises the session is never created."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        session = Session(token_digest(token), username, now, now)
        with self._lock:
            self._cache.clear()
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.execute(
                        "INSERT INTO sessions VALUES (?, ?, ?, ?)", (session.session_id, username, now, now)
                    )
                    self._db.execute(
                        "DELETE FROM sessions WHERE created <= ? OR last_seen <= ?",
                        (now - self.config.absolute_timeout, now - self.config.idle_timeout),
                    )
                    if commit_hook is not None:
                        commit_hook()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot write the session database: {exc}") from exc
        return IssuedSession(token=token, csrf_token=csrf_token_for(token), session=session)

    def resolve(self, token: str, *, now: float) -> Session:
        """The live session for ``token``; raises :class:`SessionError` (and forgets it) if expired."""
        digest = token_digest(token)
        with self._lock:
            session = self._cache.get(digest)
            if session is None:
                row = self._db.execute(
                    "SELECT id, username, created, last_seen FROM sessions WHERE id = ?", (digest,)
                ).fetchone()
                if row is None:
                    raise SessionError(msg("no such session (logged out, expired or never issued)"))
                session = self._cache[digest] = Session(*row)
            try:
                check_session_times(session, now=now, config=self.config)
            except SessionError:
                self._cache.pop(digest, None)
                with self._db:
                    self._db.execute("DELETE FROM sessions WHERE id = ?", (digest,))
                raise
            if now - session.last_seen >= self.config.touch_interval:
                with self._db:
                    self._db.execute("UPDATE sessions SET last_seen = ? WHERE id = ?", (now, digest))
                self._cache[digest] = replace(session, last_seen=now)
        return session

    @staticmethod
    def check_csrf(token: str, presented: str) -> None:
        """Raise :class:`SessionError` unless ``presented`` is the CSRF token of session ``token``."""
        expected = csrf_token_for(token).encode("ascii")
        if not presented or not hmac.compare_digest(expected, presented.encode("utf-8", "surrogatepass")):
            raise SessionError(msg("missing or wrong CSRF token"))

    def delete(self, session_id: str, *, commit_hook: Callable[[], object] | None = None) -> None:
        """End one session; ``commit_hook`` (the audit record) runs before COMMIT."""
        with self._lock:
            self._cache.pop(session_id, None)
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
                    if commit_hook is not None:
                        commit_hook()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot write the session database: {exc}") from exc

    def delete_user_sessions(self, username: str, *, keep: str | None = None) -> int:
        """End every session of ``username`` except ``keep``; returns how many ended."""
        with self._lock, self._db:
            cursor = self._db.execute(
                "DELETE FROM sessions WHERE username = ? AND id IS NOT ?", (username, keep)
            )
            self._cache = {
                k: v for k, v in self._cache.items() if v.username != username or k == keep
            }
        return cursor.rowcount

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT COUNT(*) FROM sessions").fetchone()
        return int(n)
