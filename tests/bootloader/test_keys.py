"""The vendor key directory (bootloader/keys.py): layout, permissions, passphrases, CAs."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import stat
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from bootloader.keys import (
    TUF_ROLES,
    KeySet,
    init_keys,
    load_certificate,
    load_private_key,
    load_public_key,
    open_keys,
    rotate_signing_key,
    spki_sha256,
)
from common.errors import KeyManifestError, KeyStoreError, UnknownSigningKey
from common.keymanifest import KeyManifest, verify_key_manifest

NOW = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return init_keys(tmp_path_factory.mktemp("keys") / "K", now=NOW)


def test_init_keys_creates_every_documented_file(keys: KeySet) -> None:
    expected = {
        "rot-0.key.pem", "rot-0.pub.pem", "rot-1.key.pem", "rot-1.pub.pem",
        "firmware-signing.key.pem", "firmware-signing.pub.pem",
        "firmware-signing-p256.key.pem", "firmware-signing-p256.pub.pem",
        "key-manifest.bin", "keys.json",
        "manufacturer/root-ca.pem", "manufacturer/root-ca.key.pem",
        "manufacturer/device-ca.pem", "manufacturer/device-ca.key.pem",
        "vendor/root-ca.pem", "vendor/root-ca.key.pem",
        *(f"tuf/{role}.{kind}.pem" for role in TUF_ROLES for kind in ("key", "pub")),
    }  # fmt: skip
    found = {p.relative_to(keys.directory).as_posix() for p in keys.directory.rglob("*.*")}
    assert found == expected
    assert open_keys(keys.directory) == keys


def test_private_keys_are_created_mode_0600(keys: KeySet) -> None:
    private = [p for p in keys.directory.rglob("*.key.pem")]
    assert len(private) == 2 + 2 + 3 + len(TUF_ROLES)
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_key_types_match_the_layout(keys: KeySet) -> None:
    assert isinstance(load_private_key(keys.rot_key(0)), ed25519.Ed25519PrivateKey)
    assert isinstance(load_private_key(keys.firmware_signing_key), ed25519.Ed25519PrivateKey)
    p256 = load_private_key(keys.firmware_signing_p256_key)
    assert isinstance(p256, ec.EllipticCurvePrivateKey)
    assert isinstance(p256.curve, ec.SECP256R1)
    for role in TUF_ROLES:
        assert isinstance(load_private_key(keys.tuf_key(role)), ed25519.Ed25519PrivateKey)
    # Private and public halves belong together.
    rot0 = load_private_key(keys.rot_key(0))
    assert spki_sha256(rot0.public_key()) == spki_sha256(load_public_key(keys.rot_pub(0)))


def test_spki_sha256_is_the_hash_of_the_der_subject_public_key_info(keys: KeySet) -> None:
    pub = load_public_key(keys.rot_pub(1))
    der = pub.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki_sha256(pub) == hashlib.sha256(der).digest()


def test_inventory_lists_hashes_and_holds_no_secrets(keys: KeySet) -> None:
    text = keys.inventory.read_text()
    assert "PRIVATE" not in text
    inventory = json.loads(text)
    assert inventory["keys"]["rot-0"]["spki_sha256"] == (
        spki_sha256(load_public_key(keys.rot_pub(0))).hex()
    )
    assert inventory["keys"]["firmware-signing-p256"]["algorithm"] == "ecdsa-secp256r1"
    assert inventory["encrypted"] is False


def test_key_manifest_certifies_both_signing_keys_under_rot0(keys: KeySet) -> None:
    manifest = KeyManifest.parse(keys.key_manifest.read_bytes())
    rot0 = spki_sha256(load_public_key(keys.rot_pub(0)))
    verify_key_manifest(manifest, rot_keys=[(rot0, False)], min_counter=1)
    assert manifest.counter == 1
    assert {k.key_hash for k in manifest.keys} == {
        spki_sha256(load_public_key(keys.firmware_signing_pub)),
        spki_sha256(load_public_key(keys.firmware_signing_p256_pub)),
    }


E = TypeVar("E", bound=x509.ExtensionType)


def _ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def test_manufacturer_cas_are_constrained_and_chained(keys: KeySet) -> None:
    root = load_certificate(keys.manufacturer_root_ca)
    device_ca = load_certificate(keys.device_ca)
    # DICE: root -> device CA -> DeviceID (CA) -> Alias needs pathlen 2 / 1.
    for cert, path_length, years in ((root, 2, 10), (device_ca, 1, 5)):
        bc = _ext(cert, x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == path_length
        ku = _ext(cert, x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        assert not ku.value.digital_signature
        lifetime = cert.not_valid_after_utc - NOW
        assert abs(lifetime.days - years * 365.25) < 3
        assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert root.subject.rfc4514_string() == "CN=refcam Manufacturer Root CA,O=refcam"
    assert device_ca.issuer == root.subject
    ski = _ext(root, x509.SubjectKeyIdentifier).value
    aki = _ext(device_ca, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    device_ca.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    vendor = load_certificate(keys.vendor_root_ca)
    assert _ext(vendor, x509.BasicConstraints).value.ca
    vendor.verify_directly_issued_by(vendor)


def test_passphrase_encrypts_keys_and_round_trips(tmp_path: Path) -> None:
    keys = init_keys(tmp_path / "K", now=NOW, passphrase=b"correct horse")
    assert b"ENCRYPTED PRIVATE KEY" in keys.rot_key(0).read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in keys.device_ca_key.read_bytes()
    key = load_private_key(keys.rot_key(0), b"correct horse")
    assert spki_sha256(key.public_key()) == spki_sha256(load_public_key(keys.rot_pub(0)))
    with pytest.raises(
        KeyStoreError, match=r"^wrong passphrase for private key .*rot-0\.key\.pem$"
    ):
        load_private_key(keys.rot_key(0), b"wrong horse")
    with pytest.raises(KeyStoreError, match=r"is encrypted; give its passphrase"):
        load_private_key(keys.rot_key(0))
    assert json.loads(keys.inventory.read_text())["encrypted"] is True


def test_passphrase_given_for_an_unencrypted_key_is_refused(keys: KeySet) -> None:
    with pytest.raises(KeyStoreError, match=r"is not encrypted, but a passphrase was given"):
        load_private_key(keys.rot_key(0), b"pw")


def test_missing_and_malformed_key_files_are_keystore_errors(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match=r"^private key file .*nope\.pem does not exist$"):
        load_private_key(tmp_path / "nope.pem")
    with pytest.raises(KeyStoreError, match=r"^public key file .* does not exist$"):
        load_public_key(tmp_path / "nope.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(KeyStoreError, match=r"is not a PEM private key"):
        load_private_key(junk)
    with pytest.raises(KeyStoreError, match=r"is not a PEM public key"):
        load_public_key(junk)
    with pytest.raises(KeyStoreError, match=r"is not a PEM certificate"):
        load_certificate(junk)


def test_existing_key_set_is_never_overwritten(keys: KeySet) -> None:
    before = {p: p.read_bytes() for p in keys.directory.rglob("*") if p.is_file()}
    with pytest.raises(KeyStoreError, match=r"already holds key material .*refusing to overwrite"):
        init_keys(keys.directory, now=NOW)
    after = {p: p.read_bytes() for p in keys.directory.rglob("*") if p.is_file()}
    assert after == before


def test_partial_key_directory_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "K").mkdir()
    (tmp_path / "K" / "rot-1.key.pem").write_text("someone's key")
    with pytest.raises(KeyStoreError, match=r"rot-1\.key\.pem"):
        init_keys(tmp_path / "K", now=NOW)
    assert (tmp_path / "K" / "rot-1.key.pem").read_text() == "someone's key"


def test_open_keys_names_missing_files(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match=r"does not exist \(run `refcam keys init`\)"):
        open_keys(tmp_path / "absent")
    keys = init_keys(tmp_path / "K", now=NOW)
    keys.firmware_signing_key.unlink()
    with pytest.raises(KeyStoreError, match=r"incomplete: missing firmware-signing\.key\.pem$"):
        open_keys(keys.directory)


def test_rotate_signing_key_issues_next_manifest_without_the_old_key(tmp_path: Path) -> None:
    keys = init_keys(tmp_path / "K", now=NOW, passphrase=b"pw")
    old_hash = spki_sha256(load_public_key(keys.firmware_signing_pub))
    rotation = rotate_signing_key(keys, now=NOW, passphrase=b"pw")
    assert (rotation.old_counter, rotation.new_counter) == (1, 2)
    assert rotation.old_key_hash == old_hash
    assert rotation.archived_key.name == "firmware-signing.1.key.pem"
    assert stat.S_IMODE(keys.firmware_signing_key.stat().st_mode) == 0o600
    new_key = load_private_key(keys.firmware_signing_key, b"pw")
    assert spki_sha256(new_key.public_key()) == rotation.new_key_hash != old_hash
    assert load_private_key(rotation.archived_key, b"pw") is not None

    rot0 = spki_sha256(load_public_key(keys.rot_pub(0)))
    manifest = KeyManifest.parse(keys.key_manifest.read_bytes())
    verify_key_manifest(manifest, rot_keys=[(rot0, False)], min_counter=2)
    manifest.find_key(rotation.new_key_hash)
    with pytest.raises(UnknownSigningKey, match=f"signing key {old_hash.hex()} is not certified"):
        manifest.find_key(old_hash)
    # The archived manifest still verifies, but not once the fused minimum is 2.
    old = KeyManifest.parse(rotation.archived_manifest.read_bytes())
    with pytest.raises(
        KeyManifestError, match=r"^key manifest counter 1 is below the fused minimum 2$"
    ):
        verify_key_manifest(old, rot_keys=[(rot0, False)], min_counter=2)
    inventory = json.loads(keys.inventory.read_text())
    assert inventory["key_manifest"]["counter"] == 2
    assert inventory["keys"]["firmware-signing"]["spki_sha256"] == rotation.new_key_hash.hex()
    assert open_keys(keys.directory) == keys


def test_rotate_with_wrong_passphrase_changes_nothing(tmp_path: Path) -> None:
    keys = init_keys(tmp_path / "K", now=NOW, passphrase=b"pw")
    before = {p: p.read_bytes() for p in keys.directory.rglob("*") if p.is_file()}
    with pytest.raises(KeyStoreError, match=r"^wrong passphrase"):
        rotate_signing_key(keys, now=NOW, passphrase=b"nope")
    assert {p: p.read_bytes() for p in keys.directory.rglob("*") if p.is_file()} == before


def test_empty_passphrase_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    with pytest.raises(KeyStoreError, match=r"empty passphrase"):
        init_keys(tmp_path / "K", now=NOW, passphrase=b"")
    assert not (tmp_path / "K").exists()
