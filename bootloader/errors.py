"""Errors of the boot side, one hierarchy.

``BootError`` and its subclasses are refusals: the input (an image, a key
manifest, a slot, the boot-control state) is not what the chain of trust
requires. Their messages say what was found and what was expected.
``HardwareError`` is a misuse of the simulated hardware (writing a burnt fuse,
an unaligned flash write). ``PowerCut`` is not an error a person sees: it is
the simulated device losing power, raised by the power-cut injector.
"""

from __future__ import annotations

from refcam.errors import RefcamError


class BootloaderError(RefcamError):
    """Base of every expected failure in :mod:`bootloader`."""


class KeyStoreError(BootloaderError):
    """A key directory is missing, incomplete, unreadable or the passphrase is wrong."""


class HardwareError(BootloaderError):
    """The simulated hardware was used in a way the real part forbids."""


class FuseError(HardwareError):
    """An OTP fuse operation the silicon would not allow (e.g. burning a burnt bit)."""


class FlashError(HardwareError):
    """A flash operation the part would not allow (unaligned, not erased, out of range)."""


class PowerCut(Exception):  # an event, not an error: no "Error" suffix
    """The simulated device lost power in the middle of an operation."""

    def __init__(self, operation: int, detail: str = "") -> None:
        super().__init__(f"power cut at flash operation {operation}{': ' + detail if detail else ''}")
        self.operation = operation


class BootError(BootloaderError):
    """A stage of the boot chain refused what it was given."""


class ImageFormatError(BootError):
    """The bytes are not a well-formed refcam (MCUboot-format) image."""


class ImageVerificationError(BootError):
    """The image is well formed but its hash or signature does not verify."""


class UnknownSigningKey(ImageVerificationError):
    """The image, key manifest or bootloader is signed by a key that is not trusted."""


class RevokedKey(ImageVerificationError):
    """The signing key or root-of-trust key has been revoked."""


class KeyManifestError(BootError):
    """The key manifest is malformed, badly signed, or older than the fused minimum."""


class SecurityCounterRollback(BootError):
    """The image's security counter is below the fused anti-rollback counter."""


class HardwareIdMismatch(BootError):
    """The image is built for another camera model."""


class BootControlError(BootError):
    """The boot-control state is unreadable (both copies corrupt)."""


class BootloaderRejected(BootError):
    """The ROM refused the bootloader image: the device does not boot at all."""


class FirmwarePayloadError(BootError):
    """The verified payload is not a loadable firmware runtime."""


class NoBootableSlot(BootError):
    """Neither slot holds a verifiable image: the device enters recovery."""

    def __init__(self, reasons: dict[str, str]) -> None:
        detail = "; ".join(f"slot {slot}: {why}" for slot, why in sorted(reasons.items()))
        super().__init__(f"recovery: no bootable slot ({detail})")
        self.reasons = dict(reasons)


class AttestationError(BootloaderError):
    """Attestation evidence failed verification (chain, nonce, log or reference values)."""


class ProvisioningError(BootloaderError):
    """The device state cannot be provisioned as asked."""
