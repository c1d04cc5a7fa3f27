"""Device cookies (OWASP "Slow Down Online Guessing Attacks with Device Cookies").

After a successful login the client gets a *device cookie* naming the user,
signed by the device: ``v1.<user>.<nonce>.<issued>.<mac>`` where ``<user>`` is
the URL-safe base64 of the UTF-8 user name, ``<nonce>`` 16 random bytes in
hex, ``<issued>`` seconds since the epoch and ``<mac>`` the URL-safe base64 of
``HMAC-SHA256(key, "refcam device cookie v1|<user>|<nonce>|<issued>")``. The
key is random, made once per device and kept in the user database (a factory
reset makes a new one, so old cookies stop counting).

A login that presents a valid device cookie *for the user it logs in as* is a
"trusted client": an account lockout caused by untrusted clients (an attacker
anywhere) does not stop it. It is itself limited per cookie (its nonce), so a
stolen cookie gives no more guesses than the owner has. These are pure
functions; the throttling state lives in ``credentials.CredentialStore``.

Example::

    cookie = issue_device_cookie(key, "admin", now=now)
    assert device_cookie_nonce(key, cookie, "admin", now=now, max_age=86400) is not None
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from .inputs import ascii_int

DEVICE_COOKIE = "refcam_device"
KEY_BYTES = 32
NONCE_BYTES = 16
_VERSION = "v1"
_LABEL = b"refcam device cookie v1|"
MAX_COOKIE_CHARS = 512


def new_device_key() -> bytes:
    return secrets.token_bytes(KEY_BYTES)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _mac(key: bytes, user: str, nonce: str, issued: str) -> str:
    message = _LABEL + f"{user}|{nonce}|{issued}".encode("ascii")
    return _b64(hmac.new(key, message, hashlib.sha256).digest())


def issue_device_cookie(key: bytes, username: str, *, now: float) -> str:
    """A new device cookie for ``username`` (a fresh nonce each time)."""
    user = _b64(username.encode("utf-8"))
    nonce = secrets.token_hex(NONCE_BYTES)
    issued = str(int(now))
    return ".".join((_VERSION, user, nonce, issued, _mac(key, user, nonce, issued)))


def device_cookie_nonce(
    key: bytes, cookie: str | None, username: str, *, now: float, max_age: float
) -> str | None:
    """The cookie's nonce if it is genuine, for ``username`` and not older than ``max_age`` s.

    Anything else (absent, malformed, forged, another user's, expired) is None:
    the login is then an untrusted one, never an error.
    """
    if not cookie or len(cookie) > MAX_COOKIE_CHARS or not cookie.isascii():
        return None
    parts = cookie.split(".")
    if len(parts) != 5 or parts[0] != _VERSION:
        return None
    _, user, nonce, issued, mac = parts
    issued_at = ascii_int(issued)
    if issued_at is None or len(nonce) != 2 * NONCE_BYTES:
        return None
    if not hmac.compare_digest(_mac(key, user, nonce, issued).encode("ascii"), mac.encode("ascii")):
        return None
    try:
        named = base64.urlsafe_b64decode(user + "=" * (-len(user) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if not hmac.compare_digest(named.encode("utf-8"), username.encode("utf-8")):
        return None
    if not issued_at <= now + 60 or now - issued_at > max_age:  # a minute of clock skew
        return None
    return nonce
