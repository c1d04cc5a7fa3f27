"""Slots and boot control on the simulated flash: reading an image out of a
slot, streaming one into it sector by sector, the two boot-control copies, the
trust state the fuses give, checking a slot as the bootloader does, and burning
the fused counters after a confirmed image.

Both the bootloader stage (:mod:`bootloader.chain`) and the boot services the
firmware is handed (:mod:`bootloader.services`) build on this module.

Example::

    verified = check_slot(device.flash, "a", trust=trust_state(fuses, device.board))
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass

from bootloader.bootctl import RECORD_SIZE as BOOTCTL_RECORD_SIZE
from bootloader.bootctl import BootControl, BootControlView, next_record, read_boot_control
from bootloader.firmware import FirmwarePayload
from bootloader.hardware import (
    Board,
    Flash,
    FlashGeometry,
    FuseState,
    OTPFuses,
    PartitionName,
)
from common.errors import (
    BootControlError,
    BootError,
    FirmwarePayloadError,
    FlashError,
    ImageFormatError,
)
from common.handoff import (
    FuseSummary,
    Slot,
    SlotStatus,
    StreamedDigests,
)
from common.image import (
    IMAGE_HEADER_SIZE,
    TLV_INFO_FMT,
    TLV_INFO_SIZE,
    ImageVersion,
    covered_size,
    image_extent,
)
from common.verify import (
    TrustState,
    VerifiedFirmware,
    unsafe_verify_hash_only,
    verify_firmware_image,
)

SLOTS: tuple[Slot, Slot] = ("a", "b")
_ERASE_CHECK_BYTES = 256 * 1024  # how much of a slot's blank tail is read in one go


def is_erased(data: bytes) -> bool:
    return data.count(0xFF) == len(data)


def read_image(flash: Flash, partition: PartitionName, *, borrowed: bool = False) -> bytes | memoryview | None:
    """The image stored in ``partition`` (its exact length), or None when erased.

    ``borrowed``: a read-only view of the flash cells where the part allows it, not a
    copy (valid until the next erase or write of the part).

    Raises :class:`ImageFormatError` when the header is not an image header or
    the lengths it declares run past the partition.
    """
    size = flash.geometry.size(partition)
    head = flash.read(partition, 0, min(64, size))
    if is_erased(head):
        return None
    # Read only what the header and TLV info declare (a slot may be much larger than
    # its image); the lengths are checked against the partition, not trusted.
    info_at = covered_size(head)
    if info_at is not None and info_at + TLV_INFO_SIZE <= size:
        info = flash.read(partition, info_at, TLV_INFO_SIZE)
        declared = info_at + struct.unpack_from(TLV_INFO_FMT, info)[1]
        if declared <= size:
            if borrowed:
                view = flash.view(partition, 0, declared)
                return view[: image_extent(view)]
            data = flash.read(partition, 0, declared)
            return data[: image_extent(data)]
    data = flash.read(partition)  # malformed: image_extent says exactly what is wrong
    return data[: image_extent(data)]


class SlotWriter:
    """Streams an image into a partition, sector by sector: the download area of an update.

    MCUboot devices download straight into the secondary slot (there is no room
    for a second copy); this is that writer. Each sector is erased just before
    it is programmed, and bytes are programmed a whole sector at a time, so
    ``durable`` (the bytes on flash) is a multiple of the sector size until
    :meth:`finish`. A writer opened at ``offset`` (an earlier writer's
    ``durable``) resumes an interrupted download and keeps the sectors before it.

    Nothing here verifies: the caller verifies the finished slot (TUF hashes,
    then the bootloader's own checks) before it may be marked pending. A writer
    that starts at offset 0 hashes the bytes as it programs them, in the same
    pass (:attr:`digests`): the SHA-256 of the whole image (what TUF lists) and
    of the part the image hash covers (what the bootloader's check signs over),
    so an update reads its bytes once. A resumed writer saw only the tail, so
    it has no digests: the slot is read back instead.
    """

    def __init__(
        self,
        flash: Flash,
        partition: PartitionName,
        *,
        offset: int = 0,
        total: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        on_durable: Callable[[int], None] | None = None,
        on_finish: Callable[[SlotWriter], None] | None = None,
    ) -> None:
        geometry: FlashGeometry = flash.geometry
        self._flash = flash
        self._partition = partition
        self._sector = geometry.sector_size
        self._size = geometry.size(partition)
        if offset < 0 or offset % self._sector or offset > self._size:
            raise FlashError(
                f"a slot write resumes at a sector boundary inside the partition, not at {offset}"
            )
        self.durable = offset  # bytes programmed so far (sector-aligned until finish)
        self._buffer = bytearray()
        self._total = total
        self._progress = progress
        self._on_durable = on_durable  # told each new resume point, once its sector is on flash
        self._finished = False
        self._on_finish = on_finish
        # one SHA-256 pass over what is programmed; forked where the image hash stops covering
        self._sha: hashlib._Hash | None = hashlib.sha256() if offset == 0 else None
        self._hashed = 0
        self._header = bytearray()  # the first bytes, until the image header is complete
        self._covered: int | None = None
        self._covered_digest: bytes | None = None
        self.digests: StreamedDigests | None = None  # set by finish() for a whole image

    @property
    def received(self) -> int:
        """Bytes accepted so far (programmed or buffered)."""
        return self.durable + len(self._buffer)

    def write(self, data: bytes | memoryview) -> None:
        if self._finished:
            raise FlashError("slot write already finished")
        if self.received + len(data) > self._size:
            raise FlashError(
                f"{self.received + len(data)} bytes do not fit partition {self._partition!r} "
                f"({self._size} bytes)"
            )
        self._hash(data)
        if self._buffer:  # complete the buffered sector first
            self._buffer += data
            data, self._buffer = bytes(self._buffer), bytearray()
        whole = len(data) - len(data) % self._sector
        view = memoryview(data)
        try:
            if self._flash.injector is not None:
                # power cuts are being simulated: sector by sector, each resume point reported
                for start in range(0, whole, self._sector):
                    self._program(view[start : start + self._sector])
            elif whole:
                # the run of whole sectors in one flash call (each still erased, then written)
                self._flash.erase_and_program(self._partition, self.durable, view[:whole])
                self.durable += whole
                if self._on_durable is not None:
                    self._on_durable(self.durable)
            self._buffer += view[whole:]
        finally:
            view.release()
        self._report()

    def _program(self, chunk: memoryview | bytes) -> None:
        self._flash.erase(self._partition, self.durable // self._sector)
        self._flash.write(self._partition, self.durable, chunk)
        self.durable += self._sector
        if self._on_durable is not None:
            self._on_durable(self.durable)

    def finish(self) -> int:
        """Program the tail (padded with 0xFF to the write alignment) and erase whatever
        older data follows it; returns the image length."""
        if self._finished:
            raise FlashError("slot write already finished")
        length = self.received
        if self._buffer:
            align = self._flash.geometry.write_align
            tail = bytes(self._buffer) + b"\xff" * (-len(self._buffer) % align)
            self._flash.erase(self._partition, self.durable // self._sector)
            self._flash.write(self._partition, self.durable, tail)
            self._buffer.clear()
        self._finished = True
        first_free = -(-length // self._sector)
        sectors = self._size // self._sector
        run = max(1, _ERASE_CHECK_BYTES // self._sector)  # sectors read at once; most are blank
        for first in range(first_free, sectors, run):
            count = min(run, sectors - first)
            cells = self._flash.read(self._partition, first * self._sector, count * self._sector)
            if is_erased(cells):
                continue
            for index in range(count):
                if not is_erased(cells[index * self._sector : (index + 1) * self._sector]):
                    self._flash.erase(self._partition, first + index)
        self.durable = length
        if self._sha is not None:
            if self._covered is not None and self._covered_digest is None and self._hashed == self._covered:
                self._covered_digest = self._sha.copy().digest()
            self.digests = StreamedDigests(length, self._sha.digest(), self._covered_digest)
        self._report()
        if self._on_finish is not None:
            self._on_finish(self)
        return length

    def _hash(self, data: bytes | memoryview) -> None:
        if self._sha is None:
            return
        view = memoryview(data)
        if self._covered is None and len(self._header) < IMAGE_HEADER_SIZE:
            self._header += view[: IMAGE_HEADER_SIZE - len(self._header)]
            if len(self._header) == IMAGE_HEADER_SIZE:
                self._covered = covered_size(bytes(self._header))
        if self._covered is not None and self._covered_digest is None:
            cut = self._covered - self._hashed  # bytes of this chunk inside the covered part
            if 0 <= cut < len(view):
                self._sha.update(view[:cut])
                self._covered_digest = self._sha.copy().digest()
                self._sha.update(view[cut:])
                self._hashed += len(view)
                return
        self._sha.update(view)
        self._hashed += len(view)

    def _report(self) -> None:
        if self._progress is not None:
            total = self._total if self._total is not None else self.received
            self._progress(min(self.durable, total), total)


def write_partition(
    flash: Flash,
    partition: PartitionName,
    data: bytes,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Erase ``partition`` sector by sector and program ``data`` (padded with 0xFF).

    Sectors past the data are erased only when not already blank.
    """
    writer = SlotWriter(flash, partition, total=len(data), progress=progress)  # refuses what does not fit
    writer.write(data)
    writer.finish()


def read_control(flash: Flash) -> tuple[BootControlView | None, str | None]:
    """The boot-control view, or (None, why) when both copies are unreadable."""
    sector = flash.geometry.sector_size
    copies = (
        flash.read("boot-control", 0, BOOTCTL_RECORD_SIZE),
        flash.read("boot-control", sector, BOOTCTL_RECORD_SIZE),
    )
    try:
        return read_boot_control(copies), None
    except BootControlError as exc:
        return None, str(exc)


def write_control(flash: Flash, view: BootControlView | None, update: BootControl) -> None:
    """Overwrite the older copy (erase its sector, write the record with seq + 1)."""
    index, record = next_record(view, update)
    flash.erase("boot-control", index)
    flash.write("boot-control", index * flash.geometry.sector_size, record)




def trust_state(fuses: FuseState, board: Board) -> TrustState:
    """What the bootloader trusts, all of it from fuses and the board."""
    return TrustState(
        rot_keys=fuses.trusted_rot_keys(),
        min_key_manifest_counter=fuses.key_manifest_counter,
        min_security_counter=fuses.firmware_counter,
        hardware_id=board.hardware_id,
    )


@dataclass(frozen=True)
class VerifiedSlot:
    firmware: VerifiedFirmware
    payload: FirmwarePayload


def check_slot(
    flash: Flash,
    slot: Slot,
    trust: TrustState,
    *,
    unsafe_hash_only: bool = False,
    covered_digest: bytes | None = None,
) -> VerifiedSlot | None:
    """Verify ``slot`` exactly as the bootloader does; None when erased, raises BootError.

    ``unsafe_hash_only`` is the ``boot-skips-signature`` flaw profile: a flawed
    bootloader that checks integrity but not the signature. ``covered_digest``
    is the image hash its writer computed while programming exactly these bytes
    (the boot services pass it only while the flash is unchanged since).
    """
    # With a streamed image hash the slot is parsed in place, not copied: the boot
    # services pass that hash only while no flash operation has happened since it was
    # computed, and this check returns before any can happen.
    image = read_image(flash, slot, borrowed=covered_digest is not None and not unsafe_hash_only)
    if image is None:
        return None
    if unsafe_hash_only:
        verified = unsafe_verify_hash_only(image, trust=trust)
    else:
        verified = verify_firmware_image(image, trust=trust, covered_digest=covered_digest)
    # With a streamed image hash (an update's install-time check) the entries' content
    # hashes are left to the boot, which checks them over the slot before running it.
    payload = FirmwarePayload.parse(verified.payload, hash_entries=covered_digest is None)
    try:
        same_version = ImageVersion.parse(payload.manifest.version) == verified.image.version
    except ImageFormatError:
        same_version = False
    if not same_version:
        raise FirmwarePayloadError(
            f"payload manifest version {payload.manifest.version} differs from the image "
            f"header version {verified.version}"
        )
    if payload.manifest.hardware_id != trust.hardware_id:
        raise FirmwarePayloadError(
            f"payload is built for {payload.manifest.hardware_id!r}, this board is "
            f"{trust.hardware_id!r}"
        )
    return VerifiedSlot(verified, payload)


def verify_slot_image(
    flash: Flash, slot: Slot, trust: TrustState, *, unsafe_hash_only: bool = False
) -> tuple[SlotStatus, VerifiedSlot | None]:
    """The slot's status for the boot log and the handoff (never raises a BootError)."""
    try:
        result = check_slot(flash, slot, trust, unsafe_hash_only=unsafe_hash_only)
    except BootError as exc:
        return SlotStatus(slot, "invalid", reason=str(exc)), None
    if result is None:
        return SlotStatus(slot, "empty"), None
    firmware = result.firmware
    return SlotStatus(slot, "valid", firmware.version, firmware.security_counter), result


def fuse_summary(fuses: FuseState) -> FuseSummary:
    return FuseSummary(
        firmware_counter=fuses.firmware_counter,
        bootloader_counter=fuses.bootloader_counter,
        key_manifest_counter=fuses.key_manifest_counter,
        lifecycle=fuses.lifecycle,
        debug_disabled=fuses.debug_disabled,
        rot_keys=tuple((key.hex(), revoked) for key, revoked in fuses.trusted_rot_keys()),
    )


def advance_fuses(fuses: OTPFuses, firmware: VerifiedFirmware) -> list[str]:
    """Bring the fused counters up to a confirmed image's counters (never down)."""
    before = fuses.read()
    done: list[str] = []
    if firmware.security_counter > before.firmware_counter:
        fuses.advance_counter("firmware", firmware.security_counter)
        done.append(
            f"fused firmware counter advanced {before.firmware_counter} -> {firmware.security_counter}"
        )
    manifest_counter = firmware.key_manifest_counter
    if manifest_counter is not None and manifest_counter > before.key_manifest_counter:
        fuses.advance_counter("key_manifest", manifest_counter)
        done.append(
            f"fused key-manifest counter advanced {before.key_manifest_counter} -> {manifest_counter}"
        )
    return done
