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
from device_fixtures import NEW_PASSWORD, NOTICE, NOW, RunningDevice, StartDevice

from device.audit import GENESIS_HASH, AuditLog, MemoryAuditAnchor, entry_hash
from device.errors import AuditChainError

KEY = bytes(range(32))


def filled(path: Path, n: int = 5, anchor: MemoryAuditAnchor | None = None) -> AuditLog:
    log = AuditLog.open(path, key=KEY, anchor=anchor if anchor is not None else MemoryAuditAnchor())
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
        key=KEY, seq=3, time=NOW + 2, event="login_failure", actor="user2", source="127.0.0.1",
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
        key=KEY, seq=2, time=entries[1].time, event="login_success", actor="user1", source="127.0.0.1",
        detail={"failures": 1}, prev_hash=entries[0].hash,
    )
    with sqlite3.connect(path) as db:
        db.execute("UPDATE audit SET event = 'login_success', hash = ? WHERE seq = 2", (forged,))
    with pytest.raises(AuditChainError, match="audit entry 3: prev_hash does not match"):
        log.verify_chain()


CHILD = """
import sys, time
from pathlib import Path
from bootloader.hardware import SecureCounters
from device.audit import AuditLog

class Anchor:
    counters = SecureCounters.open_file(Path(sys.argv[2]))
    def audit_anchor(self):
        return self.counters.read("audit_base"), self.counters.read("audit_head")
    def advance_audit_head(self, seq):
        self.counters.advance("audit_head", seq)

log = AuditLog.open(Path(sys.argv[1]), key=bytes(range(32)), anchor=Anchor())
for i in range(50):
    log.record("config_change", actor="admin", source="127.0.0.1", detail={"i": i}, now=1.0 + i)
print("recorded", flush=True)
time.sleep(60)
"""


def test_recorded_entries_survive_kill_minus_9(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite3"
    rpmb = tmp_path / "rpmb.bin"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(rpmb)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "recorded"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    from bootloader.hardware import SecureCounters

    counters = SecureCounters.open_file(rpmb)
    assert counters.read("audit_head") == 50
    log = AuditLog.open(path, key=KEY, anchor=MemoryAuditAnchor(0, counters.read("audit_head")))
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


# -- issue 13 defect 5: a log that cannot be cut ------------------------------------------


def test_rewriting_every_hash_after_an_edit_is_detected(tmp_path: Path) -> None:
    """An attacker who recomputes the chain (without the device key) still fails verification."""
    path = tmp_path / "a.sqlite3"
    log = filled(path)
    rows = list(log.entries())
    forged_key = b"\x00" * 32  # the attacker does not have the device-unique key
    prev = GENESIS_HASH
    with sqlite3.connect(path) as db:
        for e in rows:
            actor = "nobody" if e.seq == 2 else e.actor
            digest = entry_hash(
                key=forged_key, seq=e.seq, time=e.time, event=e.event, actor=actor,
                source=e.source, detail=e.detail, prev_hash=prev,
            )
            db.execute("UPDATE audit SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?", (actor, prev, digest, e.seq))
            prev = digest
    with pytest.raises(AuditChainError, match="audit entry 1: content does not match"):
        log.verify_chain()


def test_deleting_the_newest_entries_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    anchor = MemoryAuditAnchor()
    log = filled(path, anchor=anchor)
    assert anchor.head == 5
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM audit WHERE seq >= 4")
    with pytest.raises(AuditChainError, match=r"audit entry 4: missing: the log ends at 3 but the secure counter says it reached 5"):
        log.verify_chain()
    # new entries continue above the anchored head: the gap stays visible
    assert log.record("logout", actor="a", source="127.0.0.1", detail={}, now=NOW).seq == 6
    with pytest.raises(AuditChainError, match="audit entry 4: missing"):
        log.verify_chain()


def test_deleting_every_entry_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    anchor = MemoryAuditAnchor()
    log = filled(path, anchor=anchor)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM audit")
    with pytest.raises(AuditChainError, match="audit entry 1: missing"):
        log.verify_chain()
    path.unlink()  # even a new, empty database
    fresh = AuditLog.open(tmp_path / "b.sqlite3", key=KEY, anchor=anchor)
    with pytest.raises(AuditChainError, match="audit entry 1: missing"):
        fresh.verify_chain()
    assert fresh.record("boot", actor="-", source="device", detail={}, now=NOW).seq == 6
    with pytest.raises(AuditChainError):
        fresh.verify_chain()


def test_a_factory_reset_base_starts_a_new_valid_log(tmp_path: Path) -> None:
    anchor = MemoryAuditAnchor()
    filled(tmp_path / "a.sqlite3", anchor=anchor)
    anchor.base = anchor.head  # what `refcam device factory-reset` does in the secure counters
    log = AuditLog.open(tmp_path / "b.sqlite3", key=KEY, anchor=anchor)
    assert log.verify_chain() == 0
    assert log.record("boot", actor="-", source="device", detail={}, now=NOW).seq == 6
    assert log.verify_chain() == 1


def test_an_unanchored_newest_entry_after_a_power_cut_still_verifies(tmp_path: Path) -> None:
    anchor = MemoryAuditAnchor()
    log = filled(tmp_path / "a.sqlite3", anchor=anchor)
    anchor.head = 4  # the cut fell between the SQLite commit of 5 and the counter update
    assert AuditLog.open(tmp_path / "a.sqlite3", key=KEY, anchor=anchor).verify_chain() == 5
    del log


def test_a_corrupt_row_does_not_break_paging_or_export(tmp_path: Path) -> None:
    path = tmp_path / "a.sqlite3"
    log = filled(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE audit SET detail = 'not json', actor = x'00ff' WHERE seq = 2")
        db.execute("UPDATE audit SET detail = '[1, 2]' WHERE seq = 3")
    entries = list(log.entries())
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[1].detail == {"corrupt_detail": "not json"} and entries[1].actor == "blob:00ff"
    for e in entries:
        json.dumps(e.to_json())
    with pytest.raises(AuditChainError, match="audit entry 2"):
        log.verify_chain()


async def test_api_verify_fails_on_every_cut_and_boot_records_it(start_device: StartDevice) -> None:
    device = await start_device()
    token = await device.admin_token()
    headers = {"Authorization": f"Bearer {token}"}
    db_path = device.handoff.data_dir / "runtime" / "audit.sqlite3"
    async with device.client() as s, s.get(device.url("/api/v1/audit/verify"), headers=headers) as r:
        assert r.status == 200
        count = (await r.json())["entries"]
    with sqlite3.connect(db_path) as db:
        db.execute("DELETE FROM audit WHERE seq = ?", (count,))
    async with device.client() as s:
        async with s.get(device.url("/api/v1/audit/verify"), headers=headers) as r:
            assert r.status == 409 and (await r.json())["seq"] == count
        with sqlite3.connect(db_path) as db:
            db.execute("UPDATE audit SET detail = 'garbage' WHERE seq = 1")
        async with s.get(device.url("/api/v1/audit/export"), headers=headers) as r:
            assert r.status == 200
            lines = [json.loads(line) for line in (await r.text()).splitlines()]
            assert lines[0]["detail"] == {"corrupt_detail": "garbage"} and len(lines) == count - 1
    await device.stop()
    restarted = await start_device()  # the same state: verification at boot finds the cut
    token = (await restarted.login(password=NEW_PASSWORD))["token"]
    async with restarted.client() as s, s.get(
        restarted.url("/api/v1/audit?after=0&limit=500"), headers={"Authorization": f"Bearer {token}"}
    ) as r:
        notices = [e["detail"]["notice"] for e in (await r.json())["entries"] if e["event"] == "boot_notice"]
    assert any(n.startswith("audit log fails verification at boot: audit entry 1") for n in notices)
