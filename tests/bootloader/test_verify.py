"""Firmware and bootloader verification against fused trust (bootloader/verify.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from bootloader.build import build_bootloader_image, build_firmware_image
from bootloader.keys import (
    KeySet,
    init_keys,
    load_private_key,
    load_public_key,
    rotate_signing_key,
    spki_sha256,
)
from common.errors import (
    HardwareIdMismatch,
    ImageFormatError,
    ImageVerificationError,
    KeyManifestError,
    KeyStoreError,
    RevokedKey,
    SecurityCounterRollback,
    UnknownSigningKey,
)
from common.image import SignedImage, sign_image
from common.keymanifest import build_key_manifest
from common.verify import (
    TrustState,
    bootloader_manifest,
    verify_bootloader_image,
    verify_firmware_image,
)

NOW = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
HW = "refcam-rc1080-v1"
PAYLOAD = b"PK\x03\x04 not really a zip, verify.py does not care" * 10


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return init_keys(tmp_path_factory.mktemp("vkeys") / "K", now=NOW)


@pytest.fixture(scope="module")
def rot_hashes(keys: KeySet) -> tuple[bytes, bytes]:
    return (
        spki_sha256(load_public_key(keys.rot_pub(0))),
        spki_sha256(load_public_key(keys.rot_pub(1))),
    )


def _trust(
    rot_hashes: tuple[bytes, bytes],
    *,
    revoked: tuple[bool, bool] = (False, False),
    min_manifest: int = 1,
    min_counter: int = 0,
    hardware_id: str = HW,
) -> TrustState:
    return TrustState(
        rot_keys=tuple(zip(rot_hashes, revoked, strict=True)),
        min_key_manifest_counter=min_manifest,
        min_security_counter=min_counter,
        hardware_id=hardware_id,
    )


def _image(keys: KeySet, **overrides: Any) -> bytes:
    args: dict[str, Any] = {
        "keys": keys,
        "payload": PAYLOAD,
        "version": "2.1.0",
        "security_counter": 5,
        "hardware_id": HW,
    }
    args.update(overrides)
    return build_firmware_image(**args)


def test_genuine_image_is_accepted_with_its_measurement(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    data = _image(keys, build_time=1_800_000_000)
    fw = verify_firmware_image(data, trust=_trust(rot_hashes, min_counter=5))
    covered = SignedImage.parse(data).covered_size
    assert fw.digest == hashlib.sha256(data[:covered]).digest()
    assert (fw.version, fw.security_counter, fw.hardware_id) == ("2.1.0", 5, HW)
    assert fw.signer_key_hash == spki_sha256(load_public_key(keys.firmware_signing_pub))
    assert fw.key_manifest_counter == 1
    assert bytes(fw.payload) == PAYLOAD


def test_ecdsa_p256_image_is_accepted(keys: KeySet, rot_hashes: tuple[bytes, bytes]) -> None:
    fw = verify_firmware_image(_image(keys, algorithm="ecdsa-p256"), trust=_trust(rot_hashes))
    assert fw.signer_key_hash == spki_sha256(load_public_key(keys.firmware_signing_p256_pub))


def test_image_signed_by_unknown_key_is_rejected(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    attacker = ed25519.Ed25519PrivateKey.generate()
    data = sign_image(
        PAYLOAD, version="9.0.0", security_counter=99, hardware_id=HW,
        signing_key=attacker, key_manifest=keys.key_manifest.read_bytes(),
    )  # fmt: skip
    with pytest.raises(
        UnknownSigningKey,
        match=r"^signing key [0-9a-f]{64} is not certified for 'firmware' by key manifest counter 1$",
    ):
        verify_firmware_image(data, trust=_trust(rot_hashes))


def test_attacker_manifest_from_unfused_root_is_rejected(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    attacker_rot = ed25519.Ed25519PrivateKey.generate()
    attacker = ed25519.Ed25519PrivateKey.generate()
    manifest = build_key_manifest(
        rot_key=attacker_rot, signing_keys=[attacker.public_key()], counter=100
    )
    data = sign_image(
        PAYLOAD, version="9.0.0", security_counter=99, hardware_id=HW,
        signing_key=attacker, key_manifest=manifest,
    )  # fmt: skip
    with pytest.raises(
        UnknownSigningKey,
        match=r"^key manifest issuer [0-9a-f]{64} is not a fused root-of-trust key$",
    ):
        verify_firmware_image(data, trust=_trust(rot_hashes))


def test_image_without_key_manifest_is_rejected(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    key = load_private_key(keys.firmware_signing_key)
    data = sign_image(PAYLOAD, version="1.0.0", security_counter=1, hardware_id=HW, signing_key=key)
    with pytest.raises(UnknownSigningKey, match=r"^image carries no key manifest"):
        verify_firmware_image(data, trust=_trust(rot_hashes))


def test_image_under_revoked_root_key_is_rejected(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    with pytest.raises(RevokedKey, match=r"\(root-of-trust slot 0\) is revoked$"):
        verify_firmware_image(_image(keys), trust=_trust(rot_hashes, revoked=(True, False)))


def test_manifest_counter_below_fused_minimum_is_rejected(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    with pytest.raises(
        KeyManifestError, match=r"^key manifest counter 1 is below the fused minimum 2$"
    ):
        verify_firmware_image(_image(keys), trust=_trust(rot_hashes, min_manifest=2))


def test_older_security_counter_is_rejected(keys: KeySet, rot_hashes: tuple[bytes, bytes]) -> None:
    data = _image(keys, security_counter=3)
    with pytest.raises(
        SecurityCounterRollback, match=r"^image security counter 3 is below the fused minimum 5$"
    ):
        verify_firmware_image(data, trust=_trust(rot_hashes, min_counter=5))


def test_image_for_other_hardware_is_rejected(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    data = _image(keys, hardware_id="refcam-rc4k-v2")
    with pytest.raises(
        HardwareIdMismatch,
        match=r"^image is for hardware 'refcam-rc4k-v2', this device is 'refcam-rc1080-v1'$",
    ):
        verify_firmware_image(data, trust=_trust(rot_hashes))


def test_one_changed_payload_byte_is_rejected(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    data = bytearray(_image(keys))
    data[40] ^= 0x80
    with pytest.raises(ImageVerificationError, match=r"^image hash mismatch"):
        verify_firmware_image(bytes(data), trust=_trust(rot_hashes))


def test_malformed_bytes_are_a_format_error(rot_hashes: tuple[bytes, bytes]) -> None:
    with pytest.raises(ImageFormatError, match=r"shorter than the 32-byte header"):
        verify_firmware_image(b"\x00" * 10, trust=_trust(rot_hashes))


def test_rotated_signing_key_revokes_images_of_the_old_key(tmp_path: Path) -> None:
    keys = init_keys(tmp_path / "K", now=NOW)
    hashes = (
        spki_sha256(load_public_key(keys.rot_pub(0))),
        spki_sha256(load_public_key(keys.rot_pub(1))),
    )
    old_image = _image(keys)
    old_key = load_private_key(keys.firmware_signing_key)
    rotation = rotate_signing_key(keys, now=NOW)
    new_image = _image(keys)
    assert (
        verify_firmware_image(new_image, trust=_trust(hashes, min_manifest=2)).key_manifest_counter
        == 2
    )
    # Before the counter advances, the old image is still fine; after, it is refused.
    verify_firmware_image(old_image, trust=_trust(hashes, min_manifest=1))
    with pytest.raises(KeyManifestError, match=r"counter 1 is below the fused minimum 2"):
        verify_firmware_image(old_image, trust=_trust(hashes, min_manifest=2))
    # Old key + new manifest: the old key is not certified any more.
    resigned = sign_image(
        PAYLOAD, version="3.0.0", security_counter=9, hardware_id=HW,
        signing_key=old_key, key_manifest=keys.key_manifest.read_bytes(),
    )  # fmt: skip
    with pytest.raises(UnknownSigningKey, match=rotation.old_key_hash.hex()):
        verify_firmware_image(resigned, trust=_trust(hashes, min_manifest=2))


def test_bootloader_image_signed_by_rot0_is_accepted(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    data = build_bootloader_image(
        keys=keys, version="1.0.0", security_counter=2, modules=["common.image"]
    )
    bl = verify_bootloader_image(
        data, rot_keys=tuple((h, False) for h in rot_hashes), min_security_counter=2
    )
    assert bl.signer_key_hash == rot_hashes[0]
    assert bl.key_manifest_counter is None
    doc = json.loads(bytes(bl.payload))
    source = Path(__file__).parents[2] / "common" / "image.py"
    assert doc["stage"] == "bootloader"
    assert doc["modules"] == {"common.image": hashlib.sha256(source.read_bytes()).hexdigest()}


def test_bootloader_image_with_rot_key_object_and_default_modules(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    rot1 = load_private_key(keys.rot_key(1))
    data = build_bootloader_image(rot_key=rot1, version="1.0.1", security_counter=1)
    bl = verify_bootloader_image(
        data, rot_keys=((rot_hashes[0], True), (rot_hashes[1], False)), min_security_counter=0
    )
    assert bl.signer_key_hash == rot_hashes[1]
    assert "bootloader.chain" in json.loads(bytes(bl.payload))["modules"]
    with pytest.raises(KeyStoreError, match=r"exactly one of rot_key or keys"):
        build_bootloader_image(rot_key=rot1, keys=keys, version="1.0.0", security_counter=1)


def test_bootloader_signed_by_revoked_rot_key_is_rejected(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    data = build_bootloader_image(keys=keys, version="1.0.0", security_counter=1, modules=[])
    with pytest.raises(
        RevokedKey,
        match=r"^bootloader image is signed by root-of-trust slot 0 \([0-9a-f]{64}\), which is revoked$",
    ):
        verify_bootloader_image(
            data, rot_keys=((rot_hashes[0], True), (rot_hashes[1], False)), min_security_counter=0
        )


def test_bootloader_counter_rollback_is_rejected(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    data = build_bootloader_image(keys=keys, version="1.0.0", security_counter=1, modules=[])
    with pytest.raises(
        SecurityCounterRollback, match=r"^image security counter 1 is below the fused minimum 2$"
    ):
        verify_bootloader_image(data, rot_keys=((rot_hashes[0], False),), min_security_counter=2)


def test_firmware_key_cannot_sign_a_bootloader(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    fw_key = load_private_key(keys.firmware_signing_key)
    data = sign_image(
        b"{}",
        version="1.0.0",
        security_counter=1,
        hardware_id=HW,
        signing_key=fw_key,
        key_format="full",
    )
    with pytest.raises(UnknownSigningKey, match=r"which is not a fused root-of-trust key$"):
        verify_bootloader_image(
            data, rot_keys=tuple((h, False) for h in rot_hashes), min_security_counter=0
        )
    # A slot image names its key only by hash, which the ROM cannot use.
    with pytest.raises(UnknownSigningKey, match=r"must carry its root-of-trust public key"):
        verify_bootloader_image(
            _image(keys), rot_keys=tuple((h, False) for h in rot_hashes), min_security_counter=0
        )


def test_bootloader_image_is_not_a_firmware_image(
    keys: KeySet, rot_hashes: tuple[bytes, bytes]
) -> None:
    data = build_bootloader_image(keys=keys, version="1.0.0", security_counter=1, modules=[])
    with pytest.raises(UnknownSigningKey, match=r"no key manifest"):
        verify_firmware_image(data, trust=_trust(rot_hashes))


def test_bootloader_manifest_is_deterministic() -> None:
    a = bootloader_manifest(version="1.0.0", module_sources={"b": b"2", "a": b"1"})
    b = bootloader_manifest(version="1.0.0", module_sources={"a": b"1", "b": b"2"})
    assert a == b
    assert a != bootloader_manifest(version="1.0.0", module_sources={"a": b"1", "b": b"3"})
