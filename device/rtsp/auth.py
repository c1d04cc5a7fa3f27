"""RTSP authentication: RFC 7616 Digest against the device's users (``device.digest``).

Every request but OPTIONS must carry ``Authorization: Digest ...`` answering
a live nonce of ours (SHA-256; MD5 only when the compatibility option lists
it). The password check is ``CredentialStore.authenticate_proof``: the same
users, roles, throttling, lockout and audit log as the web login
(``route="rtsp"``). A user who must still change the label password is
refused (403, with the reason). Basic is refused with a Digest challenge;
only the ``rtsp-basic-auth`` flaw profile accepts it (through the slow-hash
``authenticate``), and only ``rtsp-no-auth`` lets anyone in.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from common.flaws import UnsafeFlaws

from ..digest import DigestAuthority, DigestError, parse_authorization
from ..errors import InvalidCredentials, Throttled, UnsafeUnknownUser
from .errors import RtspError

if TYPE_CHECKING:
    from ..audit import AuditLog
    from ..credentials import CredentialStore
    from .protocol import Request

REALM = "refcam"


@dataclass(frozen=True)
class Principal:
    name: str
    role: str


class RtspAuthenticator:
    """Checks one request's credentials; raises :class:`RtspError` 401/403 with the challenge."""

    def __init__(
        self,
        store: CredentialStore | None,
        authority: DigestAuthority,
        *,
        audit: AuditLog | None = None,
        flaws: UnsafeFlaws | None = None,
    ) -> None:
        self.store = store
        self.authority = authority
        self.audit = audit
        self.flaws = flaws or UnsafeFlaws()

    def challenge_headers(self, *, now: float, stale: bool = False) -> list[tuple[str, str]]:
        headers = [("WWW-Authenticate", value) for value in self.authority.challenge(now=now, stale=stale)]
        if "rtsp-basic-auth" in self.flaws:
            headers.append(("WWW-Authenticate", f'Basic realm="{REALM}"'))  # UNSAFE flaw profile
        return headers

    def _refuse(self, detail: str, *, now: float, stale: bool = False) -> RtspError:
        return RtspError(401, "Unauthorized", detail, headers=self.challenge_headers(now=now, stale=stale))

    def authenticate(self, request: Request, *, source: str, now: float) -> Principal:
        if "rtsp-no-auth" in self.flaws:
            return Principal("-", "viewer")  # UNSAFE flaw profile: anybody may watch
        value = request.header("authorization")
        if value is None:
            raise self._refuse("authentication required", now=now)
        scheme = value.split(" ", 1)[0].lower()
        if scheme == "basic":
            if "rtsp-basic-auth" in self.flaws:
                return self._basic(value, source=source, now=now)
            raise self._refuse("Basic authentication is refused; use Digest", now=now)
        if scheme != "digest":
            raise self._refuse(f"authentication scheme {scheme[:20]!r} is not supported", now=now)
        try:
            creds = parse_authorization(value)
            self.authority.check_fresh(creds, now=now)
            self.authority.check_uri(creds, request.uri)
        except DigestError as exc:
            raise self._refuse(str(exc), now=now, stale=exc.stale) from exc
        if self.store is None:
            raise self._refuse("no user database", now=now)
        method = request.method

        def proof(secret: str) -> bool:
            return self.authority.response_matches(creds, method=method, password=secret)

        try:
            user = self.store.authenticate_proof(
                creds.username, proof, source=source, now=now, audit=self._sink(creds.username, source, now), route="rtsp"
            )
        except Throttled as exc:
            raise RtspError(
                503, "Service Unavailable", "too many failed logins; try again later",
                headers=[("Retry-After", str(exc.retry_after))],
            ) from exc
        except (InvalidCredentials, UnsafeUnknownUser) as exc:
            raise self._refuse("invalid user name or password", now=now) from exc
        return self._admit(user.name, user.role, user.must_change)

    def _basic(self, value: str, *, source: str, now: float) -> Principal:
        """UNSAFE flaw profile ``rtsp-basic-auth``: the password in the clear (inside TLS)."""
        try:
            decoded = base64.b64decode(value.split(" ", 1)[1].strip(), validate=True).decode("utf-8")
        except (IndexError, ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise self._refuse("malformed Basic credentials", now=now) from exc
        username, sep, password = decoded.partition(":")
        if not sep or self.store is None:
            raise self._refuse("malformed Basic credentials", now=now)
        try:
            user = self.store.authenticate(
                username, password, source=source, now=now, audit=self._sink(username, source, now), route="rtsp"
            )
        except Throttled as exc:
            raise RtspError(503, "Service Unavailable", "too many failed logins; try again later") from exc
        except (InvalidCredentials, UnsafeUnknownUser) as exc:
            raise self._refuse("invalid user name or password", now=now) from exc
        return self._admit(user.name, user.role, user.must_change)

    def _admit(self, name: str, role: str, must_change: bool) -> Principal:
        if must_change and "no-forced-change" not in self.flaws and "shared-default-password" not in self.flaws:
            raise RtspError(
                403, "Forbidden", "password change required: log in on https:// and set a new password first"
            )
        return Principal(name, role)

    def _sink(self, actor: str, source: str, now: float) -> Callable[[str, dict[str, Any]], None] | None:
        audit = self.audit
        if audit is None:
            return None

        def sink(event: str, detail: dict[str, Any]) -> None:
            audit.record(event, actor=actor[:64], source=source, detail=detail, now=now)

        return sink

