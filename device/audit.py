"""Tamper-evident audit log (EN 303 645 5.7-2): a hash chain in SQLite.

Each entry is ``seq, time, event, actor, source, detail`` plus ``prev_hash``
and ``hash = SHA-256(canonical JSON of the entry fields || prev_hash)``, where
canonical JSON is ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` and the first entry's ``prev_hash`` is 64 zeros.
:func:`verify_entries` (pure) raises :class:`AuditChainError` naming the first
bad ``seq``: an edited entry breaks its own hash, a deleted one leaves a gap in
``seq`` and breaks the next entry's ``prev_hash``. Dropping entries from the
*end* is only visible against a head (seq, hash) kept elsewhere, e.g. the
last value an admin exported.

The database uses WAL with ``synchronous=FULL``: an entry whose ``record``
returned survives ``kill -9`` and power loss.

Events: ``boot``, ``boot_notice`` (fallback/tamper from the boot chain),
``login_success``, ``login_failure``, ``lockout``, ``logout``,
``password_change``, ``user_create``/``user_delete``/``user_role``/
``user_password_reset``, ``config_change``, ``update_*`` (update routes).

Example::

    log = AuditLog.open(path)
    log.record("login_failure", actor="admin", source="127.0.0.1", detail={}, now=now)
    log.verify_chain()
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.sqlitedb import open_database

from .errors import AuditChainError, StorageError

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(
    *, seq: int, time: float, event: str, actor: str, source: str, detail: Mapping[str, Any], prev_hash: str
) -> str:
    body = canonical_json(
        {"seq": seq, "time": time, "event": event, "actor": actor, "source": source, "detail": detail}
    )
    return hashlib.sha256((body + prev_hash).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: float  # seconds since the epoch
    event: str
    actor: str  # user name, "-" for the device itself
    source: str  # client address, or "device"
    detail: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "event": self.event,
            "actor": self.actor,
            "source": self.source,
            "detail": dict(self.detail),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def verify_entries(entries: Iterable[AuditEntry]) -> int:
    """Check the chain from ``seq`` 1; returns the number of entries or raises AuditChainError."""
    expected_seq, prev = 1, GENESIS_HASH
    for entry in entries:
        if entry.seq != expected_seq:
            raise AuditChainError(
                expected_seq, f"missing: the log jumps from {expected_seq - 1} to {entry.seq}"
            )
        if entry.prev_hash != prev:
            raise AuditChainError(entry.seq, "prev_hash does not match the previous entry's hash")
        recomputed = entry_hash(
            seq=entry.seq,
            time=entry.time,
            event=entry.event,
            actor=entry.actor,
            source=entry.source,
            detail=entry.detail,
            prev_hash=entry.prev_hash,
        )
        if recomputed != entry.hash:
            raise AuditChainError(entry.seq, "content does not match its hash (edited)")
        prev, expected_seq = entry.hash, expected_seq + 1
    return expected_seq - 1


_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    event TEXT NOT NULL,
    actor TEXT NOT NULL,
    source TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
"""


class AuditLog:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> AuditLog:
        try:
            db = open_database(path, schema=_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the audit log {path}: {exc}") from exc
        return cls(db)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(
        self, event: str, actor: str, source: str, detail: Mapping[str, Any], now: float
    ) -> AuditEntry:
        """Append one entry (durable when this returns); ``detail`` must be JSON-serialisable."""
        detail_json = canonical_json(dict(detail))
        detail_value = json.loads(detail_json)  # what verification will read back
        try:
            with self._lock, self._db:
                self._db.execute("BEGIN IMMEDIATE")
                row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS_HASH)
                digest = entry_hash(
                    seq=seq, time=now, event=event, actor=actor, source=source,
                    detail=detail_value, prev_hash=prev,
                )
                self._db.execute(
                    "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (seq, now, event, actor, source, detail_json, prev, digest),
                )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot append to the audit log: {exc}") from exc
        return AuditEntry(seq, now, event, actor, source, detail_value, prev, digest)

    @staticmethod
    def _entry(row: tuple[Any, ...]) -> AuditEntry:
        seq, time, event, actor, source, detail, prev, digest = row
        try:
            detail_value = json.loads(detail)
        except ValueError as exc:
            raise AuditChainError(seq, "detail is not JSON (edited)") from exc
        return AuditEntry(seq, time, event, actor, source, detail_value, prev, digest)

    def page(self, *, after: int = 0, limit: int = 100) -> list[AuditEntry]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit)
            ).fetchall()
        return [self._entry(r) for r in rows]

    def entries(self, *, batch: int = 1000) -> Iterator[AuditEntry]:
        after = 0
        while True:
            chunk = self.page(after=after, limit=batch)
            if not chunk:
                return
            yield from chunk
            after = chunk[-1].seq

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest entry, (0, GENESIS_HASH) when empty."""
        with self._lock:
            row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS_HASH)

    def verify_chain(self) -> int:
        """Verify every entry; returns how many, raises :class:`AuditChainError` at the first bad one."""
        return verify_entries(self.entries())
