"""Certificate path validation: the one implementation every signed-artefact check uses.

Path building and the RFC 5280 checks (each signature, validity at ``now``,
basicConstraints and pathLenConstraint, keyCertSign on issuers, no
unprocessed critical extension, the chain depth) are cryptography's own
verifier (``cryptography.x509.verification.PolicyBuilder``, the Rust
implementation also behind ``verify_tls_chain``), with its WebPKI profile for
the CA certificates. The end entity's profile is refcam's, not WebPKI's (a
stream key or a DICE Alias key is neither a TLS server nor a TLS client): it
must not be a CA, and after path validation its KeyUsage and ExtendedKeyUsage
are checked explicitly against the purpose the caller names, as
sigstore-python checks a Fulcio leaf (``sigstore/verify/verifier.py``).

The purpose check is what keeps keys in their lane: the TLS key cannot sign a
stream, the stream key cannot sign attestation evidence. Both
:mod:`bootloader.attestation` and ``refcam.streamverify`` call this::

    chain = verify_certificate_chain(
        leaf, intermediates, trust_root=root, now=now, purpose=STREAM_SIGNING_EKU
    )   # [leaf, ..., root], or raises CertificateChainError
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

from cryptography import x509
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from common.errors import BootloaderError

MAX_CHAIN_DEPTH: Final = 4  # intermediates between a leaf and the root (refcam's deepest: Alias <- DeviceID <- device CA)


class CertificateChainError(BootloaderError):
    """A certificate chain does not lead to the trust root, or its leaf is not issued for the purpose."""


def _name(cert: x509.Certificate) -> str:
    common_names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return repr(str(common_names[0].value)) if common_names else cert.subject.rfc4514_string()


def _leaf_is_not_a_ca(
    _policy: verification.Policy, cert: x509.Certificate, value: x509.BasicConstraints | None
) -> None:
    # RFC 5280 4.2.1.9: a certificate that signs data, not certificates, is no CA.
    if value is not None and value.ca:
        raise ValueError(f"the signing certificate {_name(cert)} is a CA")


def _verifier(trust_root: x509.Certificate, now: dt.datetime) -> verification.ClientVerifier:
    ee_policy = verification.ExtensionPolicy.permit_all().may_be_present(
        x509.BasicConstraints, verification.Criticality.AGNOSTIC, _leaf_is_not_a_ca
    )
    return (
        verification.PolicyBuilder()
        .store(verification.Store([trust_root]))
        .time(now)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=ee_policy)
        .build_client_verifier()
    )


def verify_certificate_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    *,
    trust_root: x509.Certificate,
    now: dt.datetime,
    purpose: x509.ObjectIdentifier,
) -> list[x509.Certificate]:
    """Validate ``leaf`` up to ``trust_root`` at ``now`` for ``purpose`` (an EKU OID).

    Returns the validated chain, leaf first, root last. Raises
    :class:`CertificateChainError` saying what failed.
    """
    try:
        chain = _verifier(trust_root, now).verify(leaf, list(intermediates)).chain
    except verification.VerificationError as e:
        raise CertificateChainError(f"certificate chain does not lead to the trusted root: {e}") from e
    # The leaf's purpose, checked explicitly after path validation (the EE policy above is permissive).
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateChainError(f"the signing certificate {_name(leaf)} has no key usage") from None
    if not usage.digital_signature:
        raise CertificateChainError(f"the signing certificate {_name(leaf)} key usage lacks digitalSignature")
    try:
        purposes = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        purposes = None
    if purposes is None or purpose not in purposes:
        found = "none" if purposes is None else ", ".join(p.dotted_string for p in purposes)
        raise CertificateChainError(
            f"the signing certificate {_name(leaf)} is not issued for this purpose: extended key usage "
            f"{found}, expected {purpose.dotted_string}"
        )
    return list(chain)
