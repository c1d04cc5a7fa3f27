"""BootServices on the simulated hardware: what the running firmware may ask.

The firmware gets a :class:`FlashBootServices` in its handoff. Every call
goes through the flash and fuse models, so the power-cut injector applies:

- ``write_image(slot, image)``: erase and program the *inactive* slot
  (the booted slot is refused, as is an image larger than the slot), then
  verify it exactly as the bootloader will.
- ``open_slot_writer(slot)``: stream an image into the inactive slot, the
  update's download area (MCUboot's secondary slot), resumable at a sector
  boundary; ``read_slot`` and ``erase_slot`` go with it. Nothing is verified
  until ``verify_slot``/``set_pending``.
- ``set_pending(slot)``: verify the slot, then mark it for a trial boot
  (MCUboot ``boot_set_pending``).
- ``confirm()``: write "confirmed" to boot-control, *then* burn the fused
  counters up to the running image's counters (MCUboot ``boot_set_confirmed``
  plus the anti-rollback update). A power cut between the two is completed
  by the next boot; the counter never advances for an unconfirmed image.
- ``derive_key(label)``: a device-unique key derived from the UDS (the audit
  log's MAC key); ``audit_anchor()`` / ``advance_audit_head(seq)``: the audit
  log's head in the secure monotonic counters.

Example::

    services = handoff.services
    target = services.inactive_slot()
    services.write_image(target, image_bytes)
    services.set_pending(target)   # then reboot; the new image runs as a trial
    ...
    services.confirm()             # in the trial, once it is healthy
"""

from __future__ import annotations

from collections.abc import Callable

from bootloader import dice
from bootloader.bootctl import BootControl
from bootloader.decision import other_slot
from bootloader.slots import (
    SlotWriter,
    advance_fuses,
    check_slot,
    fuse_summary,
    read_control,
    trust_state,
    write_control,
    write_partition,
)
from bootloader.unit import Device
from common.errors import BootError, ImageFormatError
from common.handoff import FuseSummary, Slot, SlotStatus
from common.verify import VerifiedFirmware


class FlashBootServices:
    """``handoff.BootServices`` for one boot of a :class:`Device`."""

    def __init__(
        self,
        device: Device,
        *,
        booted_slot: Slot,
        trial: bool,
        firmware: VerifiedFirmware,
        unsafe_hash_only: bool = False,
    ) -> None:
        self._device = device
        self._unsafe_hash_only = unsafe_hash_only  # flaw boot-skips-signature: same check as boot
        # slot -> flash.mutations when this object last verified it: set_pending need not
        # verify again a slot nothing has written since (the bootloader verifies at boot anyway).
        self._verified_at: dict[Slot, int] = {}
        # slot -> (flash.mutations, image hash) a SlotWriter computed as it wrote the slot
        self._streamed: dict[Slot, tuple[int, bytes]] = {}
        self._booted = booted_slot
        self._trial = trial
        self._firmware = firmware

    @property
    def trial(self) -> bool:
        """Still running as an unconfirmed trial."""
        return self._trial

    def fuses(self) -> FuseSummary:
        return fuse_summary(self._device.fuses.read())

    def inactive_slot(self) -> Slot:
        return other_slot(self._booted)

    def _check_target(self, slot: Slot, action: str) -> None:
        if slot not in ("a", "b"):
            raise BootError(f"cannot {action} slot {slot!r}: slots are 'a' and 'b'")
        if slot == self._booted:
            raise BootError(
                f"cannot {action} slot {slot}: it holds the running firmware; use slot "
                f"{self.inactive_slot()}"
            )
        if self._trial:
            # The other slot holds the confirmed image the bootloader would revert to.
            raise BootError(
                f"cannot {action} slot {slot}: slot {self._booted} runs as an unconfirmed trial "
                f"and slot {slot} holds the image to revert to; confirm the trial first"
            )

    def write_image(
        self, slot: Slot, image: bytes, *, progress: Callable[[int, int], None] | None = None
    ) -> None:
        self._check_target(slot, "write")
        size = self._device.flash.geometry.slot_size
        if len(image) > size:
            raise ImageFormatError(f"image is {len(image)} bytes, slot {slot} holds at most {size}")
        if not image:
            raise ImageFormatError("image is empty")
        writer = self.open_slot_writer(slot, total=len(image), progress=progress)
        writer.write(image)
        writer.finish()
        self.verify_slot(slot)  # read back from flash and verified as the bootloader will

    def open_slot_writer(
        self,
        slot: Slot,
        *,
        offset: int = 0,
        total: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        on_durable: Callable[[int], None] | None = None,
    ) -> SlotWriter:
        """Stream an image into the inactive slot (resuming at ``offset``); verifies nothing."""
        self._check_target(slot, "write")
        return SlotWriter(
            self._device.flash,
            slot,
            offset=offset,
            total=total,
            progress=progress,
            on_durable=on_durable,
            on_finish=lambda writer: self._written(slot, writer),
        )

    def _written(self, slot: Slot, writer: SlotWriter) -> None:
        """Remember the image hash a writer computed as it programmed a whole image, for as
        long as the flash is unchanged since (any later erase or write forgets it)."""
        if writer.digests is not None and writer.digests.covered is not None:
            self._streamed[slot] = (self._device.flash.mutations, writer.digests.covered)

    def read_slot(self, slot: Slot, length: int) -> bytes:
        """The first ``length`` bytes of ``slot`` as they are on flash."""
        if slot not in ("a", "b"):
            raise BootError(f"cannot read slot {slot!r}: slots are 'a' and 'b'")
        return self._device.flash.read(slot, 0, length)

    def erase_slot(self, slot: Slot) -> None:
        """Erase the inactive slot (a refused download leaves it empty, not half-written)."""
        self._check_target(slot, "erase")
        SlotWriter(self._device.flash, slot).finish()  # an empty image: every non-blank sector erased

    def verify_slot(self, slot: Slot) -> SlotStatus:
        """Verify ``slot`` with today's fuses; raises :class:`BootError` when it would not boot.

        A slot a writer hashed as it programmed it (and nothing has written since) is
        checked over that image hash, without hashing its bytes or its payload entries
        again: the bootloader does both over the flash at the next boot."""
        trust = trust_state(self._device.fuses.read(), self._device.board)
        mutations = self._device.flash.mutations
        streamed = self._streamed.get(slot)
        covered = streamed[1] if streamed is not None and streamed[0] == mutations else None
        result = check_slot(
            self._device.flash,
            slot,
            trust,
            unsafe_hash_only=self._unsafe_hash_only,
            covered_digest=covered,
        )
        if result is None:
            raise ImageFormatError(f"slot {slot} is empty")
        self._verified_at[slot] = mutations
        firmware = result.firmware
        return SlotStatus(slot, "valid", firmware.version, firmware.security_counter)

    def set_pending(self, slot: Slot) -> None:
        self._check_target(slot, "boot as a trial")
        if self._verified_at.get(slot) != self._device.flash.mutations:
            self.verify_slot(slot)
        self._mark_pending(slot)

    def unsafe_write_unverified(self, slot: Slot, image: bytes) -> None:
        """UNSAFE (update flaw profiles): write a slot and mark it pending, verifying nothing.

        What a firmware that skips its own checks does. The (secure) bootloader
        still verifies the slot at the next boot and falls back if it fails.
        """
        self._check_target(slot, "write")
        if not image or len(image) > self._device.flash.geometry.slot_size:
            raise ImageFormatError(f"image of {len(image)} bytes does not fit slot {slot}")
        write_partition(self._device.flash, slot, bytes(image))
        self._mark_pending(slot)

    def derive_key(self, label: str) -> bytes:
        uds = self._device.fuses.read().uds
        if uds is None:
            raise BootError("the device has no UDS: it was never provisioned")
        return dice.derive_sealing_key(uds, label)

    def audit_anchor(self) -> tuple[int, int]:
        counters = self._device.counters
        return counters.read("audit_base"), counters.read("audit_head")

    def advance_audit_head(self, seq: int) -> None:
        self._device.counters.advance("audit_head", seq)

    def _mark_pending(self, slot: Slot) -> None:
        view, _problem = read_control(self._device.flash)
        current = (
            view.current
            if view is not None
            else BootControl(seq=0, active=self._booted, last_confirmed=self._booted)
        )
        if current.active != self._booted:  # running a fallback: make it the base of the trial
            current = BootControl(seq=current.seq, active=self._booted, last_confirmed=self._booted)
        write_control(self._device.flash, view, current.with_pending(slot))

    def confirm(self) -> None:
        view, _problem = read_control(self._device.flash)
        current = view.current if view is not None else None
        already = (
            current is not None
            and current.active == self._booted
            and current.trial_state == "confirmed"
        )
        if not already:
            base = current or BootControl(seq=0, active=self._booted)
            # 1. boot-control first: the confirmation is durable before any fuse moves.
            write_control(self._device.flash, view, base.confirmed(self._booted))
        # 2. then the anti-rollback fuses (completed by the next boot if cut here).
        advance_fuses(self._device.fuses, self._firmware)
        self._trial = False
