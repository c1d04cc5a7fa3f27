"""Signed images in MCUboot's format: writer, strict parser and verifier.

An image is what MCUboot's ``imgtool sign`` produces (and ``imgtool verify``
accepts), all integers little-endian::

    +---------------------------+  offset 0
    | header (32 bytes)         |  HEADER_FMT below
    +---------------------------+  hdr_size
    | payload (img_size bytes)  |  the firmware (a zip, see bootloader.firmware)
    +---------------------------+  hdr_size + img_size
    | protected TLV area        |  info 0x6908 + TLVs: SEC_CNT, hardware id, build time
    +---------------------------+  ... + protect_tlv_size   (end of the covered bytes)
    | unprotected TLV area      |  info 0x6907 + TLVs: SHA256, KEYHASH|PUBKEY, signature,
    +---------------------------+                        key manifest (optional)

The SHA-256 TLV is the hash of the *covered bytes* (header, payload and the
protected TLV area). As in imgtool/MCUboot, an Ed25519 signature is over that
32-byte digest, an ECDSA P-256 signature is ECDSA-SHA256 over the covered bytes
(the same digest, prehashed). KEYHASH is SHA-256 of the signer's DER
SubjectPublicKeyInfo; PUBKEY carries that DER itself (MCUboot's
``MCUBOOT_HW_KEY`` mode, used for the bootloader image, whose key is only
known to the ROM by its fused hash).

Our own TLVs use MCUboot's vendor-reserved types "xxA0-xxFF" (bootutil
``image.h``; imgtool accepts 0x00a0..0xfffe for custom TLVs): the hardware id
and build time are protected (covered by the signature); the key manifest is
unprotected because it carries its own root-of-trust signature, and
``imgtool verify`` skips unprotected TLV types it does not know.

:meth:`SignedImage.parse` is strict: any length out of bounds, unknown TLV,
duplicate, missing field or trailing byte raises :class:`ImageFormatError`.
Parsing never copies the payload (``memoryview``), so verifying a large image
costs one SHA-256 pass.

Example::

    data = sign_image(payload, version="1.2.0", security_counter=3,
                      hardware_id="refcam-rc1080-v1", signing_key=key)
    verified = verify_image(SignedImage.parse(data), public_key=key.public_key())
    verified.digest  # the measurement of this image
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils

from common.errors import ImageFormatError, ImageVerificationError, UnknownSigningKey

IMAGE_MAGIC = 0x96F3B83D
IMAGE_HEADER_SIZE = 32

# MCUboot image header, struct image_header in bootutil/include/bootutil/image.h.
HEADER_FMT = (
    "<"
    "I"  # ih_magic          IMAGE_MAGIC
    "I"  # ih_load_addr      0: we do not use RAM loading
    "H"  # ih_hdr_size       IMAGE_HEADER_SIZE (payload starts here)
    "H"  # ih_protect_tlv_size  protected TLV area incl. its 4-byte info header
    "I"  # ih_img_size       payload length, without header or TLVs
    "I"  # ih_flags          0: no encryption, compression, RAM load
    "B"  # iv_major
    "B"  # iv_minor
    "H"  # iv_revision
    "I"  # iv_build_num
    "I"  # _pad1             0
)
assert struct.calcsize(HEADER_FMT) == IMAGE_HEADER_SIZE

TLV_INFO_FMT = "<HH"  # it_magic, it_tlv_tot (size of the area including this header)
TLV_INFO_SIZE = 4
TLV_FMT = "<HH"  # it_type, it_len (length of the value that follows)
TLV_SIZE = 4
assert struct.calcsize(TLV_INFO_FMT) == TLV_INFO_SIZE
assert struct.calcsize(TLV_FMT) == TLV_SIZE
TLV_INFO_MAGIC = 0x6907  # unprotected area
TLV_PROT_INFO_MAGIC = 0x6908  # protected area

# Standard MCUboot TLV types (bootutil image.h, imgtool TLV_VALUES).
TLV_KEYHASH = 0x01
TLV_PUBKEY = 0x02
TLV_SHA256 = 0x10
TLV_ECDSA_SIG = 0x22
TLV_ED25519 = 0x24
TLV_SEC_CNT = 0x50
# refcam TLVs in MCUboot's vendor-reserved range xxA0-xxFF.
TLV_HARDWARE_ID = 0x00A0  # protected, ASCII hardware id
TLV_BUILD_TIME = 0x00A1  # protected, u64 seconds since the epoch
TLV_KEY_MANIFEST = 0x00A2  # unprotected, common.keymanifest bytes

TLV_NAMES: dict[int, str] = {
    TLV_KEYHASH: "KEYHASH",
    TLV_PUBKEY: "PUBKEY",
    TLV_SHA256: "SHA256",
    TLV_ECDSA_SIG: "ECDSA_SIG",
    TLV_ED25519: "ED25519",
    TLV_SEC_CNT: "SEC_CNT",
    TLV_HARDWARE_ID: "HARDWARE_ID",
    TLV_BUILD_TIME: "BUILD_TIME",
    TLV_KEY_MANIFEST: "KEY_MANIFEST",
}
PROTECTED_TYPES = frozenset({TLV_SEC_CNT, TLV_HARDWARE_ID, TLV_BUILD_TIME})
SIGNATURE_TYPES = frozenset({TLV_ED25519, TLV_ECDSA_SIG})
KEY_ID_TYPES = frozenset({TLV_KEYHASH, TLV_PUBKEY})
# Unprotected TLVs in the only order we accept (MCUboot needs the key id before
# the signature): rank of each allowed type.
_UNPROTECTED_RANK = {
    TLV_SHA256: 0,
    TLV_KEYHASH: 1,
    TLV_PUBKEY: 1,
    TLV_ED25519: 2,
    TLV_ECDSA_SIG: 2,
    TLV_KEY_MANIFEST: 3,
}

HARDWARE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
VERSION_RE = re.compile(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\+(\d+))?")
MAX_PUBKEY_LEN = 1024  # bytes, DER SPKI
MAX_KEY_MANIFEST_LEN = 8192  # bytes
ECDSA_SIG_MAX_LEN = 72  # DER of two 33-byte integers


@dataclass(frozen=True, order=True)
class ImageVersion:
    """MCUboot's image version: major.minor.revision+build."""

    major: int  # u8
    minor: int  # u8
    revision: int  # u16
    build: int = 0  # u32

    @classmethod
    def parse(cls, text: str) -> ImageVersion:
        """Parse "1", "1.2", "1.2.3" or "1.2.3+4" (as imgtool does); bounds-checked."""
        match = VERSION_RE.fullmatch(text)
        if match is None:
            raise ImageFormatError(f"version {text!r} is not MAJOR.MINOR.REVISION[+BUILD]")
        major, minor, revision, build = (int(g) if g else 0 for g in match.groups())
        for name, value, limit in (
            ("major", major, 0xFF),
            ("minor", minor, 0xFF),
            ("revision", revision, 0xFFFF),
            ("build", build, 0xFFFFFFFF),
        ):
            if value > limit:
                raise ImageFormatError(f"version {text!r}: {name} {value} exceeds {limit}")
        return cls(major, minor, revision, build)

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.revision}"
        return f"{base}+{self.build}" if self.build else base


@dataclass(frozen=True)
class ImageHeader:
    magic: int
    load_addr: int
    hdr_size: int
    protect_tlv_size: int
    img_size: int
    flags: int
    version: ImageVersion


@dataclass(frozen=True)
class TLV:
    """One TLV entry; ``offset`` is where its 4-byte TLV header starts in the image."""

    type: int
    offset: int
    value: bytes

    @property
    def name(self) -> str:
        return TLV_NAMES.get(self.type, f"0x{self.type:04x}")


@dataclass(frozen=True)
class SignedImage:
    """A well-formed image (structure checked, hash and signature NOT yet verified)."""

    raw: bytes | memoryview = field(repr=False)  # the whole image; may be tens of MiB (borrowed: a view)
    header: ImageHeader
    protected_tlvs: tuple[TLV, ...]
    unprotected_tlvs: tuple[TLV, ...]
    security_counter: int
    hardware_id: str
    build_time: int | None
    image_hash: bytes  # value of the SHA256 TLV
    key_hash: bytes  # KEYHASH value, or SHA-256 of the PUBKEY value
    public_key_der: bytes | None  # PUBKEY value when the image carries its key
    signature_type: int  # TLV_ED25519 or TLV_ECDSA_SIG
    signature: bytes
    key_manifest: bytes | None

    @property
    def version(self) -> ImageVersion:
        return self.header.version

    @property
    def covered_size(self) -> int:
        """Bytes covered by hash and signature: header, payload, protected TLVs."""
        h = self.header
        return h.hdr_size + h.img_size + h.protect_tlv_size

    @property
    def covered(self) -> memoryview:
        return memoryview(self.raw)[: self.covered_size]

    @property
    def payload(self) -> memoryview:
        h = self.header
        return memoryview(self.raw)[h.hdr_size : h.hdr_size + h.img_size]

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, *, borrowed: bool = False) -> SignedImage:
        """Check every structural rule; raise ImageFormatError naming the first violation.

        ``borrowed``: ``data`` is a view the caller guarantees unchanged for as long as
        the result is used (an install-time check of a slot whose every flash operation
        is counted); it is parsed in place, the TLV values copied out, instead of the
        whole image being copied first.
        """
        # Keep an immutable copy: a caller mutating its buffer later must not
        # change what was parsed (and later verified).
        if borrowed and isinstance(data, memoryview):
            return _parse(data.toreadonly())
        raw = data if isinstance(data, bytes) else bytes(data)
        return _parse(raw)


@dataclass(frozen=True)
class VerifiedImage:
    """An image whose hash, key hash and signature verified; ``digest`` is its measurement."""

    image: SignedImage
    digest: bytes  # SHA-256 of the covered bytes

    @property
    def version(self) -> ImageVersion:
        return self.image.version

    @property
    def payload(self) -> memoryview:
        return self.image.payload


def _parse(raw: bytes | memoryview) -> SignedImage:
    total = len(raw)
    if total < IMAGE_HEADER_SIZE:
        raise ImageFormatError(
            f"image is {total} bytes, shorter than the {IMAGE_HEADER_SIZE}-byte header"
        )
    (magic, load_addr, hdr_size, prot_size, img_size, flags, major, minor, revision, build, pad) = (
        struct.unpack_from(HEADER_FMT, raw, 0)
    )
    if magic != IMAGE_MAGIC:
        raise ImageFormatError(f"image magic is 0x{magic:08x}, expected 0x{IMAGE_MAGIC:08x}")
    if load_addr != 0:
        raise ImageFormatError(f"image load address is 0x{load_addr:08x}, expected 0")
    if hdr_size != IMAGE_HEADER_SIZE:
        raise ImageFormatError(f"image header size is {hdr_size}, expected {IMAGE_HEADER_SIZE}")
    if flags != 0:
        raise ImageFormatError(f"image flags are 0x{flags:08x}, expected 0 (no flags supported)")
    if pad != 0:
        raise ImageFormatError(f"image header padding is 0x{pad:08x}, expected 0")
    header = ImageHeader(
        magic, load_addr, hdr_size, prot_size, img_size, flags,
        ImageVersion(major, minor, revision, build),
    )  # fmt: skip

    prot_start = hdr_size + img_size
    if prot_start > total:
        raise ImageFormatError(
            f"image payload of {img_size} bytes runs past the end of the {total}-byte image"
        )
    if prot_size == 0:
        raise ImageFormatError("image has no protected TLV area (security counter required)")
    prot_end = prot_start + prot_size
    protected = _read_area(raw, prot_start, TLV_PROT_INFO_MAGIC, "protected")
    if protected.end != prot_end:
        raise ImageFormatError(
            f"protected TLV area is {protected.end - prot_start} bytes, "
            f"but the header says {prot_size}"
        )
    unprotected = _read_area(raw, prot_end, TLV_INFO_MAGIC, "unprotected")
    if unprotected.end != total:
        raise ImageFormatError(
            f"image has {total - unprotected.end} trailing bytes after the TLV area "
            f"at offset {unprotected.end}"
        )

    # Protected TLVs: each allowed type at most once.
    prot: dict[int, TLV] = {}
    for tlv in protected.tlvs:
        if tlv.type not in PROTECTED_TYPES:
            raise ImageFormatError(
                f"protected TLV {tlv.name} at offset {tlv.offset} is not allowed"
            )
        if tlv.type in prot:
            raise ImageFormatError(f"duplicate protected TLV {tlv.name} at offset {tlv.offset}")
        prot[tlv.type] = tlv
    security_counter = _u32(prot.get(TLV_SEC_CNT), "SEC_CNT")
    hardware_id = _hardware_id(prot.get(TLV_HARDWARE_ID))
    build_time = None
    if TLV_BUILD_TIME in prot:
        build_time_tlv = prot[TLV_BUILD_TIME]
        if len(build_time_tlv.value) != 8:
            raise ImageFormatError(
                f"BUILD_TIME TLV at offset {build_time_tlv.offset} is "
                f"{len(build_time_tlv.value)} bytes, expected 8"
            )
        (build_time,) = struct.unpack("<Q", build_time_tlv.value)

    # Unprotected TLVs: known types only, in canonical order, no duplicates.
    unprot: dict[int, TLV] = {}
    last_rank = -1
    for tlv in unprotected.tlvs:
        rank = _UNPROTECTED_RANK.get(tlv.type)
        if rank is None:
            raise ImageFormatError(
                f"unprotected TLV {tlv.name} at offset {tlv.offset} is not allowed"
            )
        if rank == last_rank:
            raise ImageFormatError(
                f"duplicate unprotected TLV {tlv.name} at offset {tlv.offset} "
                f"(only one hash, one key id and one signature allowed)"
            )
        if rank < last_rank:
            raise ImageFormatError(
                f"unprotected TLV {tlv.name} at offset {tlv.offset} is out of order "
                "(expected SHA256, KEYHASH or PUBKEY, signature, KEY_MANIFEST)"
            )
        last_rank = rank
        unprot[tlv.type] = tlv
    sha = unprot.get(TLV_SHA256)
    if sha is None:
        raise ImageFormatError("image has no SHA256 TLV")
    if len(sha.value) != 32:
        raise ImageFormatError(
            f"SHA256 TLV at offset {sha.offset} is {len(sha.value)} bytes, expected 32"
        )
    key_hash, public_key_der = _key_id(unprot)
    signature_type, signature = _signature(unprot)
    manifest = unprot.get(TLV_KEY_MANIFEST)
    if manifest is not None and not 1 <= len(manifest.value) <= MAX_KEY_MANIFEST_LEN:
        raise ImageFormatError(
            f"KEY_MANIFEST TLV at offset {manifest.offset} is {len(manifest.value)} bytes, "
            f"expected 1..{MAX_KEY_MANIFEST_LEN}"
        )
    return SignedImage(
        raw=raw,
        header=header,
        protected_tlvs=protected.tlvs,
        unprotected_tlvs=unprotected.tlvs,
        security_counter=security_counter,
        hardware_id=hardware_id,
        build_time=build_time,
        image_hash=sha.value,
        key_hash=key_hash,
        public_key_der=public_key_der,
        signature_type=signature_type,
        signature=signature,
        key_manifest=manifest.value if manifest is not None else None,
    )


@dataclass(frozen=True)
class _Area:
    tlvs: tuple[TLV, ...]
    end: int


def _read_area(raw: bytes | memoryview, start: int, magic: int, what: str) -> _Area:
    total = len(raw)
    if start + TLV_INFO_SIZE > total:
        raise ImageFormatError(
            f"image ends at offset {total}, before the {what} TLV info header at offset {start}"
        )
    found, tlv_tot = struct.unpack_from(TLV_INFO_FMT, raw, start)
    if found != magic:
        raise ImageFormatError(
            f"{what} TLV info magic at offset {start} is 0x{found:04x}, expected 0x{magic:04x}"
        )
    end = start + tlv_tot
    if tlv_tot < TLV_INFO_SIZE or end > total:
        raise ImageFormatError(
            f"{what} TLV area size {tlv_tot} at offset {start} does not fit the {total}-byte image"
        )
    tlvs: list[TLV] = []
    offset = start + TLV_INFO_SIZE
    while offset < end:
        if offset + TLV_SIZE > end:
            raise ImageFormatError(f"{what} TLV header at offset {offset} is truncated")
        tlv_type, length = struct.unpack_from(TLV_FMT, raw, offset)
        value_end = offset + TLV_SIZE + length
        if value_end > end:
            raise ImageFormatError(
                f"{what} TLV 0x{tlv_type:04x} at offset {offset} has length {length}, "
                f"running past the end of the area at {end}"
            )
        tlvs.append(TLV(tlv_type, offset, bytes(raw[offset + TLV_SIZE : value_end])))
        offset = value_end
    if not tlvs:
        raise ImageFormatError(f"{what} TLV area at offset {start} is empty")
    return _Area(tuple(tlvs), end)


def _u32(tlv: TLV | None, name: str) -> int:
    if tlv is None:
        raise ImageFormatError(f"image has no {name} TLV (required)")
    if len(tlv.value) != 4:
        raise ImageFormatError(
            f"{name} TLV at offset {tlv.offset} is {len(tlv.value)} bytes, expected 4"
        )
    value: int = struct.unpack("<I", tlv.value)[0]
    return value


def _hardware_id(tlv: TLV | None) -> str:
    if tlv is None:
        raise ImageFormatError("image has no HARDWARE_ID TLV (required)")
    try:
        text = tlv.value.decode("ascii")
    except UnicodeDecodeError:
        text = None
    if text is None or HARDWARE_ID_RE.fullmatch(text) is None:
        raise ImageFormatError(
            f"HARDWARE_ID TLV at offset {tlv.offset} is {tlv.value[:64]!r}, expected 1-64 "
            "characters of [A-Za-z0-9._-]"
        )
    return text


def _key_id(unprot: dict[int, TLV]) -> tuple[bytes, bytes | None]:
    keyhash = unprot.get(TLV_KEYHASH)
    pubkey = unprot.get(TLV_PUBKEY)
    if keyhash is None and pubkey is None:
        raise ImageFormatError("image has no KEYHASH or PUBKEY TLV naming its signing key")
    if keyhash is not None:
        if len(keyhash.value) != 32:
            raise ImageFormatError(
                f"KEYHASH TLV at offset {keyhash.offset} is {len(keyhash.value)} bytes, expected 32"
            )
        return keyhash.value, None
    assert pubkey is not None
    if not 1 <= len(pubkey.value) <= MAX_PUBKEY_LEN:
        raise ImageFormatError(
            f"PUBKEY TLV at offset {pubkey.offset} is {len(pubkey.value)} bytes, "
            f"expected 1..{MAX_PUBKEY_LEN}"
        )
    return hashlib.sha256(pubkey.value).digest(), pubkey.value


def _signature(unprot: dict[int, TLV]) -> tuple[int, bytes]:
    sigs = [unprot[t] for t in (TLV_ED25519, TLV_ECDSA_SIG) if t in unprot]
    if not sigs:
        raise ImageFormatError("image has no signature TLV (ED25519 or ECDSA_SIG)")
    sig = sigs[0]
    if sig.type == TLV_ED25519 and len(sig.value) != 64:
        raise ImageFormatError(
            f"ED25519 TLV at offset {sig.offset} is {len(sig.value)} bytes, expected 64"
        )
    if sig.type == TLV_ECDSA_SIG:
        value = sig.value
        # A DER SEQUENCE exactly filling the TLV (imgtool pads nothing by default).
        if (
            not 8 <= len(value) <= ECDSA_SIG_MAX_LEN
            or value[0] != 0x30
            or value[1] + 2 != len(value)
        ):
            raise ImageFormatError(
                f"ECDSA_SIG TLV at offset {sig.offset} is not a DER ECDSA signature "
                f"of at most {ECDSA_SIG_MAX_LEN} bytes"
            )
        try:
            utils.decode_dss_signature(value)
        except ValueError as exc:
            raise ImageFormatError(
                f"ECDSA_SIG TLV at offset {sig.offset} is not a DER ECDSA signature: {exc}"
            ) from exc
    return sig.type, sig.value


# --- writing ----------------------------------------------------------------

SigningKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def _spki(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_key(key: PublicKey) -> int:
    """The signature TLV type for this key; ImageFormatError for other key types."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return TLV_ED25519
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return TLV_ECDSA_SIG
    raise ImageFormatError(f"signing key {type(key).__name__} is not Ed25519 or ECDSA P-256")


def _tlv_area(magic: int, tlvs: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(struct.pack(TLV_FMT, t, len(v)) + v for t, v in tlvs)
    return struct.pack(TLV_INFO_FMT, magic, TLV_INFO_SIZE + len(body)) + body


def sign_image(
    payload: bytes,
    *,
    version: str,
    security_counter: int,
    hardware_id: str,
    signing_key: SigningKey,
    key_manifest: bytes | None = None,
    build_time: int | None = None,
    key_format: str = "hash",
) -> bytes:
    """Build and sign an image; ``key_format`` is "hash" (KEYHASH) or "full" (PUBKEY)."""
    parsed_version = ImageVersion.parse(version)
    if not 0 <= security_counter <= 0xFFFFFFFF:
        raise ImageFormatError(f"security counter {security_counter} does not fit in 32 bits")
    if HARDWARE_ID_RE.fullmatch(hardware_id) is None:
        raise ImageFormatError(
            f"hardware id {hardware_id!r} must be 1-64 characters of [A-Za-z0-9._-]"
        )
    if len(payload) > 0xFFFFFFFF:
        raise ImageFormatError(f"payload of {len(payload)} bytes does not fit in 32 bits")
    if key_format not in ("hash", "full"):
        raise ImageFormatError(f"key format {key_format!r} is not 'hash' or 'full'")
    public_key = signing_key.public_key()
    sig_type = _check_key(public_key)

    prot_tlvs = [
        (TLV_SEC_CNT, struct.pack("<I", security_counter)),
        (TLV_HARDWARE_ID, hardware_id.encode("ascii")),
    ]
    if build_time is not None:
        prot_tlvs.append((TLV_BUILD_TIME, struct.pack("<Q", build_time)))
    protected = _tlv_area(TLV_PROT_INFO_MAGIC, prot_tlvs)
    header = struct.pack(
        HEADER_FMT, IMAGE_MAGIC, 0, IMAGE_HEADER_SIZE, len(protected), len(payload), 0,
        parsed_version.major, parsed_version.minor, parsed_version.revision,
        parsed_version.build, 0,
    )  # fmt: skip
    sha = hashlib.sha256(header)
    sha.update(payload)
    sha.update(protected)
    digest = sha.digest()
    if isinstance(signing_key, ed25519.Ed25519PrivateKey):
        signature = signing_key.sign(digest)  # imgtool: Ed25519 over the SHA-256 digest
    else:
        signature = signing_key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    spki = _spki(public_key)
    key_tlv = (
        (TLV_KEYHASH, hashlib.sha256(spki).digest()) if key_format == "hash" else (TLV_PUBKEY, spki)
    )
    unprot_tlvs = [(TLV_SHA256, digest), key_tlv, (sig_type, signature)]
    if key_manifest is not None:
        unprot_tlvs.append((TLV_KEY_MANIFEST, key_manifest))
    unprotected = _tlv_area(TLV_INFO_MAGIC, unprot_tlvs)
    if len(unprotected) > 0xFFFF:
        raise ImageFormatError(f"unprotected TLV area of {len(unprotected)} bytes exceeds 65535")
    return b"".join((header, payload, protected, unprotected))


# --- verifying --------------------------------------------------------------


def load_der_public_key(der: bytes) -> PublicKey:
    """Load a DER SPKI carried in a PUBKEY TLV; ImageVerificationError if unusable."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ImageVerificationError(f"PUBKEY TLV is not a DER public key: {exc}") from exc
    if isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        return key
    raise ImageVerificationError(f"PUBKEY TLV holds a {type(key).__name__}, not Ed25519 or ECDSA")


def verify_image(
    image: SignedImage, *, public_key: PublicKey, covered_digest: bytes | None = None
) -> VerifiedImage:
    """Check key id, hash and signature of ``image`` against ``public_key``; raise on failure.

    The covered bytes are hashed exactly once; the digest is also the image's
    measurement (``VerifiedImage.digest``). ``covered_digest`` is that SHA-256
    when it was already computed over exactly these bytes as they were written
    (:class:`bootloader.slots.SlotWriter`): it is then checked against the
    SHA256 TLV and signed over like a digest computed here.
    """
    key_hash = hashlib.sha256(_spki(public_key)).digest()
    if not hmac.compare_digest(key_hash, image.key_hash):
        raise UnknownSigningKey(
            f"image is signed by key {image.key_hash.hex()}, expected {key_hash.hex()}"
        )
    try:
        expected_type = _check_key(public_key)
    except ImageFormatError as exc:
        raise ImageVerificationError(str(exc)) from exc
    if image.signature_type != expected_type:
        raise ImageVerificationError(
            f"image signature is {TLV_NAMES[image.signature_type]}, but the key needs "
            f"{TLV_NAMES[expected_type]}"
        )
    digest = covered_digest if covered_digest is not None else hashlib.sha256(image.covered).digest()
    if not hmac.compare_digest(digest, image.image_hash):
        raise ImageVerificationError(
            f"image hash mismatch: covered bytes hash to {digest.hex()}, "
            f"the SHA256 TLV says {image.image_hash.hex()}"
        )
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(image.signature, digest)
        else:
            public_key.verify(image.signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    except InvalidSignature as e:
        raise ImageVerificationError(
            f"image signature does not verify with key {key_hash.hex()}"
        ) from e
    return VerifiedImage(image=image, digest=digest)


@dataclass(frozen=True)
class ImageFacts:
    """What an image says about itself: the fields a repository publishes and an
    update client checks before it writes a byte (nothing here is verified)."""

    hardware_id: str
    version: str
    security_counter: int


def image_facts(data: bytes | bytearray | memoryview) -> ImageFacts:
    """The facts of a strictly parsed image; raises :class:`ImageFormatError`."""
    image = SignedImage.parse(data)
    return ImageFacts(image.hardware_id, str(image.version), image.security_counter)


def covered_size(header: bytes) -> int | None:
    """How many leading bytes the image hash covers (header, payload, protected TLVs),
    read from the first :data:`IMAGE_HEADER_SIZE` bytes; None if they are no header."""
    if len(header) < IMAGE_HEADER_SIZE:
        return None
    magic, _load, hdr_size, prot_size, img_size, *_rest = struct.unpack_from(HEADER_FMT, header, 0)
    if magic != IMAGE_MAGIC:
        return None
    return int(hdr_size + img_size + prot_size)


def image_extent(data: bytes | memoryview) -> int:
    """Length of the MCUboot image at the start of ``data`` (header + payload + both TLV areas).

    Only the lengths are read here; :meth:`SignedImage.parse` checks everything.
    """
    if len(data) < IMAGE_HEADER_SIZE:
        raise ImageFormatError(
            f"{len(data)} bytes cannot hold a {IMAGE_HEADER_SIZE}-byte image header"
        )
    magic, _load, hdr_size, prot_size, img_size = struct.unpack_from(HEADER_FMT, data, 0)[:5]
    if magic != IMAGE_MAGIC:
        raise ImageFormatError(f"image magic is 0x{magic:08x}, expected 0x{IMAGE_MAGIC:08x}")
    unprotected_at = hdr_size + img_size + prot_size
    if unprotected_at + TLV_INFO_SIZE > len(data):
        raise ImageFormatError(
            f"image header declares {unprotected_at} bytes before its TLV area, "
            f"more than the {len(data)}-byte partition"
        )
    tlv_magic, tlv_total = struct.unpack_from(TLV_INFO_FMT, data, unprotected_at)
    if tlv_magic != TLV_INFO_MAGIC:
        raise ImageFormatError(
            f"TLV area magic at offset {unprotected_at} is 0x{tlv_magic:04x}, "
            f"expected 0x{TLV_INFO_MAGIC:04x}"
        )
    end = int(unprotected_at + tlv_total)
    if end > len(data):
        raise ImageFormatError(f"image ends at byte {end}, past the {len(data)}-byte partition")
    return end


def unsafe_image_facts(data: bytes | bytearray | memoryview) -> ImageFacts:
    """UNSAFE (flaw profiles only): the header and the protected TLVs, whatever the
    rest of the image holds (a client that trusts an image's word about itself).

    Still bounds-checked by the same TLV walker as :meth:`SignedImage.parse`:
    junk raises :class:`ImageFormatError`, never anything else.
    """
    raw = bytes(data)
    if len(raw) < IMAGE_HEADER_SIZE:
        raise ImageFormatError(f"image is {len(raw)} bytes, shorter than the header")
    magic, _load, hdr_size, prot_size, img_size, _flags, major, minor, revision, _build, _pad = (
        struct.unpack_from(HEADER_FMT, raw, 0)
    )
    if magic != IMAGE_MAGIC or prot_size == 0:
        raise ImageFormatError("no MCUboot header or no protected TLV area")
    protected = _read_area(raw, hdr_size + img_size, TLV_PROT_INFO_MAGIC, "protected")
    tlvs = {tlv.type: tlv for tlv in protected.tlvs}
    return ImageFacts(
        hardware_id=_hardware_id(tlvs.get(TLV_HARDWARE_ID)),
        version=f"{major}.{minor}.{revision}",
        security_counter=_u32(tlvs.get(TLV_SEC_CNT), "SEC_CNT"),
    )


def iter_tlvs(image: SignedImage) -> Iterator[tuple[str, TLV]]:
    """Every TLV with its area name ("protected" or "unprotected"), in image order."""
    for tlv in image.protected_tlvs:
        yield "protected", tlv
    for tlv in image.unprotected_tlvs:
        yield "unprotected", tlv
