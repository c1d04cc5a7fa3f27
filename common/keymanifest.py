"""The key manifest: a root-of-trust-signed list of firmware-signing keys.

The idea is TF-A's *trusted key certificate*: the ROM fuses only the hashes
of a few root-of-trust (RoT) public keys; the RoT key does not sign firmware
itself, it signs a small statement "these firmware-signing public keys are
valid, manifest counter N". Rotating the firmware-signing key is a new
manifest with a higher counter; revoking a signing key is a manifest that
omits it, once the fused minimum manifest counter has advanced past the old
manifest.

Binary layout (all integers big-endian; ``HEADER_FMT`` below)::

    magic           4 bytes   b"RCKM"
    format_version  u16       1
    key_count       u16       number of signing-key entries, 1..MAX_KEYS
    counter         u32       manifest counter (anti-rollback of the manifest)
    issuer_len      u16       length of the issuer public key
    issuer          bytes     DER SubjectPublicKeyInfo of the RoT key (Ed25519)
    key_count times:
        purpose     u8        1 = "firmware"
        key_len     u16       length of the key
        key         bytes     DER SubjectPublicKeyInfo (Ed25519 or ECDSA P-256)
    signature       64 bytes  Ed25519 signature by the issuer over every byte above

The manifest carries the issuer *public key*; verification hashes it and looks
the hash up in the fused RoT slots, so no other copy of the RoT public key is
needed on the device.

Example::

    data = build_key_manifest(rot_key=rot0, signing_keys=[fw_pub], counter=1)
    manifest = KeyManifest.parse(data)
    verify_key_manifest(manifest, rot_keys=[(spki_hash, False)], min_counter=1)
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from common.errors import KeyManifestError, RevokedKey, UnknownSigningKey

MAGIC = b"RCKM"
FORMAT_VERSION = 1
MAX_KEYS = 16
MAX_KEY_LEN = 1024  # bytes; a DER SPKI of Ed25519 is 44, of P-256 is 91
SIGNATURE_LEN = 64  # Ed25519

HEADER_FMT = (
    ">"
    "4s"  # magic, b"RCKM"
    "H"  # format_version
    "H"  # key_count
    "I"  # counter
)
HEADER_SIZE = 12
assert struct.calcsize(HEADER_FMT) == HEADER_SIZE

PURPOSES: dict[int, str] = {1: "firmware"}
_PURPOSE_CODES = {name: code for code, name in PURPOSES.items()}

SigningPublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def spki_der(public_key: SigningPublicKey) -> bytes:
    """DER SubjectPublicKeyInfo of a public key."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_signing_public_key(der: bytes) -> SigningPublicKey:
    """Load a DER SPKI that must be Ed25519 or ECDSA P-256; KeyManifestError otherwise."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyManifestError(f"key is not a valid DER SubjectPublicKeyInfo: {exc}") from exc
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise KeyManifestError(f"key type {type(key).__name__} is not Ed25519 or ECDSA P-256")


@dataclass(frozen=True)
class ManifestKey:
    """One certified signing key."""

    purpose: str  # "firmware"
    spki: bytes  # DER SubjectPublicKeyInfo
    key_hash: bytes  # SHA-256 of ``spki``; what an image's KEYHASH TLV names


@dataclass(frozen=True)
class KeyManifest:
    """A parsed (well-formed, not yet verified) key manifest."""

    format_version: int
    counter: int
    issuer_spki: bytes  # DER SPKI of the RoT key that signed it
    issuer_hash: bytes  # SHA-256 of ``issuer_spki``; must be a fused RoT hash
    keys: tuple[ManifestKey, ...]
    signed_bytes: bytes  # every byte the signature covers
    signature: bytes
    raw: bytes  # the whole manifest as parsed

    @classmethod
    def parse(cls, data: bytes | memoryview) -> KeyManifest:
        """Parse strictly; any deviation from the layout raises KeyManifestError."""
        raw = bytes(data)
        if len(raw) < HEADER_SIZE + SIGNATURE_LEN:
            raise KeyManifestError(
                f"key manifest is {len(raw)} bytes, at least {HEADER_SIZE + SIGNATURE_LEN} expected"
            )
        magic, version, key_count, counter = struct.unpack_from(HEADER_FMT, raw, 0)
        if magic != MAGIC:
            raise KeyManifestError(f"key manifest magic is {magic!r}, expected {MAGIC!r}")
        if version != FORMAT_VERSION:
            raise KeyManifestError(
                f"key manifest format version is {version}, expected {FORMAT_VERSION}"
            )
        if not 1 <= key_count <= MAX_KEYS:
            raise KeyManifestError(f"key manifest lists {key_count} keys, expected 1..{MAX_KEYS}")
        body_end = len(raw) - SIGNATURE_LEN
        offset = HEADER_SIZE
        issuer, offset = _read_blob(raw, offset, body_end, "issuer key")
        load_issuer_public_key(issuer)  # fail early on a non-Ed25519 issuer
        keys: list[ManifestKey] = []
        for index in range(key_count):
            if offset + 1 > body_end:
                raise KeyManifestError(f"key manifest is truncated in key entry {index}")
            code = raw[offset]
            if code not in PURPOSES:
                raise KeyManifestError(
                    f"key entry {index} has unknown purpose {code}, expected one of {sorted(PURPOSES)}"
                )
            spki, offset = _read_blob(raw, offset + 1, body_end, f"key entry {index}")
            load_signing_public_key(spki)
            keys.append(ManifestKey(PURPOSES[code], spki, hashlib.sha256(spki).digest()))
        if offset != body_end:
            raise KeyManifestError(
                f"key manifest has {body_end - offset} unexpected bytes before the signature"
            )
        hashes = [k.key_hash for k in keys]
        if len(set(hashes)) != len(hashes):
            raise KeyManifestError("key manifest lists the same key twice")
        return cls(
            format_version=version,
            counter=counter,
            issuer_spki=issuer,
            issuer_hash=hashlib.sha256(issuer).digest(),
            keys=tuple(keys),
            signed_bytes=raw[:body_end],
            signature=raw[body_end:],
            raw=raw,
        )

    def find_key(self, key_hash: bytes, *, purpose: str = "firmware") -> SigningPublicKey:
        """The certified key whose SPKI hashes to ``key_hash``; UnknownSigningKey if absent."""
        for key in self.keys:
            if key.key_hash == key_hash and key.purpose == purpose:
                return load_signing_public_key(key.spki)
        raise UnknownSigningKey(
            f"signing key {key_hash.hex()} is not certified for {purpose!r} by key manifest "
            f"counter {self.counter}"
        )


def _read_blob(raw: bytes, offset: int, end: int, what: str) -> tuple[bytes, int]:
    if offset + 2 > end:
        raise KeyManifestError(f"key manifest is truncated in the {what} length")
    (length,) = struct.unpack_from(">H", raw, offset)
    if not 1 <= length <= MAX_KEY_LEN:
        raise KeyManifestError(f"{what} length is {length}, expected 1..{MAX_KEY_LEN}")
    start = offset + 2
    if start + length > end:
        raise KeyManifestError(
            f"{what} of {length} bytes at offset {start} runs past the signature at {end}"
        )
    return raw[start : start + length], start + length


def load_issuer_public_key(der: bytes) -> ed25519.Ed25519PublicKey:
    key = load_signing_public_key(der)
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise KeyManifestError("key manifest issuer must be an Ed25519 root-of-trust key")
    return key


def build_key_manifest(
    *,
    rot_key: ed25519.Ed25519PrivateKey,
    signing_keys: Sequence[SigningPublicKey],
    counter: int,
) -> bytes:
    """Serialise and sign a manifest certifying ``signing_keys`` for firmware signing."""
    if not 1 <= len(signing_keys) <= MAX_KEYS:
        raise KeyManifestError(f"a key manifest lists 1..{MAX_KEYS} keys, got {len(signing_keys)}")
    if not 0 <= counter <= 0xFFFFFFFF:
        raise KeyManifestError(f"key manifest counter {counter} does not fit in 32 bits")
    issuer = spki_der(rot_key.public_key())
    parts = [
        struct.pack(HEADER_FMT, MAGIC, FORMAT_VERSION, len(signing_keys), counter),
        struct.pack(">H", len(issuer)),
        issuer,
    ]
    for key in signing_keys:
        der = spki_der(key)
        load_signing_public_key(der)
        parts += [struct.pack(">BH", _PURPOSE_CODES["firmware"], len(der)), der]
    body = b"".join(parts)
    data = body + rot_key.sign(body)
    KeyManifest.parse(data)  # what we emit, we can read back
    return data


def verify_key_manifest(
    manifest: KeyManifest,
    *,
    rot_keys: Sequence[tuple[bytes, bool]],
    min_counter: int,
) -> None:
    """Check the manifest against the fused trust state; raise if it must not be used.

    ``rot_keys`` are the fused RoT slots: (SHA-256 of the RoT key's DER SPKI,
    revoked). The issuer must be fused and not revoked (UnknownSigningKey /
    RevokedKey), the signature must verify, and the counter must be at least
    the fused minimum (KeyManifestError).
    """
    slots = [
        slot for slot, (key_hash, _) in enumerate(rot_keys) if key_hash == manifest.issuer_hash
    ]
    if not slots:
        raise UnknownSigningKey(
            f"key manifest issuer {manifest.issuer_hash.hex()} is not a fused root-of-trust key"
        )
    if all(rot_keys[slot][1] for slot in slots):
        raise RevokedKey(
            f"key manifest issuer {manifest.issuer_hash.hex()} (root-of-trust slot {slots[0]}) "
            "is revoked"
        )
    issuer = load_issuer_public_key(manifest.issuer_spki)
    try:
        issuer.verify(manifest.signature, manifest.signed_bytes)
    except InvalidSignature as exc:
        raise KeyManifestError(
            f"key manifest signature does not verify with issuer {manifest.issuer_hash.hex()}"
        ) from exc
    if manifest.counter < min_counter:
        raise KeyManifestError(
            f"key manifest counter {manifest.counter} is below the fused minimum {min_counter}"
        )
