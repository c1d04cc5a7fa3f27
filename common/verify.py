"""Full verification of firmware and bootloader images, as the boot chain does it.

A *slot image* (the firmware) is trusted through a chain rooted in the OTP
fuses::

    fused RoT key hash --certifies--> key manifest --certifies--> signing key
                                                              --signs--> image

:func:`verify_firmware_image` walks it: parse the image strictly; parse the
key manifest it carries and check it against the fused RoT hashes,
revocations and minimum manifest counter; find the image's signing key in the
manifest; verify hash and signature (one SHA-256 pass, which is also the
measurement); then the device policy: hardware id and anti-rollback security
counter.

The *bootloader image* is signed directly by a fused RoT key and carries that
public key (PUBKEY TLV, MCUboot's ``MCUBOOT_HW_KEY`` mode): the ROM hashes it
and requires the hash to be a fused, unrevoked RoT slot
(:func:`verify_bootloader_image`).

Example::

    trust = TrustState(rot_keys=((rot0_hash, False), (rot1_hash, False)),
                       min_key_manifest_counter=1, min_security_counter=3,
                       hardware_id="refcam-rc1080-v1")
    fw = verify_firmware_image(slot_bytes, trust=trust)
    fw.digest, fw.version, fw.payload

Building signed images from a key directory is the vendor's side
(:mod:`bootloader.build`); this module only decides.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from common.errors import (
    HardwareIdMismatch,
    ImageVerificationError,
    RevokedKey,
    SecurityCounterRollback,
    UnknownSigningKey,
)
from common.image import (
    SignedImage,
    VerifiedImage,
    load_der_public_key,
    verify_image,
)
from common.keymanifest import KeyManifest, verify_key_manifest

DEFAULT_HARDWARE_ID = "refcam-rc1080-v1"
BOOTLOADER_STAGE = "bootloader"
BOOTLOADER_MANIFEST_FORMAT = "refcam-bootloader/1"


@dataclass(frozen=True)
class TrustState:
    """What the device's fuses say (the inputs of every boot decision)."""

    rot_keys: tuple[tuple[bytes, bool], ...]  # fused (SPKI SHA-256, revoked), by OTP slot
    min_key_manifest_counter: int
    min_security_counter: int
    hardware_id: str


@dataclass(frozen=True)
class VerifiedFirmware:
    """An image that passed every check; ``digest`` is its measurement."""

    image: SignedImage
    digest: bytes  # SHA-256 of the covered bytes (header, payload, protected TLVs)
    version: str
    security_counter: int
    hardware_id: str
    signer_key_hash: bytes  # SHA-256 of the signing key's DER SPKI
    key_manifest_counter: int | None  # None for a bootloader image (no manifest)
    payload: memoryview = field(repr=False)


def _finish(verified: VerifiedImage, manifest_counter: int | None) -> VerifiedFirmware:
    image = verified.image
    return VerifiedFirmware(
        image=image,
        digest=verified.digest,
        version=str(image.version),
        security_counter=image.security_counter,
        hardware_id=image.hardware_id,
        signer_key_hash=image.key_hash,
        key_manifest_counter=manifest_counter,
        payload=image.payload,
    )


def _check_policy(
    image: SignedImage, *, hardware_id: str | None, min_security_counter: int
) -> None:
    if hardware_id is not None and image.hardware_id != hardware_id:
        raise HardwareIdMismatch(
            f"image is for hardware {image.hardware_id!r}, this device is {hardware_id!r}"
        )
    if image.security_counter < min_security_counter:
        raise SecurityCounterRollback(
            f"image security counter {image.security_counter} is below the fused minimum "
            f"{min_security_counter}"
        )


def verify_firmware_image(
    data: bytes | memoryview, *, trust: TrustState, covered_digest: bytes | None = None
) -> VerifiedFirmware:
    """Verify a slot image against the fused trust state; raise a BootError on any failure.

    ``covered_digest``: the image hash computed as these bytes were written (see
    :func:`common.image.verify_image`); the caller then vouches that they are
    unchanged since, so a view of them is parsed in place (``SignedImage.parse``
    ``borrowed``), not copied."""
    image = SignedImage.parse(data, borrowed=covered_digest is not None)
    if image.key_manifest is None:
        raise UnknownSigningKey(
            "image carries no key manifest, so its signing key cannot be traced to a "
            "fused root-of-trust key"
        )
    manifest = KeyManifest.parse(image.key_manifest)
    verify_key_manifest(
        manifest, rot_keys=trust.rot_keys, min_counter=trust.min_key_manifest_counter
    )
    public_key = manifest.find_key(image.key_hash)
    verified = verify_image(image, public_key=public_key, covered_digest=covered_digest)
    _check_policy(
        image, hardware_id=trust.hardware_id, min_security_counter=trust.min_security_counter
    )
    return _finish(verified, manifest.counter)


def unsafe_verify_hash_only(data: bytes | memoryview, *, trust: TrustState) -> VerifiedFirmware:
    """UNSAFE (flaw profile ``boot-skips-signature``): integrity without authenticity.

    Checks the image hash, hardware id and security counter but not who signed
    it: any attacker who can write a slot gets code execution. Exists only so
    test labs and workshops can see what secure boot prevents.
    """
    image = SignedImage.parse(data)
    digest = hashlib.sha256(image.covered).digest()
    if not hmac.compare_digest(digest, image.image_hash):
        raise ImageVerificationError(
            f"image hash mismatch: covered bytes hash to {digest.hex()}, "
            f"the SHA256 TLV says {image.image_hash.hex()}"
        )
    _check_policy(image, hardware_id=trust.hardware_id, min_security_counter=trust.min_security_counter)
    return VerifiedFirmware(
        image=image,
        digest=digest,
        version=str(image.version),
        security_counter=image.security_counter,
        hardware_id=image.hardware_id,
        signer_key_hash=image.key_hash,  # claimed, never checked
        key_manifest_counter=None,
        payload=image.payload,
    )


def verify_bootloader_image(
    data: bytes | memoryview,
    *,
    rot_keys: Sequence[tuple[bytes, bool]],
    min_security_counter: int,
    hardware_id: str | None = None,
) -> VerifiedFirmware:
    """Verify a bootloader image signed directly by a fused, unrevoked RoT key.

    Raises the specific BootError (UnknownSigningKey, RevokedKey,
    ImageVerificationError, SecurityCounterRollback, ...); the ROM wraps it in
    BootloaderRejected.
    """
    image = SignedImage.parse(data)
    if image.public_key_der is None:
        raise UnknownSigningKey(
            "bootloader image must carry its root-of-trust public key (PUBKEY TLV), "
            "found only KEYHASH"
        )
    slots = [i for i, (h, _) in enumerate(rot_keys) if hmac.compare_digest(h, image.key_hash)]
    if not slots:
        raise UnknownSigningKey(
            f"bootloader image is signed by key {image.key_hash.hex()}, which is not a fused "
            "root-of-trust key"
        )
    if all(rot_keys[i][1] for i in slots):
        raise RevokedKey(
            f"bootloader image is signed by root-of-trust slot {slots[0]} "
            f"({image.key_hash.hex()}), which is revoked"
        )
    verified = verify_image(image, public_key=load_der_public_key(image.public_key_der))
    _check_policy(image, hardware_id=hardware_id, min_security_counter=min_security_counter)
    return _finish(verified, None)


def bootloader_manifest(*, version: str, module_sources: Mapping[str, bytes]) -> bytes:
    """The deterministic payload of a bootloader image: what code the stage is.

    JSON with the stage name, version and the SHA-256 of each stage module's
    source, so a change to the bootloader code changes its measurement.
    """
    doc = {
        "format": BOOTLOADER_MANIFEST_FORMAT,
        "stage": BOOTLOADER_STAGE,
        "version": version,
        "modules": {
            name: hashlib.sha256(source).hexdigest()
            for name, source in sorted(module_sources.items())
        },
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
