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

The module ends with two thin adapters that read a key directory
(:func:`build_firmware_image`, :func:`build_bootloader_image`).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bootloader.errors import (
    HardwareIdMismatch,
    ImageFormatError,
    ImageVerificationError,
    KeyStoreError,
    RevokedKey,
    SecurityCounterRollback,
    UnknownSigningKey,
)
from bootloader.image import (
    SignedImage,
    SigningKey,
    VerifiedImage,
    load_der_public_key,
    sign_image,
    verify_image,
)
from bootloader.keymanifest import KeyManifest, verify_key_manifest
from bootloader.keys import KeySet, load_private_key

DEFAULT_HARDWARE_ID = "refcam-rc1080-v1"
BOOTLOADER_STAGE = "bootloader"
BOOTLOADER_MANIFEST_FORMAT = "refcam-bootloader/1"
# The code of the bootloader stage, hashed into the bootloader image's payload.
DEFAULT_BOOTLOADER_MODULES: tuple[str, ...] = (
    "bootloader.chain",
    "bootloader.bootctl",
    "bootloader.decision",
    "bootloader.measured",
    "bootloader.image",
    "bootloader.keymanifest",
    "bootloader.verify",
    "bootloader.firmware",
    "bootloader.services",
    "bootloader.dice",
)


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


def verify_firmware_image(data: bytes | memoryview, *, trust: TrustState) -> VerifiedFirmware:
    """Verify a slot image against the fused trust state; raise a BootError on any failure."""
    image = SignedImage.parse(data)
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
    verified = verify_image(image, public_key=public_key)
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


# --- adapters: read a key directory ------------------------------------------


def _module_source(name: str) -> bytes:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ImageFormatError(f"bootloader module {name!r} cannot be found")
    return Path(spec.origin).read_bytes()


def build_bootloader_image(
    *,
    version: str,
    security_counter: int,
    rot_key: SigningKey | None = None,
    keys: KeySet | None = None,
    passphrase: bytes | None = None,
    rot_slot: int = 0,
    modules: Sequence[str] = DEFAULT_BOOTLOADER_MODULES,
    hardware_id: str = DEFAULT_HARDWARE_ID,
) -> bytes:
    """A bootloader image signed by a RoT key, with its public key in a PUBKEY TLV.

    Give the RoT private key either as ``rot_key`` or as ``keys`` (the key
    directory; ``rot-<rot_slot>.key.pem`` is loaded with ``passphrase``).
    ``modules`` are the import names of the bootloader stage; their sources
    are hashed into the payload, so changed bootloader code changes the
    bootloader's measurement.
    """
    if (rot_key is None) == (keys is None):
        raise KeyStoreError("give exactly one of rot_key or keys to sign the bootloader image")
    if rot_key is None:
        assert keys is not None
        rot_key = load_private_key(keys.rot_key(rot_slot), passphrase)
    payload = bootloader_manifest(
        version=version, module_sources={m: _module_source(m) for m in modules}
    )
    return sign_image(
        payload,
        version=version,
        security_counter=security_counter,
        hardware_id=hardware_id,
        signing_key=rot_key,
        key_format="full",
    )


def build_firmware_image(
    *,
    keys: KeySet,
    payload: bytes,
    version: str,
    security_counter: int,
    hardware_id: str = DEFAULT_HARDWARE_ID,
    algorithm: str = "ed25519",
    passphrase: bytes | None = None,
    build_time: int | None = None,
) -> bytes:
    """A slot image signed by the key directory's firmware-signing key, with its key manifest."""
    if algorithm == "ed25519":
        key_path = keys.firmware_signing_key
    elif algorithm == "ecdsa-p256":
        key_path = keys.firmware_signing_p256_key
    else:
        raise ImageFormatError(f"algorithm {algorithm!r} is not 'ed25519' or 'ecdsa-p256'")
    signing_key = load_private_key(key_path, passphrase)
    try:
        manifest = keys.key_manifest.read_bytes()
    except OSError as exc:
        raise KeyStoreError(
            f"cannot read key manifest {keys.key_manifest}: {exc.strerror}"
        ) from exc
    return sign_image(
        payload,
        version=version,
        security_counter=security_counter,
        hardware_id=hardware_id,
        signing_key=signing_key,
        key_manifest=manifest,
        build_time=build_time,
    )
