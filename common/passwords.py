"""Initial passwords and slow password hashes, shared by provisioning and the runtime.

Initial passwords come from the OS CSPRNG (``secrets``), never from a serial
number or MAC address (EN 303 645 5.1-2). Passwords are stored only as scrypt
hashes in PHC string format::

    $scrypt$ln=15,r=8,p=1$<salt, base64>$<hash, base64>

Parameters: N = 2**15, r = 8, p = 1 (32 MiB of memory per hash, OWASP's
minimum for scrypt), 16-byte salt, 32-byte key. ``verify_password`` raises
:class:`InvalidPassword`; comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
import unicodedata

from common.errors import RefcamError

SCRYPT_LOG2_N = 15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
KEY_BYTES = 32
_MAXMEM = 64 * 2**20  # bytes; scrypt needs 128 * r * N = 32 MiB here

# Unambiguous alphabet for labels: no 0/O, 1/l/I.
_LOWER = "abcdefghijkmnopqrstuvwxyz"
_UPPER = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_DIGITS = "23456789"
_ALPHABET = _LOWER + _UPPER + _DIGITS
INITIAL_PASSWORD_GROUPS = 4
INITIAL_PASSWORD_GROUP_LEN = 5


class InvalidPassword(RefcamError):
    """The password does not match the stored hash."""


class PasswordHashFormatError(RefcamError):
    """A stored password hash is not a valid refcam scrypt PHC string."""


def generate_initial_password() -> str:
    """A label password such as ``k7QmZ-2xR9p-...``: 20 CSPRNG characters (~115 bits).

    Every group has lower, upper and digit characters available; the result
    always holds all three classes so it satisfies every policy profile.
    """
    while True:
        chars = [secrets.choice(_ALPHABET) for _ in range(INITIAL_PASSWORD_GROUPS * INITIAL_PASSWORD_GROUP_LEN)]
        if (
            any(c in _LOWER for c in chars)
            and any(c in _UPPER for c in chars)
            and any(c in string.digits for c in chars)
        ):
            break
    groups = [
        "".join(chars[i : i + INITIAL_PASSWORD_GROUP_LEN])
        for i in range(0, len(chars), INITIAL_PASSWORD_GROUP_LEN)
    ]
    return "-".join(groups)


LABEL_FOLD_CHARS = INITIAL_PASSWORD_GROUPS * INITIAL_PASSWORD_GROUP_LEN  # 20


def label_fold(password: str) -> str:
    """The form that simple variants of a label password share: NFKC, case-folded, letters
    and digits only (``k7QmZ-2xR9p`` and ``K7QMZ2XR9P!`` both give ``k7qmz2xr9p``).

    Provisioning stores a slow hash of the label's fold next to the label's own hash,
    so the device can refuse case changes, dropped dashes and appended ``!`` as a new
    password without ever holding the label password (NIST SP 800-63B 3.1.1.2).
    """
    return "".join(c for c in unicodedata.normalize("NFKC", password).casefold() if c.isalnum())


def label_fold_candidates(password: str) -> list[str]:
    """The folds of ``password`` worth comparing with a label fold: the whole fold if it has
    the label's length, and its first 20 characters if only digits follow them (``...1``)."""
    folded = label_fold(password)
    if len(folded) == LABEL_FOLD_CHARS:
        return [folded]
    if len(folded) > LABEL_FOLD_CHARS and folded[LABEL_FOLD_CHARS:].isdigit():
        return [folded[:LABEL_FOLD_CHARS]]
    return []


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=2**log2_n, r=r, p=p, maxmem=_MAXMEM, dklen=KEY_BYTES
    )


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = _scrypt(password, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
    return f"$scrypt$ln={SCRYPT_LOG2_N},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(key)}"


def _parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "scrypt":
        raise PasswordHashFormatError("stored password hash is not '$scrypt$ln=..,r=..,p=..$salt$hash'")
    try:
        params = dict(item.split("=", 1) for item in parts[2].split(","))
        log2_n, r, p = int(params["ln"]), int(params["r"]), int(params["p"])
        salt, key = _unb64(parts[3]), _unb64(parts[4])
    except (KeyError, ValueError) as exc:
        raise PasswordHashFormatError(f"stored password hash has bad parameters: {exc}") from exc
    if not (10 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16 and len(key) == KEY_BYTES):
        raise PasswordHashFormatError("stored password hash parameters are out of range")
    return log2_n, r, p, salt, key


def verify_password(password: str, encoded: str) -> None:
    """Raise :class:`InvalidPassword` unless ``password`` matches ``encoded``."""
    log2_n, r, p, salt, key = _parse(encoded)
    candidate = _scrypt(password, salt, log2_n, r, p)
    if not hmac.compare_digest(candidate, key):
        raise InvalidPassword("password does not match")


# A hash of a random password nobody knows: verifying against it costs the same
# as a real check, so an unknown user and a wrong password take the same time.
DUMMY_HASH = hash_password(secrets.token_urlsafe(24))
