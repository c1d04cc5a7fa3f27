"""The MCUboot-format image (bootloader/image.py): writer, strict parser, verifier."""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from common.errors import ImageFormatError, ImageVerificationError, UnknownSigningKey
from common.image import (
    HEADER_FMT,
    IMAGE_HEADER_SIZE,
    IMAGE_MAGIC,
    TLV_BUILD_TIME,
    TLV_ECDSA_SIG,
    TLV_ED25519,
    TLV_HARDWARE_ID,
    TLV_INFO_MAGIC,
    TLV_KEY_MANIFEST,
    TLV_KEYHASH,
    TLV_PROT_INFO_MAGIC,
    TLV_PUBKEY,
    TLV_SEC_CNT,
    TLV_SHA256,
    ImageVersion,
    SignedImage,
    sign_image,
    verify_image,
)
from common.keymanifest import spki_der

KEY = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x11" * 32)
P256 = ec.derive_private_key(987654321, ec.SECP256R1())
PAYLOAD = bytes(range(64))
HW = "refcam-rc1080-v1"
MANIFEST_BLOB = b"key manifest bytes (opaque to image.py)"


def _sign(**overrides: object) -> bytes:
    args: dict[str, object] = {
        "version": "1.2.3+4",
        "security_counter": 5,
        "hardware_id": HW,
        "signing_key": KEY,
        "key_manifest": MANIFEST_BLOB,
        "build_time": 1_800_000_000,
    }
    args.update(overrides)
    payload = args.pop("payload", PAYLOAD)
    return sign_image(payload, **args)  # type: ignore[arg-type]


IMAGE = _sign()
PARSED = SignedImage.parse(IMAGE)
COVERED = PARSED.covered_size


def _area(magic: int, tlvs: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(struct.pack("<HH", t, len(v)) + v for t, v in tlvs)
    return struct.pack("<HH", magic, 4 + len(body)) + body


def _with_unprotected(tlvs: list[tuple[int, bytes]], base: bytes = IMAGE) -> bytes:
    return base[: SignedImage.parse(base).covered_size] + _area(TLV_INFO_MAGIC, tlvs)


def _with_protected(prot: list[tuple[int, bytes]], unprot: list[tuple[int, bytes]]) -> bytes:
    area = _area(TLV_PROT_INFO_MAGIC, prot)
    header = bytearray(IMAGE[:IMAGE_HEADER_SIZE])
    struct.pack_into("<H", header, 10, len(area))
    return bytes(header) + PAYLOAD + area + _area(TLV_INFO_MAGIC, unprot)


def _unprot(image: SignedImage = PARSED) -> list[tuple[int, bytes]]:
    return [(t.type, t.value) for t in image.unprotected_tlvs]


def _prot(image: SignedImage = PARSED) -> list[tuple[int, bytes]]:
    return [(t.type, t.value) for t in image.protected_tlvs]


def test_round_trip_exposes_every_field() -> None:
    assert struct.calcsize(HEADER_FMT) == IMAGE_HEADER_SIZE
    assert PARSED.header.magic == IMAGE_MAGIC
    assert PARSED.version == ImageVersion(1, 2, 3, 4)
    assert str(PARSED.version) == "1.2.3+4"
    assert PARSED.security_counter == 5
    assert PARSED.hardware_id == HW
    assert PARSED.build_time == 1_800_000_000
    assert bytes(PARSED.payload) == PAYLOAD
    assert PARSED.key_manifest == MANIFEST_BLOB
    assert PARSED.key_hash == hashlib.sha256(spki_der(KEY.public_key())).digest()
    assert PARSED.signature_type == TLV_ED25519
    assert [t.type for t in PARSED.protected_tlvs] == [TLV_SEC_CNT, TLV_HARDWARE_ID, TLV_BUILD_TIME]
    assert [t.type for t in PARSED.unprotected_tlvs] == [
        TLV_SHA256,
        TLV_KEYHASH,
        TLV_ED25519,
        TLV_KEY_MANIFEST,
    ]


def test_verify_digest_is_sha256_of_header_payload_and_protected_tlvs() -> None:
    verified = verify_image(PARSED, public_key=KEY.public_key())
    assert verified.digest == hashlib.sha256(IMAGE[:COVERED]).digest() == PARSED.image_hash
    assert IMAGE_HEADER_SIZE + len(PAYLOAD) + PARSED.header.protect_tlv_size == COVERED
    # Ed25519 signs the 32-byte digest, as imgtool does.
    KEY.public_key().verify(PARSED.signature, verified.digest)


def test_ecdsa_p256_image_round_trips_and_verifies() -> None:
    image = SignedImage.parse(_sign(signing_key=P256))
    assert image.signature_type == TLV_ECDSA_SIG
    verified = verify_image(image, public_key=P256.public_key())
    assert verified.digest == hashlib.sha256(image.covered).digest()


def test_pubkey_format_carries_the_signers_key() -> None:
    image = SignedImage.parse(_sign(key_format="full"))
    assert image.public_key_der == spki_der(KEY.public_key())
    assert image.key_hash == hashlib.sha256(image.public_key_der).digest()
    assert TLV_PUBKEY in [t.type for t in image.unprotected_tlvs]
    verify_image(image, public_key=KEY.public_key())


def test_image_without_key_manifest_or_build_time_parses() -> None:
    image = SignedImage.parse(_sign(key_manifest=None, build_time=None))
    assert image.key_manifest is None and image.build_time is None


@pytest.mark.parametrize("offset", range(IMAGE_HEADER_SIZE, COVERED))
def test_bit_flip_in_payload_or_protected_tlvs_is_a_hash_mismatch(offset: int) -> None:
    data = bytearray(IMAGE)
    data[offset] ^= 0x01
    try:
        image = SignedImage.parse(bytes(data))
    except ImageFormatError:
        return  # a flipped TLV header byte breaks the structure: also refused
    with pytest.raises(
        ImageVerificationError, match=r"^image hash mismatch: covered bytes hash to "
    ):
        verify_image(image, public_key=KEY.public_key())


@pytest.mark.parametrize("offset", range(IMAGE_HEADER_SIZE))
def test_bit_flip_in_header_never_verifies(offset: int) -> None:
    data = bytearray(IMAGE)
    data[offset] ^= 0x01
    with pytest.raises((ImageFormatError, ImageVerificationError)):
        verify_image(SignedImage.parse(bytes(data)), public_key=KEY.public_key())


def test_version_bit_flip_is_a_hash_mismatch() -> None:
    data = bytearray(IMAGE)
    data[20] ^= 0x01  # iv_major: a downgrade/upgrade by editing the header
    with pytest.raises(ImageVerificationError, match=r"^image hash mismatch"):
        verify_image(SignedImage.parse(bytes(data)), public_key=KEY.public_key())


def test_changed_signature_does_not_verify() -> None:
    tlvs = _unprot()
    tlvs[2] = (TLV_ED25519, bytes([tlvs[2][1][0] ^ 1]) + tlvs[2][1][1:])
    with pytest.raises(ImageVerificationError, match=r"^image signature does not verify with key "):
        verify_image(SignedImage.parse(_with_unprotected(tlvs)), public_key=KEY.public_key())


def test_image_signed_by_an_unknown_key_is_rejected() -> None:
    attacker = ed25519.Ed25519PrivateKey.generate()
    image = SignedImage.parse(_sign(signing_key=attacker))
    with pytest.raises(UnknownSigningKey, match=r"^image is signed by key [0-9a-f]{64}, expected "):
        verify_image(image, public_key=KEY.public_key())


def test_attacker_keyhash_swap_fails_the_signature() -> None:
    # Sign with the attacker key but claim the genuine key hash.
    attacker = ed25519.Ed25519PrivateKey.generate()
    forged = SignedImage.parse(_sign(signing_key=attacker))
    tlvs = _unprot(forged)
    tlvs[1] = (TLV_KEYHASH, PARSED.key_hash)
    image = SignedImage.parse(_with_unprotected(tlvs, forged.raw))
    with pytest.raises(ImageVerificationError, match=r"^image signature does not verify"):
        verify_image(image, public_key=KEY.public_key())


def test_signature_type_must_match_the_key() -> None:
    image = SignedImage.parse(_sign(signing_key=P256))
    tlvs = _unprot(image)
    tlvs[1] = (TLV_KEYHASH, PARSED.key_hash)  # pretend the Ed25519 key signed it
    forged = SignedImage.parse(_with_unprotected(tlvs, image.raw))
    with pytest.raises(ImageVerificationError, match=r"is ECDSA_SIG, but the key needs ED25519"):
        verify_image(forged, public_key=KEY.public_key())


def test_appended_bytes_are_refused() -> None:
    with pytest.raises(
        ImageFormatError, match=r"^image has 1 trailing bytes after the TLV area at offset \d+$"
    ):
        SignedImage.parse(IMAGE + b"\x00")


@pytest.mark.parametrize("length", range(len(IMAGE)))
def test_every_truncation_is_a_format_error(length: int) -> None:
    with pytest.raises(ImageFormatError):
        SignedImage.parse(IMAGE[:length])


def test_unknown_unprotected_tlv_is_refused_with_its_offset() -> None:
    data = _with_unprotected([*_unprot(), (0x77, b"x")])
    offset = len(IMAGE)  # the extra TLV starts where the genuine area ended
    with pytest.raises(
        ImageFormatError, match=rf"^unprotected TLV 0x0077 at offset {offset} is not allowed$"
    ):
        SignedImage.parse(data)


def test_unknown_protected_tlv_is_refused() -> None:
    data = _with_protected([*_prot(), (0x00B0, b"z")], _unprot())
    with pytest.raises(
        ImageFormatError, match=r"^protected TLV 0x00b0 at offset \d+ is not allowed$"
    ):
        SignedImage.parse(data)


def test_security_counter_in_unprotected_area_is_refused() -> None:
    data = _with_unprotected([*_unprot()[:3], (TLV_SEC_CNT, struct.pack("<I", 99))])
    with pytest.raises(
        ImageFormatError, match=r"^unprotected TLV SEC_CNT at offset \d+ is not allowed$"
    ):
        SignedImage.parse(data)


def test_duplicate_signature_tlv_is_refused() -> None:
    tlvs = _unprot()
    data = _with_unprotected([*tlvs[:3], tlvs[2]])
    with pytest.raises(ImageFormatError, match=r"^duplicate unprotected TLV ED25519 at offset \d+"):
        SignedImage.parse(data)


def test_two_signature_algorithms_are_refused() -> None:
    ecdsa_sig = SignedImage.parse(_sign(signing_key=P256)).signature
    data = _with_unprotected([*_unprot()[:3], (TLV_ECDSA_SIG, ecdsa_sig)])
    with pytest.raises(ImageFormatError, match=r"^duplicate unprotected TLV ECDSA_SIG"):
        SignedImage.parse(data)


def test_duplicate_hash_and_keyhash_tlvs_are_refused() -> None:
    tlvs = _unprot()
    with pytest.raises(ImageFormatError, match=r"^duplicate unprotected TLV SHA256"):
        SignedImage.parse(_with_unprotected([tlvs[0], *tlvs]))
    with pytest.raises(ImageFormatError, match=r"^duplicate unprotected TLV PUBKEY"):
        SignedImage.parse(_with_unprotected([tlvs[0], tlvs[1], (TLV_PUBKEY, b"k"), *tlvs[2:]]))


def test_tlvs_out_of_order_are_refused() -> None:
    tlvs = _unprot()
    with pytest.raises(
        ImageFormatError, match=r"^unprotected TLV SHA256 at offset \d+ is out of order"
    ):
        SignedImage.parse(_with_unprotected([tlvs[1], tlvs[0], *tlvs[2:]]))


def test_missing_hash_key_id_or_signature_is_refused() -> None:
    sha, keyhash, sig, manifest = _unprot()
    with pytest.raises(ImageFormatError, match=r"^image has no SHA256 TLV$"):
        SignedImage.parse(_with_unprotected([keyhash, sig, manifest]))
    with pytest.raises(ImageFormatError, match=r"^image has no KEYHASH or PUBKEY TLV"):
        SignedImage.parse(_with_unprotected([sha, sig, manifest]))
    with pytest.raises(ImageFormatError, match=r"^image has no signature TLV"):
        SignedImage.parse(_with_unprotected([sha, keyhash, manifest]))


def test_missing_security_counter_is_refused() -> None:
    prot = [t for t in _prot() if t[0] != TLV_SEC_CNT]
    with pytest.raises(ImageFormatError, match=r"^image has no SEC_CNT TLV \(required\)$"):
        SignedImage.parse(_with_protected(prot, _unprot()))


def test_missing_hardware_id_is_refused() -> None:
    prot = [t for t in _prot() if t[0] != TLV_HARDWARE_ID]
    with pytest.raises(ImageFormatError, match=r"^image has no HARDWARE_ID TLV \(required\)$"):
        SignedImage.parse(_with_protected(prot, _unprot()))


def test_duplicate_security_counter_is_refused() -> None:
    prot = [*_prot(), (TLV_SEC_CNT, struct.pack("<I", 100))]
    with pytest.raises(ImageFormatError, match=r"^duplicate protected TLV SEC_CNT"):
        SignedImage.parse(_with_protected(prot, _unprot()))


def test_malformed_tlv_values_are_refused() -> None:
    bad_hw = [(t, b"\xff\xfe" if t == TLV_HARDWARE_ID else v) for t, v in _prot()]
    with pytest.raises(ImageFormatError, match=r"^HARDWARE_ID TLV at offset \d+ is b'\\xff\\xfe'"):
        SignedImage.parse(_with_protected(bad_hw, _unprot()))
    short_cnt = [(t, b"\x01" if t == TLV_SEC_CNT else v) for t, v in _prot()]
    with pytest.raises(
        ImageFormatError, match=r"^SEC_CNT TLV at offset \d+ is 1 bytes, expected 4$"
    ):
        SignedImage.parse(_with_protected(short_cnt, _unprot()))
    sha, keyhash, sig, _manifest = _unprot()
    with pytest.raises(ImageFormatError, match=r"^SHA256 TLV at offset \d+ is 31 bytes"):
        SignedImage.parse(_with_unprotected([(TLV_SHA256, sha[1][:31]), keyhash, sig]))
    with pytest.raises(ImageFormatError, match=r"^ED25519 TLV at offset \d+ is 63 bytes"):
        SignedImage.parse(_with_unprotected([sha, keyhash, (TLV_ED25519, sig[1][:63])]))
    with pytest.raises(ImageFormatError, match=r"^ECDSA_SIG TLV at offset \d+ is not a DER"):
        SignedImage.parse(
            _with_unprotected([sha, keyhash, (TLV_ECDSA_SIG, b"\x30" + b"\x00" * 70)])
        )


def test_header_fields_are_checked_exactly() -> None:
    def patched(fmt: str, offset: int, value: int) -> bytes:
        data = bytearray(IMAGE)
        struct.pack_into(fmt, data, offset, value)
        return bytes(data)

    with pytest.raises(ImageFormatError, match=r"^image magic is 0x96f3b83c, expected 0x96f3b83d$"):
        SignedImage.parse(patched("<I", 0, IMAGE_MAGIC - 1))
    with pytest.raises(ImageFormatError, match=r"^image load address is 0x00001000, expected 0$"):
        SignedImage.parse(patched("<I", 4, 0x1000))
    with pytest.raises(ImageFormatError, match=r"^image header size is 512, expected 32$"):
        SignedImage.parse(patched("<H", 8, 512))
    with pytest.raises(ImageFormatError, match=r"^image flags are 0x00000004"):
        SignedImage.parse(patched("<I", 16, 4))  # ENCRYPTED_AES128
    with pytest.raises(ImageFormatError, match=r"^image payload of 4294967295 bytes runs past"):
        SignedImage.parse(patched("<I", 12, 0xFFFFFFFF))
    with pytest.raises(ImageFormatError, match=r"^image has no protected TLV area"):
        SignedImage.parse(patched("<H", 10, 0))
    with pytest.raises(
        ImageFormatError, match=r"^protected TLV area is \d+ bytes, but the header says"
    ):
        SignedImage.parse(patched("<H", 10, PARSED.header.protect_tlv_size + 4))
    with pytest.raises(ImageFormatError, match=r"^image header padding is 0x00000001"):
        SignedImage.parse(patched("<I", 28, 1))


def test_tlv_info_magics_are_checked() -> None:
    data = bytearray(IMAGE)
    prot_start = IMAGE_HEADER_SIZE + len(PAYLOAD)
    struct.pack_into("<H", data, prot_start, TLV_INFO_MAGIC)
    with pytest.raises(
        ImageFormatError,
        match=rf"^protected TLV info magic at offset {prot_start} is 0x6907, expected 0x6908$",
    ):
        SignedImage.parse(bytes(data))


def test_parse_copies_a_mutable_buffer() -> None:
    buffer = bytearray(IMAGE)
    image = SignedImage.parse(buffer)
    buffer[IMAGE_HEADER_SIZE] ^= 0xFF  # attacker rewrites flash after the parse
    verify_image(image, public_key=KEY.public_key())
    assert bytes(image.payload) == PAYLOAD


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", (1, 0, 0, 0)),
        ("1.2", (1, 2, 0, 0)),
        ("1.2.3", (1, 2, 3, 0)),
        ("255.255.65535+4294967295", (255, 255, 65535, 4294967295)),
    ],
)
def test_version_strings_parse_like_imgtool(text: str, expected: tuple[int, int, int, int]) -> None:
    assert ImageVersion.parse(text) == ImageVersion(*expected)
    assert ImageVersion.parse("1.2.3") < ImageVersion.parse("1.10.0")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("256.0.0", r"major 256 exceeds 255"),
        ("1.2.x", r"is not MAJOR\.MINOR\.REVISION"),
        ("", r"is not"),
        ("1.2.3+", r"is not"),
    ],
)
def test_bad_versions_are_refused(text: str, message: str) -> None:
    with pytest.raises(ImageFormatError, match=message):
        _sign(version=text)


def test_sign_refuses_bad_inputs() -> None:
    with pytest.raises(ImageFormatError, match=r"^security counter 4294967296 does not fit"):
        _sign(security_counter=2**32)
    with pytest.raises(ImageFormatError, match=r"^hardware id 'bad id' must be"):
        _sign(hardware_id="bad id")
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ImageFormatError, match=r"is not Ed25519 or ECDSA P-256$"):
        _sign(signing_key=p384)


# Known-answer vector. Made with sign_image(bytes(range(64)), version="1.2.3+4",
# security_counter=5, hardware_id="refcam-rc1080-v1", Ed25519 key from private
# bytes 0x11 * 32) and checked byte-identical to MCUboot imgtool 2.5:
#   imgtool sign --key k.pem --header-size 32 --pad-header --version 1.2.3+4 \
#     --security-counter 5 --align 8 --slot-size 0x20000 \
#     --custom-tlv 0xa0 refcam-rc1080-v1 payload.bin out.img
# (Ed25519 signatures are deterministic, so the whole image is.)
KAT_SHA256 = "a700d229afa7d61c4a66980218e51dfb9466443641c7da1769d37d9f700cd680"


def test_known_answer_image_matches_imgtool_output() -> None:
    image = _sign(key_manifest=None, build_time=None)
    assert len(image) == 272
    assert hashlib.sha256(image).hexdigest() == KAT_SHA256
