"""Secrets sealed on flash under a device-unique key (AES-256-GCM).

ONVIF's WS-Security UsernameToken digest and HTTP/RTSP Digest (RFC 7616) both
need the password itself on the device: a slow hash cannot answer them. So next
to the scrypt hash the web login keeps using, each user's password is kept
*sealed*: encrypted under the ``protocol-secrets`` sealing key, which the
bootloader derives from the unique device secret (UDS) and hands only to
firmware it verified (``BootServices.derive_key``). Flash read out of the unit
gives ciphertext; the key never leaves the boot chain and the verified firmware.

The format is ``version (1) || nonce (12) || AES-GCM(ciphertext || tag)`` with
the user name in the associated data, so a sealed blob cannot be moved from one
user to another. Opening raises :class:`SealedSecretError`; it never returns a
wrong secret.

Example::

    blob = seal_secret(key, "admin", "label password")
    assert open_secret(key, "admin", blob) == "label password"
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import RefcamError

SEALED_SECRET_LABEL = "protocol-secrets"  # noqa: S105 - the sealing-key label (BootServices.derive_key)
_VERSION = b"\x01"
_NONCE = 12
_AAD_PREFIX = b"refcam protocol secret v1\x00"


class SealedSecretError(RefcamError):
    """A sealed secret does not open: wrong key, wrong user, or damaged bytes."""


def _aad(name: str) -> bytes:
    return _AAD_PREFIX + name.encode("utf-8")


def seal_secret(key: bytes, name: str, secret: str) -> bytes:
    """Encrypt ``secret`` for user ``name`` under the 32-byte sealing ``key``."""
    if len(key) != 32:
        raise SealedSecretError(f"sealing key must be 32 bytes, got {len(key)}")
    nonce = os.urandom(_NONCE)
    return _VERSION + nonce + AESGCM(key).encrypt(nonce, secret.encode("utf-8"), _aad(name))


def open_secret(key: bytes, name: str, sealed: bytes) -> str:
    """The secret sealed for ``name``; raises :class:`SealedSecretError` if it does not open."""
    if len(key) != 32:
        raise SealedSecretError(f"sealing key must be 32 bytes, got {len(key)}")
    if len(sealed) < 1 + _NONCE + 16 or sealed[:1] != _VERSION:
        raise SealedSecretError(f"sealed secret of {name!r} is damaged (bad length or version)")
    nonce, body = sealed[1 : 1 + _NONCE], sealed[1 + _NONCE :]
    try:
        plain = AESGCM(key).decrypt(nonce, body, _aad(name))
    except InvalidTag as exc:
        raise SealedSecretError(f"sealed secret of {name!r} does not open (wrong key, user or damaged)") from exc
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SealedSecretError(f"sealed secret of {name!r} is not UTF-8") from exc
