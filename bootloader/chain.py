"""The boot chain on simulated hardware: ROM stage, bootloader stage, handoff.

:class:`~bootloader.unit.Device` bundles the hardware of one camera (OTP
fuses, flash, the board description) and its state directory; the slot and
boot-control logic is :mod:`bootloader.slots`. :func:`boot` runs the chain:

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
from dataclasses import dataclass
from pathlib import Path

from bootloader import dice
from bootloader.attestation import DiceAttester
from bootloader.decision import decide_boot
from bootloader.firmware import FirmwarePayload
from bootloader.hardware import (
    FuseState,
)
from bootloader.measured import MeasurementLog
from bootloader.services import FlashBootServices
from bootloader.slots import (
    SLOTS,
    VerifiedSlot,
    advance_fuses,
    check_slot,
    fuse_summary,
    read_control,
    read_image,
    trust_state,
    write_control,
)
from bootloader.unit import Device, load_deviceid_chain, load_identity
from common.errors import (
    BootError,
    BootloaderRejected,
    ImageFormatError,
    ProvisioningError,
    SecurityCounterRollback,
)
from common.handoff import (
    BootHandoff,
    Slot,
    SlotStatus,
)
from common.verify import (
    BOOTLOADER_MANIFEST_FORMAT,
    VerifiedFirmware,
    verify_bootloader_image,
)


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
    chain = load_deviceid_chain(device)
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
    attester = DiceAttester(alias_key, [alias_cert, *chain], log, log.register)

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

