"""Preflight: before any case, prove the target can be judged at all.

1. the host resolves and the port accepts a TCP connection;
2. for an https target, a TLS handshake validates the chain against ``--ca``
   and the host name (for a plaintext target the finding is kept: the TLS
   cases FAIL on it with this evidence);
3. where credentials are given, they log in, once: the label password is
   tried exactly one time, and the session is handed to the cases.

Any failure raises :class:`~conformance.errors.PreflightError` with one line
naming the cause; the CLI prints it and exits 2 without writing a report.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from .adapters import Session, TargetAdapter
from .errors import PreflightError, ProbeError
from .http import Exchange, ProbeHTTP, Target
from .verdicts import Reading, attempt

CONNECT_TIMEOUT = 5.0  # seconds
LOGIN_WAIT = 120.0  # seconds the credential check waits out a 429 (the device did not try the password)


def check_channel(target: Target, context: ssl.SSLContext | None) -> dict[str, Any]:
    """Resolve, connect and (https) complete a validated handshake; the channel's facts."""
    try:
        addresses = socket.getaddrinfo(target.host, target.port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise PreflightError(f"preflight: cannot resolve {target.host}: {exc.strerror or exc}") from exc
    address = addresses[0][4]
    try:
        sock = socket.create_connection((target.host, target.port), timeout=CONNECT_TIMEOUT)
    except OSError as exc:
        raise PreflightError(
            f"preflight: cannot connect to {target.host}:{target.port}: {exc.strerror or exc}"
        ) from exc
    facts: dict[str, Any] = {"address": str(address[0]), "port": target.port, "scheme": target.scheme}
    with sock:
        if target.scheme != "https":
            facts["tls"] = False
            return facts
        if context is None:
            raise PreflightError("preflight: an https target needs --ca to validate its chain against")
        try:
            with context.wrap_socket(sock, server_hostname=target.host) as tls:
                der = tls.getpeercert(binary_form=True)
                facts.update(tls=True, tls_version=tls.version(), cipher=(tls.cipher() or ("",))[0])
        except ssl.SSLCertVerificationError as exc:
            raise PreflightError(
                f"preflight: the TLS certificate of {target.url} does not validate against --ca: {exc.verify_message}"
            ) from exc
        except (ssl.SSLError, OSError) as exc:
            raise PreflightError(f"preflight: the TLS handshake with {target.url} failed: {exc}") from exc
    if der:
        cert = x509.load_der_x509_certificate(der)

        def attr(oid: x509.ObjectIdentifier) -> str | None:
            values = cert.subject.get_attributes_for_oid(oid)
            return str(values[0].value) if values else None

        facts["certificate"] = {
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "serial_number_attribute": attr(NameOID.SERIAL_NUMBER),
            "common_name": attr(NameOID.COMMON_NAME),
            "not_after": cert.not_valid_after_utc.isoformat(),
        }
    return facts


def check_login(
    http: ProbeHTTP, adapter: TargetAdapter, username: str, password: str, *, what: str
) -> tuple[Session, Exchange]:
    """One login the device judges: a 429 (the device did not try the password) is waited
    out per Retry-After, up to LOGIN_WAIT; a refusal is never retried. The session or one line."""

    def send() -> Exchange:
        return adapter.login(http, username, password)

    try:
        judgement = attempt(
            send,
            accepted=lambda ex: adapter.session(ex, username, password) is not None,
            refusal=adapter.is_refusal,
            clock=http.clock,
            sleep=http.sleep,
            deadline=http.clock() + LOGIN_WAIT,
        )
    except ProbeError as exc:
        raise PreflightError(f"preflight: {what} cannot be checked: {exc}") from exc
    ex = judgement.exchange
    session = adapter.session(ex, username, password)
    if judgement.reading is Reading.ACCEPTED and session is not None:
        return session, ex
    if judgement.reading is Reading.REFUSED:
        raise PreflightError(f"preflight: {what} does not log in as \"{username}\" (the device refused it: HTTP {ex.status})")
    raise PreflightError(f"preflight: {what} could not be checked: {judgement.reason}")
