"""Tamper-evident audit log (EN 303 645 5.7-2): a keyed hash chain in SQLite, anchored in secure storage.

Each entry is ``seq, time, event, actor, source, detail`` plus ``prev_hash``
and ``hash = HMAC-SHA256(key, canonical JSON of the entry fields || prev_hash)``,
where canonical JSON is ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` and the first entry's ``prev_hash`` is 64 zeros. The key
is device-unique, derived by the boot side from the UDS
(``BootServices.derive_key("audit-log")``): without it nobody can rewrite the
hashes after an edit.

The head is anchored in two secure monotonic counters (``BootServices.
audit_anchor()``, RPMB-like, a file edit cannot lower them): ``head`` is the
newest ``seq`` ever recorded and ``base`` the last ``seq`` a factory reset
discarded. The log must hold entries ``base+1 .. head`` (or more: a power cut
between the SQLite commit and the counter update leaves the newest entry
unanchored, which is still authentic). :func:`verify_entries` (pure) raises
:class:`AuditChainError` naming the first bad ``seq``: an edited entry breaks
its MAC (re-hashing needs the key), a deleted one leaves a gap in ``seq``,
deleting the newest entries or all of them leaves the log short of ``head``.
After a detected cut, new entries continue above ``head``, so the gap stays
visible until a factory reset.

The database uses WAL with ``synchronous=FULL``: an entry whose ``record``
returned survives ``kill -9`` and power loss.

Events: ``boot``, ``boot_notice`` (fallback/tamper from the boot chain, and a
log that fails verification at boot), ``login_success``, ``login_failure``,
``lockout``, ``logout``, ``password_change``, ``user_create``/``user_delete``/
``user_role``/``user_password_reset``, ``config_change``, ``update_*``.

Example::

    log = AuditLog.open(path, key=services.derive_key("audit-log"), anchor=services)
    log.record("login_failure", actor="admin", source="127.0.0.1", detail={}, now=now)
    log.verify_chain()
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from common.sqlitedb import open_database

from .errors import AuditChainError, StorageError

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


KEY_BYTES = 32


class AuditAnchor(Protocol):
    """The secure counters the log is anchored in (``BootServices`` provides them)."""

    def audit_anchor(self) -> tuple[int, int]:
        """``(base, head)``: entries ``base+1 .. head`` must exist."""
        ...

    def advance_audit_head(self, seq: int) -> None: ...


class MemoryAuditAnchor:
    """An in-memory anchor for tests and tools; ``advance`` never goes down either."""

    def __init__(self, base: int = 0, head: int = 0) -> None:
        self.base, self.head = base, head

    def audit_anchor(self) -> tuple[int, int]:
        return self.base, self.head

    def advance_audit_head(self, seq: int) -> None:
        if seq < self.head:
            raise ValueError(f"audit head {self.head} cannot go down to {seq}")
        self.head = seq


def entry_hash(
    *,
    key: bytes,
    seq: int,
    time: float,
    event: str,
    actor: str,
    source: str,
    detail: Mapping[str, Any],
    prev_hash: str,
) -> str:
    body = canonical_json(
        {"seq": seq, "time": time, "event": event, "actor": actor, "source": source, "detail": detail}
    )
    return hmac.new(key, (body + prev_hash).encode("utf-8"), hashlib.sha256).hexdigest()


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


def verify_entries(entries: Iterable[AuditEntry], *, key: bytes, base: int = 0, head: int = 0) -> int:
    """Check the chain from ``seq`` ``base + 1`` up to at least ``head``; returns the number
    of entries or raises :class:`AuditChainError` at the first bad one."""
    expected_seq, prev = base + 1, GENESIS_HASH
    for entry in entries:
        if entry.seq != expected_seq:
            raise AuditChainError(
                expected_seq, f"missing: the log jumps from {expected_seq - 1} to {entry.seq}"
            )
        if entry.prev_hash != prev:
            raise AuditChainError(entry.seq, "prev_hash does not match the previous entry's hash")
        recomputed = entry_hash(
            key=key,
            seq=entry.seq,
            time=entry.time,
            event=entry.event,
            actor=entry.actor,
            source=entry.source,
            detail=entry.detail,
            prev_hash=entry.prev_hash,
        )
        if not hmac.compare_digest(recomputed, str(entry.hash)):
            raise AuditChainError(entry.seq, "content does not match its hash (edited)")
        prev, expected_seq = entry.hash, expected_seq + 1
    last = expected_seq - 1
    if last < head:
        raise AuditChainError(
            last + 1,
            f"missing: the log ends at {last} but the secure counter says it reached {head} "
            "(the newest entries were deleted)",
        )
    return last - base


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
    def __init__(self, connection: sqlite3.Connection, *, key: bytes, anchor: AuditAnchor) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"audit key must be {KEY_BYTES} bytes, got {len(key)}")
        self._db = connection
        self._lock = threading.Lock()
        self._key = key
        self._anchor = anchor
        # Only this process appends (one running firmware per device): the head is read once.
        self._base, self._head = anchor.audit_anchor()

    @classmethod
    def open(cls, path: Path, *, key: bytes, anchor: AuditAnchor) -> AuditLog:
        try:
            db = open_database(path, schema=_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the audit log {path}: {exc}") from exc
        return cls(db, key=key, anchor=anchor)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record(
        self, event: str, actor: str, source: str, detail: Mapping[str, Any], now: float
    ) -> AuditEntry:
        """Append one entry (durable and anchored when this returns); ``detail`` must be
        JSON-serialisable."""
        detail_json = canonical_json(dict(detail))
        detail_value = json.loads(detail_json)  # what verification will read back
        with self._lock:
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                    # Continue above the anchored head: a log cut short stays visibly cut.
                    last = max(row[0] if row else self._base, self._head)
                    prev = row[1] if row is not None and row[0] == last else GENESIS_HASH
                    seq = last + 1
                    digest = entry_hash(
                        key=self._key, seq=seq, time=now, event=event, actor=actor, source=source,
                        detail=detail_value, prev_hash=prev,
                    )
                    self._db.execute(
                        "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (seq, now, event, actor, source, detail_json, prev, digest),
                    )
            except sqlite3.Error as exc:
                raise StorageError(f"cannot append to the audit log: {exc}") from exc
            # After the commit: a power cut here leaves one authentic, unanchored entry.
            self._anchor.advance_audit_head(seq)
            self._head = seq
        return AuditEntry(seq, now, event, actor, source, detail_value, prev, digest)

    @staticmethod
    def _entry(row: tuple[Any, ...]) -> AuditEntry:
        """An entry as stored; a corrupt cell is shown (and fails its MAC), never raised,
        so a page or an export does not break in the middle."""
        seq, time, event, actor, source, detail, prev, digest = (_cell(v) for v in row)
        try:
            detail_value = json.loads(detail) if isinstance(detail, str) else None
        except ValueError:
            detail_value = None
        if not isinstance(detail_value, dict):
            detail_value = {"corrupt_detail": detail}
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

    def count(self, event: str) -> int:
        """How many entries of ``event`` the log holds (metrics: e.g. ``login_failure``)."""
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM audit WHERE event = ?", (event,)).fetchone()
        return int(row[0]) if row else 0

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the newest entry, (0, GENESIS_HASH) when empty."""
        with self._lock:
            row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], _cell(row[1])) if row else (0, GENESIS_HASH)

    def verify_chain(self) -> int:
        """Verify every entry against the key and the secure counters; returns how many,
        raises :class:`AuditChainError` at the first bad one."""
        base, head = self._anchor.audit_anchor()  # before the rows: rows commit before the counter moves
        return verify_entries(self.entries(), key=self._key, base=base, head=head)


def _cell(value: Any) -> Any:
    """A stored value as JSON can carry it (a BLOB written over a text cell becomes hex)."""
    if isinstance(value, bytes):
        return "blob:" + value.hex()
    return value
