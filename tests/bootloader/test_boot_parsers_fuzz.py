"""Fuzzing the boot side's parsers of outside bytes (issue 13): key manifest, boot-control
records, attestation evidence. Any input gives a value or the parser's typed error.

The image parser has its own file (test_image_fuzz.py). Examples are bounded so the
whole fuzz set stays within seconds.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootloader.attestation import verify_evidence
from bootloader.bootctl import (
    RECORD_SIZE,
    BootControl,
    encode_record,
    parse_record,
    read_boot_control,
)
from bootloader.keys import make_ca_certificate
from common.errors import AttestationError, BootControlError, KeyManifestError
from common.keymanifest import KeyManifest, build_key_manifest

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROT = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
FW = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)
MANIFEST = build_key_manifest(rot_key=ROT, signing_keys=[FW.public_key()], counter=1)
RECORD = encode_record(BootControl(seq=7, active="a", pending="b", trial_state="pending", attempts_left=1))
NOW = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
ROOT = make_ca_certificate(
    key=ec.generate_private_key(ec.SECP256R1()), common_name="fuzz root", now=NOW,
    lifetime=dt.timedelta(days=30), path_length=2,
)  # fmt: skip


@FUZZ
@given(st.binary(max_size=400))
def test_key_manifest_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(KeyManifestError):
        KeyManifest.parse(data)


@FUZZ
@given(st.integers(0, len(MANIFEST) - 1), st.integers(1, 255), st.integers(0, 40))
def test_key_manifest_mutations_and_truncations(offset: int, xor: int, cut: int) -> None:
    mutated = bytearray(MANIFEST)
    mutated[offset] ^= xor
    for data in (bytes(mutated), MANIFEST[: len(MANIFEST) - cut], MANIFEST + bytes(cut)):
        try:
            parsed = KeyManifest.parse(data)
        except KeyManifestError:
            continue
        assert parsed.raw == data


@FUZZ
@given(st.binary(min_size=0, max_size=RECORD_SIZE + 8), st.binary(min_size=0, max_size=RECORD_SIZE + 8))
def test_boot_control_copies_arbitrary_bytes(copy0: bytes, copy1: bytes) -> None:
    try:
        view = read_boot_control((copy0, copy1))
    except BootControlError:
        return
    assert view.current.active in ("a", "b") and view.next_copy in (0, 1)


@FUZZ
@given(st.integers(0, RECORD_SIZE - 1), st.integers(1, 255))
def test_boot_control_bit_flips_are_refused(offset: int, xor: int) -> None:
    mutated = bytearray(RECORD)
    mutated[offset] ^= xor
    try:
        parse_record(bytes(mutated))
    except BootControlError:
        return
    raise AssertionError(f"a record with byte {offset} changed still parsed")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)


def _check_evidence(evidence: bytes) -> None:
    try:
        verify_evidence(evidence, root_cert=ROOT, nonce=b"\x00" * 32, reference_values=None, now=int(NOW.timestamp()))
    except AttestationError:
        return
    raise AssertionError("fuzzed evidence verified")


@FUZZ
@given(st.binary(max_size=300))
def test_attestation_evidence_arbitrary_bytes(data: bytes) -> None:
    _check_evidence(data)


@FUZZ
@given(json_values, json_values, st.binary(max_size=80))
def test_attestation_evidence_jws_shaped(header: object, payload: object, signature: bytes) -> None:
    for head in (header, {"alg": "EdDSA", "typ": "refcam-evidence+jws", "x5c": header}):
        text = ".".join((_b64(json.dumps(head).encode()), _b64(json.dumps(payload).encode()), _b64(signature)))
        _check_evidence(text.encode())
