"""Fuzzing the image parser and verifier: any input gives a SignedImage or a BootError.

Requirement 36 (EN 303 645 5.13-1A): malformed input never crashes. The
properties below feed arbitrary bytes and mutations of a valid image to
``SignedImage.parse`` and ``verify_firmware_image``; nothing but the
documented errors may come out, and a mutated image never verifies.
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.errors import BootError, ImageFormatError
from common.image import IMAGE_MAGIC, SignedImage, sign_image
from common.keymanifest import build_key_manifest, spki_der
from common.verify import TrustState, verify_firmware_image

ROT = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
FW = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)
MANIFEST = build_key_manifest(rot_key=ROT, signing_keys=[FW.public_key()], counter=1)
IMAGE = sign_image(
    b"payload " * 16,
    version="1.0.0",
    security_counter=1,
    hardware_id="hw-1",
    signing_key=FW,
    key_manifest=MANIFEST,
    build_time=1,
)
TRUST = TrustState(
    rot_keys=((hashlib.sha256(spki_der(ROT.public_key())).digest(), False),),
    min_key_manifest_counter=0,
    min_security_counter=0,
    hardware_id="hw-1",
)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse_or_format_error(data: bytes) -> SignedImage | None:
    try:
        return SignedImage.parse(data)
    except ImageFormatError:
        return None


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_parse_or_raise_image_format_error(data: bytes) -> None:
    _parse_or_format_error(data)


@FUZZ
@given(st.binary(max_size=300))
def test_bytes_behind_a_valid_magic_parse_or_raise_image_format_error(tail: bytes) -> None:
    _parse_or_format_error(struct.pack("<I", IMAGE_MAGIC) + tail)


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(IMAGE) - 1), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, len(IMAGE) - 1), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.integers(0, len(IMAGE)), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("u16"), st.integers(0, len(IMAGE) - 2), st.integers(0, 0xFFFF)),
)


def _mutate(data: bytes, mutations: list[tuple[str, int, object]]) -> bytes:
    buf = bytearray(data)
    for kind, offset, arg in mutations:
        offset = min(offset, max(len(buf) - 2, 0))
        if kind == "flip" and buf:
            buf[offset] ^= int(arg)  # type: ignore[call-overload]
        elif kind == "cut":
            del buf[offset : offset + int(arg)]  # type: ignore[call-overload]
        elif kind == "insert":
            buf[offset:offset] = bytes(arg)  # type: ignore[call-overload]
        elif kind == "u16" and len(buf) >= offset + 2:
            struct.pack_into("<H", buf, offset, int(arg))  # type: ignore[call-overload]
    return bytes(buf)


@FUZZ
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutated_image_never_verifies_and_never_crashes(
    mutations: list[tuple[str, int, object]],
) -> None:
    data = _mutate(IMAGE, mutations)
    image = _parse_or_format_error(data)
    try:
        verified = verify_firmware_image(data, trust=TRUST)
    except BootError:
        return
    # Only a no-op mutation (e.g. flip twice) may verify.
    assert image is not None
    assert data == IMAGE, f"mutated image verified: {mutations}"
    assert verified.digest == hashlib.sha256(image.covered).digest()


def test_the_unmutated_image_verifies() -> None:
    verify_firmware_image(IMAGE, trust=TRUST)
