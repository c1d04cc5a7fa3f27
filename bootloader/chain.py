"""The boot chain on simulated hardware: ROM stage, bootloader stage, handoff.

:class:`Device` bundles the hardware of one camera (OTP fuses, flash, the
board description) and its state directory. :func:`boot` runs the chain:

1. **ROM** (immutable): reads the fuses and the bootloader partition,
   verifies the bootloader image against the fused, unrevoked root-of-trust
   key hashes and the fused bootloader counter, measures it, and derives the
   DICE DeviceID from the unique device secret and that measurement. A
   bootloader that does not verify raises :class:`BootloaderRejected`: the
   device does not boot at all.
2. **Bootloader**: reads boot-control (two copies), verifies both slots with
   the trust state from the fuses, decides which slot boots
   (:func:`bootloader.decision.decide_boot`: trial, revert, fallback), persists
   the boot-control update before jumping, completes a pending fused-counter
   advance of the confirmed image, measures the firmware, derives the DICE
   Alias key and certificate, and builds the :class:`BootHandoff`.

The firmware runtime is never re-read from flash after verification: the
verified payload bytes travel in :attr:`BootOutcome.payload`.

Example::

    device = open_device(Path("state"))
    outcome = boot(device, now=int(time.time()))
    print("\\n".join(outcome.log_lines))
    start_firmware(outcome.payload, outcome.handoff, argv)
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from bootloader import dice
from bootloader.bootctl import RECORD_SIZE as BOOTCTL_RECORD_SIZE
from bootloader.bootctl import BootControl, BootControlView, next_record, read_boot_control
from bootloader.decision import decide_boot
from bootloader.errors import (
    BootControlError,
    BootError,
    BootloaderRejected,
    FirmwarePayloadError,
    FlashError,
    HardwareError,
    ImageFormatError,
    ProvisioningError,
    SecurityCounterRollback,
)
from bootloader.firmware import FirmwarePayload
from bootloader.handoff import (
    BootHandoff,
    DeviceIdentity,
    FuseSummary,
    Slot,
    SlotStatus,
)
from bootloader.hardware import (
    Board,
    Flash,
    FlashGeometry,
    FuseState,
    OTPFuses,
    PartitionName,
    PowerCutInjector,
    SecureCounters,
)
from bootloader.image import (
    HEADER_FMT,
    IMAGE_HEADER_SIZE,
    IMAGE_MAGIC,
    TLV_INFO_FMT,
    TLV_INFO_MAGIC,
    TLV_INFO_SIZE,
    ImageVersion,
)
from bootloader.measured import MeasurementLog
from bootloader.verify import (
    BOOTLOADER_MANIFEST_FORMAT,
    TrustState,
    VerifiedFirmware,
    unsafe_verify_hash_only,
    verify_bootloader_image,
    verify_firmware_image,
)

OTP_FILE = "otp.bin"
FLASH_FILE = "flash.bin"
RPMB_FILE = "rpmb.bin"  # the secure (replay-protected) counters
BOARD_FILE = "hardware.json"  # the board: model, hardware id, flash geometry
IDENTITY_DIR = Path("data") / "identity"
DEVICE_JSON = "device.json"
DEVICEID_PEM = "deviceid.pem"
TLS_CHAIN_PEM = "tls.pem"

SLOTS: tuple[Slot, Slot] = ("a", "b")


@dataclass(frozen=True)
class Device:
    """One simulated camera: fuses, flash, board description and state directory."""

    state_dir: Path
    board: Board
    fuses: OTPFuses
    flash: Flash
    # replay-protected monotonic counters (RPMB-like); the audit log anchors its head here
    counters: SecureCounters = field(default_factory=SecureCounters.in_memory)

    @classmethod
    def in_memory(
        cls,
        state_dir: Path,
        *,
        board: Board,
        injector: PowerCutInjector | None = None,
    ) -> Device:
        """Blank in-memory hardware whose data partition lives under ``state_dir/data``."""
        return cls(
            state_dir=state_dir,
            board=board,
            fuses=OTPFuses.in_memory(injector=injector),
            flash=Flash.in_memory(board.geometry, injector=injector),
        )

    def power_on(self, *, injector: PowerCutInjector | None = None) -> Device:
        """The same hardware after a power cycle, optionally with a new power-cut injector."""
        return Device(
            state_dir=self.state_dir,
            board=self.board,
            fuses=self.fuses.power_on(injector=injector),
            flash=self.flash.power_on(injector=injector),
            counters=self.counters,
        )

    @property
    def identity_dir(self) -> Path:
        return self.state_dir / IDENTITY_DIR


def open_device(state_dir: Path, *, injector: PowerCutInjector | None = None) -> Device:
    """The file-backed device provisioned in ``state_dir``."""
    board_path = state_dir / BOARD_FILE
    try:
        board = Board.from_json(board_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProvisioningError(
            f"{state_dir} is not a provisioned device (no {BOARD_FILE}); run 'refcam device provision'"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise HardwareError(f"cannot read {board_path}: {exc}") from exc
    return Device(
        state_dir=state_dir,
        board=board,
        fuses=OTPFuses.open_file(state_dir / OTP_FILE, injector=injector),
        flash=Flash.open_file(state_dir / FLASH_FILE, board.geometry, injector=injector),
        counters=SecureCounters.open_file(state_dir / RPMB_FILE),
    )


# ---------------------------------------------------------------- flash helpers


def is_erased(data: bytes) -> bool:
    return data.count(0xFF) == len(data)


def image_extent(data: bytes) -> int:
    """Length of the MCUboot image at the start of ``data`` (header + payload + both TLV areas).

    Only the lengths are read here; :meth:`SignedImage.parse` checks everything.
    """
    if len(data) < IMAGE_HEADER_SIZE:
        raise ImageFormatError(
            f"{len(data)} bytes cannot hold a {IMAGE_HEADER_SIZE}-byte image header"
        )
    magic, _load, hdr_size, prot_size, img_size = struct.unpack_from(HEADER_FMT, data, 0)[:5]
    if magic != IMAGE_MAGIC:
        raise ImageFormatError(f"image magic is 0x{magic:08x}, expected 0x{IMAGE_MAGIC:08x}")
    unprotected_at = hdr_size + img_size + prot_size
    if unprotected_at + TLV_INFO_SIZE > len(data):
        raise ImageFormatError(
            f"image header declares {unprotected_at} bytes before its TLV area, "
            f"more than the {len(data)}-byte partition"
        )
    tlv_magic, tlv_total = struct.unpack_from(TLV_INFO_FMT, data, unprotected_at)
    if tlv_magic != TLV_INFO_MAGIC:
        raise ImageFormatError(
            f"TLV area magic at offset {unprotected_at} is 0x{tlv_magic:04x}, "
            f"expected 0x{TLV_INFO_MAGIC:04x}"
        )
    end = int(unprotected_at + tlv_total)
    if end > len(data):
        raise ImageFormatError(f"image ends at byte {end}, past the {len(data)}-byte partition")
    return end


def read_image(flash: Flash, partition: PartitionName) -> bytes | None:
    """The image stored in ``partition`` (its exact length), or None when erased.

    Raises :class:`ImageFormatError` when the header is not an image header or
    the lengths it declares run past the partition.
    """
    size = flash.geometry.size(partition)
    head = flash.read(partition, 0, min(64, size))
    if is_erased(head):
        return None
    # Read only what the header and TLV info declare (a slot may be much larger than
    # its image); the lengths are checked against the partition, not trusted.
    if len(head) >= IMAGE_HEADER_SIZE:
        magic, _load, hdr_size, prot_size, img_size = struct.unpack_from(HEADER_FMT, head, 0)[:5]
        info_at = hdr_size + img_size + prot_size
        if magic == IMAGE_MAGIC and info_at + TLV_INFO_SIZE <= size:
            info = flash.read(partition, info_at, TLV_INFO_SIZE)
            declared = info_at + struct.unpack_from(TLV_INFO_FMT, info)[1]
            if declared <= size:
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
    then the bootloader's own checks) before it may be marked pending.
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

    @property
    def received(self) -> int:
        """Bytes accepted so far (programmed or buffered)."""
        return self.durable + len(self._buffer)

    def write(self, data: bytes) -> None:
        if self._finished:
            raise FlashError("slot write already finished")
        if self.received + len(data) > self._size:
            raise FlashError(
                f"{self.received + len(data)} bytes do not fit partition {self._partition!r} "
                f"({self._size} bytes)"
            )
        if self._buffer:  # complete the buffered sector first
            self._buffer += data
            data, self._buffer = bytes(self._buffer), bytearray()
        whole = len(data) - len(data) % self._sector
        view = memoryview(data)
        try:
            for start in range(0, whole, self._sector):
                self._program(view[start : start + self._sector])
            self._buffer += view[whole:]
        finally:
            view.release()
        self._report()

    def _program(self, chunk: memoryview | bytes) -> None:
        self._flash.erase(self._partition, self.durable // self._sector)
        self._flash.write(self._partition, self.durable, bytes(chunk))
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
        for sector in range(first_free, self._size // self._sector):
            if not is_erased(self._flash.read(self._partition, sector * self._sector, self._sector)):
                self._flash.erase(self._partition, sector)
        self.durable = length
        self._report()
        return length

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


# ---------------------------------------------------------------- trust and slots


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
    flash: Flash, slot: Slot, trust: TrustState, *, unsafe_hash_only: bool = False
) -> VerifiedSlot | None:
    """Verify ``slot`` exactly as the bootloader does; None when erased, raises BootError.

    ``unsafe_hash_only`` is the ``boot-skips-signature`` flaw profile: a flawed
    bootloader that checks integrity but not the signature.
    """
    image = read_image(flash, slot)
    if image is None:
        return None
    verify = unsafe_verify_hash_only if unsafe_hash_only else verify_firmware_image
    verified = verify(image, trust=trust)
    payload = FirmwarePayload.parse(verified.payload)
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


# ---------------------------------------------------------------- identity


def load_identity(device: Device) -> DeviceIdentity:
    path = device.identity_dir / DEVICE_JSON
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return DeviceIdentity(
            serial=str(doc["serial"]),
            model=str(doc["model"]),
            hardware_id=str(doc["hardware_id"]),
            vendor=str(doc["vendor"]),
        )
    except FileNotFoundError as exc:
        raise ProvisioningError(
            f"device identity {path} is missing: the device is not provisioned"
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProvisioningError(f"device identity {path} is unreadable: {exc}") from exc


def _load_deviceid_chain(device: Device) -> list[x509.Certificate]:
    """[DeviceID certificate, device CA certificate] written at provisioning."""
    identity_dir = device.identity_dir
    try:
        chain = x509.load_pem_x509_certificates((identity_dir / DEVICEID_PEM).read_bytes())
        if len(chain) == 1:  # the device CA is the issuer of the TLS leaf as well
            tls = x509.load_pem_x509_certificates((identity_dir / TLS_CHAIN_PEM).read_bytes())
            chain.extend(cert for cert in tls[1:] if cert.subject == chain[0].issuer)
    except FileNotFoundError as exc:
        raise ProvisioningError(f"DICE DeviceID certificate missing: {exc.filename}") from exc
    except (OSError, ValueError) as exc:
        raise ProvisioningError(f"DICE DeviceID certificate unreadable: {exc}") from exc
    return chain


# ---------------------------------------------------------------- the chain


@dataclass(frozen=True)
class BootOutcome:
    handoff: BootHandoff
    payload: FirmwarePayload  # the verified bytes, never re-read from flash
    firmware: VerifiedFirmware
    log_lines: tuple[str, ...]

    @property
    def summary(self) -> str:
        trial = " as a trial" if self.handoff.trial else ""
        return (
            f"booted slot {self.handoff.booted_slot}{trial}, firmware {self.firmware.version} "
            f"(security counter {self.firmware.security_counter})"
        )


def _short(digest: bytes) -> str:
    return digest.hex()[:16]


def _check_running_code(manifest: bytes) -> None:
    """The bootloader code this process runs must be the code the verified image names.

    On silicon the ROM jumps into the bytes it verified; in the simulator the
    bootloader stage is Python on disk, so the ROM compares the SHA-256 of
    each stage module's source with the verified bootloader manifest.
    """
    try:
        doc = json.loads(manifest)
        modules = doc["modules"]
        if doc.get("format") != BOOTLOADER_MANIFEST_FORMAT or not isinstance(modules, dict):
            raise ValueError(f"format is not {BOOTLOADER_MANIFEST_FORMAT!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise BootloaderRejected(f"ROM: the verified bootloader payload is not a bootloader manifest: {exc}") from exc
    for name, expected in sorted(modules.items()):
        spec = importlib.util.find_spec(name)
        try:
            source = Path(spec.origin).read_bytes() if spec is not None and spec.origin else None
        except OSError:
            source = None
        if source is None or hashlib.sha256(source).hexdigest() != expected:
            raise BootloaderRejected(
                f"ROM: the bootloader code on this host ({name}) differs from the verified "
                "bootloader image; provision the device again with this code"
            )


def rom_stage(
    device: Device, log: MeasurementLog, lines: list[str]
) -> tuple[FuseState, VerifiedFirmware]:
    """ROM: verify and measure the bootloader; raises :class:`BootloaderRejected`."""
    fuses = device.fuses.read()
    rot = fuses.trusted_rot_keys()
    lines.append(
        f"rom: fuses: lifecycle {fuses.lifecycle}, debug {'disabled' if fuses.debug_disabled else 'enabled'}, "
        f"{len(rot)} root-of-trust keys ({sum(r for _, r in rot)} revoked), counters "
        f"firmware={fuses.firmware_counter} bootloader={fuses.bootloader_counter} "
        f"key-manifest={fuses.key_manifest_counter}"
    )
    if fuses.uds is None:
        raise BootloaderRejected(
            "ROM: the unique device secret is not fused; the device is not provisioned"
        )
    try:
        image = read_image(device.flash, "bootloader")
        if image is None:
            raise ImageFormatError("the bootloader partition is erased")
        bootloader = verify_bootloader_image(
            image,
            rot_keys=rot,
            min_security_counter=fuses.bootloader_counter,
            hardware_id=device.board.hardware_id,
        )
    except BootError as exc:
        raise BootloaderRejected(f"ROM refused the bootloader: {exc}") from exc
    _check_running_code(bytes(bootloader.payload))
    log.extend(
        "bootloader",
        bootloader.digest,
        bootloader.version,
        bootloader.signer_key_hash,
        bootloader.security_counter,
    )
    lines.append(
        f"rom: bootloader {bootloader.version} verified (root-of-trust key "
        f"{_short(bootloader.signer_key_hash)}, security counter {bootloader.security_counter}), "
        f"measured {_short(bootloader.digest)}"
    )
    return fuses, bootloader


def boot(device: Device, *, now: int, unsafe_hash_only: bool = False) -> BootOutcome:
    """Run ROM and bootloader; return the handoff for the verified firmware.

    ``unsafe_hash_only`` switches on the ``boot-skips-signature`` flaw profile
    (slot images checked for integrity only); never set it on a real device.

    Raises :class:`BootloaderRejected` (no boot at all) or
    :class:`NoBootableSlot` (recovery); :class:`PowerCut` when the injector
    cuts the power during a boot-control or fuse write.
    """
    from bootloader.services import FlashBootServices  # services builds on this module

    lines: list[str] = []
    log = MeasurementLog()
    fuses, bootloader = rom_stage(device, log, lines)
    assert fuses.uds is not None

    # Bootloader stage.
    view, problem = read_control(device.flash)
    control = view.current if view is not None else None
    if control is not None:
        lines.append(
            f"bootloader: boot-control seq {control.seq}: active slot {control.active}, "
            f"trial {control.trial_state}"
            + (
                f" of slot {control.pending}, {control.attempts_left} attempts left"
                if control.pending
                else ""
            )
        )
    trust = trust_state(fuses, device.board)
    statuses: dict[Slot, SlotStatus] = {}
    verified: dict[Slot, VerifiedSlot] = {}
    superseded: list[Slot] = []
    for slot in SLOTS:
        try:
            result = check_slot(device.flash, slot, trust, unsafe_hash_only=unsafe_hash_only)
        except BootError as exc:
            result = None
            status = SlotStatus(slot, "invalid", reason=str(exc))
            if isinstance(exc, SecurityCounterRollback):
                superseded.append(slot)
        else:
            status = (
                SlotStatus(slot, "empty")
                if result is None
                else SlotStatus(
                    slot, "valid", result.firmware.version, result.firmware.security_counter
                )
            )
        statuses[slot] = status
        if result is not None:
            verified[slot] = result
            lines.append(
                f"bootloader: slot {slot}: firmware {status.version} (security counter "
                f"{status.security_counter}) verified, signed by {_short(result.firmware.signer_key_hash)}"
            )
        else:
            lines.append(
                f"bootloader: slot {slot}: {status.state}"
                + (f": {status.reason}" if status.reason else "")
            )

    decision = decide_boot(control, statuses, control_problem=problem, superseded=superseded)
    notices = list(decision.notices)
    if view is not None and view.problems:
        # Provisioning writes both copies and updates overwrite the older one, so one bad
        # copy means a torn update or corruption: the state may have gone back one step
        # (a pending trial dropped). Say so, and rewrite the bad copy from the good one.
        notices.insert(
            0,
            f"boot-control fell back to copy {1 - view.next_copy} (seq {view.current.seq}): "
            + "; ".join(view.problems),
        )
    for notice in notices:
        lines.append(f"bootloader: notice: {notice}")
    if decision.control_update is not None:
        write_control(device.flash, view, decision.control_update)  # before the jump
    elif view is not None and view.problems:
        write_control(device.flash, view, view.current)  # repair: both copies valid again
    chosen = verified[decision.slot]
    if decision.advance_fuses:
        # A confirm whose fuse burn was cut short is completed here.
        for done in advance_fuses(device.fuses, chosen.firmware):
            lines.append(f"bootloader: {done}")
    fuses_now = device.fuses.read()

    firmware = chosen.firmware
    log.extend(
        "firmware",
        firmware.digest,
        firmware.version,
        firmware.signer_key_hash,
        firmware.security_counter,
    )
    identity = load_identity(device)
    # DICE: CDI_L0 from the UDS and the bootloader measurement, then the Alias key for this firmware.
    now_dt = dt.datetime.fromtimestamp(now, dt.UTC)
    device_id_key = dice.derive_device_id(fuses.uds, bootloader.digest)
    alias_key = dice.derive_alias(fuses.uds, bootloader.digest, firmware.digest)
    chain = _load_deviceid_chain(device)
    if chain[0].public_key() != device_id_key.public_key():
        raise ProvisioningError(
            "the DeviceID certificate does not certify the key derived from this device's UDS "
            "and bootloader (was the bootloader replaced since provisioning?)"
        )
    alias_cert = dice.issue_alias_certificate(
        device_id_key=device_id_key,
        device_id_cert=chain[0],
        alias_public_key=alias_key.public_key(),
        firmware_measurement=firmware.digest,
        now=now_dt,
        firmware_version=firmware.version,
        security_counter=firmware.security_counter,
    )
    attester = dice.DiceAttester(alias_key, [alias_cert, *chain], log, log.register)

    lines.append(
        f"bootloader: booting slot {decision.slot}{' as a trial' if decision.trial else ''}, "
        f"firmware {firmware.version} (security counter {firmware.security_counter}), "
        f"measured {_short(firmware.digest)}"
    )
    services = FlashBootServices(
        device,
        booted_slot=decision.slot,
        trial=decision.trial,
        firmware=firmware,
        unsafe_hash_only=unsafe_hash_only,
    )
    handoff = BootHandoff(
        state_dir=device.state_dir,
        identity=identity,
        firmware=chosen.payload.manifest,
        booted_slot=decision.slot,
        security_counter=firmware.security_counter,
        trial=decision.trial,
        slots=(statuses["a"], statuses["b"]),
        fuses=fuse_summary(fuses_now),
        measurements=log.events,
        measurement_register=log.register.hex(),
        notices=tuple(notices),
        attester=attester,
        services=services,
    )
    return BootOutcome(
        handoff=handoff, payload=chosen.payload, firmware=firmware, log_lines=tuple(lines)
    )


__all__ = [
    "BootOutcome",
    "Device",
    "boot",
    "open_device",
    "read_image",
    "verify_slot_image",
    "write_partition",
]
