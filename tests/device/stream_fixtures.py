"""Test PKI and helpers for the stream tests: root -> device CA -> stream cert, generated per run.

Nothing here is written into the repository; keys live in memory or in the
test's tmp_path (mode 0600).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootloader import pki
from bootloader.keys import make_ca_certificate
from device.stream.signing import FrameHash, StreamSigner

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def _name(cn: str, serial: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "refcam test")]
    if serial is not None:
        attributes.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(
    subject: str,
    public_key: object,
    issuer: x509.Certificate | str,
    issuer_key: object,
    *,
    ca: bool,
    path_length: int | None = None,
    days: int = 365,
    not_before: dt.datetime | None = None,
    ip_san: str | None = None,
    serial: str | None = None,
) -> x509.Certificate:
    start = not_before or NOW - dt.timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject, serial))
        .issuer_name(issuer.subject if isinstance(issuer, x509.Certificate) else _name(issuer))
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)  # type: ignore[arg-type]
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),  # type: ignore[attr-defined]
            critical=False,
        )
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    else:
        usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    builder = builder.add_extension(usage, critical=True)
    if ip_san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip_san))]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())  # type: ignore[arg-type]


@dataclass(frozen=True)
class StreamPKI:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    ca: x509.Certificate

    def stream_signer(
        self, *, algorithm: str = "ed25519", device: str = "RCTEST000001", frame_hash: FrameHash = "sha256"
    ) -> StreamSigner:
        """A stream key with the certificate provisioning issues (bootloader.pki), chain = leaf + device CA."""
        key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
        key = ed25519.Ed25519PrivateKey.generate() if algorithm == "ed25519" else ec.generate_private_key(ec.SECP256R1())
        cert = pki.issue_stream_certificate(
            serial=device, public_key=key.public_key(), device_ca_key=self.ca_key, device_ca_cert=self.ca, now=NOW
        )
        return StreamSigner(key, [cert, self.ca], device=device, frame_hash=frame_hash)

    def tls_server(self, directory: Path) -> tuple[Path, Path]:
        """A TLS leaf for 127.0.0.1 issued by the device CA: (chain PEM, key PEM) files."""
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = issue("127.0.0.1", key.public_key(), self.ca, self.ca_key, ca=False, ip_san="127.0.0.1")
        chain, key_path = directory / "tls.pem", directory / "tls.key.pem"
        chain.write_bytes(pem(leaf) + pem(self.ca))
        key_path.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        os.chmod(key_path, 0o600)
        return chain, key_path


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki() -> StreamPKI:
    """Manufacturer root -> device CA, made with the same code as ``refcam keys init``."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    start = NOW - dt.timedelta(days=1)
    root = make_ca_certificate(
        key=root_key, common_name="manufacturer root", now=start, lifetime=dt.timedelta(days=3650), path_length=1
    )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_ca_certificate(
        key=ca_key, common_name="device CA", now=start, lifetime=dt.timedelta(days=1825), path_length=0,
        issuer_key=root_key, issuer_cert=root,
    )
    return StreamPKI(root_key, root, ca_key, ca)


def device_stream_signer(device_ca_key: ec.EllipticCurvePrivateKey, device_ca_cert: x509.Certificate) -> StreamSigner:
    """An Ed25519 stream signer certified by a given device CA (e.g. the conftest device PKI's)."""
    key = ed25519.Ed25519PrivateKey.generate()
    cert = pki.issue_stream_certificate(
        serial="RCTEST000001",
        public_key=key.public_key(),
        device_ca_key=device_ca_key,
        device_ca_cert=device_ca_cert,
        now=device_ca_cert.not_valid_before_utc,
    )
    return StreamSigner(key, [cert, device_ca_cert], device="RCTEST000001")
