"""What the bootloader hands to the firmware it has verified and started.

The boot chain ends by loading the firmware runtime (the ``device`` package)
from the verified image bytes and calling its entry point::

    exit_code = firmware_entry(handoff, argv)

``handoff`` is a :class:`BootHandoff`: facts measured or verified by the
chain (frozen), plus :class:`BootServices`, the narrow set of operations the
running firmware may ask of the boot side (MCUboot's ``boot_set_pending`` /
``boot_set_confirmed`` and a flash writer for the inactive slot). The entry
point returns :data:`EXIT_REBOOT` to ask the host to power-cycle the device
through the whole chain again (after an update), or ``0`` to stop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

Slot = Literal["a", "b"]
Lifecycle = Literal["development", "secured"]

EXIT_REBOOT = 75  # firmware asks for a reboot through the full chain
ENTRY_MODULE = "main"  # the payload module that defines ``run(handoff, argv) -> int``


@dataclass(frozen=True)
class FirmwareManifest:
    """The manifest packed in the payload zip (``manifest.json``), after verification."""

    version: str
    hardware_id: str
    model: str
    build_time: int  # seconds since the epoch, UTC; the device's clock floor
    support_end: str  # ISO date, the published support period (EN 303 645 5.3-13)
    tuf_root: bytes | None = None  # trusted TUF root.json, covered by secure boot
    vendor_tls_root: bytes | None = None  # PEM of the vendor root for update TLS
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SlotStatus:
    slot: Slot
    state: Literal["empty", "valid", "invalid"]
    version: str | None = None
    security_counter: int | None = None
    reason: str | None = None  # why the slot is invalid


@dataclass(frozen=True)
class FuseSummary:
    firmware_counter: int
    bootloader_counter: int
    key_manifest_counter: int
    lifecycle: Lifecycle
    debug_disabled: bool
    rot_keys: tuple[tuple[str, bool], ...]  # (hex SHA-256 of SPKI, revoked)


@dataclass(frozen=True)
class MeasurementEvent:
    """One entry of the measured-boot event log."""

    stage: str  # "rom", "bootloader", "key-manifest", "firmware"
    digest: str  # hex SHA-256 of what was measured
    version: str
    signer_key_hash: str  # hex SHA-256 of the signer's DER SPKI
    security_counter: int


@dataclass(frozen=True)
class DeviceIdentity:
    """Written at provisioning under ``<state>/data/identity``."""

    serial: str
    model: str
    hardware_id: str
    vendor: str


class Attester(Protocol):
    def evidence(self, nonce: bytes, *, now: int) -> bytes:
        """Signed attestation evidence binding ``nonce`` to this boot's measurements."""
        ...


@dataclass(frozen=True)
class StreamedDigests:
    """What a :class:`SlotWriter` computed over the bytes it programmed, in one pass."""

    length: int
    sha256: bytes  # of the whole image: TUF's target hash
    covered: bytes | None  # of the bytes the image hash covers (None: not an image header)


class SlotImageWriter(Protocol):
    """An image being streamed into a slot (``BootServices.open_slot_writer``)."""

    durable: int  # bytes on flash: a resume point (a multiple of the sector size until finish)
    # after finish(), for a writer opened at offset 0: hashes of what it programmed, in one pass
    digests: StreamedDigests | None

    def write(self, data: bytes | memoryview) -> None:
        """Program ``data`` (a view is copied, never kept past the call)."""
        ...

    def finish(self) -> int:
        """Program what is buffered and erase the rest of the slot; returns the image length."""
        ...


class BootServices(Protocol):
    """Operations the running firmware may ask of the boot side."""

    @property
    def trial(self) -> bool:
        """Running as an unconfirmed trial now (``BootHandoff.trial`` is how it booted)."""
        ...

    def inactive_slot(self) -> Slot: ...

    def fuses(self) -> FuseSummary:
        """The fuses now (``BootHandoff.fuses`` is what the bootloader read at boot)."""
        ...

    def write_image(
        self, slot: Slot, image: bytes, *, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Erase ``slot``, write ``image`` to it (never the booted slot), read it back and
        verify it exactly as the bootloader will; raises a ``BootError`` if it would not boot."""
        ...

    def open_slot_writer(
        self,
        slot: Slot,
        *,
        offset: int = 0,
        total: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        on_durable: Callable[[int], None] | None = None,
    ) -> SlotImageWriter:
        """Stream an image into ``slot`` (never the booted slot; not during a trial),
        resuming at ``offset``; ``on_durable(n)`` hears each new resume point once it is
        on flash. Verifies nothing: call ``set_pending``, which does."""
        ...

    def read_slot(self, slot: Slot, length: int) -> bytes:
        """The first ``length`` bytes of ``slot`` as they are on flash."""
        ...

    def erase_slot(self, slot: Slot) -> None:
        """Erase ``slot`` (never the booted slot; not during a trial)."""
        ...

    def verify_slot(self, slot: Slot) -> SlotStatus:
        """Verify ``slot`` as the bootloader will; raises a ``BootError``. Over an image a
        slot writer hashed as it wrote it (flash unchanged since), the signature is checked
        over that digest and the payload's entry hashes are left to the boot."""
        ...

    def set_pending(self, slot: Slot) -> None:
        """Boot ``slot`` as a trial at the next boot (MCUboot ``boot_set_pending``).

        Verifies the slot first and raises a ``BootError`` if it would not boot.
        """
        ...

    def confirm(self) -> None:
        """Confirm the running trial image; only now may the fused counter advance."""
        ...

    def unsafe_write_unverified(self, slot: Slot, image: bytes) -> None:
        """UNSAFE, flaw profiles only: write ``slot`` and mark it pending without any check."""
        ...

    def derive_key(self, label: str) -> bytes:
        """A 32-byte device-unique key for ``label`` (``"audit-log"``, ``"protocol-secrets"``), derived by the boot
        side from the UDS with HKDF (``bootloader.dice.derive_sealing_key``); the UDS
        itself never reaches the firmware."""
        ...

    def audit_anchor(self) -> tuple[int, int]:
        """``(base, head)`` of the audit log from the secure monotonic counters: entries
        ``base+1 .. head`` must exist (a factory reset moves ``base`` up to ``head``)."""
        ...

    def advance_audit_head(self, seq: int) -> None:
        """Move the secure ``audit_head`` counter up to ``seq`` (never down)."""
        ...


@dataclass(frozen=True)
class BootHandoff:
    state_dir: Path
    identity: DeviceIdentity
    firmware: FirmwareManifest
    booted_slot: Slot
    security_counter: int
    trial: bool  # booted as a trial that the firmware must confirm
    slots: tuple[SlotStatus, SlotStatus]
    fuses: FuseSummary
    measurements: tuple[MeasurementEvent, ...]
    measurement_register: str  # hex, the final value of the measurement register
    notices: tuple[str, ...]  # refusals met on the way (fallbacks, tamper): for the audit log
    attester: Attester
    services: BootServices

    @property
    def data_dir(self) -> Path:
        """The firmware's persistent filesystem (the flash data partition)."""
        return self.state_dir / "data"
