"""An update's bytes are hashed once, as they are programmed (bootloader/slots.py SlotWriter).

The boot services sign over the image hash their writer computed only while
the flash is unchanged since; a byte changed afterwards, through the flash or
behind its back, is still refused (at install, or at the next boot).
"""

from __future__ import annotations

import hashlib

import pytest

from bootloader.chain import boot
from bootloader.hardware import Flash
from bootloader.slots import SlotWriter
from bootloader.unit import Device
from common.errors import FlashError, ImageVerificationError
from common.handoff import BootServices
from common.image import TLV_SEC_CNT, SignedImage
from tests.bootloader.conftest import NOW


def _stream(device: Device, image: bytes, *, chunk: int = 700) -> SlotWriter:
    services = boot(device, now=NOW).handoff.services
    writer = services.open_slot_writer("b", total=len(image))
    for start in range(0, len(image), chunk):
        writer.write(image[start : start + chunk])
    writer.finish()
    return writer  # type: ignore[no-any-return]


def _write(services: BootServices, image: bytes) -> None:
    writer = services.open_slot_writer("b", total=len(image))
    writer.write(image)
    writer.finish()


@pytest.mark.parametrize("chunk", [1, 31, 32, 700, 1 << 20])
def test_the_writer_hashes_the_whole_image_and_the_covered_part_in_one_pass(
    device: Device, image_v2: bytes, chunk: int
) -> None:
    writer = _stream(device, image_v2, chunk=chunk)
    covered = SignedImage.parse(image_v2).covered
    assert writer.digests is not None
    assert writer.digests.length == len(image_v2)
    assert writer.digests.sha256 == hashlib.sha256(image_v2).digest()
    assert writer.digests.covered == hashlib.sha256(covered).digest()


def test_a_resumed_writer_saw_only_the_tail_and_has_no_digests(device: Device, image_v2: bytes) -> None:
    services = boot(device, now=NOW).handoff.services
    sector = device.flash.geometry.sector_size
    first = services.open_slot_writer("b", total=len(image_v2))
    first.write(image_v2[:sector])
    second = services.open_slot_writer("b", offset=first.durable, total=len(image_v2))
    second.write(image_v2[first.durable :])
    second.finish()
    assert second.digests is None
    services.set_pending("b")  # verified by reading the slot back, and good
    assert boot(device, now=NOW).handoff.firmware.version == "2.0.0"


def test_a_streamed_image_is_verified_without_hashing_it_again(
    device: Device, image_v2: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stream(device, image_v2)
    services = boot(device, now=NOW).handoff.services  # a fresh boot: nothing remembered
    _write(services, image_v2)
    hashed: list[int] = []
    real = hashlib.sha256

    def counting(data: bytes = b"") -> hashlib._Hash:
        hashed.append(len(data))
        return real(data)

    monkeypatch.setattr(hashlib, "sha256", counting)
    services.set_pending("b")
    monkeypatch.undo()
    covered = len(SignedImage.parse(image_v2).covered)
    assert covered not in hashed  # the image hash came from the write, not a second pass
    handoff = boot(device, now=NOW).handoff  # the bootloader hashes what is on flash
    assert (handoff.firmware.version, handoff.trial) == ("2.0.0", True)


def test_the_install_time_check_parses_the_slot_in_place_and_the_boot_copies_it(
    device: Device, image_v2: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = boot(device, now=NOW).handoff.services
    _write(services, image_v2)
    reads: list[int] = []
    real = Flash.read

    def counting(self: Flash, partition: str, offset: int = 0, length: int | None = None) -> bytes:
        data = real(self, partition, offset, length)  # type: ignore[arg-type]
        reads.append(len(data))
        return data

    monkeypatch.setattr(Flash, "read", counting)
    services.set_pending("b")
    assert max(reads) < len(image_v2)  # header, TLV info and fuses: the image is not copied
    reads.clear()
    handoff = boot(device, now=NOW).handoff  # the bootloader reads (copies) and hashes the slot
    assert (handoff.firmware.version, handoff.trial) == ("2.0.0", True)
    assert len(image_v2) in reads


def test_a_borrowed_parse_keeps_the_view_and_copies_only_the_tlv_values(image_v2: bytes) -> None:
    cells = bytearray(image_v2)
    view = memoryview(cells).toreadonly()
    borrowed = SignedImage.parse(view, borrowed=True)
    copied = SignedImage.parse(view)
    assert isinstance(copied.raw, bytes)  # the default: an immutable copy
    assert isinstance(borrowed.raw, memoryview) and borrowed.raw.obj is cells
    assert all(type(t.value) is bytes for t in (*borrowed.protected_tlvs, *borrowed.unprotected_tlvs))
    assert (borrowed.image_hash, borrowed.signature) == (copied.image_hash, copied.signature)
    cells[len(image_v2) - 1] ^= 0xFF  # a later change shows through the borrowed view only...
    assert borrowed.raw[-1] != copied.raw[-1]
    assert borrowed.signature == copied.signature  # ...never in the values it parsed


def test_a_byte_changed_through_the_flash_after_the_write_is_refused_at_install(
    device: Device, image_v2: bytes
) -> None:
    services = boot(device, now=NOW).handoff.services
    _write(services, image_v2)
    sector = device.flash.geometry.sector_size
    tampered = bytearray(device.flash.read("b", sector, sector))
    tampered[10] ^= 0x01
    device.flash.erase("b", 1)
    device.flash.write("b", sector, bytes(tampered))
    with pytest.raises(ImageVerificationError, match="image hash mismatch"):
        services.set_pending("b")


def test_a_byte_changed_behind_the_flash_after_the_write_never_boots(
    device: Device, image_v2: bytes
) -> None:
    services = boot(device, now=NOW).handoff.services
    _write(services, image_v2)
    # raise the security counter in the protected TLVs (covered by the image hash), with no
    # flash operation: the image parses, and the policy alone would accept it
    counter = next(t for t in SignedImage.parse(image_v2).protected_tlvs if t.type == TLV_SEC_CNT)
    offset = device.flash.geometry.offset("b") + counter.offset + 4  # the value after type, length
    storage = device.flash._storage
    storage.program(offset, bytes([storage.read(offset, 1)[0] + 1]))
    services.set_pending("b")  # the install trusted the digest of the bytes it wrote...
    outcome = boot(device, now=NOW)  # ...the bootloader hashes what is on flash
    assert outcome.handoff.firmware.version == "1.0.0"
    assert outcome.handoff.slots[1].state == "invalid"


def test_a_run_of_sectors_lands_as_sector_by_sector_erases_and_writes() -> None:
    one, bulk = Flash.in_memory(), Flash.in_memory()
    sector = one.geometry.sector_size
    data = bytes(range(256)) * (3 * sector // 256)
    for flash in (one, bulk):
        flash.write("b", 0, b"\x00" * 8)  # old data: the run must erase before it writes
    for at in range(0, len(data), sector):
        one.erase("b", at // sector)
        one.write("b", at, data[at : at + sector])
    bulk.erase_and_program("b", 0, memoryview(data))
    assert bulk.read("b", 0, 4 * sector) == one.read("b", 0, 4 * sector)
    assert bulk.mutations == one.mutations
    with pytest.raises(FlashError, match="multiples of the sector size"):
        bulk.erase_and_program("b", 8, data[:sector])
