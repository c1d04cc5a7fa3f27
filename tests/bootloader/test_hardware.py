"""Simulated OTP fuses, flash and power cuts (bootloader/hardware.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bootloader.hardware import (
    COUNTER_BITS,
    Board,
    Flash,
    FlashGeometry,
    OTPFuses,
    PowerCutInjector,
)
from common.errors import FlashError, FuseError, HardwareError, PowerCut

SMALL = FlashGeometry(
    sector_size=256, write_align=8, bootloader_size=512, slot_size=1024, data_size=256
)
KEY = hashlib.sha256(b"rot-0").digest()


def test_blank_fuses_read_as_development_with_zero_counters() -> None:
    state = OTPFuses.in_memory().read()
    assert state.rot_keys == (None, None, None, None)
    assert (state.firmware_counter, state.bootloader_counter, state.key_manifest_counter) == (0, 0, 0)
    assert state.lifecycle == "development" and not state.debug_disabled and state.uds is None


def test_burning_a_burnt_bit_raises_and_changes_nothing() -> None:
    fuses = OTPFuses.in_memory()
    fuses.burn([3, 7])
    before = fuses.read()
    with pytest.raises(FuseError, match="fuse bit 7 is already burnt"):
        fuses.burn([8, 7])
    assert fuses.read() == before


def test_rot_key_hash_round_trips_and_slot_cannot_be_rewritten() -> None:
    fuses = OTPFuses.in_memory()
    fuses.program_rot_key(0, KEY)
    assert fuses.read().rot_keys[0] == KEY
    assert fuses.read().trusted_rot_keys() == ((KEY, False),)
    with pytest.raises(FuseError, match="root-of-trust slot 0 is already programmed"):
        fuses.program_rot_key(0, hashlib.sha256(b"attacker").digest())
    assert fuses.read().rot_keys[0] == KEY


def test_revocation_is_permanent() -> None:
    fuses = OTPFuses.in_memory()
    with pytest.raises(FuseError, match="not programmed"):
        fuses.revoke_rot_key(1)
    fuses.program_rot_key(1, KEY)
    fuses.revoke_rot_key(1)
    assert fuses.read().trusted_rot_keys() == ((KEY, True),)
    with pytest.raises(FuseError, match="already burnt"):
        fuses.revoke_rot_key(1)


def test_counters_never_decrease_and_repeat_advances_are_no_ops() -> None:
    fuses = OTPFuses.in_memory()
    fuses.advance_counter("firmware", 3)
    fuses.advance_counter("firmware", 3)  # crash recovery repeats the advance
    fuses.advance_counter("firmware", 1)  # lower: bits only go up
    assert fuses.read().firmware_counter == 3
    fuses.advance_counter("firmware", 5)
    assert fuses.read().firmware_counter == 5
    assert fuses.read().bootloader_counter == 0


def test_counter_beyond_capacity_raises() -> None:
    fuses = OTPFuses.in_memory()
    with pytest.raises(FuseError, match="holds 32 increments"):
        fuses.advance_counter("bootloader", COUNTER_BITS["bootloader"] + 1)
    fuses.advance_counter("firmware", COUNTER_BITS["firmware"])
    assert fuses.read().firmware_counter == 64


def test_uds_lifecycle_and_debug_bits() -> None:
    fuses = OTPFuses.in_memory()
    uds = bytes(range(32))
    fuses.program_uds(uds)
    fuses.set_lifecycle_secured()
    fuses.disable_debug()
    state = fuses.read()
    assert state.uds == uds and state.lifecycle == "secured" and state.debug_disabled
    with pytest.raises(FuseError, match="already programmed"):
        fuses.program_uds(bytes(32))


def test_power_cut_during_fuse_burn_leaves_counter_unchanged() -> None:
    fuses = OTPFuses.in_memory(injector=PowerCutInjector(at_operation=1))
    with pytest.raises(PowerCut):
        fuses.advance_counter("firmware", 2)
    assert fuses.read().firmware_counter == 0


def test_torn_fuse_burn_lands_partially_and_resumes() -> None:
    fuses = OTPFuses.in_memory(injector=PowerCutInjector(at_operation=1, torn=True))
    with pytest.raises(PowerCut):
        fuses.advance_counter("firmware", 4)
    assert fuses.read().firmware_counter == 2
    fuses = fuses.power_on()
    fuses.advance_counter("firmware", 4)
    assert fuses.read().firmware_counter == 4


def test_file_backed_fuses_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "otp.bin"
    fuses = OTPFuses.create_file(path)
    fuses.program_rot_key(2, KEY)
    fuses.advance_counter("key_manifest", 2)
    again = OTPFuses.open_file(path).read()
    assert again.rot_keys[2] == KEY and again.key_manifest_counter == 2
    with pytest.raises(HardwareError, match="already exists"):
        OTPFuses.create_file(path)


def test_corrupt_fuse_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "otp.bin"
    OTPFuses.create_file(path)
    raw = bytearray(path.read_bytes())
    raw[20] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(HardwareError, match="is corrupt"):
        OTPFuses.open_file(path)


def test_new_flash_is_erased() -> None:
    flash = Flash.in_memory(SMALL)
    assert flash.read("a") == b"\xff" * 1024


def test_unaligned_write_raises() -> None:
    flash = Flash.in_memory(SMALL)
    with pytest.raises(FlashError, match="unaligned flash write at offset 4"):
        flash.write("a", 4, b"x" * 8)
    with pytest.raises(FlashError, match="length 5"):
        flash.write("a", 0, b"x" * 5)
    assert flash.read("a") == b"\xff" * 1024


def test_write_to_non_erased_cells_raises() -> None:
    flash = Flash.in_memory(SMALL)
    flash.write("a", 0, b"A" * 8)
    with pytest.raises(FlashError, match="not erased"):
        flash.write("a", 0, b"B" * 8)
    assert flash.read("a", 0, 8) == b"A" * 8
    flash.erase("a", 0)
    flash.write("a", 0, b"B" * 8)
    assert flash.read("a", 0, 8) == b"B" * 8


def test_partitions_do_not_overlap() -> None:
    flash = Flash.in_memory(SMALL)
    flash.write("a", 1016, b"A" * 8)
    flash.write("b", 0, b"B" * 8)
    assert flash.read("a", 1016, 8) == b"A" * 8 and flash.read("b", 0, 8) == b"B" * 8
    with pytest.raises(FlashError, match="outside partition 'a'"):
        flash.write("a", 1024, b"A" * 8)


def test_every_erase_and_write_is_one_operation_and_cut_stops_it() -> None:
    injector = PowerCutInjector(at_operation=2)
    flash = Flash.in_memory(SMALL, injector=injector)
    flash.erase("b", 0)
    with pytest.raises(PowerCut, match="power cut at flash operation 2"):
        flash.write("b", 0, b"B" * 16)
    assert flash.read("b", 0, 16) == b"\xff" * 16
    with pytest.raises(PowerCut, match="device is off"):
        flash.erase("b", 1)
    flash = flash.power_on()
    flash.write("b", 0, b"B" * 16)
    assert flash.read("b", 0, 16) == b"B" * 16


def test_torn_write_lands_an_aligned_prefix() -> None:
    flash = Flash.in_memory(SMALL, injector=PowerCutInjector(at_operation=1, torn=True))
    with pytest.raises(PowerCut, match="torn"):
        flash.write("a", 0, b"C" * 32)
    assert flash.read("a", 0, 32) == b"C" * 16 + b"\xff" * 16


def test_file_backed_flash_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "flash.bin"
    flash = Flash.create_file(path, SMALL)
    assert flash.read("b") == b"\xff" * 1024  # a sparse hole reads as erased
    flash.write("b", 8, b"12345678")
    again = Flash.open_file(path, SMALL)
    assert again.read("b", 0, 16) == b"\xff" * 8 + b"12345678"
    with pytest.raises(HardwareError, match="geometry says"):
        Flash.open_file(path, FlashGeometry(sector_size=256, slot_size=2048, bootloader_size=512, data_size=256))


def test_geometry_rejects_sizes_that_are_not_whole_sectors() -> None:
    with pytest.raises(FlashError, match="slot_size 1000"):
        FlashGeometry(sector_size=256, slot_size=1000)


def test_board_description_round_trips() -> None:
    board = Board(hardware_id="hw", model="RC-1080", vendor="refcam", geometry=SMALL)
    assert Board.from_json(board.to_json()) == board
    with pytest.raises(HardwareError, match="malformed"):
        Board.from_json("{}")


def test_torn_erase_leaves_the_sector_half_erased() -> None:
    flash = Flash.in_memory(SMALL)
    flash.write("b", 0, b"D" * 256)
    flash = flash.power_on(injector=PowerCutInjector(at_operation=1, torn=True))
    with pytest.raises(PowerCut, match="erase b sector 0 was torn"):
        flash.erase("b", 0)
    assert flash.read("b", 0, 256) == b"\xff" * 128 + b"D" * 128
