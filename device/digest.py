"""HTTP Digest access authentication (RFC 7616), for HTTP and RTSP alike.

The device side of Digest, as a pure core with time as an argument:

* :func:`parse_authorization` reads an ``Authorization: Digest ...`` value
  (RFC 7616 section 3.4, auth-params with quoted-string escapes) and raises
  :class:`DigestError` on anything malformed or unsupported (``userhash``,
  ``auth-int``, no ``qop``).
* :class:`DigestAuthority` issues challenges and checks responses. Its nonces
  are stateless and unforgeable: ``base64url(time || random || HMAC(key, time
  || random)[:16])``; a nonce older than ``nonce_lifetime`` is *stale* (the
  client is challenged again with ``stale=true``). Each nonce's ``nc`` must
  strictly increase, so a captured response replayed as-is is refused. The
  replay memory is bounded: nonces evicted from it count as stale from then on.

Only ``qop=auth`` is offered (RFC 2069 responses without ``qop`` and ``nc``
cannot be protected against replay). SHA-256 is the default algorithm; MD5 is
offered only when the caller lists it (a declared compatibility option: some
clients, FFmpeg among them, speak only MD5).

The password check is the caller's, through
``CredentialStore.authenticate_proof`` so lockout and audit are the web login's::

    creds = parse_authorization(request.headers["Authorization"])
    authority.check_fresh(creds, now=now)
    authority.check_uri(creds, request_uri)
    user = store.authenticate_proof(
        creds.username,
        lambda secret: authority.response_matches(creds, method="DESCRIBE", password=secret),
        source=peer, now=now, route="rtsp",
    )
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import DeviceError

ALGORITHMS = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}
MAX_HEADER = 4096  # bytes of an Authorization value we read at all
_NONCE_RANDOM = 8
_NONCE_MAC = 16
_REQUIRED = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")


class DigestError(DeviceError):
    """A Digest ``Authorization`` that cannot be accepted; ``stale`` when only the nonce aged out."""

    def __init__(self, message: str, *, stale: bool = False) -> None:
        super().__init__(message)
        self.stale = stale


@dataclass(frozen=True)
class DigestCredentials:
    """The parameters of one ``Authorization: Digest`` value (RFC 7616 section 3.4)."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str
    qop: str
    nc: int
    cnonce: str
    opaque: str | None


def _auth_params(text: str) -> dict[str, str]:
    """``k=token`` / ``k="quoted \\" string"`` pairs separated by commas (RFC 7235 auth-param)."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        start = i
        while i < n and text[i] not in "= \t,":
            i += 1
        key = text[start:i].lower()
        while i < n and text[i] in " \t":
            i += 1
        if not key or i >= n or text[i] != "=":
            raise DigestError(f"malformed Digest parameter near {text[start:start + 20]!r}")
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            value: list[str] = []
            while True:
                if i >= n:
                    raise DigestError(f"unterminated quoted value of Digest parameter {key!r}")
                ch = text[i]
                if ch == "\\" and i + 1 < n:
                    value.append(text[i + 1])
                    i += 2
                    continue
                if ch == '"':
                    i += 1
                    break
                value.append(ch)
                i += 1
            val = "".join(value)
        else:
            start = i
            while i < n and text[i] not in ", \t":
                i += 1
            val = text[start:i]
            if not val:
                raise DigestError(f"empty value of Digest parameter {key!r}")
        if key in params:
            raise DigestError(f"Digest parameter {key!r} given twice")
        params[key] = val
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] != ",":
            raise DigestError(f"malformed Digest parameters after {key!r}")
    return params


def parse_authorization(value: str) -> DigestCredentials:
    """Parse an ``Authorization`` header value; raise :class:`DigestError` unless it is usable Digest."""
    if len(value) > MAX_HEADER:
        raise DigestError(f"Authorization header longer than {MAX_HEADER} characters")
    if not value.isprintable():
        raise DigestError("Authorization header holds control characters")
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"authentication scheme {scheme!r} is not accepted; use Digest")
    params = _auth_params(rest)
    missing = [k for k in _REQUIRED if k not in params]
    if missing:
        raise DigestError(f"Digest response lacks {', '.join(missing)} (qop=auth is required)")
    if params.get("userhash", "false").lower() != "false":
        raise DigestError("Digest userhash is not supported")
    if "username*" in params:
        raise DigestError("Digest username* is not supported; send username")
    if params["qop"] != "auth":
        raise DigestError(f"Digest qop {params['qop']!r} is not offered; use auth")
    nc_text = params["nc"]
    if len(nc_text) != 8 or any(c not in "0123456789abcdefABCDEF" for c in nc_text):
        raise DigestError("Digest nc must be 8 hexadecimal digits")
    response = params["response"].lower()
    if not response or any(c not in "0123456789abcdef" for c in response):
        raise DigestError("Digest response must be hexadecimal")
    if not params["cnonce"]:
        raise DigestError("Digest cnonce is empty")
    return DigestCredentials(
        username=params["username"],
        realm=params["realm"],
        nonce=params["nonce"],
        uri=params["uri"],
        response=response,
        algorithm=params.get("algorithm", "MD5"),  # RFC 7616 3.3: absent means MD5
        qop="auth",
        nc=int(nc_text, 16),
        cnonce=params["cnonce"],
        opaque=params.get("opaque"),
    )


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DigestAuthority:
    """Issues Digest challenges and checks their answers for one realm.

    ``key`` keys the nonce MAC (random per run is fine: a restart only makes
    outstanding nonces stale). ``algorithms`` are offered strongest first;
    only ``"SHA-256"`` and ``"MD5"`` exist.
    """

    def __init__(
        self,
        key: bytes,
        *,
        realm: str,
        algorithms: Sequence[str] = ("SHA-256",),
        nonce_lifetime: float = 300.0,
        replay_memory: int = 4096,
    ) -> None:
        unknown = [a for a in algorithms if a not in ALGORITHMS]
        if unknown or not algorithms:
            raise ValueError(f"Digest algorithms must be some of {sorted(ALGORITHMS)}, got {list(algorithms)}")
        if len(key) < 16:
            raise ValueError("Digest nonce key must be at least 16 bytes")
        self.realm = realm
        self.algorithms = tuple(algorithms)
        self.nonce_lifetime = nonce_lifetime
        self._key = key
        self._opaque = hmac.new(key, b"opaque", hashlib.sha256).hexdigest()[:32]
        self._last_nc: OrderedDict[str, int] = OrderedDict()
        self._replay_memory = replay_memory
        self._evicted_before = float("-inf")  # nonces issued at or before this are no longer tracked

    # -- nonces ------------------------------------------------------------

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._key, b"refcam digest nonce\x00" + body, hashlib.sha256).digest()[:_NONCE_MAC]

    def new_nonce(self, *, now: float) -> str:
        body = struct.pack(">d", now) + os.urandom(_NONCE_RANDOM)
        return base64.urlsafe_b64encode(body + self._mac(body)).decode("ascii").rstrip("=")

    def _nonce_time(self, nonce: str) -> float:
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
        except (ValueError, TypeError) as exc:
            raise DigestError("Digest nonce was not issued by this device") from exc
        if len(raw) != 8 + _NONCE_RANDOM + _NONCE_MAC:
            raise DigestError("Digest nonce was not issued by this device")
        body, mac = raw[: 8 + _NONCE_RANDOM], raw[8 + _NONCE_RANDOM :]
        if not hmac.compare_digest(mac, self._mac(body)):
            raise DigestError("Digest nonce was not issued by this device")
        (issued,) = struct.unpack(">d", body[:8])
        return float(issued)

    # -- challenges and checks ----------------------------------------------

    def challenge(self, *, now: float, stale: bool = False) -> list[str]:
        """The ``WWW-Authenticate`` values to send with a 401, strongest algorithm first."""
        nonce = self.new_nonce(now=now)
        values = []
        for algorithm in self.algorithms:
            parts = [
                f"realm={_quote(self.realm)}",
                'qop="auth"',
                f"algorithm={algorithm}",
                f"nonce={_quote(nonce)}",
                f"opaque={_quote(self._opaque)}",
            ]
            if stale:
                parts.append("stale=true")
            values.append("Digest " + ", ".join(parts))
        return values

    def check_fresh(self, creds: DigestCredentials, *, now: float) -> None:
        """Raise :class:`DigestError` unless ``creds`` answer a live nonce of ours, for the first time.

        Checks the realm, the algorithm, the opaque value, the nonce's MAC and age,
        and that ``nc`` is above every ``nc`` already accepted for that nonce. The
        ``nc`` is recorded here, before the password is checked, so a replay that
        races the original is refused too.
        """
        if creds.realm != self.realm:
            raise DigestError(f"Digest realm {creds.realm!r} is not this device's")
        if creds.algorithm not in self.algorithms:
            raise DigestError(f"Digest algorithm {creds.algorithm!r} is not accepted; offered {list(self.algorithms)}")
        if creds.opaque is not None and not hmac.compare_digest(creds.opaque, self._opaque):
            raise DigestError("Digest opaque value is not this device's")
        issued = self._nonce_time(creds.nonce)
        if now - issued > self.nonce_lifetime or issued - now > 5.0:
            raise DigestError("Digest nonce is stale", stale=True)
        last = self._last_nc.get(creds.nonce)
        if last is None and issued <= self._evicted_before:
            raise DigestError("Digest nonce is stale", stale=True)
        if last is not None and creds.nc <= last:
            raise DigestError(f"Digest nc {creds.nc:08x} was already used with this nonce (replay)")
        self._last_nc[creds.nonce] = creds.nc
        self._last_nc.move_to_end(creds.nonce)
        while len(self._last_nc) > self._replay_memory:
            evicted, _ = self._last_nc.popitem(last=False)
            self._evicted_before = max(self._evicted_before, self._nonce_time(evicted))

    @staticmethod
    def check_uri(creds: DigestCredentials, request_uri: str) -> None:
        """Raise :class:`DigestError` unless the response was computed for this request's URI."""
        if creds.uri != request_uri:
            raise DigestError("Digest uri does not match the request")

    def response_matches(self, creds: DigestCredentials, *, method: str, password: str) -> bool:
        """Whether ``creds.response`` is right for ``password`` (RFC 7616 section 3.4.1, qop=auth)."""
        h = ALGORITHMS[creds.algorithm]

        def hexd(text: str) -> str:
            return h(text.encode("utf-8")).hexdigest()

        ha1 = hexd(f"{creds.username}:{creds.realm}:{password}")
        ha2 = hexd(f"{method}:{creds.uri}")
        expected = hexd(f"{ha1}:{creds.nonce}:{creds.nc:08x}:{creds.cnonce}:{creds.qop}:{ha2}")
        return hmac.compare_digest(expected, creds.response)
