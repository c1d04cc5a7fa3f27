"""The RoT-signed key manifest (bootloader/keymanifest.py): format rules and trust checks."""

from __future__ import annotations

import contextlib
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import KeyManifestError, RevokedKey, UnknownSigningKey
from common.keymanifest import (
    HEADER_FMT,
    MAGIC,
    KeyManifest,
    build_key_manifest,
    spki_der,
    verify_key_manifest,
)

ROT = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
FW = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
FW_P256 = ec.derive_private_key(123456789, ec.SECP256R1())
ROT_HASH = hashlib.sha256(spki_der(ROT.public_key())).digest()
FW_HASH = hashlib.sha256(spki_der(FW.public_key())).digest()
MANIFEST = build_key_manifest(
    rot_key=ROT, signing_keys=[FW.public_key(), FW_P256.public_key()], counter=7
)


def _resign(body: bytes, key: ed25519.Ed25519PrivateKey = ROT) -> bytes:
    return body + key.sign(body)


def test_round_trip_keeps_counter_issuer_and_keys() -> None:
    manifest = KeyManifest.parse(MANIFEST)
    assert manifest.counter == 7
    assert manifest.issuer_hash == ROT_HASH
    assert [k.key_hash for k in manifest.keys] == [
        FW_HASH,
        hashlib.sha256(spki_der(FW_P256.public_key())).digest(),
    ]
    assert all(k.purpose == "firmware" for k in manifest.keys)
    assert manifest.raw == MANIFEST
    verify_key_manifest(manifest, rot_keys=[(ROT_HASH, False)], min_counter=7)
    assert isinstance(manifest.find_key(FW_HASH), ed25519.Ed25519PublicKey)


def test_issuer_not_fused_is_unknown() -> None:
    manifest = KeyManifest.parse(MANIFEST)
    with pytest.raises(UnknownSigningKey, match=f"issuer {ROT_HASH.hex()} is not a fused"):
        verify_key_manifest(manifest, rot_keys=[(b"\x00" * 32, False)], min_counter=0)


def test_revoked_issuer_is_refused() -> None:
    manifest = KeyManifest.parse(MANIFEST)
    with pytest.raises(RevokedKey, match=r"\(root-of-trust slot 1\) is revoked$"):
        verify_key_manifest(
            manifest, rot_keys=[(b"\x01" * 32, False), (ROT_HASH, True)], min_counter=0
        )


def test_attacker_signature_over_genuine_issuer_is_refused() -> None:
    attacker = ed25519.Ed25519PrivateKey.generate()
    forged = _resign(MANIFEST[:-64], attacker)
    with pytest.raises(KeyManifestError, match=r"^key manifest signature does not verify"):
        verify_key_manifest(KeyManifest.parse(forged), rot_keys=[(ROT_HASH, False)], min_counter=0)


def test_any_changed_byte_before_the_signature_breaks_it() -> None:
    counter_offset = struct.calcsize(HEADER_FMT) - 4
    data = bytearray(MANIFEST)
    data[counter_offset + 3] ^= 0x08  # counter 7 -> 15: a forged newer manifest
    manifest = KeyManifest.parse(bytes(data))
    assert manifest.counter == 15
    with pytest.raises(KeyManifestError, match=r"signature does not verify"):
        verify_key_manifest(manifest, rot_keys=[(ROT_HASH, False)], min_counter=0)


def test_counter_below_fused_minimum_is_refused() -> None:
    with pytest.raises(
        KeyManifestError, match=r"^key manifest counter 7 is below the fused minimum 8$"
    ):
        verify_key_manifest(
            KeyManifest.parse(MANIFEST), rot_keys=[(ROT_HASH, False)], min_counter=8
        )


def test_uncertified_signing_key_is_unknown() -> None:
    other = hashlib.sha256(b"other").digest()
    with pytest.raises(UnknownSigningKey, match=f"signing key {other.hex()} is not certified"):
        KeyManifest.parse(MANIFEST).find_key(other)


@pytest.mark.parametrize("length", range(len(MANIFEST)))
def test_every_truncation_is_a_format_error(length: int) -> None:
    with pytest.raises(KeyManifestError):
        KeyManifest.parse(MANIFEST[:length])


def test_appended_bytes_are_refused() -> None:
    # The last 64 bytes are taken as the signature, so one byte more shifts the body.
    with pytest.raises(KeyManifestError, match=r"unexpected bytes before the signature"):
        KeyManifest.parse(MANIFEST + b"\x00")


def test_bad_magic_version_and_counts_are_refused() -> None:
    body = MANIFEST[:-64]
    with pytest.raises(
        KeyManifestError, match=r"^key manifest magic is b'XXXX', expected b'RCKM'$"
    ):
        KeyManifest.parse(_resign(b"XXXX" + body[4:]))
    with pytest.raises(KeyManifestError, match=r"format version is 2, expected 1"):
        KeyManifest.parse(_resign(body[:4] + b"\x00\x02" + body[6:]))
    with pytest.raises(KeyManifestError, match=r"lists 0 keys, expected 1\.\.16"):
        KeyManifest.parse(_resign(body[:6] + b"\x00\x00" + body[8:]))


def test_unknown_purpose_and_duplicate_keys_are_refused() -> None:
    issuer = spki_der(ROT.public_key())
    key = spki_der(FW.public_key())
    head = struct.pack(HEADER_FMT, MAGIC, 1, 1, 1) + struct.pack(">H", len(issuer)) + issuer
    with pytest.raises(KeyManifestError, match=r"key entry 0 has unknown purpose 9"):
        KeyManifest.parse(_resign(head + struct.pack(">BH", 9, len(key)) + key))
    two = struct.pack(HEADER_FMT, MAGIC, 1, 2, 1) + head[12:]
    entry = struct.pack(">BH", 1, len(key)) + key
    with pytest.raises(KeyManifestError, match=r"lists the same key twice"):
        KeyManifest.parse(_resign(two + entry + entry))


def test_ecdsa_issuer_is_refused() -> None:
    issuer = spki_der(FW_P256.public_key())
    key = spki_der(FW.public_key())
    body = (
        struct.pack(HEADER_FMT, MAGIC, 1, 1, 1)
        + struct.pack(">H", len(issuer))
        + issuer
        + struct.pack(">BH", 1, len(key))
        + key
    )
    with pytest.raises(KeyManifestError, match=r"issuer must be an Ed25519 root-of-trust key"):
        KeyManifest.parse(body + b"\x00" * 64)


def test_build_refuses_bad_inputs() -> None:
    with pytest.raises(KeyManifestError, match=r"lists 1\.\.16 keys, got 0"):
        build_key_manifest(rot_key=ROT, signing_keys=[], counter=1)
    with pytest.raises(KeyManifestError, match=r"does not fit in 32 bits"):
        build_key_manifest(rot_key=ROT, signing_keys=[FW.public_key()], counter=2**32)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_parse_of_arbitrary_bytes_is_manifest_or_format_error(data: bytes) -> None:
    with contextlib.suppress(KeyManifestError):
        KeyManifest.parse(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(MANIFEST) - 1), st.integers(1, 255))
def test_mutated_manifest_never_verifies(offset: int, xor: int) -> None:
    data = bytearray(MANIFEST)
    data[offset] ^= xor
    try:
        manifest = KeyManifest.parse(bytes(data))
        verify_key_manifest(manifest, rot_keys=[(ROT_HASH, False)], min_counter=0)
    except (KeyManifestError, UnknownSigningKey):
        return
    pytest.fail(f"a manifest changed at offset {offset} verified")
