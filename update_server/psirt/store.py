"""Durable PSIRT storage in SQLite: reports, reporter tokens, advisories, breach audit log.

The database runs in WAL mode with ``synchronous=FULL`` and every change is
one transaction, so a report is on disk before the reporter gets its tracking
id: a ``kill -9`` right after the HTTP response loses nothing. Reporter tokens
are stored only as SHA-256 hashes. The audit log is hash-chained (each entry
commits to the previous entry's hash) and holds each SLA breach once.

Example::

    store = PSIRTStore.open(Path("vendor-data/psirt.db"))
    report, token = store.create_report(submission, now=now)
    store.verify_reporter_token(report.report_id, token)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from bootloader.atomicfile import private_sqlite_file
from update_server import csaf

from .errors import PSIRTStoreError, ReporterAuthError, ReportNotFoundError, TransitionError
from .model import (
    Report,
    Submission,
    check_report_id,
    format_report_id,
    new_report,
    publish_advisory,
    report_from_json,
    report_to_json,
)
from .sla import Deadline

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reports (
    report_id   TEXT PRIMARY KEY,
    year        INTEGER NOT NULL,
    sequence    INTEGER NOT NULL,
    token_hash  TEXT NOT NULL,       -- SHA-256 hex of the reporter token
    doc         TEXT NOT NULL,       -- model.report_to_json(with_attachment_data=True)
    UNIQUE (year, sequence)
);
CREATE TABLE IF NOT EXISTS advisories (
    advisory_id TEXT PRIMARY KEY,
    report_id   TEXT NOT NULL REFERENCES reports(report_id),
    updated_at  TEXT NOT NULL,       -- ISO 8601, the document's current_release_date
    doc         TEXT NOT NULL        -- the CSAF 2.0 JSON document
);
CREATE TABLE IF NOT EXISTS audit (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    kind       TEXT NOT NULL,        -- "sla_breach"
    key        TEXT NOT NULL UNIQUE, -- what the entry is about (a breach is recorded once)
    data       TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL         -- SHA-256(prev_hash | at | kind | key | data)
);
"""
_GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    kind: str
    key: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _chain_hash(prev: str, at: str, kind: str, key: str, data: str) -> str:
    return hashlib.sha256("\x1f".join((prev, at, kind, key, data)).encode("utf-8")).hexdigest()


class PSIRTStore:
    """One SQLite file; open it with :meth:`open`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> PSIRTStore:
        """Open (and with ``create``, create) the database at ``path``."""
        if not create and not path.is_file():
            raise PSIRTStoreError(f"no PSIRT database at {path}")
        try:
            private_sqlite_file(path)  # 0600, and so its -wal/-shm; directory 0700
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise PSIRTStoreError(f"cannot open the PSIRT database {path}: {exc}") from exc
        return cls(conn, path)

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        try:
            row: tuple[Any, ...] | None = self._conn.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            raise PSIRTStoreError(f"PSIRT database {self.path} failed: {exc}") from exc
        return row

    def _all(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return list(self._conn.execute(sql, params).fetchall())
        except sqlite3.Error as exc:
            raise PSIRTStoreError(f"PSIRT database {self.path} failed: {exc}") from exc

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise PSIRTStoreError(f"PSIRT database {self.path} failed: {exc}") from exc

    # -- reports ---------------------------------------------------------------------

    def create_report(self, submission: Submission, *, now: datetime) -> tuple[Report, str]:
        """Store a new report durably; return it and the reporter token (shown once)."""
        token = secrets.token_urlsafe(32)
        with self._tx() as conn:
            row = conn.execute(
                "SELECT COALESCE(MAX(sequence), 0) FROM reports WHERE year = ?", (now.year,)
            ).fetchone()
            sequence = int(row[0]) + 1
            report = new_report(
                report_id=format_report_id(now.year, sequence), submission=submission, now=now
            )
            conn.execute(
                "INSERT INTO reports (report_id, year, sequence, token_hash, doc) "
                "VALUES (?, ?, ?, ?, ?)",
                (
                    report.report_id,
                    now.year,
                    sequence,
                    _token_hash(token),
                    json.dumps(report_to_json(report, with_attachment_data=True)),
                ),
            )
        return report, token

    def get(self, report_id: str) -> Report:
        check_report_id(report_id)
        row = self._one("SELECT doc FROM reports WHERE report_id = ?", (report_id,))
        if row is None:
            raise ReportNotFoundError(f"no report {report_id}")
        return report_from_json(json.loads(row[0]))

    def all(self) -> list[Report]:
        rows = self._all("SELECT doc FROM reports ORDER BY year, sequence")
        return [report_from_json(json.loads(r[0])) for r in rows]

    def update(
        self,
        report_id: str,
        change: Callable[[Report], Report],
        *,
        advisory: tuple[str, dict[str, Any]] | None = None,
    ) -> Report:
        """Apply a pure ``change`` to the stored report inside one transaction.

        ``advisory`` (id, CSAF document) is stored in the same transaction, so a
        report is never "advisory_published" without its advisory, or vice versa.
        """
        check_report_id(report_id)
        with self._tx() as conn:
            row = conn.execute(
                "SELECT doc FROM reports WHERE report_id = ?", (report_id,)
            ).fetchone()
            if row is None:
                raise ReportNotFoundError(f"no report {report_id}")
            updated = change(report_from_json(json.loads(row[0])))
            conn.execute(
                "UPDATE reports SET doc = ? WHERE report_id = ?",
                (json.dumps(report_to_json(updated, with_attachment_data=True)), report_id),
            )
            if advisory is not None:
                self._put_advisory(conn, advisory[0], report_id, advisory[1])
        return updated

    def verify_reporter_token(self, report_id: str, token: str) -> None:
        """Raise ReporterAuthError unless ``token`` is the one issued for ``report_id``."""
        check_report_id(report_id)
        row = self._one("SELECT token_hash FROM reports WHERE report_id = ?", (report_id,))
        # Same error for unknown id and wrong token: the tracking id alone reveals nothing.
        expected = row[0] if row is not None else _GENESIS
        if not hmac.compare_digest(_token_hash(token), expected) or row is None:
            raise ReporterAuthError(f"reporter token is not valid for report {report_id}")

    # -- advisories ------------------------------------------------------------------

    def put_advisory(self, advisory_id: str, report_id: str, doc: dict[str, Any]) -> None:
        with self._tx() as conn:
            self._put_advisory(conn, advisory_id, report_id, doc)

    @staticmethod
    def _put_advisory(
        conn: sqlite3.Connection, advisory_id: str, report_id: str, doc: dict[str, Any]
    ) -> None:
        updated = doc["document"]["tracking"]["current_release_date"]
        conn.execute(
            "INSERT INTO advisories (advisory_id, report_id, updated_at, doc) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(advisory_id) DO UPDATE SET "
            "updated_at = excluded.updated_at, doc = excluded.doc",
            (advisory_id, report_id, updated, json.dumps(doc, sort_keys=True)),
        )

    def advisory(self, advisory_id: str) -> dict[str, Any] | None:
        row = self._one("SELECT doc FROM advisories WHERE advisory_id = ?", (advisory_id,))
        return json.loads(row[0]) if row else None

    def advisories(self) -> list[dict[str, Any]]:
        rows = self._all("SELECT doc FROM advisories ORDER BY advisory_id")
        return [json.loads(r[0]) for r in rows]

    def publish(
        self,
        report_id: str,
        *,
        publisher: csaf.Publisher,
        vendor: str,
        model_name: str,
        now: datetime,
        cve: str | None = None,
    ) -> tuple[Report, dict[str, Any]]:
        """Build the CSAF advisory of a fixed report and publish both in one transaction."""
        report = self.get(report_id)
        if report.fixed_in is None:
            raise TransitionError(
                f"report {report.report_id} is {report.state.value}; mark it fixed first"
            )
        product = csaf.ProductInfo(
            vendor=vendor, model=model_name, hardware_id=report.fixed_in.hardware_id
        )
        advisory_id = csaf.advisory_id_for(report.report_id)
        doc = csaf.build_advisory(
            report,
            publisher=publisher,
            product=product,
            now=now,
            advisory_id=advisory_id,
            cve=cve,
            previous=self.advisory(advisory_id),
        )
        updated = self.update(
            report_id,
            lambda r: publish_advisory(r, advisory_id, now=now),
            advisory=(advisory_id, doc),
        )
        return updated, doc

    # -- audit log -------------------------------------------------------------------

    def record_breaches(self, breaches: list[Deadline], *, now: datetime) -> list[AuditEntry]:
        """Append each breach not yet in the log; return the new entries."""
        new: list[AuditEntry] = []
        with self._tx() as conn:
            for d in breaches:
                if conn.execute("SELECT 1 FROM audit WHERE key = ?", (d.key,)).fetchone():
                    continue
                last = conn.execute("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
                prev = last[0] if last else _GENESIS
                at, data = now.isoformat(), json.dumps(d.to_json(), sort_keys=True)
                digest = _chain_hash(prev, at, "sla_breach", d.key, data)
                cur = conn.execute(
                    "INSERT INTO audit (at, kind, key, data, prev_hash, hash) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (at, "sla_breach", d.key, data, prev, digest),
                )
                new.append(
                    AuditEntry(
                        int(cur.lastrowid or 0), at, "sla_breach", d.key, d.to_json(), prev, digest
                    )
                )
        return new

    def audit_entries(self) -> list[AuditEntry]:
        rows = self._all("SELECT seq, at, kind, key, data, prev_hash, hash FROM audit ORDER BY seq")
        return [AuditEntry(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]

    def verify_audit_chain(self) -> None:
        """Raise PSIRTStoreError if any audit entry was altered, removed or reordered."""
        prev = _GENESIS
        rows = self._all("SELECT seq, at, kind, key, data, prev_hash, hash FROM audit ORDER BY seq")
        for seq, at, kind, key, data, prev_hash, digest in rows:
            if prev_hash != prev or _chain_hash(prev, at, kind, key, data) != digest:
                raise PSIRTStoreError(f"audit log entry {seq} does not chain to its predecessor")
            prev = digest
