"""The SQLite PSIRT store: durability (kill -9), tokens, atomic updates, breach audit log."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import ssl
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from update_fixtures import Vendor

from tests.integration.conftest import start_vendor
from update_server.psirt import model
from update_server.psirt.errors import (
    PSIRTStoreError,
    ReporterAuthError,
    ReportNotFoundError,
    TransitionError,
)
from update_server.psirt.policy import load_policy
from update_server.psirt.sla import evaluate
from update_server.psirt.store import PSIRTStore

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SUB = model.parse_submission(
    {"title": "bug", "description": "d", "product": "RC-1080", "version": "1.0.0"}
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PSIRTStore]:
    s = PSIRTStore.open(tmp_path / "psirt.db")
    yield s
    s.close()


def test_database_runs_in_wal_with_full_sync(store: PSIRTStore) -> None:
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_ids_are_sequential_per_year_and_tokens_are_hashed(store: PSIRTStore) -> None:
    r1, t1 = store.create_report(SUB, now=T0)
    r2, t2 = store.create_report(SUB, now=T0 + timedelta(minutes=1))
    r3, _ = store.create_report(SUB, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert [r1.report_id, r2.report_id, r3.report_id] == [
        "R-2026-0001",
        "R-2026-0002",
        "R-2027-0001",
    ]
    assert t1 != t2 and len(t1) >= 40
    raw = store._conn.execute("SELECT token_hash FROM reports").fetchall()
    assert all(t1 not in row[0] for row in raw)
    store.verify_reporter_token("R-2026-0001", t1)
    with pytest.raises(ReporterAuthError, match="not valid for report R-2026-0001"):
        store.verify_reporter_token("R-2026-0001", t2)
    with pytest.raises(ReporterAuthError, match="not valid for report R-2026-0009"):
        store.verify_reporter_token("R-2026-0009", t1)


def test_failed_change_leaves_the_stored_report_unchanged(store: PSIRTStore) -> None:
    report, _ = store.create_report(SUB, now=T0)
    release = model.FirmwareRelease.parse("refcam-rc1080-v1:1.0.1")
    with pytest.raises(TransitionError, match="from received to fixed"):
        store.update(report.report_id, lambda r: model.mark_fixed(r, release, now=T0))
    assert store.get(report.report_id) == report
    with pytest.raises(ReportNotFoundError, match="no report R-2026-0042"):
        store.get("R-2026-0042")


def test_each_breach_is_audited_once_and_the_chain_detects_tampering(store: PSIRTStore) -> None:
    store.create_report(SUB, now=T0)
    store.create_report(SUB, now=T0)
    policy = load_policy()
    later = T0 + timedelta(days=8)
    breached = list(evaluate(store.all(), policy, now=later).breached)
    assert len(breached) == 2
    assert len(store.record_breaches(breached, now=later)) == 2
    again = list(evaluate(store.all(), policy, now=later + timedelta(days=1)).breached)
    assert store.record_breaches(again, now=later + timedelta(days=1)) == []
    entries = store.audit_entries()
    assert [e.data["kind"] for e in entries] == ["acknowledge", "acknowledge"]
    assert entries[1].prev_hash == entries[0].hash
    store.verify_audit_chain()
    store._conn.execute("UPDATE audit SET data = replace(data, 'breached', 'met') WHERE seq = 1")
    with pytest.raises(PSIRTStoreError, match="audit log entry 1 does not chain"):
        store.verify_audit_chain()


def test_unopenable_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(PSIRTStoreError, match="cannot open the PSIRT database"):
        PSIRTStore.open(tmp_path / "dir.db")


def test_acknowledged_report_survives_kill_9_of_the_server(tmp_path: Path, vendor: Vendor) -> None:
    """The real vendor server (``refcam update-server run``) is killed right after it
    answered 201: the report is on disk."""
    server = start_vendor(tmp_path / "vendor", vendor.keys_dir, repo=vendor.repo_dir)
    db = tmp_path / "vendor" / "psirt.db"
    try:
        body = json.dumps(
            {"title": "Survives", "description": "kill -9 test", "product": "RC-1080", "version": "1.0.0"}
        ).encode()
        request = urllib.request.Request(
            f"{server.url}/api/v1/reports", data=body, method="POST",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        context = ssl.create_default_context(cafile=str(server.root_pem))
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # loopback only
            assert response.status == 201
            answer = json.load(response)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=10)
        assert server.process.returncode == -signal.SIGKILL
    finally:
        server.stop()
    reopened = PSIRTStore.open(db)
    try:
        report = reopened.get(answer["tracking_id"])
        assert report.submission.title == "Survives"
        reopened.verify_reporter_token(answer["tracking_id"], answer["reporter_token"])
    finally:
        reopened.close()
