"""X.509 extension values shared by every certificate refcam issues."""

from __future__ import annotations

from cryptography import x509


def key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    """A KeyUsage with only the named bits set (leaf: digital_signature; CA: key_cert_sign)."""
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
