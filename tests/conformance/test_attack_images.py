"""The probe's forged images are rejected by a correct verifier for the reason intended."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from bootloader.keys import spki_sha256
from common.errors import ImageFormatError, ImageVerificationError, UnknownSigningKey
from common.image import SignedImage, sign_image
from common.keymanifest import build_key_manifest
from common.verify import TrustState, verify_firmware_image
from conformance.cases.update import attacker_image, flipped_image, unsigned_image

HWID = "refcam-rc1080-v1"


@pytest.fixture(scope="module")
def vendor() -> tuple[TrustState, bytes]:
    rot = ed25519.Ed25519PrivateKey.generate()
    signer = ed25519.Ed25519PrivateKey.generate()
    manifest = build_key_manifest(rot_key=rot, signing_keys=[signer.public_key()], counter=1)
    image = sign_image(b"firmware" * 100, version="1.0.0", security_counter=1, hardware_id=HWID,
                       signing_key=signer, key_manifest=manifest)
    trust = TrustState(rot_keys=((spki_sha256(rot.public_key()), False),), min_key_manifest_counter=0,
                       min_security_counter=0, hardware_id=HWID)
    verify_firmware_image(image, trust=trust)  # the genuine image verifies
    return trust, image


def test_attacker_signed_image_is_well_formed_but_untrusted(vendor: tuple[TrustState, bytes]) -> None:
    trust, _ = vendor
    forged = attacker_image(HWID)
    assert SignedImage.parse(forged).hardware_id == HWID
    with pytest.raises(UnknownSigningKey):
        verify_firmware_image(forged, trust=trust)


def test_unsigned_image_has_no_signature(vendor: tuple[TrustState, bytes]) -> None:
    trust, image = vendor
    with pytest.raises(ImageFormatError, match="KEYHASH|signature"):
        verify_firmware_image(unsigned_image(image), trust=trust)


def test_flipped_image_fails_its_hash(vendor: tuple[TrustState, bytes]) -> None:
    trust, image = vendor
    with pytest.raises(ImageVerificationError, match="hash"):
        verify_firmware_image(flipped_image(image), trust=trust)
