"""The vendor's key directory: creation, loading and key hashes.

``init_keys`` makes every key a refcam vendor needs, in one directory::

    rot-0.key.pem, rot-0.pub.pem            root-of-trust key 0 (Ed25519), fused in OTP slot 0
    rot-1.key.pem, rot-1.pub.pem            spare root-of-trust key (OTP slot 1)
    firmware-signing.key.pem/.pub.pem       Ed25519, signs slot images (imgtool-compatible)
    firmware-signing-p256.key.pem/.pub.pem  ECDSA P-256 alternative signing key
    key-manifest.bin                        rot-0-signed key manifest certifying both signing keys
    manufacturer/root-ca.pem, root-ca.key.pem       manufacturer root CA (ECDSA P-256, 10 years)
    manufacturer/device-ca.pem, device-ca.key.pem   device CA (ECDSA P-256, 5 years): issues
                                            device TLS and DICE DeviceID certificates
    vendor/root-ca.pem, root-ca.key.pem             vendor root CA for update-server TLS
    tuf/{root-1,root-2,root-3,targets,snapshot,timestamp}.key.pem (+ .pub.pem)   Ed25519
    keys.json                               inventory: algorithms and SPKI SHA-256, no secrets

Private keys are PKCS#8 PEM created with mode 0600, encrypted with the
passphrase when one is given. An existing key set is never overwritten.

Example::

    keyset = init_keys(Path("K"), now=datetime.now(UTC), passphrase=b"secret")
    rot0 = load_private_key(keyset.rot_key(0), passphrase=b"secret")
    fused = spki_sha256(load_public_key(keyset.rot_pub(0)))
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from common.errors import BootError, KeyStoreError
from common.keymanifest import KeyManifest, build_key_manifest, spki_der

INVENTORY_FORMAT = "refcam-keys/1"
ROT_SLOTS = 2
TUF_ROLES = ("root-1", "root-2", "root-3", "targets", "snapshot", "timestamp")
ORGANIZATION = "refcam"
ROOT_CA_LIFETIME = dt.timedelta(days=3653)  # 10 years
DEVICE_CA_LIFETIME = dt.timedelta(days=1826)  # 5 years
INITIAL_KEY_MANIFEST_COUNTER = 1
# RFC 5280 4.2.1.9 pathLenConstraint. The longest manufacturer path is the DICE
# one: root -> device CA -> DeviceID (a CA, pathlen 0) -> Alias certificate, so
# the device CA must allow one CA below it and the root two.
MANUFACTURER_ROOT_PATH_LENGTH = 2
DEVICE_CA_PATH_LENGTH = 1

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class KeySet:
    """Paths of one key directory (see the module docstring for the layout)."""

    directory: Path

    def rot_key(self, slot: int) -> Path:
        return self.directory / f"rot-{slot}.key.pem"

    def rot_pub(self, slot: int) -> Path:
        return self.directory / f"rot-{slot}.pub.pem"

    @property
    def firmware_signing_key(self) -> Path:
        return self.directory / "firmware-signing.key.pem"

    @property
    def firmware_signing_pub(self) -> Path:
        return self.directory / "firmware-signing.pub.pem"

    @property
    def firmware_signing_p256_key(self) -> Path:
        return self.directory / "firmware-signing-p256.key.pem"

    @property
    def firmware_signing_p256_pub(self) -> Path:
        return self.directory / "firmware-signing-p256.pub.pem"

    @property
    def key_manifest(self) -> Path:
        return self.directory / "key-manifest.bin"

    @property
    def manufacturer_root_ca(self) -> Path:
        return self.directory / "manufacturer" / "root-ca.pem"

    @property
    def manufacturer_root_ca_key(self) -> Path:
        return self.directory / "manufacturer" / "root-ca.key.pem"

    @property
    def device_ca(self) -> Path:
        return self.directory / "manufacturer" / "device-ca.pem"

    @property
    def device_ca_key(self) -> Path:
        return self.directory / "manufacturer" / "device-ca.key.pem"

    @property
    def vendor_root_ca(self) -> Path:
        return self.directory / "vendor" / "root-ca.pem"

    @property
    def vendor_root_ca_key(self) -> Path:
        return self.directory / "vendor" / "root-ca.key.pem"

    def tuf_key(self, role: str) -> Path:
        """``role`` is one of TUF_ROLES, e.g. "root-1" or "timestamp"."""
        return self.directory / "tuf" / f"{role}.key.pem"

    def tuf_pub(self, role: str) -> Path:
        return self.directory / "tuf" / f"{role}.pub.pem"

    @property
    def inventory(self) -> Path:
        return self.directory / "keys.json"

    def all_files(self) -> Iterator[Path]:
        """Every file a complete key set holds."""
        for slot in range(ROT_SLOTS):
            yield self.rot_key(slot)
            yield self.rot_pub(slot)
        yield from (
            self.firmware_signing_key,
            self.firmware_signing_pub,
            self.firmware_signing_p256_key,
            self.firmware_signing_p256_pub,
            self.key_manifest,
            self.manufacturer_root_ca,
            self.manufacturer_root_ca_key,
            self.device_ca,
            self.device_ca_key,
            self.vendor_root_ca,
            self.vendor_root_ca_key,
        )
        for role in TUF_ROLES:
            yield self.tuf_key(role)
            yield self.tuf_pub(role)
        yield self.inventory


def open_keys(directory: Path) -> KeySet:
    """The KeySet of an existing, complete key directory; KeyStoreError if files are missing."""
    keyset = KeySet(Path(directory))
    if not keyset.directory.is_dir():
        raise KeyStoreError(f"key directory {directory} does not exist (run `refcam keys init`)")
    missing = [p for p in keyset.all_files() if not p.is_file()]
    if missing:
        names = ", ".join(str(p.relative_to(keyset.directory)) for p in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise KeyStoreError(f"key directory {directory} is incomplete: missing {names}{more}")
    return keyset


def spki_sha256(public_key: PublicKey) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo: what OTP fuses and KEYHASH TLVs hold."""
    return hashlib.sha256(spki_der(public_key)).digest()


def load_private_key(path: Path, passphrase: bytes | None = None) -> PrivateKey:
    """Load a PKCS#8 PEM private key (Ed25519 or ECDSA P-256)."""
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:
        if passphrase is None:
            raise KeyStoreError(
                f"private key {path} is encrypted; give its passphrase (--passphrase-env VAR)"
            ) from exc
        raise KeyStoreError(
            f"private key {path} is not encrypted, but a passphrase was given"
        ) from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        if passphrase is not None and b"ENCRYPTED" in data:
            raise KeyStoreError(f"wrong passphrase for private key {path}") from exc
        raise KeyStoreError(f"{path} is not a PEM private key: {exc}") from exc
    if isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        return key
    raise KeyStoreError(f"private key {path} is {type(key).__name__}, expected Ed25519 or ECDSA")


def load_public_key(path: Path) -> PublicKey:
    """Load a PEM SubjectPublicKeyInfo public key (Ed25519 or ECDSA)."""
    data = _read(path, "public key")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyStoreError(f"{path} is not a PEM public key: {exc}") from exc
    if isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        return key
    raise KeyStoreError(f"public key {path} is {type(key).__name__}, expected Ed25519 or ECDSA")


def load_certificate(path: Path) -> x509.Certificate:
    """Load one PEM X.509 certificate."""
    data = _read(path, "certificate")
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise KeyStoreError(f"{path} is not a PEM certificate: {exc}") from exc


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError as exc:
        raise KeyStoreError(f"{what} file {path} does not exist") from exc
    except OSError as exc:
        raise KeyStoreError(f"cannot read {what} file {path}: {exc.strerror}") from exc


def private_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available scheme when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_pem(key: PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_private_key(path: Path, key: PrivateKey, passphrase: bytes | None = None) -> None:
    """Create ``path`` with mode 0600 (never overwriting) and write the key."""
    _write_new(path, private_pem(key, passphrase), 0o600)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError as exc:
        raise KeyStoreError(f"{path} already exists; refusing to overwrite key material") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca_certificate(
    *,
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    now: dt.datetime,
    lifetime: dt.timedelta,
    path_length: int,
    issuer_key: ec.EllipticCurvePrivateKey | None = None,
    issuer_cert: x509.Certificate | None = None,
) -> x509.Certificate:
    """A CA certificate; self-signed unless ``issuer_key``/``issuer_cert`` are given."""
    public = key.public_key()
    signer = issuer_key or key
    issuer_name = issuer_cert.subject if issuer_cert is not None else _name(common_name)
    aki = (
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        )
        if issuer_cert is not None
        else x509.AuthorityKeyIdentifier.from_issuer_public_key(public)
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(aki, critical=False)
    )
    return builder.sign(signer, hashes.SHA256())


def init_keys(directory: Path, *, now: dt.datetime, passphrase: bytes | None = None) -> KeySet:
    """Create a complete key set in ``directory``; KeyStoreError if one already exists."""
    if passphrase is not None and not passphrase:
        raise KeyStoreError("an empty passphrase would leave the keys unprotected; give a real one")
    keyset = KeySet(Path(directory))
    existing = [p for p in keyset.all_files() if p.exists()]
    if existing:
        raise KeyStoreError(
            f"key directory {directory} already holds key material ({existing[0].name}); "
            "refusing to overwrite it"
        )
    # Generate everything in memory first, so a failure leaves no half key set.
    rot = [ed25519.Ed25519PrivateKey.generate() for _ in range(ROT_SLOTS)]
    fw = ed25519.Ed25519PrivateKey.generate()
    fw_p256 = ec.generate_private_key(ec.SECP256R1())
    manifest = build_key_manifest(
        rot_key=rot[0],
        signing_keys=[fw.public_key(), fw_p256.public_key()],
        counter=INITIAL_KEY_MANIFEST_COUNTER,
    )
    mfr_root_key = ec.generate_private_key(ec.SECP256R1())
    mfr_root = make_ca_certificate(
        key=mfr_root_key,
        common_name="refcam Manufacturer Root CA",
        now=now,
        lifetime=ROOT_CA_LIFETIME,
        path_length=MANUFACTURER_ROOT_PATH_LENGTH,
    )
    device_ca_key = ec.generate_private_key(ec.SECP256R1())
    device_ca = make_ca_certificate(
        key=device_ca_key,
        common_name="refcam Device CA",
        now=now,
        lifetime=DEVICE_CA_LIFETIME,
        path_length=DEVICE_CA_PATH_LENGTH,
        issuer_key=mfr_root_key,
        issuer_cert=mfr_root,
    )
    vendor_root_key = ec.generate_private_key(ec.SECP256R1())
    vendor_root = make_ca_certificate(
        key=vendor_root_key,
        common_name="refcam Vendor Update Root CA",
        now=now,
        lifetime=ROOT_CA_LIFETIME,
        path_length=1,
    )
    tuf = {role: ed25519.Ed25519PrivateKey.generate() for role in TUF_ROLES}

    pairs: list[tuple[str, Path, Path, PrivateKey]] = [
        *((f"rot-{i}", keyset.rot_key(i), keyset.rot_pub(i), k) for i, k in enumerate(rot)),
        ("firmware-signing", keyset.firmware_signing_key, keyset.firmware_signing_pub, fw),
        (
            "firmware-signing-p256",
            keyset.firmware_signing_p256_key,
            keyset.firmware_signing_p256_pub,
            fw_p256,
        ),
        *((f"tuf/{r}", keyset.tuf_key(r), keyset.tuf_pub(r), tuf[r]) for r in TUF_ROLES),
    ]
    inventory: dict[str, Any] = {
        "format": INVENTORY_FORMAT,
        "created": now.astimezone(dt.UTC).isoformat(),
        "encrypted": passphrase is not None,
        "keys": {},
        "certificates": {},
        "key_manifest": {"path": "key-manifest.bin", "counter": INITIAL_KEY_MANIFEST_COUNTER},
    }
    for name, key_path, pub_path, key in pairs:
        write_private_key(key_path, key, passphrase)
        _write_new(pub_path, public_pem(key.public_key()), 0o644)
        inventory["keys"][name] = {
            "private": key_path.relative_to(keyset.directory).as_posix(),
            "public": pub_path.relative_to(keyset.directory).as_posix(),
            "algorithm": _algorithm(key.public_key()),
            "spki_sha256": spki_sha256(key.public_key()).hex(),
        }
    certs = [
        ("manufacturer-root-ca", keyset.manufacturer_root_ca, keyset.manufacturer_root_ca_key,
         mfr_root, mfr_root_key),
        ("manufacturer-device-ca", keyset.device_ca, keyset.device_ca_key, device_ca,
         device_ca_key),
        ("vendor-root-ca", keyset.vendor_root_ca, keyset.vendor_root_ca_key, vendor_root,
         vendor_root_key),
    ]  # fmt: skip
    for name, cert_path, key_path, cert, ca_key in certs:
        write_private_key(key_path, ca_key, passphrase)
        _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        inventory["certificates"][name] = {
            "certificate": cert_path.relative_to(keyset.directory).as_posix(),
            "private": key_path.relative_to(keyset.directory).as_posix(),
            "subject": cert.subject.rfc4514_string(),
            "not_valid_after": cert.not_valid_after_utc.isoformat(),
            "spki_sha256": spki_sha256(ca_key.public_key()).hex(),
        }
    _write_new(keyset.key_manifest, manifest, 0o644)
    _write_new(
        keyset.inventory, (json.dumps(inventory, indent=2, sort_keys=True) + "\n").encode(), 0o644
    )
    return keyset


def _algorithm(key: PublicKey) -> str:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    return f"ecdsa-{key.curve.name}"


@dataclass(frozen=True)
class SigningKeyRotation:
    """What :func:`rotate_signing_key` changed."""

    old_key_hash: bytes
    new_key_hash: bytes
    old_counter: int
    new_counter: int
    archived_key: Path  # the previous firmware-signing private key, renamed
    archived_manifest: Path  # the previous key manifest, renamed


def rotate_signing_key(
    keys: KeySet, *, now: dt.datetime, passphrase: bytes | None = None, rot_slot: int = 0
) -> SigningKeyRotation:
    """Replace the Ed25519 firmware-signing key and issue a manifest with counter + 1.

    The new manifest certifies the new Ed25519 key and the current P-256 key,
    not the old Ed25519 key: once devices burn the new manifest counter, images
    signed by the old key are refused. The old key and manifest are kept,
    renamed ``firmware-signing.<counter>.key.pem`` / ``key-manifest.<counter>.bin``.
    """
    try:
        current = KeyManifest.parse(_read(keys.key_manifest, "key manifest"))
    except BootError as exc:
        raise KeyStoreError(f"{keys.key_manifest} is not a valid key manifest: {exc}") from exc
    rot_key = load_private_key(keys.rot_key(rot_slot), passphrase)
    if not isinstance(rot_key, ed25519.Ed25519PrivateKey):
        raise KeyStoreError(f"{keys.rot_key(rot_slot)} is not an Ed25519 root-of-trust key")
    old_pub = load_public_key(keys.firmware_signing_pub)
    p256_pub = load_public_key(keys.firmware_signing_p256_pub)
    old_counter = current.counter
    archived_key = keys.directory / f"firmware-signing.{old_counter}.key.pem"
    archived_pub = keys.directory / f"firmware-signing.{old_counter}.pub.pem"
    archived_manifest = keys.directory / f"key-manifest.{old_counter}.bin"
    for path in (archived_key, archived_pub, archived_manifest):
        if path.exists():
            raise KeyStoreError(f"{path} already exists; refusing to overwrite an archived key")
    new_key = ed25519.Ed25519PrivateKey.generate()
    manifest = build_key_manifest(
        rot_key=rot_key, signing_keys=[new_key.public_key(), p256_pub], counter=old_counter + 1
    )
    # Write the new material beside the old, then swap names.
    staged = {
        keys.firmware_signing_key: keys.directory / ".firmware-signing.key.pem.new",
        keys.firmware_signing_pub: keys.directory / ".firmware-signing.pub.pem.new",
        keys.key_manifest: keys.directory / ".key-manifest.bin.new",
    }
    for tmp in staged.values():
        tmp.unlink(missing_ok=True)
    write_private_key(staged[keys.firmware_signing_key], new_key, passphrase)
    _write_new(staged[keys.firmware_signing_pub], public_pem(new_key.public_key()), 0o644)
    _write_new(staged[keys.key_manifest], manifest, 0o644)
    os.replace(keys.firmware_signing_key, archived_key)
    os.replace(keys.firmware_signing_pub, archived_pub)
    os.replace(keys.key_manifest, archived_manifest)
    for final, tmp in staged.items():
        os.replace(tmp, final)

    inventory = json.loads(_read(keys.inventory, "inventory"))
    inventory["keys"]["firmware-signing"]["spki_sha256"] = spki_sha256(new_key.public_key()).hex()
    inventory["keys"][f"firmware-signing.{old_counter}"] = {
        "private": archived_key.name,
        "public": archived_pub.name,
        "algorithm": "ed25519",
        "spki_sha256": spki_sha256(old_pub).hex(),
        "retired": now.astimezone(dt.UTC).isoformat(),
    }
    inventory["key_manifest"]["counter"] = old_counter + 1
    tmp_inventory = keys.directory / ".keys.json.new"
    tmp_inventory.write_text(json.dumps(inventory, indent=2, sort_keys=True) + "\n")
    os.replace(tmp_inventory, keys.inventory)
    return SigningKeyRotation(
        old_key_hash=spki_sha256(old_pub),
        new_key_hash=spki_sha256(new_key.public_key()),
        old_counter=old_counter,
        new_counter=old_counter + 1,
        archived_key=archived_key,
        archived_manifest=archived_manifest,
    )
