"""Errors of the update client, one hierarchy under ``DeviceError``.

Refusals of what the repository offers (``UpdateRefused`` and its
subclasses: wrong hardware id, security-counter downgrade, bad image,
untrusted or expired metadata) are kept apart from transport failures
(``UpdateTransportError``: TLS, timeouts, HTTP errors, truncated data).
Each carries a short ``code`` for the status API and an HTTP ``status``.
"""

from __future__ import annotations

from ..errors import DeviceError


class UpdateError(DeviceError):
    """Base of every expected failure of the update client."""

    code = "update_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UpdateRefused(UpdateError):
    """What the repository or the uploader offered is not acceptable."""

    code = "update_refused"
    status = 422


class UntrustedMetadata(UpdateRefused):
    """TUF metadata failed verification (signature, version rollback, hashes, length)."""

    code = "untrusted_metadata"


class ExpiredMetadata(UntrustedMetadata):
    """TUF metadata is expired at the device's reference time (freeze attack)."""

    code = "expired_metadata"


class WrongHardwareId(UpdateRefused):
    """The image is built for another camera model."""

    code = "wrong_hardware_id"


class SecurityCounterDowngrade(UpdateRefused):
    """The image's security counter is below the fused anti-rollback counter."""

    code = "security_counter_downgrade"


class ImageRejected(UpdateRefused):
    """The image does not verify as the bootloader would verify it."""

    code = "image_rejected"


class ImageTooLarge(UpdateRefused):
    """The image or a download is larger than the configured maximum."""

    code = "image_too_large"
    status = 413


class NoUpdate(UpdateError):
    """Nothing to install: no newer image for this device."""

    code = "no_update"
    status = 409


class UpdateBusy(UpdateError):
    """Another update operation is running."""

    code = "update_busy"
    status = 409


class TrialNotConfirmed(UpdateError):
    """The running image is an unconfirmed trial; the inactive slot holds the fallback."""

    code = "trial_not_confirmed"
    status = 409


class UpdateTransportError(UpdateError):
    """The repository could not be reached or the transfer failed (TLS, timeout, HTTP)."""

    code = "transport_error"
    status = 502
