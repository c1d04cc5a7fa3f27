"""Device identities issued by the manufacturer's device CA.

At provisioning, each camera generates its own keys *on the device* and the
manufacturer's device CA (an intermediate under the manufacturer root)
certifies them. Nothing secret ever leaves the device state directory, and no
two units share a TLS key (EN 303 645 5.4-4, REQUIREMENTS row 12)::

    identity/tls.key.pem           ECDSA P-256 TLS key (0600)
    identity/tls.pem               TLS leaf + device CA certificate
    identity/manufacturer-root.pem the manufacturer root (trust anchor for clients)
    identity/deviceid.pem          DICE DeviceID certificate (see bootloader.dice)
    identity/stream.key.pem        Ed25519 stream-signing key (0600)
    identity/stream.pem            stream-signing certificate + device CA
    identity/stream-p256.key.pem   ECDSA P-256 stream-signing key, the option (0600)
    identity/stream-p256.pem       its certificate + device CA

The TLS leaf follows the CA/Browser Forum and Mozilla profile for server
certificates: subject ``CN=cam-<serial>.local, serialNumber=<serial>,
O=refcam``; SAN ``cam-<serial>.local``, ``localhost``, 127.0.0.1, ::1;
EKU serverAuth; at most 366 days of validity; a random 159-bit serial.
Clients check it with :func:`verify_tls_chain`, a strict WebPKI path
validation (cryptography's ``x509.verification``)::

    provision_identity(state / "data" / "identity", serial="RC1-0001", uds=uds,
                       bootloader_measurement=bl_digest, device_ca_key=ca_key,
                       device_ca_cert=ca_cert, root_cert=root, now=now)
    verify_tls_chain(chain_pem, root_pem=root_pem, hostname="localhost", now=now)

Stream-signing certificates carry a refcam extended key usage. refcam's
private OID arc is ``2.25.251625529071161775109625699256453891448``, a
UUID-derived OID (ITU-T X.667 / RFC 4122 section 1: anyone may allocate an
OID under 2.25 from a fresh UUID without registration); its sub-arc ``.1`` is
the ``refcam stream signing`` key purpose.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from bootloader.dice import derive_device_id
from common.atomicfile import write_atomic
from common.errors import BootloaderError, ProvisioningError
from common.x509profile import key_usage

REFCAM_OID_ARC: Final = "2.25.251625529071161775109625699256453891448"
STREAM_SIGNING_EKU: Final = x509.ObjectIdentifier(REFCAM_OID_ARC + ".1")

MAX_TLS_DAYS: Final = 366  # Mozilla Root Store Policy / the project's TLS profile
ORGANIZATION: Final = "refcam"
SERIAL_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,58}")  # "cam-<serial>" fits one DNS label

TLS_KEY: Final = "tls.key.pem"
TLS_CHAIN: Final = "tls.pem"
ROOT: Final = "manufacturer-root.pem"
DEVICE_ID: Final = "deviceid.pem"
STREAM_KEY: Final = "stream.key.pem"
STREAM_CERT: Final = "stream.pem"
STREAM_P256_KEY: Final = "stream-p256.key.pem"
STREAM_P256_CERT: Final = "stream-p256.pem"


class PKIError(BootloaderError):
    """A certificate or chain is not what the device PKI requires."""


def hostname_for(serial: str) -> str:
    """The device's mDNS host name, ``cam-<serial>.local``."""
    return f"cam-{serial}.local"


def _check_serial(serial: str) -> None:
    if not SERIAL_RE.fullmatch(serial):
        raise PKIError(
            f"device serial {serial!r} is not 1..59 letters, digits or '-' "
            "starting with a letter or digit"
        )


def _subject(serial: str, common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    *,
    subject: x509.Name,
    public_key: CertificatePublicKeyTypes,
    issuer_cert: x509.Certificate,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.CertificateBuilder:
    issuer_ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())  # 159 random bits (CA/B BR 7.1)
        .not_valid_before(not_before)
        .not_valid_after(min(not_after, issuer_cert.not_valid_after_utc))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski.value),
            critical=False,
        )
    )


def _check_issuer(device_ca_cert: x509.Certificate, now: dt.datetime) -> None:
    try:
        bc = device_ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        device_ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound as e:
        raise PKIError(f"device CA certificate lacks the {e.oid.dotted_string} extension") from e
    if not bc.ca:
        raise PKIError("device CA certificate is not a CA (basicConstraints CA:false)")
    if not device_ca_cert.not_valid_before_utc <= now < device_ca_cert.not_valid_after_utc:
        raise PKIError(
            f"device CA certificate is not valid at {now.isoformat()} "
            f"(valid {device_ca_cert.not_valid_before_utc.isoformat()} to "
            f"{device_ca_cert.not_valid_after_utc.isoformat()})"
        )


def issue_tls_certificate(
    *,
    serial: str,
    public_key: ec.EllipticCurvePublicKey,
    device_ca_key: ec.EllipticCurvePrivateKey,
    device_ca_cert: x509.Certificate,
    now: dt.datetime,
    days: int = 365,
    addresses: Sequence[str] = (),
) -> x509.Certificate:
    """The device's TLS server certificate, signed ECDSA-SHA256 by the device CA.

    ``addresses``: IP addresses the unit is reached at besides loopback (fleet mode
    assigns each unit its own 127.0.x.y), named in the certificate so clients verify it."""
    _check_serial(serial)
    if not 1 <= days <= MAX_TLS_DAYS:
        raise PKIError(f"TLS certificate validity of {days} days is outside 1..{MAX_TLS_DAYS}")
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise PKIError("device TLS key must be ECDSA P-256")
    _check_issuer(device_ca_cert, now)
    host = hostname_for(serial)
    builder = (
        _builder(
            subject=_subject(serial, host),
            public_key=public_key,
            issuer_cert=device_ca_cert,
            not_before=now,
            not_after=now + dt.timedelta(days=days),
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(host),
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                    *_extra_ips(addresses),
                ]
            ),
            critical=False,
        )
    )
    return builder.sign(device_ca_key, hashes.SHA256())


def _addresses_of(leaf: x509.Certificate) -> list[str]:
    """The IP addresses ``leaf`` names besides the loopback pair every leaf carries."""
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    always = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    return [str(ip) for ip in san.get_values_for_type(x509.IPAddress) if ip not in always]


def _extra_ips(addresses: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError as exc:
            raise PKIError(f"{address!r} is not an IP address for the TLS certificate") from exc
        if str(ip) not in ("127.0.0.1", "::1"):
            names.append(x509.IPAddress(ip))
    return names


def issue_device_id_certificate(
    *,
    serial: str,
    device_id_public_key: ec.EllipticCurvePublicKey,
    device_ca_key: ec.EllipticCurvePrivateKey,
    device_ca_cert: x509.Certificate,
    now: dt.datetime,
) -> x509.Certificate:
    """The DICE DeviceID certificate: a CA (pathlen 0) that certifies Alias keys."""
    _check_serial(serial)
    _check_issuer(device_ca_cert, now)
    builder = (
        _builder(
            subject=_subject(serial, f"refcam DeviceID {serial}"),
            public_key=device_id_public_key,
            issuer_cert=device_ca_cert,
            not_before=now,
            not_after=device_ca_cert.not_valid_after_utc,  # lives as long as the device CA
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(key_cert_sign=True), critical=True)
    )
    return builder.sign(device_ca_key, hashes.SHA256())


def issue_stream_certificate(
    *,
    serial: str,
    public_key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey,
    device_ca_key: ec.EllipticCurvePrivateKey,
    device_ca_cert: x509.Certificate,
    now: dt.datetime,
) -> x509.Certificate:
    """A stream-signing certificate (EKU :data:`STREAM_SIGNING_EKU`).

    It stays valid as long as the device CA, so recordings can be checked
    long after they were made.
    """
    _check_serial(serial)
    _check_issuer(device_ca_cert, now)
    builder = (
        _builder(
            subject=_subject(serial, f"cam-{serial} stream signing"),
            public_key=public_key,
            issuer_cert=device_ca_cert,
            not_before=now,
            not_after=device_ca_cert.not_valid_after_utc,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([STREAM_SIGNING_EKU]), critical=False)
    )
    return builder.sign(device_ca_key, hashes.SHA256())


# -- the device-side adapter: files in the identity directory --------------


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _private_pem(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, mode)  # not subject to the umask


def provision_identity(
    identity_dir: Path,
    *,
    serial: str,
    uds: bytes,
    bootloader_measurement: bytes,
    device_ca_key: ec.EllipticCurvePrivateKey,
    device_ca_cert: x509.Certificate,
    root_cert: x509.Certificate,
    now: dt.datetime,
    addresses: Sequence[str] = (),
) -> None:
    """Generate the device's keys in ``identity_dir`` and have the device CA certify them.

    Refuses (ProvisioningError) if the directory already holds an identity:
    a device is provisioned once; a new TLS leaf comes from
    :func:`renew_tls_certificate`.
    """
    _check_serial(serial)
    _check_issuer(device_ca_cert, now)
    try:
        device_ca_cert.verify_directly_issued_by(root_cert)
    except (ValueError, TypeError) as e:
        raise PKIError(f"device CA certificate is not issued by the manufacturer root: {e}") from e
    except InvalidSignature as e:
        raise PKIError("device CA certificate signature does not verify with the root") from e
    identity_dir.mkdir(parents=True, exist_ok=True)
    existing = [n for n in (TLS_KEY, STREAM_KEY, DEVICE_ID) if (identity_dir / n).exists()]
    if existing:
        raise ProvisioningError(
            f"{identity_dir} already holds a device identity ({', '.join(existing)})"
        )

    # Keys are generated here, on the device; only public keys go to the CA.
    tls_key = ec.generate_private_key(ec.SECP256R1())
    stream_key = ed25519.Ed25519PrivateKey.generate()
    stream_p256_key = ec.generate_private_key(ec.SECP256R1())
    device_id_public = derive_device_id(uds, bootloader_measurement).public_key()

    tls_leaf = issue_tls_certificate(
        serial=serial,
        public_key=tls_key.public_key(),
        device_ca_key=device_ca_key,
        device_ca_cert=device_ca_cert,
        now=now,
        addresses=addresses,
    )
    device_id_cert = issue_device_id_certificate(
        serial=serial,
        device_id_public_key=device_id_public,
        device_ca_key=device_ca_key,
        device_ca_cert=device_ca_cert,
        now=now,
    )
    stream_cert = issue_stream_certificate(
        serial=serial,
        public_key=stream_key.public_key(),
        device_ca_key=device_ca_key,
        device_ca_cert=device_ca_cert,
        now=now,
    )
    stream_p256_cert = issue_stream_certificate(
        serial=serial,
        public_key=stream_p256_key.public_key(),
        device_ca_key=device_ca_key,
        device_ca_cert=device_ca_cert,
        now=now,
    )
    _write_new(identity_dir / TLS_KEY, _private_pem(tls_key), 0o600)
    _write_new(identity_dir / STREAM_KEY, _private_pem(stream_key), 0o600)
    _write_new(identity_dir / STREAM_P256_KEY, _private_pem(stream_p256_key), 0o600)
    write_atomic(identity_dir / TLS_CHAIN, _pem(tls_leaf, device_ca_cert))
    write_atomic(identity_dir / ROOT, _pem(root_cert))
    write_atomic(identity_dir / DEVICE_ID, _pem(device_id_cert))
    write_atomic(identity_dir / STREAM_CERT, _pem(stream_cert, device_ca_cert))
    write_atomic(identity_dir / STREAM_P256_CERT, _pem(stream_p256_cert, device_ca_cert))


def _load_leaf(identity_dir: Path) -> x509.Certificate:
    try:
        certs = x509.load_pem_x509_certificates((identity_dir / TLS_CHAIN).read_bytes())
    except FileNotFoundError as e:
        raise PKIError(
            f"{identity_dir / TLS_CHAIN} does not exist: provision the device first"
        ) from e
    except ValueError as e:
        raise PKIError(f"{identity_dir / TLS_CHAIN} is not a PEM certificate chain") from e
    return certs[0]


def renew_tls_certificate(
    identity_dir: Path,
    *,
    device_ca_key: ec.EllipticCurvePrivateKey,
    device_ca_cert: x509.Certificate,
    now: dt.datetime,
    days: int = 365,
) -> x509.Certificate:
    """Issue a new TLS leaf for the device's existing key; replaces ``tls.pem`` atomically."""
    old = _load_leaf(identity_dir)
    serials = old.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    if not serials:
        raise PKIError("the current TLS certificate carries no device serial")
    try:
        key = serialization.load_pem_private_key((identity_dir / TLS_KEY).read_bytes(), None)
    except FileNotFoundError as e:
        raise PKIError(f"{identity_dir / TLS_KEY} does not exist") from e
    except (ValueError, TypeError) as e:
        raise PKIError(f"{identity_dir / TLS_KEY} is not an unencrypted PEM private key") from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PKIError(f"{identity_dir / TLS_KEY} is not an ECDSA key")
    if key.public_key() != old.public_key():
        raise PKIError("the TLS key does not match the current TLS certificate")
    leaf = issue_tls_certificate(
        serial=str(serials[0].value),
        public_key=key.public_key(),
        device_ca_key=device_ca_key,
        device_ca_cert=device_ca_cert,
        now=now,
        days=days,
        addresses=_addresses_of(old),  # a fleet unit keeps its own 127.0.x.y
    )
    write_atomic(identity_dir / TLS_CHAIN, _pem(leaf, device_ca_cert))
    return leaf


def verify_tls_chain(chain_pem: bytes, *, root_pem: bytes, hostname: str, now: dt.datetime) -> None:
    """Strict WebPKI validation of a server chain for ``hostname`` at ``now``.

    ``chain_pem`` is the leaf followed by its intermediates (``tls.pem``);
    ``hostname`` a DNS name or an IP address. Raises :class:`PKIError`.
    """
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
        roots = x509.load_pem_x509_certificates(root_pem)
    except ValueError as e:
        raise PKIError(f"not a PEM certificate chain: {e}") from e
    subject: x509.DNSName | x509.IPAddress
    try:
        subject = x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        subject = x509.DNSName(hostname)
    try:
        verifier = PolicyBuilder().store(Store(roots)).time(now).build_server_verifier(subject)
        verifier.verify(chain[0], chain[1:])
    except VerificationError as e:
        raise PKIError(
            f"TLS chain of {chain[0].subject.rfc4514_string()} does not validate "
            f"for {hostname} at {now.isoformat()}: {e}"
        ) from e
