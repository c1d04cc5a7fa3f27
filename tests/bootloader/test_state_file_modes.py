"""issue 13 defect 6: every secret or state file is 0600 and every directory 0700."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bootloader.keys import KeySet
from tests.filemodes import loose_modes


def test_provisioned_and_booted_device_state_is_private(tmp_path: Path, wallclock_keyset: KeySet, wallclock_images: tuple[bytes, bytes]) -> None:
    from bootloader.chain import boot
    from bootloader.unit import open_device
    from device.audit import AuditLog
    from refcam.cli import main

    firmware = tmp_path / "fw.img"
    firmware.write_bytes(wallclock_images[0])
    state = tmp_path / "cam"
    assert main([
        "device", "provision", "--state", str(state), "--keys", str(wallclock_keyset.directory),
        "--firmware", str(firmware), "--slot-size", str(16 * 4096),
    ]) == 0  # fmt: skip
    outcome = boot(open_device(state), now=int(time.time()))
    services = outcome.handoff.services
    log = AuditLog.open(state / "data" / "runtime" / "audit.sqlite3", key=services.derive_key("audit-log"), anchor=services)
    log.record("boot", actor="-", source="device", detail={}, now=time.time())
    assert (state / "rpmb.bin").is_file() and (state / "otp.bin").is_file() and (state / "flash.bin").is_file()
    assert (state / "data" / "runtime" / "audit.sqlite3-wal").is_file()
    assert loose_modes(state) == []
    log.close()


def test_vendor_psirt_token_and_database_are_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from update_server.psirt.store import PSIRTStore
    from update_server.vendor import PSIRT_TOKEN_ENV, psirt_token

    monkeypatch.delenv(PSIRT_TOKEN_ENV, raising=False)
    data = tmp_path / "vendor" / "data"
    psirt_token(data)
    store = PSIRTStore.open(data / "psirt.sqlite3")
    assert loose_modes(tmp_path / "vendor") == []
    del store
