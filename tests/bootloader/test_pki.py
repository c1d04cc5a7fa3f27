"""Device identities issued by the manufacturer's device CA (bootloader/pki.py).

``manufacturer_ca`` below is also imported by the other DICE/attestation
tests: a root CA and a device CA made with ``bootloader.keys``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootloader import pki
from bootloader.dice import derive_device_id
from bootloader.keys import make_ca_certificate
from bootloader.pki import (
    STREAM_SIGNING_EKU,
    PKIError,
    issue_tls_certificate,
    provision_identity,
    renew_tls_certificate,
    verify_tls_chain,
)
from common.errors import ProvisioningError

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
UDS = bytes(range(32))
BL_DIGEST = bytes.fromhex("11" * 32)


@dataclass(frozen=True)
class ManufacturerCA:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    device_ca_key: ec.EllipticCurvePrivateKey
    device_ca: x509.Certificate

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)


def manufacturer_ca(now: dt.datetime = NOW, name: str = "refcam") -> ManufacturerCA:
    """Root (path length 2) -> device CA (path length 1: it issues the DeviceID CA)."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_ca_certificate(
        key=root_key,
        common_name=f"{name} Manufacturer Root CA",
        now=now,
        lifetime=dt.timedelta(days=3653),
        path_length=2,
    )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    device_ca = make_ca_certificate(
        key=ca_key,
        common_name=f"{name} Device CA",
        now=now,
        lifetime=dt.timedelta(days=1826),
        path_length=1,
        issuer_key=root_key,
        issuer_cert=root,
    )
    return ManufacturerCA(root_key, root, ca_key, device_ca)


@pytest.fixture(scope="module")
def ca() -> ManufacturerCA:
    return manufacturer_ca()


def provision(ca: ManufacturerCA, directory: Path, serial: str = "RC1-0001", addresses: tuple[str, ...] = ()) -> Path:
    provision_identity(
        directory,
        addresses=addresses,
        serial=serial,
        uds=UDS,
        bootloader_measurement=BL_DIGEST,
        device_ca_key=ca.device_ca_key,
        device_ca_cert=ca.device_ca,
        root_cert=ca.root,
        now=NOW,
    )
    return directory


@pytest.fixture(scope="module")
def identity(ca: ManufacturerCA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return provision(ca, tmp_path_factory.mktemp("identity") / "identity")


def _leaf(identity: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificates((identity / "tls.pem").read_bytes())[0]


def test_tls_leaf_has_the_server_profile(ca: ManufacturerCA, identity: Path) -> None:
    leaf = _leaf(identity)
    ext = leaf.extensions
    san = ext.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical
    assert san.value.get_values_for_type(x509.DNSName) == ["cam-RC1-0001.local", "localhost"]
    assert san.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH
    ]
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    ca_ski = ca.device_ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key())
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= dt.timedelta(days=366)
    assert leaf.not_valid_before_utc == NOW
    assert leaf.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)[0].value == "RC1-0001"
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "cam-RC1-0001.local"
    )
    assert 0 < leaf.serial_number < 2**159
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)
    assert leaf.signature_algorithm_oid == x509.SignatureAlgorithmOID.ECDSA_WITH_SHA256
    key = leaf.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    chain = x509.load_pem_x509_certificates((identity / "tls.pem").read_bytes())
    assert chain[1] == ca.device_ca
    assert (identity / "manufacturer-root.pem").read_bytes() == ca.root_pem


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1", "cam-RC1-0001.local"])
def test_provisioned_leaf_validates_strictly_for_its_names(
    ca: ManufacturerCA, identity: Path, host: str
) -> None:
    verify_tls_chain(
        (identity / "tls.pem").read_bytes(), root_pem=ca.root_pem, hostname=host, now=NOW
    )


@pytest.mark.parametrize("host", ["cam-RC1-0002.local", "example.com", "127.0.0.2"])
def test_leaf_is_refused_for_another_host(ca: ManufacturerCA, identity: Path, host: str) -> None:
    with pytest.raises(PKIError, match=f"does not validate for {host}"):
        verify_tls_chain(
            (identity / "tls.pem").read_bytes(), root_pem=ca.root_pem, hostname=host, now=NOW
        )


@pytest.mark.parametrize(
    ("days_later", "other_root"),
    [(366, False), (0, True)],
    ids=["after-expiry", "against-another-root"],
)
def test_leaf_is_refused(
    ca: ManufacturerCA, identity: Path, days_later: int, other_root: bool
) -> None:
    root_pem = manufacturer_ca(name="other").root_pem if other_root else ca.root_pem
    with pytest.raises(PKIError, match="does not validate for localhost"):
        verify_tls_chain(
            (identity / "tls.pem").read_bytes(),
            root_pem=root_pem,
            hostname="localhost",
            now=NOW + dt.timedelta(days=days_later),
        )


def test_garbage_chain_is_a_pki_error(ca: ManufacturerCA) -> None:
    with pytest.raises(PKIError, match="not a PEM certificate chain"):
        verify_tls_chain(b"junk", root_pem=ca.root_pem, hostname="localhost", now=NOW)


def test_two_provisioned_identities_have_different_tls_keys(
    ca: ManufacturerCA, tmp_path: Path, identity: Path
) -> None:
    other = provision(ca, tmp_path / "other", serial="RC1-0002")
    keys = [_leaf(d).public_key() for d in (identity, other)]
    assert keys[0] != keys[1]
    for name in ("tls.key.pem", "stream.key.pem", "stream-p256.key.pem"):
        assert (identity / name).read_bytes() != (other / name).read_bytes()


def test_private_keys_are_0600_and_match_their_certificates(identity: Path) -> None:
    for key_name, cert_name in (
        ("tls.key.pem", "tls.pem"),
        ("stream.key.pem", "stream.pem"),
        ("stream-p256.key.pem", "stream-p256.pem"),
    ):
        path = identity / key_name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        key = serialization.load_pem_private_key(path.read_bytes(), None)
        cert = x509.load_pem_x509_certificates((identity / cert_name).read_bytes())[0]
        assert cert.public_key() == key.public_key()


def test_deviceid_certificate_certifies_the_dice_key_as_a_pathlen0_ca(
    ca: ManufacturerCA, identity: Path
) -> None:
    cert = x509.load_pem_x509_certificate((identity / "deviceid.pem").read_bytes())
    assert cert.public_key() == derive_device_id(UDS, BL_DIGEST).public_key()
    cert.verify_directly_issued_by(ca.device_ca)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and not ku.digital_signature
    assert not (identity / "deviceid.key.pem").exists()  # derived at each boot, never stored


def test_stream_certificates_carry_the_stream_signing_purpose(
    ca: ManufacturerCA, identity: Path
) -> None:
    for name, key_type in (
        ("stream.pem", ed25519.Ed25519PublicKey),
        ("stream-p256.pem", ec.EllipticCurvePublicKey),
    ):
        cert, issuer = x509.load_pem_x509_certificates((identity / name).read_bytes())
        assert issuer == ca.device_ca
        cert.verify_directly_issued_by(ca.device_ca)
        assert isinstance(cert.public_key(), key_type)
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [STREAM_SIGNING_EKU]
        assert STREAM_SIGNING_EKU.dotted_string.startswith("2.25.")
        assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
        assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_provisioning_twice_is_refused_and_keeps_the_identity(
    ca: ManufacturerCA, identity: Path
) -> None:
    before = (identity / "tls.key.pem").read_bytes()
    with pytest.raises(ProvisioningError, match="already holds a device identity"):
        provision(ca, identity)
    assert (identity / "tls.key.pem").read_bytes() == before


def test_device_ca_not_issued_by_the_root_is_refused(ca: ManufacturerCA, tmp_path: Path) -> None:
    other = manufacturer_ca(name="other")
    with pytest.raises(PKIError, match="not issued by the manufacturer root"):
        provision_identity(
            tmp_path / "id",
            serial="RC1-0003",
            uds=UDS,
            bootloader_measurement=BL_DIGEST,
            device_ca_key=ca.device_ca_key,
            device_ca_cert=ca.device_ca,
            root_cert=other.root,
            now=NOW,
        )
    assert not (tmp_path / "id" / "tls.key.pem").exists()


def _issue(ca: ManufacturerCA, key: ec.EllipticCurvePrivateKey, *, serial: str = "RC1-0001",
           now: dt.datetime = NOW, days: int | None = None) -> x509.Certificate:
    """A TLS leaf for ``key`` from the test device CA (the keyword defaults of provisioning)."""
    kwargs = {} if days is None else {"days": days}
    return issue_tls_certificate(serial=serial, public_key=key.public_key(), device_ca_key=ca.device_ca_key,
                                 device_ca_cert=ca.device_ca, now=now, **kwargs)  # fmt: skip


@pytest.mark.parametrize("serial", ["", "-abc", "a b", "a.b", "x" * 60, "caf\u00e9"])
def test_bad_serial_is_refused(ca: ManufacturerCA, serial: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PKIError, match="is not 1..59 letters"):
        _issue(ca, key, serial=serial)


def test_validity_above_366_days_is_refused(ca: ManufacturerCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PKIError, match="validity of 367 days is outside 1..366"):
        _issue(ca, key, days=367)


def test_leaf_never_outlives_the_device_ca(ca: ManufacturerCA) -> None:
    late = ca.device_ca.not_valid_after_utc - dt.timedelta(days=10)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _issue(ca, key, now=late)
    assert leaf.not_valid_after_utc == ca.device_ca.not_valid_after_utc


def test_expired_device_ca_cannot_issue(ca: ManufacturerCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(PKIError, match="device CA certificate is not valid at"):
        _issue(ca, key, now=NOW + dt.timedelta(days=4000))


def test_rsa_or_non_p256_tls_key_is_refused(ca: ManufacturerCA) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(PKIError, match="must be ECDSA P-256"):
        _issue(ca, key)


def test_renewal_keeps_the_key_and_issues_a_new_valid_leaf(
    ca: ManufacturerCA, tmp_path: Path
) -> None:
    identity = provision(ca, tmp_path / "id")
    old = _leaf(identity)
    key_before = (identity / "tls.key.pem").read_bytes()
    later = NOW + dt.timedelta(days=300)
    new = renew_tls_certificate(
        identity, device_ca_key=ca.device_ca_key, device_ca_cert=ca.device_ca, now=later
    )
    assert _leaf(identity) == new
    assert new.public_key() == old.public_key()
    assert new.serial_number != old.serial_number
    assert new.subject == old.subject
    assert new.not_valid_before_utc == later
    assert (identity / "tls.key.pem").read_bytes() == key_before
    verify_tls_chain(
        (identity / "tls.pem").read_bytes(),
        root_pem=ca.root_pem,
        hostname="localhost",
        now=later + dt.timedelta(days=200),
    )
    assert not list(identity.glob("*.tmp"))


def test_renewal_keeps_a_fleet_units_own_address(ca: ManufacturerCA, tmp_path: Path) -> None:
    identity = provision(ca, tmp_path / "id", addresses=("127.0.3.7",))
    later = NOW + dt.timedelta(days=300)
    renew_tls_certificate(identity, device_ca_key=ca.device_ca_key, device_ca_cert=ca.device_ca, now=later)
    for host in ("127.0.3.7", "127.0.0.1", "localhost"):
        verify_tls_chain((identity / "tls.pem").read_bytes(), root_pem=ca.root_pem, hostname=host, now=later)
    with pytest.raises(PKIError):
        verify_tls_chain((identity / "tls.pem").read_bytes(), root_pem=ca.root_pem, hostname="127.0.3.8", now=later)


def test_renewal_without_an_identity_is_a_pki_error(ca: ManufacturerCA, tmp_path: Path) -> None:
    with pytest.raises(PKIError, match="provision the device first"):
        renew_tls_certificate(
            tmp_path, device_ca_key=ca.device_ca_key, device_ca_cert=ca.device_ca, now=NOW
        )


def test_identity_from_a_real_key_directory_validates(tmp_path: Path) -> None:
    """End to end with ``refcam keys init``'s manufacturer CAs."""
    from bootloader.keys import init_keys, load_certificate, load_private_key

    keys = init_keys(tmp_path / "K", now=NOW)
    device_ca_key = load_private_key(keys.device_ca_key)
    assert isinstance(device_ca_key, ec.EllipticCurvePrivateKey)
    provision_identity(
        tmp_path / "id",
        serial="RC1-0009",
        uds=UDS,
        bootloader_measurement=BL_DIGEST,
        device_ca_key=device_ca_key,
        device_ca_cert=load_certificate(keys.device_ca),
        root_cert=load_certificate(keys.manufacturer_root_ca),
        now=NOW,
    )
    verify_tls_chain(
        (tmp_path / "id" / "tls.pem").read_bytes(),
        root_pem=keys.manufacturer_root_ca.read_bytes(),
        hostname="cam-RC1-0009.local",
        now=NOW,
    )
    assert pki.hostname_for("RC1-0009") == "cam-RC1-0009.local"
