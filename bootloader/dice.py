"""DICE-style layered identity (TCG "Hardware Requirements for a Device Identifier
Composition Engine", DICE).

The device holds a Unique Device Secret (UDS) that only the boot ROM can
read. Each layer derives the next layer's Compound Device Identifier (CDI)
from its own CDI and the measurement of the code it is about to run, with
HKDF-SHA256 (RFC 5869)::

    CDI_L0   = HKDF(IKM=UDS,    salt=bootloader measurement, info="refcam DICE CDI_L0")
    DeviceID = ECDSA P-256, d = HKDF(IKM=CDI_L0, salt=none, info="refcam DeviceID", 40 bytes) mod (n-1) + 1
    CDI_L1   = HKDF(IKM=CDI_L0, salt=firmware measurement,   info="refcam DICE CDI_L1")
    Alias    = Ed25519(HKDF(IKM=CDI_L1, salt=none, info="refcam DICE Alias"))
    Sealing  = HKDF(IKM=UDS, salt=none, info="refcam sealing key: " + label)

So the DeviceID key is stable across firmware updates (it changes only with
the bootloader), and the Alias key changes with every different firmware: a
tampered firmware can never sign with the alias key of the genuine one. The
measurements are the image digests (SHA-256 hash TLV values).

At provisioning the manufacturer's device CA certifies the DeviceID public
key (:func:`bootloader.pki.provision_identity`); at each boot the bootloader
certifies the Alias key with the DeviceID key (:func:`issue_alias_certificate`)
and puts the firmware measurement into the alias certificate as a TCG
``DiceTcbInfo`` extension (OID 2.23.133.5.4.1, TCG "DICE Attestation
Architecture" 6.1.1), carrying ``version``, ``svn``, ``layer`` and one
``fwids`` entry (SHA-256). The firmware then signs attestation evidence with
the Alias key (:class:`bootloader.attestation.DiceAttester`).

The alias certificate's extended key usage is the TCG DICE key purpose
``tcg-dice-kp-attestLoc`` (2.23.133.5.4.100.9, TCG "DICE Certificate
Profiles": a key that signs local attestation evidence), so no relying party
takes it for a TLS or general-purpose key, and the verifier demands exactly
that purpose (:mod:`bootloader.x509verify`). DiceTcbInfo is marked
non-critical: the TCG says it SHOULD be critical for the same reason, but
the EKU already does that job, and a critical extension that cryptography's
path validator does not know would make every chain unverifiable with it.
The verifier requires the extension and checks it after path validation::

    alias = derive_alias(uds, bl_digest, fw_digest)
    cert = issue_alias_certificate(device_id_key=derive_device_id(uds, bl_digest),
                                   device_id_cert=deviceid, alias_public_key=alias.public_key(),
                                   firmware_measurement=fw_digest, now=now)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

from common.errors import AttestationError
from common.x509profile import key_usage

CDI_SIZE = 32  # bytes
INFO_CDI_L0 = b"refcam DICE CDI_L0"
INFO_DEVICE_ID = b"refcam DeviceID"
INFO_CDI_L1 = b"refcam DICE CDI_L1"
INFO_ALIAS = b"refcam DICE Alias"

TCG_DICE_TCB_INFO = x509.ObjectIdentifier("2.23.133.5.4.1")  # TCG DICE TcbInfo
TCG_DICE_KP_ATTEST_LOC = x509.ObjectIdentifier("2.23.133.5.4.100.9")  # tcg-dice-kp-attestLoc
SHA256_OID_DER = bytes.fromhex("0609608648016503040201")  # OID 2.16.840.1.101.3.4.2.1
ALIAS_VALIDITY = dt.timedelta(days=365)
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # n, FIPS 186-5 / SEC 2
DEVICE_ID_SEED = 40  # bytes: 256 + 64 bits (FIPS 186-5 A.2.1)


def _hkdf(ikm: bytes, *, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=CDI_SIZE, salt=salt, info=info).derive(ikm)


def _check(name: str, value: bytes, size: int) -> None:
    if len(value) < size:
        raise ValueError(f"{name} must be at least {size} bytes, got {len(value)}")


def cdi_l0(uds: bytes, bootloader_measurement: bytes) -> bytes:
    _check("UDS", uds, 32)
    _check("bootloader measurement", bootloader_measurement, 32)
    return _hkdf(uds, salt=bootloader_measurement, info=INFO_CDI_L0)


INFO_SEALING = b"refcam sealing key: "
SEALING_LABELS = frozenset({"audit-log", "protocol-secrets"})  # the keys firmware may ask for (BootServices.derive_key)


def derive_sealing_key(uds: bytes, label: str) -> bytes:
    """A 32-byte device-unique key for ``label``: HKDF(IKM=UDS, salt=none, info="refcam sealing key: " + label).

    Like the sealing CDI of Open Profile for DICE, it does not depend on the
    firmware measurement, so data it protects (the audit log's MAC chain)
    survives a firmware update; the bootloader hands it only to firmware it has
    verified, through ``BootServices.derive_key``. Unknown labels raise.
    """
    _check("UDS", uds, 32)
    if label not in SEALING_LABELS:
        raise AttestationError(f"no sealing key labelled {label!r}; labels are {sorted(SEALING_LABELS)}")
    return _hkdf(uds, salt=None, info=INFO_SEALING + label.encode("ascii"))


def derive_device_id(uds: bytes, bootloader_measurement: bytes) -> ec.EllipticCurvePrivateKey:
    """The DeviceID key: a function of the UDS and the bootloader only.

    ECDSA P-256, because the DeviceID is a CA (it certifies each boot's
    Alias key) and certificate path validators, cryptography's included,
    accept P-256 issuers but not Ed25519 ones. The scalar is derived as in
    FIPS 186-5 A.2.1 (64 extra bits, then reduced into 1..n-1), so it is
    uniform and reproducible from CDI_L0.
    """
    okm = HKDF(
        algorithm=hashes.SHA256(), length=DEVICE_ID_SEED, salt=None, info=INFO_DEVICE_ID
    ).derive(cdi_l0(uds, bootloader_measurement))
    scalar = int.from_bytes(okm, "big") % (P256_ORDER - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def derive_alias(
    uds: bytes, bootloader_measurement: bytes, firmware_measurement: bytes
) -> Ed25519PrivateKey:
    """The Alias key: a function of the UDS, the bootloader and the firmware."""
    _check("firmware measurement", firmware_measurement, 32)
    cdi1 = _hkdf(cdi_l0(uds, bootloader_measurement), salt=firmware_measurement, info=INFO_CDI_L1)
    return Ed25519PrivateKey.from_private_bytes(_hkdf(cdi1, salt=None, info=INFO_ALIAS))


# -- TCG DiceTcbInfo (DER), the subset refcam writes -----------------------
#
# DiceTcbInfo ::= SEQUENCE {
#     vendor  [0] IMPLICIT UTF8String OPTIONAL,
#     model   [1] IMPLICIT UTF8String OPTIONAL,
#     version [2] IMPLICIT UTF8String OPTIONAL,     -- written
#     svn     [3] IMPLICIT INTEGER OPTIONAL,        -- written (security counter)
#     layer   [4] IMPLICIT INTEGER OPTIONAL,        -- written (1 = firmware)
#     index   [5] IMPLICIT INTEGER OPTIONAL,
#     fwids   [6] IMPLICIT FWIDLIST OPTIONAL,       -- written, one SHA-256 FWID
#     ... }
# FWID ::= SEQUENCE { hashAlg OBJECT IDENTIFIER, digest OCTET STRING }

_SEQUENCE = 0x30
_OCTET_STRING = 0x04
_CTX_VENDOR, _CTX_MODEL, _CTX_VERSION = 0x80, 0x81, 0x82
_CTX_SVN, _CTX_LAYER = 0x83, 0x84
_CTX_FWIDS = 0xA6  # constructed, context tag 6
_TAG_ORDER = {
    0x80: 0,
    0x81: 1,
    0x82: 2,
    0x83: 3,
    0x84: 4,
    0x85: 5,
    0xA6: 6,
    0x87: 7,
    0x88: 8,
    0x89: 9,
}


@dataclass(frozen=True)
class TcbInfo:
    """The fields of a DiceTcbInfo extension that refcam reads and writes."""

    fwid_sha256: bytes
    version: str | None = None
    svn: int | None = None
    layer: int | None = None


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _der_uint(value: int) -> bytes:
    if value < 0:
        raise ValueError("DiceTcbInfo integers must not be negative")
    return value.to_bytes(value.bit_length() // 8 + 1, "big")  # leading 0 keeps it positive


def encode_tcb_info(info: TcbInfo) -> bytes:
    parts = []
    if info.version is not None:
        parts.append(_der(_CTX_VERSION, info.version.encode("utf-8")))
    if info.svn is not None:
        parts.append(_der(_CTX_SVN, _der_uint(info.svn)))
    if info.layer is not None:
        parts.append(_der(_CTX_LAYER, _der_uint(info.layer)))
    fwid = _der(_SEQUENCE, SHA256_OID_DER + _der(_OCTET_STRING, info.fwid_sha256))
    parts.append(_der(_CTX_FWIDS, fwid))
    return _der(_SEQUENCE, b"".join(parts))


def _read_tlv(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER TLV at ``pos``: (tag, content, next position). Strict DER lengths."""
    if pos + 2 > len(data):
        raise AttestationError("DiceTcbInfo is truncated")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise AttestationError("DiceTcbInfo has a bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        if length < 0x80 or data[pos] == 0:
            raise AttestationError("DiceTcbInfo length is not minimally encoded (DER)")
        pos += count
    if pos + length > len(data):
        raise AttestationError("DiceTcbInfo is truncated")
    return tag, data[pos : pos + length], pos + length


def _parse_uint(content: bytes) -> int:
    if (
        not content
        or content[0] & 0x80
        or (len(content) > 1 and content[0] == 0 and not content[1] & 0x80)
    ):
        raise AttestationError("DiceTcbInfo integer is negative or not minimally encoded")
    return int.from_bytes(content, "big")


def decode_tcb_info(data: bytes) -> TcbInfo:
    """Parse a DiceTcbInfo; requires exactly one SHA-256 FWID. Raises AttestationError."""
    tag, body, end = _read_tlv(data, 0)
    if tag != _SEQUENCE or end != len(data):
        raise AttestationError("DiceTcbInfo is not a single DER SEQUENCE")
    fields: dict[int, bytes] = {}
    pos, last = 0, -1
    while pos < len(body):
        tag, content, pos = _read_tlv(body, pos)
        order = _TAG_ORDER.get(tag)
        if order is None or order <= last:
            raise AttestationError(f"DiceTcbInfo has an unexpected field (tag 0x{tag:02x})")
        last = order
        fields[tag] = content
    if _CTX_FWIDS not in fields:
        raise AttestationError("DiceTcbInfo carries no fwids")
    fwids, pos = [], 0
    fwid_list = fields[_CTX_FWIDS]
    while pos < len(fwid_list):
        tag, fwid, pos = _read_tlv(fwid_list, pos)
        if tag != _SEQUENCE or not fwid.startswith(SHA256_OID_DER):
            raise AttestationError("DiceTcbInfo FWID is not a SHA-256 FWID")
        tag, digest, end = _read_tlv(fwid, len(SHA256_OID_DER))
        if tag != _OCTET_STRING or end != len(fwid) or len(digest) != 32:
            raise AttestationError("DiceTcbInfo FWID digest is not a 32-byte OCTET STRING")
        fwids.append(digest)
    if len(fwids) != 1:
        raise AttestationError(f"DiceTcbInfo carries {len(fwids)} fwids, expected 1")
    version = None
    if _CTX_VERSION in fields:
        try:
            version = fields[_CTX_VERSION].decode("utf-8")
        except UnicodeDecodeError as e:
            raise AttestationError("DiceTcbInfo version is not UTF-8") from e
    svn = _parse_uint(fields[_CTX_SVN]) if _CTX_SVN in fields else None
    layer = _parse_uint(fields[_CTX_LAYER]) if _CTX_LAYER in fields else None
    return TcbInfo(fwid_sha256=fwids[0], version=version, svn=svn, layer=layer)


def alias_tcb_info(cert: x509.Certificate) -> TcbInfo:
    """The DiceTcbInfo of an alias certificate; raises AttestationError if absent."""
    try:
        ext = cert.extensions.get_extension_for_oid(TCG_DICE_TCB_INFO)
    except x509.ExtensionNotFound as e:
        raise AttestationError(
            "alias certificate has no DiceTcbInfo extension (2.23.133.5.4.1)"
        ) from e
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise AttestationError("alias certificate DiceTcbInfo extension is not understood")
    return decode_tcb_info(value.value)


# -- certificates -----------------------------------------------------------


def serial_attribute(name: x509.Name) -> str | None:
    attrs = name.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return str(attrs[0].value) if attrs else None


def issue_alias_certificate(
    *,
    device_id_key: ec.EllipticCurvePrivateKey,
    device_id_cert: x509.Certificate,
    alias_public_key: Ed25519PublicKey,
    firmware_measurement: bytes,
    now: dt.datetime,
    firmware_version: str | None = None,
    security_counter: int | None = None,
) -> x509.Certificate:
    """The bootloader certifies this boot's Alias key with the DeviceID key.

    The certificate carries the firmware measurement in a TCG DiceTcbInfo
    extension and the ``tcg-dice-kp-attestLoc`` key purpose, so no relying
    party can mistake the alias key for a general-purpose one (module
    docstring: why the purpose, not the criticality, does that).
    """
    if len(firmware_measurement) != 32:
        raise ValueError("firmware measurement must be a 32-byte SHA-256 digest")
    issuer_ski = device_id_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    serial = serial_attribute(device_id_cert.subject)
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "refcam")]
    if serial is not None:
        attrs.append(x509.NameAttribute(NameOID.SERIAL_NUMBER, serial))
    attrs.append(
        x509.NameAttribute(NameOID.COMMON_NAME, f"refcam Alias {firmware_measurement[:8].hex()}")
    )
    not_after = min(now + ALIAS_VALIDITY, device_id_cert.not_valid_after_utc)
    tcb = TcbInfo(
        fwid_sha256=firmware_measurement,
        version=firmware_version,
        svn=security_counter,
        layer=1,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(device_id_cert.subject)
        .public_key(alias_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            key_usage(digital_signature=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(alias_public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski.value),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([TCG_DICE_KP_ATTEST_LOC]), critical=False)
        .add_extension(
            x509.UnrecognizedExtension(TCG_DICE_TCB_INFO, encode_tcb_info(tcb)), critical=False
        )
    )
    return builder.sign(device_id_key, algorithm=hashes.SHA256())

