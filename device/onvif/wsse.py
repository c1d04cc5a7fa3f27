"""WS-Security UsernameToken with PasswordDigest (OASIS WSS UsernameToken Profile 1.0, ONVIF Core 5.12.2).

A pure core, time as an argument:

* :func:`parse_username_token` reads ``wsse:Security/wsse:UsernameToken`` from
  a SOAP header and raises :class:`~.errors.OnvifFault` (``ter:NotAuthorized``)
  on anything it cannot accept: no token, ``PasswordText`` (the password
  itself on the wire), a nonce or Created that is missing or malformed.
* :class:`ReplayGuard` refuses a Created more than ``window`` seconds away
  from ``now`` (stale or from the future) and a nonce seen before. Its memory
  is bounded: when it evicts a nonce, every token created at or before that
  nonce's Created is refused from then on, so eviction never opens a replay.
* :func:`password_digest` is ``Base64(SHA-1(nonce + created + password))``
  (WSS UsernameToken Profile 1.0, 3.1); the caller checks it against the
  user's unsealed secret through ``CredentialStore.authenticate_proof``::

    token = parse_username_token(envelope.header)
    guard.check(token, now=now)          # raises ReplayRefused / StaleToken
    user = store.authenticate_proof(token.username, token.matches, source=..., now=now, route="onvif")
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
from collections import OrderedDict
from dataclasses import dataclass

from lxml import etree

from .errors import OnvifFault, not_authorized
from .soap import NS

_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_DIGEST = _PROFILE + "#PasswordDigest"
PASSWORD_TEXT = _PROFILE + "#PasswordText"
MAX_NONCE = 128  # bytes of a decoded nonce
MIN_NONCE = 8


class TokenRefused(OnvifFault):
    """A UsernameToken refused before any password check (replayed or stale); audited."""

    def __init__(self, reason: str, *, kind: str) -> None:
        super().__init__("Sender", ("NotAuthorized",), reason)
        self.kind = kind  # "replay" or "stale"


@dataclass(frozen=True)
class UsernameToken:
    username: str
    digest: bytes  # the decoded PasswordDigest
    nonce: bytes
    created_text: str  # exactly as sent: it is hashed as text
    created: float  # seconds since the epoch

    def matches(self, password: str) -> bool:
        """Whether the digest was computed from ``password`` (constant time)."""
        return hmac.compare_digest(self.digest, password_digest(self.nonce, self.created_text, password))


def password_digest(nonce: bytes, created: str, password: str) -> bytes:
    """``SHA-1(nonce + created + password)`` (WSS UsernameToken Profile 1.0, 3.1)."""
    return hashlib.sha1(nonce + created.encode("utf-8") + password.encode("utf-8")).digest()  # noqa: S324 - the profile's digest


def parse_created(text: str) -> float:
    """An ``xsd:dateTime`` in UTC (``Z`` or an offset) as seconds since the epoch."""
    value = text.strip()
    if len(value) > 40:
        raise ValueError("Created is too long")
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("Created has no time zone")
    return parsed.timestamp()


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise not_authorized(f"UsernameToken {what} is not base64") from exc


# Precompiled (ONVIF authenticates every request: no path is compiled per call).
_SECURITY = f"{{{NS['wsse']}}}Security"
_USERNAME_TOKEN = f"{{{NS['wsse']}}}UsernameToken"
_USERNAME = f"{{{NS['wsse']}}}Username"
_PASSWORD = f"{{{NS['wsse']}}}Password"
_NONCE = f"{{{NS['wsse']}}}Nonce"
_CREATED = f"{{{NS['wsu']}}}Created"
_WSSE_CREATED = f"{{{NS['wsse']}}}Created"  # some clients put Created in the wsse namespace
_FIELDS = frozenset({_USERNAME, _PASSWORD, _NONCE, _CREATED, _WSSE_CREATED})


def _fields(token: etree._Element) -> dict[str, etree._Element]:
    """The first child of each UsernameToken field (one walk over the children)."""
    found: dict[str, etree._Element] = {}
    for child in token:
        tag = child.tag
        if tag in _FIELDS and tag not in found:
            found[tag] = child
    return found


def _text(element: etree._Element | None) -> str | None:
    """An element's text (``""`` when empty), like ``findtext``; None when there is no element."""
    return None if element is None else str(element.text or "")


def parse_username_token(header: etree._Element | None) -> UsernameToken | None:
    """The token of ``wsse:Security`` in ``header``; None when the header carries none."""
    if header is None:
        return None
    tokens = [t for security in header if security.tag == _SECURITY for t in security if t.tag == _USERNAME_TOKEN]
    if not tokens:
        return None
    if len(tokens) > 1:
        raise not_authorized("more than one UsernameToken; send one")
    fields = _fields(tokens[0])
    username = _text(fields.get(_USERNAME))
    password = fields.get(_PASSWORD)
    nonce = _text(fields.get(_NONCE))
    created = _text(fields.get(_CREATED))
    if created is None:
        created = _text(fields.get(_WSSE_CREATED))
    if not username or password is None:
        raise not_authorized("UsernameToken lacks Username or Password")
    kind = password.get("Type", PASSWORD_TEXT)
    if kind != PASSWORD_DIGEST:
        raise not_authorized("UsernameToken PasswordText is not accepted; send PasswordDigest with Nonce and Created")
    if not nonce or not created:
        raise not_authorized("UsernameToken PasswordDigest needs Nonce and Created")
    nonce_bytes = _b64(nonce, "Nonce")
    if not MIN_NONCE <= len(nonce_bytes) <= MAX_NONCE:
        raise not_authorized(f"UsernameToken Nonce must be {MIN_NONCE}..{MAX_NONCE} bytes")
    digest = _b64(password.text or "", "PasswordDigest")
    try:
        created_at = parse_created(created)
    except (ValueError, OverflowError) as exc:
        raise not_authorized(f"UsernameToken Created {created[:40]!r} is not an xsd:dateTime with a time zone") from exc
    return UsernameToken(username.strip(), digest, nonce_bytes, created.strip(), created_at)


class ReplayGuard:
    """Refuses stale and replayed UsernameTokens; remembers at most ``memory`` nonces."""

    def __init__(self, *, window: float = 300.0, memory: int = 4096, unsafe_no_replay_check: bool = False) -> None:
        self.window = window  # seconds either side of the device clock
        self._memory = memory
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._floor = float("-inf")  # tokens created at or before this are refused (evicted memory)
        self._unsafe = unsafe_no_replay_check  # the ``wsse-replay`` flaw profile

    def check(self, token: UsernameToken, *, now: float) -> None:
        """Raise :class:`TokenRefused` unless ``token`` is fresh and new; remember its nonce."""
        if self._unsafe:  # UNSAFE flaw profile: neither Created nor the nonce is checked
            return
        if abs(now - token.created) > self.window:
            raise TokenRefused(
                f"UsernameToken Created is {now - token.created:+.0f} s from the device clock "
                f"(allowed +-{self.window:.0f} s); synchronise with GetSystemDateAndTime",
                kind="stale",
            )
        while self._seen:  # forget what the window already refuses (oldest first, no copy)
            nonce, created = next(iter(self._seen.items()))
            if created >= now - self.window:
                break
            del self._seen[nonce]
        key = hashlib.sha256(token.nonce).digest()
        if key in self._seen or token.created <= self._floor:
            raise TokenRefused("UsernameToken nonce was already used (replay)", kind="replay")
        self._seen[key] = token.created
        while len(self._seen) > self._memory:
            _, evicted = self._seen.popitem(last=False)
            self._floor = max(self._floor, evicted)
