"""The ground package's errors: the root of every refcam error hierarchy, and the
boot-side errors that the bootloader and the firmware share (image format, key
manifest, verification, the boot services' refusals).

Each package keeps its own ``errors.py`` whose base class derives from
:class:`RefcamError`, so the command line can turn any expected failure into
one clear line and a non-zero exit, while a bug still shows its traceback.

``BootError`` and its subclasses are refusals: the input (an image, a key
manifest, a slot) is bad and the chain moved on or stopped. ``HardwareError``
means the simulated storage failed. ``PowerCut`` is an event of the simulator.
"""

from __future__ import annotations


class RefcamError(Exception):
    """An expected failure a person can act on (bad input, failed check)."""

    exit_code: int = 1



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


class SecurityTxtError(RefcamError):
    """A security.txt field or document is malformed (RFC 9116)."""


class TLSConfigError(RefcamError):
    """The TLS certificate, key or trust anchors cannot be loaded."""
