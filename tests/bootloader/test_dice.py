"""DICE-style derivation, the alias certificate and its TcbInfo (bootloader/dice.py)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from bootloader.attestation import DiceAttester
from bootloader.dice import (
    TCG_DICE_KP_ATTEST_LOC,
    TCG_DICE_TCB_INFO,
    TcbInfo,
    alias_tcb_info,
    decode_tcb_info,
    derive_alias,
    derive_device_id,
    encode_tcb_info,
    issue_alias_certificate,
)
from bootloader.measured import MeasurementLog
from bootloader.pki import issue_device_id_certificate
from common.errors import AttestationError
from tests.bootloader.test_pki import BL_DIGEST, NOW, UDS, ManufacturerCA, manufacturer_ca

FW1 = hashlib.sha256(b"firmware 1").digest()
FW2 = hashlib.sha256(b"firmware 2").digest()


def _raw(key: Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    """The public key's bytes (SubjectPublicKeyInfo DER), whatever its type."""
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module")
def ca() -> ManufacturerCA:
    return manufacturer_ca()


@pytest.fixture(scope="module")
def device_id_cert(ca: ManufacturerCA) -> x509.Certificate:
    return issue_device_id_certificate(
        serial="RC1-0001",
        device_id_public_key=derive_device_id(UDS, BL_DIGEST).public_key(),
        device_ca_key=ca.device_ca_key,
        device_ca_cert=ca.device_ca,
        now=NOW,
    )


def test_known_answer_derivation_follows_the_documented_hkdf_chain() -> None:
    def hkdf(ikm: bytes, salt: bytes | None, info: bytes) -> bytes:
        return HKDF(hashes.SHA256(), 32, salt, info).derive(ikm)

    cdi0 = hkdf(UDS, BL_DIGEST, b"refcam DICE CDI_L0")
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256 order
    seed = HKDF(hashes.SHA256(), 40, None, b"refcam DeviceID").derive(cdi0)
    device_id_scalar = int.from_bytes(seed, "big") % (n - 1) + 1  # FIPS 186-5 A.2.1
    cdi1 = hkdf(cdi0, FW1, b"refcam DICE CDI_L1")
    alias = Ed25519PrivateKey.from_private_bytes(hkdf(cdi1, None, b"refcam DICE Alias"))
    assert derive_device_id(UDS, BL_DIGEST).private_numbers().private_value == device_id_scalar
    assert _raw(derive_alias(UDS, BL_DIGEST, FW1)) == _raw(alias)


def test_device_id_is_stable_across_two_alias_derivations_with_different_firmware() -> None:
    first = derive_device_id(UDS, BL_DIGEST)
    derive_alias(UDS, BL_DIGEST, FW1)
    derive_alias(UDS, BL_DIGEST, FW2)
    assert _raw(derive_device_id(UDS, BL_DIGEST)) == _raw(first)


def test_alias_differs_per_firmware_and_is_reproducible() -> None:
    assert _raw(derive_alias(UDS, BL_DIGEST, FW1)) != _raw(derive_alias(UDS, BL_DIGEST, FW2))
    assert _raw(derive_alias(UDS, BL_DIGEST, FW1)) == _raw(derive_alias(UDS, BL_DIGEST, FW1))
    assert _raw(derive_alias(UDS, BL_DIGEST, FW1)) != _raw(derive_device_id(UDS, BL_DIGEST))


def test_device_id_changes_with_the_bootloader_and_with_the_uds() -> None:
    base = _raw(derive_device_id(UDS, BL_DIGEST))
    assert _raw(derive_device_id(UDS, hashlib.sha256(b"other bl").digest())) != base
    assert _raw(derive_device_id(bytes(32), BL_DIGEST)) != base


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="UDS must be at least 32 bytes"):
        derive_device_id(b"short", BL_DIGEST)
    with pytest.raises(ValueError, match="firmware measurement must be at least 32 bytes"):
        derive_alias(UDS, BL_DIGEST, b"")


def test_alias_certificate_is_issued_by_the_device_id_and_names_the_firmware(
    device_id_cert: x509.Certificate,
) -> None:
    alias = derive_alias(UDS, BL_DIGEST, FW1)
    cert = issue_alias_certificate(
        device_id_key=derive_device_id(UDS, BL_DIGEST),
        device_id_cert=device_id_cert,
        alias_public_key=alias.public_key(),
        firmware_measurement=FW1,
        now=NOW,
        firmware_version="2.3.0",
        security_counter=4,
    )
    cert.verify_directly_issued_by(device_id_cert)
    assert cert.public_key() == alias.public_key()
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    ext = cert.extensions.get_extension_for_oid(TCG_DICE_TCB_INFO)
    assert not ext.critical  # the attestLoc key purpose keeps the key in its lane (dice module docstring)
    purposes = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(purposes) == [TCG_DICE_KP_ATTEST_LOC]
    assert alias_tcb_info(cert) == TcbInfo(fwid_sha256=FW1, version="2.3.0", svn=4, layer=1)
    assert cert.not_valid_before_utc == NOW
    assert cert.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)[0].value == "RC1-0001"


def test_alias_certificate_never_outlives_the_device_id(device_id_cert: x509.Certificate) -> None:
    late = device_id_cert.not_valid_after_utc - dt.timedelta(days=1)
    cert = issue_alias_certificate(
        device_id_key=derive_device_id(UDS, BL_DIGEST),
        device_id_cert=device_id_cert,
        alias_public_key=derive_alias(UDS, BL_DIGEST, FW1).public_key(),
        firmware_measurement=FW1,
        now=late,
    )
    assert cert.not_valid_after_utc == device_id_cert.not_valid_after_utc


def test_tcb_info_known_answer_der() -> None:
    # Written out by hand from the ASN.1 in bootloader/dice.py and checked with
    # `openssl asn1parse -inform DER` (cont [2], [3], [4], [6] > SEQUENCE > sha256, OCTET STRING).
    expected = bytes.fromhex(
        "303b"  # SEQUENCE, 59 bytes
        "820131"  # version [2] "1"
        "83020080"  # svn [3] 128 (leading 0: positive)
        "840101"  # layer [4] 1
        "a62f"  # fwids [6], 47 bytes
        "302d"  # FWID SEQUENCE, 45 bytes
        "0609608648016503040201"  # OID 2.16.840.1.101.3.4.2.1 (SHA-256)
        "0420"  # OCTET STRING, 32 bytes
    ) + bytes(32)
    assert encode_tcb_info(TcbInfo(fwid_sha256=bytes(32), version="1", svn=128, layer=1)) == (
        expected
    )
    assert decode_tcb_info(expected) == TcbInfo(bytes(32), "1", 128, 1)


@given(
    st.binary(min_size=32, max_size=32),
    st.none() | st.text(max_size=200),
    st.none() | st.integers(min_value=0, max_value=2**64),
    st.none() | st.integers(min_value=0, max_value=10),
)
def test_tcb_info_round_trips(
    fwid: bytes, version: str | None, svn: int | None, layer: int | None
) -> None:
    info = TcbInfo(fwid_sha256=fwid, version=version, svn=svn, layer=layer)
    assert decode_tcb_info(encode_tcb_info(info)) == info


@given(st.binary(max_size=120))
def test_tcb_info_parser_only_raises_attestation_error(data: bytes) -> None:
    with contextlib.suppress(AttestationError):
        decode_tcb_info(data)


FWIDS = bytes.fromhex("a62f302d06096086480165030402010420") + bytes(32)


def _seq(body: bytes) -> bytes:
    return bytes([0x30, len(body)]) + body


@pytest.mark.parametrize(
    ("der", "message"),
    [
        (b"", "truncated"),
        (b"\x30\x00", "carries no fwids"),
        (_seq(b"\x83\x00" + FWIDS), "integer is negative or not minimally encoded"),
        (_seq(b"\x83\x01\x80" + FWIDS), "integer is negative or not minimally encoded"),
        (_seq(b"\x83\x02\x00\x01" + FWIDS), "integer is negative or not minimally encoded"),
        (_seq(FWIDS + FWIDS), "unexpected field"),
        (_seq(b"\xa6\x00"), "carries 0 fwids, expected 1"),
        (_seq(b"\xa6\x02\x30\x00"), "not a SHA-256 FWID"),
        (b"\x30\x00\x00", "not a single DER SEQUENCE"),
        (b"\x30\x81\x02\x82\x00", "not minimally encoded"),
        (_seq(b"\x83\x01\x01\x82\x00" + FWIDS), "unexpected field"),  # out of order
    ],
)
def test_malformed_tcb_info_is_refused(der: bytes, message: str) -> None:
    with pytest.raises(AttestationError, match=message):
        decode_tcb_info(der)


def test_attester_refuses_a_chain_for_another_key(device_id_cert: x509.Certificate) -> None:
    with pytest.raises(ValueError, match="does not certify the alias key"):
        DiceAttester(
            derive_alias(UDS, BL_DIGEST, FW1), [device_id_cert], MeasurementLog(), bytes(32)
        )
