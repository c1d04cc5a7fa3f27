"""Flaw profiles: deliberately weakened behaviour for test-lab calibration and workshops.

``refcam device run --flaw NAME`` (repeatable) switches on known flaws. Each
flaw changes the *real* code path it weakens (the TLS context, the credential
store, the update client, the bootloader...); nothing here is a flag a probe
could read. Dangerous things look dangerous: the set is an
:class:`UnsafeFlaws`, the device prints a loud banner and lists the flaws in
its device info, and any flaw refuses a listen address other than loopback::

    flaws = UnsafeFlaws.parse(["tls-legacy", "no-lockout"], host="127.0.0.1")
    if "no-lockout" in flaws: ...
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from common.errors import RefcamError

# name -> what it weakens (and the requirement row of shared/REQUIREMENTS.md)
FLAWS: dict[str, str] = {
    "tls-legacy": "TLS 1.0 and 1.1 accepted (row 9)",
    "weak-ciphers": "CBC suites and static RSA key exchange accepted (row 10)",
    "self-signed-cert": "a self-signed certificate instead of the manufacturer chain (row 11)",
    "plaintext-http": "the full management API also served over plain HTTP (row 13)",
    "shared-default-password": "admin/admin on every unit, no forced change (rows 1, 3)",
    "no-forced-change": "the label password gives a full session (row 1)",
    "no-lockout": "no throttling or lockout of failed logins (row 6)",
    "user-enumeration": "unknown users are answered differently (row 7)",
    "unsigned-update-accepted": "the update client installs images without checking signatures (rows 18-20)",
    "rollback-accepted": "the update client installs older images (row 21)",
    "boot-skips-signature": "the bootloader checks only the hash, not the signature (rows 27, 19)",
    "update-client-no-tls-validation": "the update client accepts any server certificate (rows 16, 23)",
    "no-security-txt": "no /.well-known/security.txt (row 30)",
    "expired-security-txt": "security.txt with an Expires in the past (row 30)",
    "sla-breached": "the disclosure record carries a report acknowledged late (rows 34, 35)",
    "onvif-preauth-open": "ONVIF read operations (device information, profiles, stream URIs) answer without credentials (rows 1, 5)",
    "wsse-replay": "ONVIF UsernameTokens are not checked for a reused nonce or a stale Created (row 6)",
    "onvif-anonymous-default": "ONVIF requests without credentials act as an anonymous Administrator (rows 1, 3)",
    "onvif-digest-md5-only": "ONVIF HTTP Digest offers only MD5, not SHA-256 (row 10)",
    "rtsp-plaintext": "RTSP also served without TLS on the RTSPS port + 1 (row 13)",
    "rtsp-no-auth": "RTSP streams are served to anybody, no credentials asked (row 17)",
    "rtsp-basic-auth": "RTSP accepts Basic authentication: the password itself on the wire (rows 13, 17)",
    "unsigned-stream": "the RTSP H.264 stream carries no signed-GOP SEI (stream integrity)",
    "session-cookie-insecure": "the session cookie lacks Secure, HttpOnly and SameSite (ASVS V3.4)",
    "session-no-idle-expiry": "sessions never expire for inactivity (ASVS V3.3.2)",
    "session-survives-logout": "logout clears the cookie but leaves the session valid on the server (ASVS V3.3.1)",
    "session-survives-password-change": "a password change leaves the user's other sessions running (ASVS V3.3.3)",
    "no-csrf-check": "cookie sessions change state without the CSRF token (ASVS V4.2.2)",
    "viewer-can-change-settings": "a viewer may change the run-time settings (ASVS V4.1.3, row 17)",
    "operator-can-manage-users": "an operator may create, change and delete users (ASVS V4.1.3, row 17)",
    "password-min-off-by-one": "the policy accepts passwords one character below its minimum (row 4)",
    "label-variant-accepted": "trivial variants of the label password are accepted as a new password (row 4)",
    "identity-password-accepted": "passwords built from the serial, model or vendor are accepted (row 4)",
    "throttle-known-names-only": "failed logins for unknown user names are never throttled (rows 6, 7)",
    "rollback-same-counter": "the update client judges rollback on the security counter alone: an older version sharing it installs (row 21)",
}

PLAINTEXT_FLAW_PORT_OFFSET = 1  # plaintext-http listens on the management port + 1


class FlawProfileError(RefcamError):
    """An unknown flaw name, or a flaw asked for on a non-loopback address."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class UnsafeFlaws:
    """The flaws switched on for this run (empty for the secure reference device)."""

    names: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, names: Iterable[str], *, host: str) -> UnsafeFlaws:
        chosen = frozenset(names)
        unknown = sorted(chosen - set(FLAWS))
        if unknown:
            raise FlawProfileError(f"unknown flaw {unknown[0]!r}; known flaws: {', '.join(sorted(FLAWS))}")
        if chosen and not _is_loopback(host):
            raise FlawProfileError(
                f"flaw profiles refuse to listen on {host}: a flawed device binds only to loopback "
                "(127.0.0.1 or ::1)"
            )
        return cls(chosen)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str) and name not in FLAWS:
            raise KeyError(f"no flaw named {name!r}")  # a typo must not silently disable a flaw
        return name in self.names

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.names))

    def __bool__(self) -> bool:
        return bool(self.names)

    def banner(self) -> str:
        if not self.names:
            return ""
        width = 74
        lines = ["!" * width, "!!  UNSAFE: FLAW PROFILE ACTIVE. THIS DEVICE IS DELIBERATELY INSECURE."]
        lines += [f"!!    {name}: {FLAWS[name]}" for name in self]
        lines += ["!!  For test-lab calibration and training only; bound to loopback.", "!" * width]
        return "\n".join(lines)
