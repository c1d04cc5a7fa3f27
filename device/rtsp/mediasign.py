"""Signed H.264 in the ONVIF Media Signing format (ONVIF Media Signing Specification 26.06).

The signature travels *in* the video: one SEI NAL unit of type
``user_data_unregistered`` (H.264 7.3.2.3.1, payloadType 5) with ONVIF's UUID
:data:`ONVIF_UUID` per GOP, made of TLVs. The SEI that signs GOP *n* opens
GOP *n + 1*: it is placed in that GOP's first access unit, after the parameter
sets and before the IDR slice (the specification's ``SIPPPPSIPPPP``).

What is hashed (specification section "Signing a GOP", and
``onvif/media-signing-framework``, the reference implementation it names):

- only VCL NAL units (types 1 and 5), from the NAL header to the last byte,
  emulation prevention bytes included, start code and trailing zeros not;
- the primary slice (``first_mb_in_slice == 0``) of the IDR that opens a GOP
  is the *anchor*, ``h_anch = SHA-256(I)``; every other NAL unit of the GOP
  is hashed linked to it, ``SHA-256(h_anch || SHA-256(F))``;
- the GOP hash is ``SHA-256`` of the list of those hashes, anchor first;
- each SEI carries the anchor of the GOP signed before it (zeros for the
  first), which fixes the order of GOPs.

The SEI (payload, before emulation prevention)::

    UUID (16) | reserved byte | TLVs... | signature TLV | stop bit 0x80
    TLV = tag (1) | length (2, big endian) | value

Tags, in the order the reference writes them: 4 cryptographic information
(hash OID, DER), 5 vendor information (firmware version, serial,
manufacturer), 6 certificate chain (PEM, leaf first, without the root),
1 general GOP information, 2 hash list, 3 signature (version, size, the DER
ECDSA signature padded with 0x01 to the key's maximum). The *document* is
the SEI as sent from its NAL header up to the signature tag; the reserved
byte's 0x40 bit says that emulation prevention was applied before hashing,
which refcam always does, so the bytes signed are the bytes sent. The
signature is ECDSA P-256 over SHA-256 of the document (the reference
validator verifies with ``EVP_PKEY_verify`` on that digest, so Ed25519
cannot be used; the device signs with its provisioned P-256 stream key).

Byte order: the 26.06 text says the timestamps and the GOP counter are
little endian; the reference implementation (r25.12.3) writes and reads
every multi-byte field big endian. refcam follows the reference, so that
its streams validate with the validator labs use; docs/RTSP.md records the
discrepancy.

Example::

    signer = GopSigner(stream_signer, firmware_version="1.0.0")
    nals = signer.add_access_unit(nals, key=True, capture_wall_ns=t)   # SEI inserted at GOP starts
    sei = parse_sei(nal)                                                # MediaSigningSei or None
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from .errors import MediaError
from .rtp import nal_type

if TYPE_CHECKING:
    from ..stream.signing import StreamSigner

ONVIF_UUID = bytes.fromhex("005bc93f2d715e95ada4796f90877a6f")
SPEC_VERSION = bytes((26, 6, 0))  # major, minor of the specification; patch 0 outside the reference code
USER_DATA_UNREGISTERED = 5
TAG_GENERAL, TAG_HASH_LIST, TAG_SIGNATURE, TAG_CRYPTO_INFO, TAG_VENDOR_INFO, TAG_CERTIFICATES, TAG_ARBITRARY = range(1, 8)
RESERVED_CERTIFICATE_SEI = 0x80
RESERVED_EPB_BEFORE_SIGNING = 0x40
SHA256_OID = bytes.fromhex("0609608648016503040201")  # DER of 2.16.840.1.101.3.4.2.1
HASH_SIZE = 32
MAX_SIGNATURE_SIZE = 72  # DER ECDSA P-256 at its longest (OpenSSL's EVP_PKEY_size)
MAX_LISTED_HASHES = 300  # the reference validator's hash list holds this many; beyond it the list is left out
MAX_GOP_NALS = 65535  # the general tag counts NAL units in 16 bits
FILETIME_UNIX_EPOCH = 116_444_736_000_000_000  # 100 ns intervals from 1601-01-01 to 1970-01-01
MANUFACTURER = "refcam"
VCL_TYPES = (1, 5)


def add_emulation_prevention(rbsp: bytes) -> bytes:
    """H.264 7.4.1: insert 0x03 after two zero bytes when the next byte is 0..3."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def remove_emulation_prevention(ebsp: bytes) -> bytes:
    return _unescape(ebsp)[0]


def _unescape(ebsp: bytes) -> tuple[bytes, list[int]]:
    """The RBSP and, for each of its bytes, its offset in ``ebsp``."""
    out = bytearray()
    where: list[int] = []
    zeros = 0
    for offset, byte in enumerate(ebsp):
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        where.append(offset)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out), where


def _ff_coded(value: int) -> bytes:
    return b"\xff" * (value // 255) + bytes((value % 255,))


def _tlv(tag: int, value: bytes) -> bytes:
    if len(value) > 0xFFFF:
        raise MediaError(f"TLV {tag} of {len(value)} bytes does not fit its 2-byte length")
    return bytes((tag,)) + len(value).to_bytes(2, "big") + value


def filetime(wall_ns: int) -> int:
    """100-nanosecond intervals since 1601-01-01 UTC (the specification's timestamps)."""
    return FILETIME_UNIX_EPOCH + wall_ns // 100


def hashable(nal: bytes) -> bytes:
    """What is hashed of a NAL unit: all of it but trailing zero bytes (start code already gone)."""
    return nal.rstrip(b"\x00")


def is_primary_slice(nal: bytes) -> bool:
    """first_mb_in_slice == 0: ue(v) 0 is a single 1 bit, the top bit of the slice header."""
    return len(nal) > 1 and bool(nal[1] & 0x80)


class GopHasher:
    """The linked NAL hashes of one GOP at a time, as signer and verifier both compute them."""

    def __init__(self) -> None:
        self.anchor: bytes | None = None
        self.hashes: list[bytes] = []

    def add(self, nal: bytes) -> bytes | None:
        """Hash a NAL unit into the open GOP; None for one that is not hashed (non-VCL, or before an IDR)."""
        kind = nal_type(nal)
        if kind not in VCL_TYPES:
            return None
        if kind == 5 and is_primary_slice(nal) and self.anchor is None:
            self.anchor = hashlib.sha256(hashable(nal)).digest()
            self.hashes.append(self.anchor)
            return self.anchor
        if self.anchor is None:
            return None
        linked = hashlib.sha256(self.anchor + hashlib.sha256(hashable(nal)).digest()).digest()
        self.hashes.append(linked)
        return linked

    def gop_hash(self) -> bytes:
        return hashlib.sha256(b"".join(self.hashes)).digest() if self.hashes else bytes(HASH_SIZE)

    def reset(self) -> None:
        self.anchor = None
        self.hashes = []


def opens_gop(nal: bytes) -> bool:
    return nal_type(nal) == 5 and is_primary_slice(nal)


@dataclass(frozen=True)
class GopInfo:
    """The general GOP information TLV (tag 1)."""

    version: int
    spec_version: tuple[int, int, int]
    partial: bool
    start_timestamp: int  # 100 ns since 1601, of the GOP's first frame
    end_timestamp: int  # of the first frame after it (exclusive)
    counter: int
    nal_count: int
    gop_hash: bytes
    linked_hash: bytes  # the anchor of the GOP signed before (zeros for the first)

    def encode(self) -> bytes:
        return (
            bytes((self.version,)) + bytes(self.spec_version) + bytes((int(self.partial),))
            + self.start_timestamp.to_bytes(8, "big") + self.end_timestamp.to_bytes(8, "big")
            + self.counter.to_bytes(4, "big") + self.nal_count.to_bytes(2, "big")
            + self.gop_hash + self.linked_hash
        )

    @classmethod
    def decode(cls, value: bytes) -> GopInfo:
        if not value or value[0] not in (1, 2):
            raise MediaError(f"general GOP information version {value[:1].hex() or 'missing'} is not 1 or 2")
        version = value[0]
        fixed = 1 + 3 + 1 + 8 + (8 if version == 2 else 0) + 4 + 2
        rest = len(value) - fixed
        if rest <= 0 or rest % 2:
            raise MediaError(f"general GOP information of {len(value)} bytes holds no pair of hashes")
        at = 5
        start = int.from_bytes(value[at : at + 8], "big")
        at += 8
        end = start
        if version == 2:
            end = int.from_bytes(value[at : at + 8], "big")
            at += 8
        counter = int.from_bytes(value[at : at + 4], "big")
        count = int.from_bytes(value[at + 4 : at + 6], "big")
        at += 6
        size = rest // 2
        spec = (value[1], value[2], value[3])
        return cls(version, spec, bool(value[4]), start, end, counter, count,
                   value[at : at + size], value[at + size : at + 2 * size])


@dataclass(frozen=True)
class VendorInfo:
    firmware_version: str
    serial_number: str
    manufacturer: str

    def encode(self) -> bytes:
        out = b"\x01"
        for text in (self.firmware_version, self.serial_number, self.manufacturer):
            raw = text.encode("utf-8")[:255]
            out += bytes((len(raw),)) + raw
        return out

    @classmethod
    def decode(cls, value: bytes) -> VendorInfo:
        if value[:1] != b"\x01":
            raise MediaError("vendor information version is not 1")
        fields: list[str] = []
        at = 1
        for _ in range(3):
            if at >= len(value):
                raise MediaError("vendor information is truncated")
            size = value[at]
            raw = value[at + 1 : at + 1 + size]
            if len(raw) != size:
                raise MediaError("vendor information is truncated")
            fields.append(raw.decode("utf-8", "replace"))
            at += 1 + size
        if at != len(value):
            raise MediaError("vendor information has trailing bytes")
        return cls(*fields)


@dataclass(frozen=True)
class MediaSigningSei:
    """One ONVIF Media Signing SEI, parsed (TLV values without emulation prevention)."""

    reserved: int
    tags: tuple[tuple[int, bytes], ...]  # (tag, value) in order, signature tag excluded
    document: bytes  # what the signature covers
    signature: bytes | None  # DER, or None for an unsigned SEI

    @property
    def certificate_sei(self) -> bool:
        return bool(self.reserved & RESERVED_CERTIFICATE_SEI)

    def value(self, tag: int) -> bytes | None:
        return next((v for t, v in self.tags if t == tag), None)

    @property
    def general(self) -> GopInfo | None:
        value = self.value(TAG_GENERAL)
        return GopInfo.decode(value) if value is not None else None

    @property
    def hash_list(self) -> tuple[bytes, ...] | None:
        value = self.value(TAG_HASH_LIST)
        if value is None:
            return None
        if value[:1] != b"\x01" or (len(value) - 1) % HASH_SIZE:
            raise MediaError("hash list is not version 1 with whole SHA-256 hashes")
        return tuple(value[i : i + HASH_SIZE] for i in range(1, len(value), HASH_SIZE))

    @property
    def hash_oid(self) -> bytes | None:
        value = self.value(TAG_CRYPTO_INFO)
        if value is None:
            return None
        if value[:1] != b"\x01" or len(value) < 2 or len(value) < 2 + value[1] + 1:
            raise MediaError("cryptographic information is not version 1, or truncated")
        return value[2 : 2 + value[1]]

    @property
    def certificate_chain(self) -> bytes | None:
        """The PEM chain (leaf first, no root) that the manufacturer provisioned."""
        for tag, value in self.tags:
            if tag == TAG_CERTIFICATES:
                if value[:1] != b"\x01" or len(value) < 3:
                    raise MediaError("certificate chain is not version 1, or empty")
                if value[1] == 0:
                    return value[2:]
        return None

    @property
    def vendor(self) -> VendorInfo | None:
        value = self.value(TAG_VENDOR_INFO)
        return VendorInfo.decode(value) if value is not None else None


def parse_sei(nal: bytes) -> MediaSigningSei | None:
    """The ONVIF Media Signing SEI in ``nal``, None if it is none; MediaError if it is one but malformed."""
    if not nal or nal_type(nal) != 6:
        return None
    raw = hashable(nal)
    rbsp, where = _unescape(raw[1:])
    at = 0
    while at < len(rbsp) and rbsp[at] != 0x80:
        kind, at = _read_ff(rbsp, at)
        size, at = _read_ff(rbsp, at)
        begin = at
        at += size
        if kind != USER_DATA_UNREGISTERED or rbsp[begin : begin + 16] != ONVIF_UUID:
            continue
        if at > len(rbsp) or size < 17:
            raise MediaError("media signing SEI is truncated")
        reserved = rbsp[begin + 16]
        tags: list[tuple[int, bytes]] = []
        signature: bytes | None = None
        signature_at: int | None = None
        offset = begin + 17
        while offset < at:
            if offset + 3 > at:
                raise MediaError("TLV header runs past the SEI payload")
            tag = rbsp[offset]
            length = int.from_bytes(rbsp[offset + 1 : offset + 3], "big")
            value = rbsp[offset + 3 : offset + 3 + length]
            if offset + 3 + length > at:
                raise MediaError(f"TLV {tag} runs past the SEI payload")
            if tag == TAG_SIGNATURE:
                signature_at = offset
                signature = _signature_value(value)
                if offset + 3 + length != at:
                    raise MediaError("the signature TLV is not the last")
            elif not 1 <= tag <= 7:
                raise MediaError(f"unknown TLV tag {tag}")
            else:
                tags.append((tag, value))
            offset += 3 + length
        end = signature_at if signature_at is not None else at
        if reserved & RESERVED_EPB_BEFORE_SIGNING:
            document = raw[: 1 + where[end]] if end < len(where) else raw
        else:
            document = nal[:1] + rbsp[:end]
        return MediaSigningSei(reserved, tuple(tags), document, signature)
    return None


def _signature_value(value: bytes) -> bytes:
    if value[:1] != b"\x01" or len(value) < 3:
        raise MediaError("signature TLV is not version 1")
    size = int.from_bytes(value[1:3], "big")
    if size > len(value) - 3:
        raise MediaError(f"signature of {size} bytes is longer than its {len(value) - 3}-byte field")
    return value[3 : 3 + size]


def _read_ff(data: bytes, offset: int) -> tuple[int, int]:
    value = 0
    while offset < len(data) and data[offset] == 0xFF:
        value += 255
        offset += 1
    if offset >= len(data):
        raise MediaError("SEI message header runs past the NAL unit")
    return value + data[offset], offset + 1


def document_digest(sei: MediaSigningSei) -> bytes:
    return hashlib.sha256(sei.document).digest()


def verify_sei_signature(sei: MediaSigningSei, public_key: ec.EllipticCurvePublicKey) -> None:
    """Raises InvalidSignature unless ``sei`` is signed by ``public_key`` (ECDSA over SHA-256 of the document)."""
    if sei.signature is None:
        raise MediaError("the SEI carries no signature")
    public_key.verify(sei.signature, document_digest(sei), ec.ECDSA(Prehashed(hashes.SHA256())))


def build_sei(tlvs: bytes, key: ec.EllipticCurvePrivateKey, *, certificate_sei: bool = False) -> bytes:
    """A signed SEI NAL unit (emulation prevention applied) around ``tlvs``; the document is signed as sent."""
    reserved = RESERVED_EPB_BEFORE_SIGNING | (RESERVED_CERTIFICATE_SEI if certificate_sei else 0)
    signature_tlv_size = 3 + 1 + 2 + MAX_SIGNATURE_SIZE
    payload_size = 16 + 1 + len(tlvs) + signature_tlv_size
    body = bytes((USER_DATA_UNREGISTERED,)) + _ff_coded(payload_size) + ONVIF_UUID + bytes((reserved,)) + tlvs
    # Emulation prevention is causal: escaping the body plus the signature tag byte gives the
    # document exactly as the finished NAL unit will hold it (with any 0x03 inserted before the tag).
    document = b"\x06" + add_emulation_prevention(body + bytes((TAG_SIGNATURE,)))[:-1]
    signature = key.sign(hashlib.sha256(document).digest(), ec.ECDSA(Prehashed(hashes.SHA256())))
    if len(signature) > MAX_SIGNATURE_SIZE:
        raise MediaError(f"a {len(signature)}-byte signature does not fit {MAX_SIGNATURE_SIZE} bytes")
    value = b"\x01" + len(signature).to_bytes(2, "big") + signature + b"\x01" * (MAX_SIGNATURE_SIZE - len(signature))
    return b"\x06" + add_emulation_prevention(body + _tlv(TAG_SIGNATURE, value) + b"\x80")


class GopSigner:
    """Hashes each GOP as it is encoded and inserts the signed SEI into the next GOP's first access unit."""

    def __init__(self, signer: StreamSigner, *, firmware_version: str = "", manufacturer: str = MANUFACTURER) -> None:
        if not isinstance(signer.key, ec.EllipticCurvePrivateKey):
            raise MediaError("ONVIF Media Signing needs the ECDSA P-256 stream key (its validators cannot verify Ed25519)")
        self.key = signer.key
        chain_pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in signer.chain)
        vendor = VendorInfo(firmware_version, signer.device, manufacturer)
        self._static_tlvs = (
            _tlv(TAG_CRYPTO_INFO, b"\x01" + bytes((len(SHA256_OID),)) + SHA256_OID + b"\x00" + b"\x00\x00")
            + _tlv(TAG_VENDOR_INFO, vendor.encode())
            + _tlv(TAG_CERTIFICATES, b"\x01\x00" + chain_pem)
        )
        self.counter = 0  # of the last SEI; the first SEI carries 1, as the reference's does
        self._hasher = GopHasher()
        self._previous_anchor = bytes(HASH_SIZE)
        self._start_ts = 0

    def add_access_unit(self, nals: list[bytes], *, key: bool, capture_wall_ns: int = 0) -> list[bytes]:
        out = nals
        at = next((i for i, n in enumerate(nals) if opens_gop(n)), None)
        if key and at is not None:
            if self._hasher.anchor is not None:
                sei = self._sign(end_ts=filetime(capture_wall_ns))
                out = [*nals[:at], sei, *nals[at:]]
            self._start_ts = filetime(capture_wall_ns)
        for nal in nals:
            self._hasher.add(nal)
        if len(self._hasher.hashes) > MAX_GOP_NALS:
            raise MediaError(f"GOP exceeds {MAX_GOP_NALS} NAL units")
        return out

    def _sign(self, *, end_ts: int) -> bytes:
        hasher = self._hasher
        assert hasher.anchor is not None
        self.counter += 1
        info = GopInfo(2, (SPEC_VERSION[0], SPEC_VERSION[1], SPEC_VERSION[2]), False, self._start_ts, end_ts,
                       self.counter & 0xFFFFFFFF, len(hasher.hashes), hasher.gop_hash(), self._previous_anchor)
        tlvs = self._static_tlvs + _tlv(TAG_GENERAL, info.encode())
        if len(hasher.hashes) <= MAX_LISTED_HASHES:
            tlvs += _tlv(TAG_HASH_LIST, b"\x01" + b"".join(hasher.hashes))
        sei = build_sei(tlvs, self.key)
        self._previous_anchor = hasher.anchor
        hasher.reset()
        return sei
