"""The update server's TLS leaf certificate, issued from the vendor root CA.

Devices trust the vendor root (``K/vendor/root-ca.pem``, carried in the
firmware manifest as ``vendor_tls_root``) and check the host name, so the
server presents a leaf issued by that root for the names it serves:
ECDSA P-256, SAN ``localhost``/``127.0.0.1``/``::1`` (plus any extra names),
EKU serverAuth, at most 366 days (CA/B Forum BR 6.3.2 caps at 398).

:func:`issue_leaf` is pure (keys, names and ``now`` in, certificate out);
:func:`ensure_server_certificate` keeps one leaf in ``K/vendor/`` and
re-issues it when it is missing, close to expiry, or from another root.

Example::

    chain, key = ensure_server_certificate(Path("K"), now=datetime.now(UTC))
    ctx = common.tls.server_context(chain, key, profile="intermediate")
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootloader import keys
from common.atomicfile import write_atomic
from common.x509profile import key_usage

from .errors import ServerConfigError

LEAF_LIFETIME = dt.timedelta(days=366)
RENEW_BEFORE = dt.timedelta(days=30)
DEFAULT_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
LEAF_NAME = "update-server.pem"  # leaf + root, in K/vendor/
LEAF_KEY_NAME = "update-server.key.pem"


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue_leaf(
    *,
    public_key: ec.EllipticCurvePublicKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    names: Sequence[str],
    now: dt.datetime,
    lifetime: dt.timedelta = LEAF_LIFETIME,
) -> x509.Certificate:
    """A serverAuth leaf for ``names`` signed ECDSA-SHA256 by the vendor root."""
    if not names:
        raise ServerConfigError("a TLS leaf needs at least one host name")
    if lifetime > LEAF_LIFETIME:
        raise ServerConfigError(f"leaf lifetime {lifetime.days} days exceeds {LEAF_LIFETIME.days}")
    if not isinstance(public_key.curve, ec.SECP256R1):
        raise ServerConfigError("the update server's TLS key must be ECDSA P-256")
    start = now - dt.timedelta(minutes=5)  # tolerate small clock skew on clients
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "refcam"),
                    x509.NameAttribute(NameOID.COMMON_NAME, names[0]),
                ]
            )
        )
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(min(now + lifetime, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            key_usage(digital_signature=True),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    return builder.sign(ca_key, hashes.SHA256())


def _leaf_is_current(
    chain_path: Path, ca_cert: x509.Certificate, names: Sequence[str], now: dt.datetime
) -> bool:
    try:
        leaf = x509.load_pem_x509_certificates(chain_path.read_bytes())[0]
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, IndexError, x509.ExtensionNotFound):
        return False
    wanted = {_general_name(n) for n in names}
    return (
        leaf.issuer == ca_cert.subject
        and leaf.not_valid_after_utc - now > RENEW_BEFORE
        and wanted <= set(san)
    )



def ensure_server_certificate(
    keys_dir: Path,
    *,
    now: dt.datetime,
    names: Sequence[str] = DEFAULT_NAMES,
    passphrase: bytes | None = None,
) -> tuple[Path, Path]:
    """Return ``(chain, key)`` paths in ``K/vendor/``, issuing a new leaf when needed."""
    vendor = keys_dir / "vendor"
    chain_path, key_path = vendor / LEAF_NAME, vendor / LEAF_KEY_NAME
    ca_cert = keys.load_certificate(vendor / "root-ca.pem")
    if chain_path.exists() and key_path.exists() and _leaf_is_current(chain_path, ca_cert, names, now):
        return chain_path, key_path
    ca_key = keys.load_private_key(vendor / "root-ca.key.pem", passphrase)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ServerConfigError("the vendor root CA key must be ECDSA")
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_leaf(
        public_key=leaf_key.public_key(), ca_key=ca_key, ca_cert=ca_cert, names=names, now=now
    )
    pem_key = leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(
        serialization.Encoding.PEM
    )
    write_atomic(key_path, pem_key, mode=0o600)
    write_atomic(chain_path, chain)
    return chain_path, key_path
