"""The one certificate path validator: cryptography's verifier, then the leaf's purpose."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from bootloader import pki
from bootloader.dice import TCG_DICE_KP_ATTEST_LOC
from bootloader.keys import make_ca_certificate
from bootloader.x509verify import CertificateChainError, verify_certificate_chain
from common.x509profile import key_usage

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def cas() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate]:
    root_key, ca_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    start = NOW - dt.timedelta(days=1)
    root = make_ca_certificate(key=root_key, common_name="root", now=start, lifetime=dt.timedelta(days=3650), path_length=1)
    ca = make_ca_certificate(
        key=ca_key, common_name="device CA", now=start, lifetime=dt.timedelta(days=1825), path_length=0,
        issuer_key=root_key, issuer_cert=root,
    )  # fmt: skip
    return root, ca_key, ca


def stream_leaf(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate) -> x509.Certificate:
    key = ed25519.Ed25519PrivateKey.generate()
    return pki.issue_stream_certificate(
        serial="RC1-0001", public_key=key.public_key(), device_ca_key=ca_key, device_ca_cert=ca, now=NOW
    )


def test_a_leaf_issued_for_the_purpose_validates_to_the_root(
    cas: tuple[x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    root, ca_key, ca = cas
    leaf = stream_leaf(ca_key, ca)
    chain = verify_certificate_chain(leaf, [ca], trust_root=root, now=NOW, purpose=pki.STREAM_SIGNING_EKU)
    assert chain == [leaf, ca, root]


def test_a_leaf_for_another_purpose_is_refused(
    cas: tuple[x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    """The stream key cannot sign attestation evidence, whatever its chain."""
    root, ca_key, ca = cas
    with pytest.raises(CertificateChainError, match=r"is not issued for this purpose: .* expected 2\.23\.133\.5\.4\.100\.9"):
        verify_certificate_chain(stream_leaf(ca_key, ca), [ca], trust_root=root, now=NOW, purpose=TCG_DICE_KP_ATTEST_LOC)


def test_expired_chain_and_missing_intermediate_are_refused(
    cas: tuple[x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    root, ca_key, ca = cas
    leaf = stream_leaf(ca_key, ca)
    with pytest.raises(CertificateChainError, match="not valid at validation time"):
        verify_certificate_chain(leaf, [ca], trust_root=root, now=NOW + dt.timedelta(days=4000), purpose=pki.STREAM_SIGNING_EKU)
    with pytest.raises(CertificateChainError, match="does not lead to the trusted root"):
        verify_certificate_chain(leaf, [], trust_root=root, now=NOW, purpose=pki.STREAM_SIGNING_EKU)


def _leaf(ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, *, is_ca: bool, usage: x509.KeyUsage) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "odd leaf")]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([pki.STREAM_SIGNING_EKU]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )


def test_a_ca_or_a_key_without_digital_signature_cannot_sign(
    cas: tuple[x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate],
) -> None:
    root, ca_key, ca = cas
    as_ca = _leaf(ca_key, ca, is_ca=True, usage=key_usage(digital_signature=True, key_cert_sign=True))
    with pytest.raises(CertificateChainError, match="does not lead to the trusted root"):
        verify_certificate_chain(as_ca, [ca], trust_root=root, now=NOW, purpose=pki.STREAM_SIGNING_EKU)
    no_signing = _leaf(ca_key, ca, is_ca=False, usage=key_usage(key_cert_sign=False))
    with pytest.raises(CertificateChainError, match="key usage lacks digitalSignature"):
        verify_certificate_chain(no_signing, [ca], trust_root=root, now=NOW, purpose=pki.STREAM_SIGNING_EKU)
