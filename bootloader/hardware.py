"""Simulated camera hardware: OTP fuses, NOR flash, and a power-cut injector.

Each part is a small class over a tiny storage ``Protocol`` with an in-memory
backend (tests) and a file-backed one (the running device), so the *rules*
of the silicon live in one place:

- :class:`OTPFuses`: a bit array whose bits only go 0 -> 1. It holds four
  root-of-trust key-hash slots (each with a "programmed" lock bit and a
  revocation bit), thermometer-coded anti-rollback counters (the value is the
  number of burnt bits), the lifecycle bit (development -> secured), the
  debug-disable bit and the 32-byte unique device secret (UDS). Burning a
  burnt bit raises :class:`FuseError`; advancing a counter to a value it
  already has is a no-op (crash recovery repeats it), beyond capacity raises.
- :class:`Flash`: partitions ``bootloader | a | b | boot-control | data`` with
  a :class:`FlashGeometry`. ``erase`` sets a sector to 0xFF; ``write`` needs
  aligned offset and length and erased (0xFF) target cells.
- :class:`PowerCutInjector`: every flash erase/write and every fuse burn is
  one numbered operation. At operation ``N`` the injector cuts the power:
  the operation does not happen (or, ``torn=True``, only a prefix lands) and
  :class:`PowerCut` is raised; the device then stays off (every later
  operation raises) until it is powered on again (a new object over the same
  storage, see :meth:`Flash.power_on`).
- :class:`SecureCounters`: monotonic 64-bit counters in replay-protected
  storage (RPMB-like): ``advance`` only moves them up. The audit log anchors
  its head there, so truncating or deleting the log file is detected.

File backends are durable per operation: fuses are rewritten with
tmp + fsync + ``os.replace`` + directory fsync (all or nothing); flash
operations are ``pwrite`` + ``fsync`` on a sparse file, so a killed process
leaves at most the one operation in progress, which is the torn-write model.

Example::

    fuses = OTPFuses.in_memory()
    fuses.program_rot_key(0, spki_hash)
    fuses.advance_counter("firmware", 1)
    assert fuses.read().firmware_counter == 1
    flash = Flash.in_memory(FlashGeometry(sector_size=512, slot_size=8192))
    flash.erase("a", 0)
    flash.write("a", 0, image_prefix)
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from common.atomicfile import fsync_dir, write_atomic
from common.errors import FlashError, FuseError, HardwareError, PowerCut
from common.handoff import Lifecycle

# ---------------------------------------------------------------- power cuts


class PowerCutInjector:
    """Counts hardware operations and cuts the power at operation ``at_operation``.

    ``at_operation=None`` only counts (to measure how many operations a
    scenario takes). Operations are numbered from 1.
    """

    def __init__(self, at_operation: int | None = None, *, torn: bool = False) -> None:
        self.at_operation = at_operation
        self.torn = torn
        self.operations = 0  # operations started so far
        self.fired = False

    def begin(self, what: str) -> Literal["full", "torn"]:
        """Announce an operation; raises :class:`PowerCut` or says how much of it lands."""
        if self.fired:
            raise PowerCut(self.operations, f"the device is off ({what} not attempted)")
        self.operations += 1
        if self.at_operation is not None and self.operations == self.at_operation:
            self.fired = True
            if not self.torn:
                raise PowerCut(self.operations, f"{what} did not happen")
            return "torn"
        return "full"

    def cut(self, what: str) -> PowerCut:
        """The exception to raise after a torn operation has landed partially."""
        return PowerCut(self.operations, f"{what} was torn")


# ---------------------------------------------------------------- OTP fuses

ROT_KEY_SLOTS = 4
ROT_HASH_BYTES = 32
UDS_BYTES = 32
CounterName = Literal["firmware", "bootloader", "key_manifest"]
COUNTER_BITS: dict[CounterName, int] = {"firmware": 64, "bootloader": 32, "key_manifest": 32}

# Bit layout of the fuse bank (bit indices, in this order):
#   per rot slot i (4x): 256 hash bits | programmed (lock) bit | revoked bit
#   firmware counter (64) | bootloader counter (32) | key-manifest counter (32)
#   lifecycle-secured bit | debug-disabled bit
#   UDS (256 bits) | UDS programmed (lock) bit
_ROT_SLOT_BITS = ROT_HASH_BYTES * 8 + 2
_COUNTER_BASE = ROT_KEY_SLOTS * _ROT_SLOT_BITS
_COUNTER_OFFSET: dict[CounterName, int] = {}
_offset = _COUNTER_BASE
for _name, _bits in COUNTER_BITS.items():
    _COUNTER_OFFSET[_name] = _offset
    _offset += _bits
_LIFECYCLE_BIT = _offset
_DEBUG_BIT = _offset + 1
_UDS_BASE = _offset + 2
_UDS_LOCK_BIT = _UDS_BASE + UDS_BYTES * 8
FUSE_BITS = _UDS_LOCK_BIT + 1
FUSE_BYTES = (FUSE_BITS + 7) // 8
_BIT_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))

_OTP_MAGIC = b"refcam-otp/1\n"


@dataclass(frozen=True)
class FuseState:
    """A frozen snapshot of the fuse bank."""

    rot_keys: tuple[bytes | None, ...]  # SHA-256 of each slot's DER SPKI, None when blank
    rot_revoked: tuple[bool, ...]
    firmware_counter: int
    bootloader_counter: int
    key_manifest_counter: int
    lifecycle: Lifecycle
    debug_disabled: bool
    uds: bytes | None  # None until programmed

    def trusted_rot_keys(self) -> tuple[tuple[bytes, bool], ...]:
        """``(hash, revoked)`` for every programmed root-of-trust slot."""
        return tuple(
            (key, revoked)
            for key, revoked in zip(self.rot_keys, self.rot_revoked, strict=True)
            if key is not None
        )

    def counter(self, name: CounterName) -> int:
        return {
            "firmware": self.firmware_counter,
            "bootloader": self.bootloader_counter,
            "key_manifest": self.key_manifest_counter,
        }[name]


class FuseStorage(Protocol):
    """Where the fuse bitmap lives; ``store`` is all-or-nothing."""

    def load(self) -> bytes: ...

    def store(self, bitmap: bytes) -> None: ...


class MemoryFuseStorage:
    def __init__(self, bitmap: bytes | None = None) -> None:
        self._bitmap = bytes(bitmap) if bitmap is not None else bytes(FUSE_BYTES)

    def load(self) -> bytes:
        return self._bitmap

    def store(self, bitmap: bytes) -> None:
        self._bitmap = bytes(bitmap)



class FileFuseStorage:
    """``<path>``: magic, bitmap, SHA-256 of both; replaced atomically on every burn."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> bytes:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError as exc:
            raise HardwareError(f"OTP fuse file {self.path} does not exist") from exc
        except OSError as exc:
            raise HardwareError(f"OTP fuse file {self.path} cannot be read: {exc}") from exc
        expected = len(_OTP_MAGIC) + FUSE_BYTES + 32
        body, digest = raw[:-32], raw[-32:]
        if (
            len(raw) != expected
            or not raw.startswith(_OTP_MAGIC)
            or hashlib.sha256(body).digest() != digest
        ):
            raise HardwareError(
                f"OTP fuse file {self.path} is corrupt: expected {expected} bytes of "
                f"'refcam-otp/1' with a valid checksum, found {len(raw)} bytes that do not verify"
            )
        return body[len(_OTP_MAGIC) :]

    def store(self, bitmap: bytes) -> None:
        body = _OTP_MAGIC + bitmap
        write_atomic(self.path, body + hashlib.sha256(body).digest())


class OTPFuses:
    """The one-time-programmable fuse bank; bits only go 0 -> 1."""

    def __init__(self, storage: FuseStorage, *, injector: PowerCutInjector | None = None) -> None:
        self._storage = storage
        self.injector = injector
        bitmap = storage.load()
        if len(bitmap) != FUSE_BYTES:
            raise HardwareError(f"fuse bitmap has {len(bitmap)} bytes, expected {FUSE_BYTES}")

    @classmethod
    def in_memory(cls, *, injector: PowerCutInjector | None = None) -> OTPFuses:
        return cls(MemoryFuseStorage(), injector=injector)

    @classmethod
    def create_file(cls, path: Path) -> OTPFuses:
        """A blank fuse bank at ``path`` (refuses to overwrite one)."""
        if path.exists():
            raise HardwareError(f"OTP fuse file {path} already exists")
        storage = FileFuseStorage(path)
        storage.store(bytes(FUSE_BYTES))
        return cls(storage)

    @classmethod
    def open_file(cls, path: Path, *, injector: PowerCutInjector | None = None) -> OTPFuses:
        return cls(FileFuseStorage(path), injector=injector)

    def power_on(self, *, injector: PowerCutInjector | None = None) -> OTPFuses:
        """The same fuse bank after a power cycle (a fresh view over the same storage)."""
        return OTPFuses(self._storage, injector=injector)

    # -- raw bits

    def _bit(self, bitmap: bytes | bytearray, index: int) -> bool:
        return bool(bitmap[index // 8] >> (index % 8) & 1)

    def burn(self, bits: Iterable[int], *, what: str = "fuse burn") -> None:
        """Burn ``bits`` (one hardware operation). Any already-burnt bit raises first."""
        wanted = sorted(set(bits))
        bitmap = bytearray(self._storage.load())
        for index in wanted:
            if not 0 <= index < FUSE_BITS:
                raise FuseError(f"fuse bit {index} does not exist (bank has {FUSE_BITS} bits)")
            if self._bit(bitmap, index):
                raise FuseError(f"fuse bit {index} is already burnt; OTP bits only go 0 -> 1")
        if not wanted:
            return
        mode = self.injector.begin(what) if self.injector is not None else "full"
        landed = wanted if mode == "full" else wanted[: len(wanted) // 2]
        for index in landed:
            bitmap[index // 8] |= 1 << (index % 8)
        self._storage.store(bytes(bitmap))
        if mode == "torn":
            assert self.injector is not None
            raise self.injector.cut(what)

    # -- reading

    def read(self) -> FuseState:
        bitmap = self._storage.load()
        bits = int.from_bytes(bitmap, "little")  # bit i of the bank is bit i of this integer

        def bits_to_bytes(base: int, count: int) -> bytes:
            # fuse bit base + 8j + k is bit 7 - k of byte j (most significant first)
            field = (bits >> base) & ((1 << count * 8) - 1)
            return field.to_bytes(count, "little").translate(_BIT_REVERSED)

        rot_keys: list[bytes | None] = []
        revoked: list[bool] = []
        for slot in range(ROT_KEY_SLOTS):
            base = slot * _ROT_SLOT_BITS
            programmed = self._bit(bitmap, base + ROT_HASH_BYTES * 8)
            rot_keys.append(bits_to_bytes(base, ROT_HASH_BYTES) if programmed else None)
            revoked.append(self._bit(bitmap, base + ROT_HASH_BYTES * 8 + 1))
        counters = {
            name: ((bits >> _COUNTER_OFFSET[name]) & ((1 << size) - 1)).bit_count()
            for name, size in COUNTER_BITS.items()
        }
        return FuseState(
            rot_keys=tuple(rot_keys),
            rot_revoked=tuple(revoked),
            firmware_counter=counters["firmware"],
            bootloader_counter=counters["bootloader"],
            key_manifest_counter=counters["key_manifest"],
            lifecycle="secured" if self._bit(bitmap, _LIFECYCLE_BIT) else "development",
            debug_disabled=self._bit(bitmap, _DEBUG_BIT),
            uds=bits_to_bytes(_UDS_BASE, UDS_BYTES) if self._bit(bitmap, _UDS_LOCK_BIT) else None,
        )

    # -- named operations

    def program_rot_key(self, slot: int, key_hash: bytes) -> None:
        """Fuse a root-of-trust key hash into an empty slot (and lock the slot)."""
        if not 0 <= slot < ROT_KEY_SLOTS:
            raise FuseError(f"root-of-trust slot {slot} does not exist (0..{ROT_KEY_SLOTS - 1})")
        if len(key_hash) != ROT_HASH_BYTES:
            raise FuseError(
                f"a root-of-trust key hash is {ROT_HASH_BYTES} bytes, got {len(key_hash)}"
            )
        if self.read().rot_keys[slot] is not None:
            raise FuseError(f"root-of-trust slot {slot} is already programmed")
        base = slot * _ROT_SLOT_BITS
        bits = [base + i for i in range(ROT_HASH_BYTES * 8) if key_hash[i // 8] & (0x80 >> (i % 8))]
        self.burn([*bits, base + ROT_HASH_BYTES * 8], what=f"program root-of-trust slot {slot}")

    def revoke_rot_key(self, slot: int) -> None:
        """Burn the revocation bit of a programmed root-of-trust slot."""
        state = self.read()
        if not 0 <= slot < ROT_KEY_SLOTS or state.rot_keys[slot] is None:
            raise FuseError(f"root-of-trust slot {slot} is not programmed; nothing to revoke")
        self.burn([slot * _ROT_SLOT_BITS + ROT_HASH_BYTES * 8 + 1], what=f"revoke rot slot {slot}")

    def advance_counter(self, name: CounterName, value: int) -> None:
        """Burn counter bits up to ``value``; a value at or below the current one is a no-op."""
        if name not in COUNTER_BITS:
            raise FuseError(f"no anti-rollback counter named {name!r}")
        capacity = COUNTER_BITS[name]
        if value > capacity:
            raise FuseError(
                f"{name} counter cannot reach {value}: the fuse bank holds {capacity} increments"
            )
        current = self.read().counter(name)
        if value <= current:
            return  # bits only go up; repeating an advance after a power cut is harmless
        base = _COUNTER_OFFSET[name]
        self.burn(range(base + current, base + value), what=f"advance {name} counter to {value}")

    def set_lifecycle_secured(self) -> None:
        if self.read().lifecycle != "secured":
            self.burn([_LIFECYCLE_BIT], what="lifecycle -> secured")

    def disable_debug(self) -> None:
        if not self.read().debug_disabled:
            self.burn([_DEBUG_BIT], what="disable debug")

    def program_uds(self, uds: bytes) -> None:
        """Fuse the 32-byte unique device secret (once)."""
        if len(uds) != UDS_BYTES:
            raise FuseError(f"the unique device secret is {UDS_BYTES} bytes, got {len(uds)}")
        if self.read().uds is not None:
            raise FuseError("the unique device secret is already programmed")
        bits = [_UDS_BASE + i for i in range(UDS_BYTES * 8) if uds[i // 8] & (0x80 >> (i % 8))]
        self.burn([*bits, _UDS_LOCK_BIT], what="program UDS")


# ---------------------------------------------------------------- flash

PartitionName = Literal["bootloader", "a", "b", "boot-control", "data"]
PARTITIONS: tuple[PartitionName, ...] = ("bootloader", "a", "b", "boot-control", "data")


@dataclass(frozen=True)
class FlashGeometry:
    sector_size: int = 4096  # bytes, the erase unit
    write_align: int = 8  # bytes, the program unit: offsets and lengths are multiples
    bootloader_size: int = 256 * 1024  # bytes
    slot_size: int = 8 * 2**20  # bytes, each of slot a and slot b
    boot_control_sectors: int = 2  # one sector per boot-control copy
    data_size: int = 4096  # bytes (the data filesystem itself lives under state/data)

    def __post_init__(self) -> None:
        if self.sector_size <= 0 or self.write_align <= 0 or self.sector_size % self.write_align:
            raise FlashError(
                f"flash geometry: sector size {self.sector_size} must be a positive multiple "
                f"of the write alignment {self.write_align}"
            )
        for name in ("bootloader_size", "slot_size", "data_size"):
            size = getattr(self, name)
            if size <= 0 or size % self.sector_size:
                raise FlashError(
                    f"flash geometry: {name} {size} must be a positive multiple of the "
                    f"sector size {self.sector_size}"
                )
        if self.boot_control_sectors != 2:
            raise FlashError("flash geometry: boot-control needs exactly 2 sectors (two copies)")

    @functools.cached_property
    def _layout(self) -> dict[str, tuple[int, int]]:
        """partition -> (offset, size); computed once (the flash hot path asks per sector)."""
        sizes = {
            "bootloader": self.bootloader_size,
            "a": self.slot_size,
            "b": self.slot_size,
            "boot-control": self.boot_control_sectors * self.sector_size,
            "data": self.data_size,
        }
        layout: dict[str, tuple[int, int]] = {}
        offset = 0
        for name in PARTITIONS:
            layout[name] = (offset, sizes[name])
            offset += sizes[name]
        return layout

    def size(self, partition: PartitionName) -> int:
        try:
            return self._layout[partition][1]
        except KeyError:
            raise FlashError(f"no flash partition named {partition!r}") from None

    def offset(self, partition: PartitionName) -> int:
        try:
            return self._layout[partition][0]
        except KeyError:
            raise FlashError(f"no flash partition named {partition!r}") from None

    @property
    def total_size(self) -> int:
        return sum(self.size(name) for name in PARTITIONS)

    def to_json(self) -> dict[str, int]:
        return {
            "sector_size": self.sector_size,
            "write_align": self.write_align,
            "bootloader_size": self.bootloader_size,
            "slot_size": self.slot_size,
            "boot_control_sectors": self.boot_control_sectors,
            "data_size": self.data_size,
        }

    @classmethod
    def from_json(cls, doc: object) -> FlashGeometry:
        if not isinstance(doc, dict) or set(doc) != set(cls().to_json()):
            raise HardwareError(
                f"flash geometry must have exactly the fields {sorted(cls().to_json())}"
            )
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in doc.values()):
            raise HardwareError("flash geometry fields must be integers")
        return cls(**doc)


class FlashStorage(Protocol):
    """Raw bytes of the whole part; ``program`` is durable when it returns."""

    def read(self, offset: int, length: int) -> bytes: ...

    def program(self, offset: int, data: bytes | memoryview) -> None: ...


class MemoryFlashStorage:
    def __init__(self, size: int) -> None:
        self._cells = bytearray(b"\xff" * size)  # a new part comes erased

    def read(self, offset: int, length: int) -> bytes:
        with memoryview(self._cells) as cells:  # one copy, not two (slices are copies)
            return bytes(cells[offset : offset + length])

    def view(self, offset: int, length: int) -> memoryview:
        """The cells themselves, read-only, without a copy (they change with the next program)."""
        return memoryview(self._cells)[offset : offset + length].toreadonly()

    def program(self, offset: int, data: bytes | memoryview) -> None:
        self._cells[offset : offset + len(data)] = data


_INVERT = bytes(b ^ 0xFF for b in range(256))
_ERASED = b"\xff"


def _invert(data: bytes) -> bytes:
    return data.translate(_INVERT)


class FileFlashStorage:
    """A sparse file holding the cells inverted, so an unwritten hole reads as erased 0xFF."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        try:
            actual = path.stat().st_size
        except OSError as exc:
            raise HardwareError(f"flash file {path} cannot be opened: {exc}") from exc
        if actual != size:
            raise HardwareError(
                f"flash file {path} is {actual} bytes, the geometry says {size}: wrong or damaged file"
            )

    @classmethod
    def create(cls, path: Path, size: int) -> FileFlashStorage:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.fchmod(fd, 0o600)  # state of the device: the owner only, whatever the umask
        with os.fdopen(fd, "wb") as fh:
            fh.truncate(size)
            os.fsync(fh.fileno())
        fsync_dir(path.parent)
        return cls(path, size)

    def read(self, offset: int, length: int) -> bytes:
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            return _invert(fh.read(length))

    def program(self, offset: int, data: bytes | memoryview) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, _invert(bytes(data)), offset)
            os.fsync(fd)
        finally:
            os.close(fd)


class Flash:
    """NOR flash with partitions; every erase and write is one counted operation."""

    def __init__(
        self,
        geometry: FlashGeometry,
        storage: FlashStorage,
        *,
        injector: PowerCutInjector | None = None,
    ) -> None:
        self.geometry = geometry
        self._storage = storage
        self.injector = injector
        self.mutations = 0  # erases and writes started through this object (never decreases)

    @classmethod
    def in_memory(
        cls, geometry: FlashGeometry | None = None, *, injector: PowerCutInjector | None = None
    ) -> Flash:
        geometry = geometry or FlashGeometry()
        return cls(geometry, MemoryFlashStorage(geometry.total_size), injector=injector)

    @classmethod
    def create_file(cls, path: Path, geometry: FlashGeometry) -> Flash:
        return cls(geometry, FileFlashStorage.create(path, geometry.total_size))

    @classmethod
    def open_file(
        cls, path: Path, geometry: FlashGeometry, *, injector: PowerCutInjector | None = None
    ) -> Flash:
        return cls(geometry, FileFlashStorage(path, geometry.total_size), injector=injector)

    def power_on(self, *, injector: PowerCutInjector | None = None) -> Flash:
        """The same part after a power cycle."""
        return Flash(self.geometry, self._storage, injector=injector)

    def _range(self, partition: PartitionName, offset: int, length: int) -> int:
        try:
            base, size = self.geometry._layout[partition]
        except KeyError:
            raise FlashError(f"no flash partition named {partition!r}") from None
        if offset < 0 or length < 0 or offset + length > size:
            raise FlashError(
                f"flash access {offset}+{length} is outside partition {partition!r} ({size} bytes)"
            )
        return base + offset

    def read(self, partition: PartitionName, offset: int = 0, length: int | None = None) -> bytes:
        if length is None:
            length = self.geometry.size(partition) - offset
        return self._storage.read(self._range(partition, offset, length), length)

    def view(self, partition: PartitionName, offset: int, length: int) -> memoryview:
        """``read`` without a copy where the storage allows (memory-backed parts): a read-only
        view of the cells, valid until the next erase or write. A file-backed part is read."""
        start = self._range(partition, offset, length)
        if isinstance(self._storage, MemoryFlashStorage):
            return self._storage.view(start, length)
        return memoryview(self._storage.read(start, length))

    def sectors(self, partition: PartitionName) -> int:
        return self.geometry.size(partition) // self.geometry.sector_size

    def erase(self, partition: PartitionName, sector: int) -> None:
        """Set one sector of ``partition`` to 0xFF."""
        sector_size = self.geometry.sector_size
        if not 0 <= sector < self.sectors(partition):
            raise FlashError(f"partition {partition!r} has no sector {sector}")
        start = self._range(partition, sector * sector_size, sector_size)
        what = f"erase {partition} sector {sector}"
        self.mutations += 1
        mode = self.injector.begin(what) if self.injector is not None else "full"
        if mode == "full":
            self._storage.program(start, b"\xff" * sector_size)
            return
        # A torn erase leaves the sector half erased, half old data.
        self._storage.program(start, b"\xff" * (sector_size // 2))
        assert self.injector is not None
        raise self.injector.cut(what)

    def erase_and_program(self, partition: PartitionName, offset: int, data: bytes | memoryview) -> None:
        """Erase whole sectors and program ``data`` into them: per sector, an erase then a
        write (two counted operations each, as :meth:`erase` + :meth:`write`).

        ``offset`` and ``len(data)`` are multiples of the sector size. Without a power-cut
        injector the run lands as one storage program (one ``pwrite`` + ``fsync`` for a
        file-backed part, one copy in memory): the cells end exactly as the sector-by-sector
        sequence leaves them, and a cell just erased is always writable. With an injector
        every operation is announced in order, so a cut lands where it would.
        """
        sector_size = self.geometry.sector_size
        if offset % sector_size or len(data) % sector_size:
            raise FlashError(
                f"sector program at offset {offset}, length {len(data)}: both must be "
                f"multiples of the sector size {sector_size}"
            )
        if self.injector is not None:
            with memoryview(data) as view:
                for at in range(0, len(view), sector_size):
                    self.erase(partition, (offset + at) // sector_size)
                    self.write(partition, offset + at, view[at : at + sector_size])
            return
        start = self._range(partition, offset, len(data))
        self.mutations += 2 * (len(data) // sector_size)
        self._storage.program(start, data)

    def write(self, partition: PartitionName, offset: int, data: bytes | memoryview) -> None:
        """Program erased cells; offset and length must be multiples of the write alignment."""
        align = self.geometry.write_align
        if offset % align or len(data) % align:
            raise FlashError(
                f"unaligned flash write at offset {offset}, length {len(data)}: "
                f"both must be multiples of {align}"
            )
        start = self._range(partition, offset, len(data))
        current = self._storage.read(start, len(data))
        # Fast path first (a C-level compare); find the offending cell only on failure.
        erased = current == _ERASED * len(current)
        dirty = None if erased else next(i for i, b in enumerate(current) if b != 0xFF)
        if dirty is not None:
            raise FlashError(
                f"flash write to {partition!r} offset {offset + dirty} hits a cell that is not "
                f"erased (0x{current[dirty]:02x}); erase the sector first"
            )
        what = f"write {partition} offset {offset} ({len(data)} bytes)"
        self.mutations += 1
        mode = self.injector.begin(what) if self.injector is not None else "full"
        if mode == "full":
            self._storage.program(start, bytes(data))
            return
        # A torn write lands a prefix of whole program units.
        landed = (len(data) // align // 2) * align
        if landed:
            self._storage.program(start, bytes(data[:landed]))
        assert self.injector is not None
        raise self.injector.cut(what)


# ---------------------------------------------------------------- board description


@dataclass(frozen=True)
class Board:
    """What is fixed in the silicon/board: model, hardware id, flash geometry."""

    hardware_id: str
    model: str
    vendor: str
    geometry: FlashGeometry

    def to_json(self) -> str:
        return json.dumps(
            {
                "hardware_id": self.hardware_id,
                "model": self.model,
                "vendor": self.vendor,
                "geometry": self.geometry.to_json(),
            },
            indent=1,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Board:
        try:
            doc = json.loads(text)
            return cls(
                hardware_id=str(doc["hardware_id"]),
                model=str(doc["model"]),
                vendor=str(doc["vendor"]),
                geometry=FlashGeometry.from_json(doc["geometry"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise HardwareError(f"board description is malformed: {exc}") from exc


# ---------------------------------------------------------------- secure counters

SecureCounterName = Literal["audit_head", "audit_base"]
SECURE_COUNTERS: tuple[SecureCounterName, ...] = ("audit_head", "audit_base")
_RPMB_MAGIC = b"refcam-rpmb/1\n"
_RPMB_FMT = ">" + "Q" * len(SECURE_COUNTERS)  # one big-endian u64 per counter, in SECURE_COUNTERS order


class CounterStorage(Protocol):
    """Where the secure counters live; ``store`` is all-or-nothing."""

    def load(self) -> bytes: ...

    def store(self, data: bytes) -> None: ...


class MemoryCounterStorage:
    def __init__(self) -> None:
        self._data = struct.pack(_RPMB_FMT, *(0 for _ in SECURE_COUNTERS))

    def load(self) -> bytes:
        return self._data

    def store(self, data: bytes) -> None:
        self._data = bytes(data)


class FileCounterStorage:
    """``<path>``: magic, counters, SHA-256 of both; replaced atomically (mode 0600).

    A missing file reads as all counters zero: devices provisioned before the
    counters existed start from zero, like a fresh RPMB partition.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> bytes:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return struct.pack(_RPMB_FMT, *(0 for _ in SECURE_COUNTERS))
        except OSError as exc:
            raise HardwareError(f"secure counter file {self.path} cannot be read: {exc}") from exc
        size = struct.calcsize(_RPMB_FMT)
        body, digest = raw[:-32], raw[-32:]
        if (
            len(raw) != len(_RPMB_MAGIC) + size + 32
            or not raw.startswith(_RPMB_MAGIC)
            or hashlib.sha256(body).digest() != digest
        ):
            raise HardwareError(f"secure counter file {self.path} is corrupt")
        return body[len(_RPMB_MAGIC) :]

    def store(self, data: bytes) -> None:
        body = _RPMB_MAGIC + data
        write_atomic(self.path, body + hashlib.sha256(body).digest(), mode=0o600)


class SecureCounters:
    """Monotonic counters in replay-protected storage (an eMMC RPMB or OTP-backed counter).

    ``advance(name, value)`` only moves a counter up (a lower value raises
    :class:`HardwareError`, an equal one is a no-op), so nothing the firmware or
    an attacker does to its own files can lower them. The audit log anchors its
    head here (``audit_head``); a factory reset moves ``audit_base`` up to it.
    """

    def __init__(self, storage: CounterStorage) -> None:
        self._storage = storage  # callers serialise their writes (the audit log holds its lock)

    @classmethod
    def in_memory(cls) -> SecureCounters:
        return cls(MemoryCounterStorage())

    @classmethod
    def open_file(cls, path: Path) -> SecureCounters:
        return cls(FileCounterStorage(path))

    def _values(self) -> dict[SecureCounterName, int]:
        data = self._storage.load()
        if len(data) != struct.calcsize(_RPMB_FMT):
            raise HardwareError(f"secure counters hold {len(data)} bytes, expected {struct.calcsize(_RPMB_FMT)}")
        return dict(zip(SECURE_COUNTERS, struct.unpack(_RPMB_FMT, data), strict=True))

    def read(self, name: SecureCounterName) -> int:
        if name not in SECURE_COUNTERS:
            raise HardwareError(f"no secure counter named {name!r}; counters are {SECURE_COUNTERS}")
        return self._values()[name]

    def advance(self, name: SecureCounterName, value: int) -> None:
        if name not in SECURE_COUNTERS:
            raise HardwareError(f"no secure counter named {name!r}; counters are {SECURE_COUNTERS}")
        if not 0 <= value < 2**64:
            raise HardwareError(f"secure counter value {value} is outside 0..2**64-1")
        values = self._values()
        if value < values[name]:
            raise HardwareError(f"secure counter {name} is {values[name]}; it cannot go down to {value}")
        if value == values[name]:
            return
        values[name] = value
        self._storage.store(struct.pack(_RPMB_FMT, *(values[n] for n in SECURE_COUNTERS)))
