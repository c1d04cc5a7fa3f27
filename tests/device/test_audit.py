"""Audit log: hash chain, tamper detection, admin-only access, boot notices, durability across kill -9."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from device_fixtures import NOTICE, NOW, RunningDevice

from device.audit import GENESIS_HASH, AuditLog, entry_hash
from device.errors import AuditChainError


def filled(path: Path, n: int = 5) -> AuditLog:
    log = AuditLog.open(path)
    for i in range(n):
        log.record("login_failure", actor=f"user{i}", source="127.0.0.1", detail={"failures": i}, now=NOW + i)
    return log


def test_chain_links_every_entry_to_the_previous_one(tmp_path: Path) -> None:
    log = filled(tmp_path / "a.sqlite3")
    entries = list(log.entries())
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))
    e = entries[2]
    assert e.hash == entry_hash(
        seq=3, time=NOW + 2, event="login_failure", actor="user2", source="127.0.0.1",
        detail={"failures": 2}, prev_hash=entries[1].hash,
    )
    assert log.verify_chain() == 5


def test_edited_entry_is_detected_at_its_seq(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    log = filled(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE audit SET actor = 'nobody' WHERE seq = 3")
    with pytest.raises(AuditChainError, match=r"audit entry 3: content does not match its hash") as info:
        log.verify_chain()
    assert info.value.seq == 3


def test_edited_detail_json_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    log = filled(path)
    with sqlite3.connect(path) as db:
        db.execute("""UPDATE audit SET detail = '{"failures":0}' WHERE seq = 2""")
    with pytest.raises(AuditChainError, match="audit entry 2"):
        log.verify_chain()


def test_deleted_entry_is_detected_as_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    log = filled(path)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM audit WHERE seq = 4")
    with pytest.raises(AuditChainError, match=r"audit entry 4: missing: the log jumps from 3 to 5"):
        log.verify_chain()


def test_rehashed_entry_still_breaks_the_next_link(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    log = filled(path)
    entries = list(log.entries())
    forged = entry_hash(
        seq=2, time=entries[1].time, event="login_success", actor="user1", source="127.0.0.1",
        detail={"failures": 1}, prev_hash=entries[0].hash,
    )
    with sqlite3.connect(path) as db:
        db.execute("UPDATE audit SET event = 'login_success', hash = ? WHERE seq = 2", (forged,))
    with pytest.raises(AuditChainError, match="audit entry 3: prev_hash does not match"):
        log.verify_chain()


CHILD = """
import sys, time
from pathlib import Path
from device.audit import AuditLog
log = AuditLog.open(Path(sys.argv[1]))
for i in range(50):
    log.record("config_change", actor="admin", source="127.0.0.1", detail={"i": i}, now=1.0 + i)
print("recorded", flush=True)
time.sleep(60)
"""


def test_recorded_entries_survive_kill_minus_9(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "recorded"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    log = AuditLog.open(path)
    assert log.verify_chain() == 50
    assert log.head()[0] == 50


async def test_audit_is_admin_only_and_holds_the_boot_notices(device: RunningDevice) -> None:
    async with device.client() as s, s.get(device.url("/api/v1/audit")) as r:
        assert r.status == 401
    token = await device.admin_token()
    headers = {"Authorization": f"Bearer {token}"}
    async with device.client() as s:
        async with s.get(device.url("/api/v1/audit?limit=2"), headers=headers) as r:
            page = await r.json()
            assert [e["event"] for e in page["entries"]] == ["boot", "boot_notice"]
            assert page["entries"][1]["detail"] == {"notice": NOTICE}
            assert page["next_after"] == 2
        async with s.get(device.url("/api/v1/audit?after=2&limit=500"), headers=headers) as r:
            events = [e["event"] for e in (await r.json())["entries"]]
            assert events[:2] == ["login_success", "password_change"]
        async with s.get(device.url("/api/v1/audit/export"), headers=headers) as r:
            assert r.headers["Content-Type"].startswith("application/x-ndjson")
            lines = [json.loads(line) for line in (await r.text()).splitlines()]
            assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))
        async with s.get(device.url("/api/v1/audit/verify"), headers=headers) as r:
            assert r.status == 200 and (await r.json())["entries"] == len(lines)
        for query in ("limit=0", "limit=501", "after=-1", "after=x"):
            async with s.get(device.url(f"/api/v1/audit?{query}"), headers=headers) as r:
                assert r.status == 400 and (await r.json())["error"] == "bad_query"
    with sqlite3.connect(device.handoff.data_dir / "runtime" / "audit.sqlite3") as db:
        db.execute("DELETE FROM audit WHERE seq = 2")
    async with device.client() as s, s.get(device.url("/api/v1/audit/verify"), headers=headers) as r:
        assert r.status == 409
        assert (await r.json())["seq"] == 2
