"""The probe's own MCUboot image writer and header reader, for forging attack images.

Written from the published formats, not from the camera's code: MCUboot's
image header and TLV areas (``docs/design.md`` of MCUboot, "Image Format")
and refcam's key manifest (``docs/ARCHITECTURE.md``). The probe only ever
builds images the device must refuse (signed by keys the vendor never
certified, unsigned, or flipped), so this writer needs no vendor key.

Layout (little-endian)::

    header   magic u32 0x96f3b83d, load_addr u32, hdr_size u16, protect_tlv_size u16,
             img_size u32, flags u32, version u8 u8 u16 u32, pad u32     (32 bytes)
    payload
    protected TLVs    info (0x6908, total u16), SEC_CNT 0x50 (u32), HARDWARE_ID 0xa0 (ASCII)
    unprotected TLVs  info (0x6907, total u16), SHA256 0x10, KEYHASH 0x01, ED25519 0x24,
                      KEY_MANIFEST 0xa2

Example::

    forged = forge_image(payload, hardware_id="refcam-rc1080-v1", version="99.0.0",
                         security_counter=250)
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from .errors import ProbeError

IMAGE_MAGIC = 0x96F3B83D
HEADER = struct.Struct("<IIHHIIBBHII")
assert HEADER.size == 32
TLV_INFO = struct.Struct("<HH")
TLV = struct.Struct("<HH")
PROTECTED_MAGIC, UNPROTECTED_MAGIC = 0x6908, 0x6907
KEYHASH, SHA256, ED25519, SEC_CNT, HARDWARE_ID, KEY_MANIFEST = 0x01, 0x10, 0x24, 0x50, 0xA0, 0xA2


@dataclass(frozen=True)
class Header:
    hdr_size: int
    img_size: int
    protect_tlv_size: int
    version: str

    @property
    def covered(self) -> int:
        """Bytes the image hash covers: header, payload and protected TLVs."""
        return self.hdr_size + self.img_size + self.protect_tlv_size


def read_header(image: bytes) -> Header:
    if len(image) < HEADER.size:
        raise ProbeError(f"{len(image)} bytes are no MCUboot image")
    magic, _load, hdr_size, prot, img_size, _flags, major, minor, rev, _build, _pad = HEADER.unpack_from(image)
    if magic != IMAGE_MAGIC:
        raise ProbeError(f"image magic 0x{magic:08x} is not MCUboot's")
    return Header(hdr_size, img_size, prot, f"{major}.{minor}.{rev}")


def _area(magic: int, tlvs: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(TLV.pack(kind, len(value)) + value for kind, value in tlvs)
    return TLV_INFO.pack(magic, TLV_INFO.size + len(body)) + body


def _spki(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_manifest(rot: ed25519.Ed25519PrivateKey, signer: ed25519.Ed25519PublicKey, counter: int) -> bytes:
    """A key manifest (b"RCKM", format 1, big-endian) certifying ``signer``, signed by ``rot``."""
    issuer, key = _spki(rot.public_key()), _spki(signer)
    body = b"".join((
        struct.pack(">4sHHI", b"RCKM", 1, 1, counter), struct.pack(">H", len(issuer)), issuer,
        struct.pack(">BH", 1, len(key)), key,
    ))  # fmt: skip
    return body + rot.sign(body)


def forge_image(payload: bytes, *, hardware_id: str, version: str, security_counter: int) -> bytes:
    """A well-formed image signed by a fresh key, certified by a fresh (never fused) root."""
    major, minor, rev = (int(part) for part in version.split("."))
    protected = _area(
        PROTECTED_MAGIC,
        [(SEC_CNT, struct.pack("<I", security_counter)), (HARDWARE_ID, hardware_id.encode("ascii"))],
    )
    header = HEADER.pack(IMAGE_MAGIC, 0, HEADER.size, len(protected), len(payload), 0, major, minor, rev, 0, 0)
    covered = header + payload + protected
    digest = hashlib.sha256(covered).digest()
    rot, signer = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    unprotected = _area(UNPROTECTED_MAGIC, [
        (SHA256, digest),
        (KEYHASH, hashlib.sha256(_spki(signer.public_key())).digest()),
        (ED25519, signer.sign(digest)),
        (KEY_MANIFEST, _key_manifest(rot, signer.public_key(), counter=250)),
    ])  # fmt: skip
    return covered + unprotected


def strip_signature(image: bytes) -> bytes:
    """The same covered bytes with an unprotected area holding only the SHA-256 TLV."""
    covered = image[: read_header(image).covered]
    return covered + _area(UNPROTECTED_MAGIC, [(SHA256, hashlib.sha256(covered).digest())])


def flip_payload_byte(image: bytes) -> bytes:
    """The image with one bit flipped in the middle of its payload."""
    header = read_header(image)
    data = bytearray(image)
    data[header.hdr_size + header.img_size // 2] ^= 0x01
    return bytes(data)


def _tlvs(area: bytes) -> list[tuple[int, bytes]]:
    """The TLVs of one area (info header first), in order."""
    if len(area) < TLV_INFO.size:
        raise ProbeError("TLV area is truncated")
    _magic, total = TLV_INFO.unpack_from(area)
    if total > len(area):
        raise ProbeError(f"TLV area claims {total} bytes, {len(area)} present")
    out, offset = [], TLV_INFO.size
    while offset + TLV.size <= total:
        kind, length = TLV.unpack_from(area, offset)
        value = area[offset + TLV.size : offset + TLV.size + length]
        if len(value) != length:
            raise ProbeError(f"TLV 0x{kind:02x} is truncated")
        out.append((kind, value))
        offset += TLV.size + length
    return out


def resign_image(image: bytes, signing_key: ed25519.Ed25519PrivateKey, *, version: str, security_counter: int) -> bytes:
    """The vendor's ``image`` with another version and security counter, signed again with the
    vendor's own firmware key (``--signing-key``) under the key manifest the image carries.

    The payload and every other protected TLV stay as they are, so the result is exactly
    what the vendor would have released as ``version`` with ``security_counter``: the
    anti-rollback cases use it to build older images that share a counter or a version.
    """
    header = read_header(image)
    magic, load, hdr_size, _prot, img_size, flags, *_version, build, pad = HEADER.unpack_from(image)
    payload = image[hdr_size : hdr_size + img_size]
    protected = [
        (kind, struct.pack("<I", security_counter) if kind == SEC_CNT else value)
        for kind, value in _tlvs(image[hdr_size + img_size : header.covered])
    ]
    if not any(kind == SEC_CNT for kind, _ in protected):
        protected.insert(0, (SEC_CNT, struct.pack("<I", security_counter)))
    manifest = [value for kind, value in _tlvs(image[header.covered :]) if kind == KEY_MANIFEST]
    if not manifest:
        raise ProbeError("the vendor image carries no key manifest to sign under")
    area = _area(PROTECTED_MAGIC, protected)
    major, minor, rev = (int(part) for part in version.split("."))
    head = HEADER.pack(magic, load, hdr_size, len(area), img_size, flags, major, minor, rev, build, pad)
    covered = head + image[HEADER.size : hdr_size] + payload + area
    digest = hashlib.sha256(covered).digest()
    unprotected = _area(UNPROTECTED_MAGIC, [
        (SHA256, digest),
        (KEYHASH, hashlib.sha256(_spki(signing_key.public_key())).digest()),
        (ED25519, signing_key.sign(digest)),
        (KEY_MANIFEST, manifest[0]),
    ])  # fmt: skip
    return covered + unprotected


def load_signing_key(pem: bytes) -> ed25519.Ed25519PrivateKey:
    """The vendor's Ed25519 firmware signing key from PEM; ProbeError for anything else."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ProbeError(f"the signing key is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ProbeError(f"the signing key is {type(key).__name__}, an Ed25519 key is needed")
    return key
