"""``refcam device provision | boot | flash | fuses`` (refcam/cli_device.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bootloader.keys import KeySet
from refcam.cli import main

SLOT_SIZE = str(16 * 4096)


@pytest.fixture
def keyset(wallclock_keyset: KeySet) -> KeySet:
    return wallclock_keyset  # the CLI reads the real clock


@pytest.fixture
def firmware_files(tmp_path: Path, wallclock_images: tuple[bytes, bytes]) -> tuple[Path, Path]:
    v1, v2 = tmp_path / "fw-1.0.0.img", tmp_path / "fw-2.0.0.img"
    v1.write_bytes(wallclock_images[0])
    v2.write_bytes(wallclock_images[1])
    return v1, v2


def provision(state: Path, keyset: KeySet, firmware: Path, *extra: str) -> int:
    return main(
        [
            "device", "provision", "--state", str(state), "--keys", str(keyset.directory),
            "--firmware", str(firmware), "--slot-size", SLOT_SIZE, *extra,
        ]
    )  # fmt: skip


def test_provision_then_boot_prints_the_log_and_the_booted_slot(
    tmp_path: Path, keyset: KeySet, firmware_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "cam"
    assert provision(state, keyset, firmware_files[0], "--serial", "RC-CLI-1") == 0
    out = capsys.readouterr().out
    assert f"provisioned RC-CLI-1 in {state}" in out
    assert main(["device", "boot", "--state", str(state)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("rom: fuses: lifecycle secured")
    assert any(line.startswith("rom: bootloader 1.0.0 verified") for line in lines)
    assert lines[-1] == "booted slot a, firmware 1.0.0 (security counter 1)"


def test_flash_writes_raw_bytes_and_the_next_boot_judges_them(
    tmp_path: Path, keyset: KeySet, firmware_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "cam"
    provision(state, keyset, firmware_files[0])
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\x00" * 100)
    assert main(["device", "flash", "--state", str(state), "--slot", "a", str(junk)]) == 0
    assert "wrote 100 bytes to slot a (not verified" in capsys.readouterr().out
    assert main(["device", "boot", "--state", str(state)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("refcam: error: recovery: no bootable slot (slot a: image magic")
    assert len(err.strip().splitlines()) == 1
    assert main(["device", "flash", "--state", str(state), "--slot", "a", str(firmware_files[0])]) == 0
    assert main(["device", "boot", "--state", str(state)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "booted slot a, firmware 1.0.0 (security counter 1)"


def test_flash_refuses_an_image_larger_than_the_slot(
    tmp_path: Path, keyset: KeySet, firmware_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "cam"
    provision(state, keyset, firmware_files[0])
    big = tmp_path / "big.img"
    big.write_bytes(b"\x00" * (int(SLOT_SIZE) + 8))
    assert main(["device", "flash", "--state", str(state), "--slot", "b", str(big)]) == 1
    assert "do not fit partition 'b'" in capsys.readouterr().err


def test_provision_errors_are_one_line(
    tmp_path: Path, keyset: KeySet, firmware_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert provision(tmp_path / "cam", keyset, tmp_path / "missing.img") == 1
    assert capsys.readouterr().err == f"refcam: error: firmware file {tmp_path / 'missing.img'} does not exist\n"
    assert provision(tmp_path / "cam", keyset, firmware_files[0], "--passphrase-env", "REFCAM_NO_SUCH_VAR") == 1
    assert "REFCAM_NO_SUCH_VAR" in capsys.readouterr().err
    assert main(["device", "boot", "--state", str(tmp_path / "nowhere")]) == 1
    assert "is not a provisioned device" in capsys.readouterr().err


def test_boot_of_a_device_whose_bootloader_was_replaced_is_refused(
    tmp_path: Path, keyset: KeySet, firmware_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "cam"
    provision(state, keyset, firmware_files[0])
    from bootloader.slots import write_partition
    from bootloader.unit import open_device

    write_partition(open_device(state).flash, "bootloader", firmware_files[1].read_bytes())
    assert main(["device", "boot", "--state", str(state)]) == 1
    assert capsys.readouterr().err.startswith("refcam: error: ROM refused the bootloader: ")


def test_fuses_prints_the_summary(
    tmp_path: Path, keyset: KeySet, firmware_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "cam"
    provision(state, keyset, firmware_files[0], "--lifecycle", "development")
    capsys.readouterr()
    assert main(["device", "fuses", "--state", str(state)]) == 0
    out = capsys.readouterr().out
    assert "lifecycle: development\n" in out and "debug: enabled\n" in out
    assert "firmware counter: 1\n" in out and "root-of-trust slot 2: empty\n" in out


def test_audit_verify_cli_detects_cuts_and_factory_reset_reanchors(
    tmp_path: Path, keyset: KeySet, firmware_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """issue 13 defect 5: `refcam device audit verify` with the device key and the secure counters."""
    import sqlite3
    import time

    from bootloader.chain import boot
    from bootloader.unit import open_device
    from device.audit import AuditLog

    state = tmp_path / "cam"
    assert provision(state, keyset, firmware_files[0]) == 0
    assert main(["device", "audit", "verify", "--state", str(state)]) == 0
    outcome = boot(open_device(state), now=int(time.time()))
    services = outcome.handoff.services
    path = state / "data" / "runtime" / "audit.sqlite3"
    log = AuditLog.open(path, key=services.derive_key("audit-log"), anchor=services)
    for i in range(4):
        log.record("config_change", actor="admin", source="127.0.0.1", detail={"i": i}, now=1000.0 + i)
    log.close()
    capsys.readouterr()
    assert main(["device", "audit", "verify", "--state", str(state)]) == 0
    assert "audit log verified: 4 entries up to seq 4, secure head 4" in capsys.readouterr().out
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM audit WHERE seq = 4")
    assert main(["device", "audit", "verify", "--state", str(state)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "audit entry 4: missing" in err[0]
    path.unlink()
    assert main(["device", "audit", "verify", "--state", str(state)]) == 1
    assert "secure counter says it holds entries 1..4" in capsys.readouterr().err
    assert main(["device", "factory-reset", "--state", str(state)]) == 0
    assert main(["device", "audit", "verify", "--state", str(state)]) == 0
    outcome = boot(open_device(state), now=int(time.time()))
    services = outcome.handoff.services
    log = AuditLog.open(path, key=services.derive_key("audit-log"), anchor=services)
    assert log.record("boot", actor="-", source="device", detail={}, now=2000.0).seq == 5
    assert log.verify_chain() == 1
    log.close()
