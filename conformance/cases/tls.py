"""TLS cases (KS X 3020 C2): one sslyze scan, read by several cases.

sslyze runs in-process against the target with the operator's root as its
custom trust store; path validation is then redone strictly with
``cryptography.x509.verification`` (the same policy browsers apply).
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from ..case import ProbeContext, failed, inconclusive, not_tested, passed, register, unit
from ..errors import ProbeError
from ..http import Exchange, raw_exchange
from ..i18n import msg
from ..model import Evidence, UnitResult, Verdict

HSTS_MIN_AGE = 31_536_000  # one year, seconds
MAX_LEAF_DAYS = 398  # CA/Browser Forum ceiling; Mozilla intermediate asks for 366
_LEGACY = ("ssl_2_0_cipher_suites", "ssl_3_0_cipher_suites", "tls_1_0_cipher_suites", "tls_1_1_cipher_suites")
_AEAD_MARKERS = ("_GCM_", "CHACHA20_POLY1305", "_CCM")


def _plaintext(ctx: ProbeContext, letters: tuple[str, ...]) -> list[UnitResult] | None:
    """FAIL every unit when the management interface has no TLS at all (seen by the preflight)."""
    if ctx.channel.get("tls") is not False:
        return None
    ev = _scan_evidence(f"the management interface {ctx.target.url} speaks plain HTTP", preflight=dict(ctx.channel))
    answered = ctx.cache.get("preflight_plaintext")
    extra = (answered.evidence("answered in plaintext"),) if isinstance(answered, Exchange) else ()
    return [failed(letter, msg("no TLS: the management interface answers in plaintext"), ev, *extra) for letter in letters]


def _scan(ctx: ProbeContext) -> Any:
    if "sslyze" in ctx.cache:
        return ctx.cache["sslyze"]
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    )
    from sslyze.plugins.certificate_info.implementation import CertificateInfoExtraArgument
    from sslyze.scanner.models import (
        ScanCommandsExtraArguments,
        ServerScanRequest,
        ServerScanStatusEnum,
    )
    from sslyze.scanner.scanner import Scanner
    from sslyze.server_setting import ServerNetworkConfiguration, ServerNetworkLocation

    ip = _resolve(ctx.host)
    extra = ScanCommandsExtraArguments(
        certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(ctx.options.ca_file))
        if ctx.options.ca_file
        else None
    )
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(ctx.host, ctx.port, ip),
        network_configuration=ServerNetworkConfiguration(tls_server_name_indication=ctx.host),
        scan_commands=set(SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER),
        scan_commands_extra_arguments=extra,
    )
    scanner = Scanner()
    with warnings.catch_warnings():
        # sslyze loads its bundled public trust stores too; one old certificate in them
        # has a non-positive serial, which cryptography warns about. Not ours, not the target's.
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        scanner.queue_scans([request])
        result = next(iter(scanner.get_results()))
    if result.scan_status != ServerScanStatusEnum.COMPLETED or result.scan_result is None:
        raise ProbeError(msg("TLS scan of {host}:{port} did not complete: {connectivity_error_trace}", host=ctx.host, port=ctx.port, connectivity_error_trace=result.connectivity_error_trace))
    ctx.cache["sslyze"] = result
    return result


def _resolve(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return str(socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0])
    except OSError as exc:
        raise ProbeError(msg("cannot resolve {host}: {exc}", host=host, exc=exc)) from exc


def _attempt(scan: Any, name: str) -> Any:
    attempt = getattr(scan.scan_result, name)
    if attempt.result is None:
        raise ProbeError(f"sslyze could not run {name}: {attempt.error_reason} {attempt.error_trace or ''}".strip())
    return attempt.result


def _suites(scan: Any, name: str) -> list[str]:
    return [s.cipher_suite.name for s in _attempt(scan, name).accepted_cipher_suites]


def _scan_evidence(summary: str, **detail: Any) -> Evidence:
    return Evidence("tls-scan", summary, detail)


@register("TLS-01", budget=0)
def tls_versions(ctx: ProbeContext) -> list[UnitResult]:
    if (plain := _plaintext(ctx, ("a", "b"))) is not None:
        return plain
    scan = _scan(ctx)
    accepted_legacy = {name: _suites(scan, name) for name in _LEGACY}
    legacy = [name.replace("_cipher_suites", "") for name, s in accepted_legacy.items() if s]
    modern = {n: _suites(scan, n) for n in ("tls_1_2_cipher_suites", "tls_1_3_cipher_suites")}
    ev = _scan_evidence("protocol versions", legacy_accepted=accepted_legacy, modern_accepted=modern)
    first = (
        failed("a", msg("legacy versions accepted: {legacy}", legacy=', '.join(legacy)), ev)
        if legacy
        else passed("a", msg("SSL 2.0/3.0, TLS 1.0 and TLS 1.1 are refused"), ev)
    )
    second = (
        passed("b", msg("TLS 1.2 or 1.3 is accepted"), ev)
        if any(modern.values())
        else failed("b", msg("neither TLS 1.2 nor TLS 1.3 is accepted"), ev)
    )
    return [first, second]


@register("TLS-02", budget=0)
def tls12_suites(ctx: ProbeContext) -> list[UnitResult]:
    if (plain := _plaintext(ctx, ("a",))) is not None:
        return plain
    scan = _scan(ctx)
    suites = _suites(scan, "tls_1_2_cipher_suites")
    bad = [s for s in suites if "ECDHE" not in s or not any(m in s for m in _AEAD_MARKERS)]
    ev = _scan_evidence("TLS 1.2 suites accepted", accepted=suites)
    if bad:
        return [failed("a", msg("TLS 1.2 suites without ECDHE+AEAD accepted: {bad}", bad=', '.join(bad)), ev)]
    return [passed("a", msg("{n_suites} TLS 1.2 suites, all ECDHE with AEAD", n_suites=len(suites)), ev)]


def _leaf_and_chain(scan: Any) -> tuple[x509.Certificate, list[x509.Certificate]]:
    info = _attempt(scan, "certificate_info")
    chain = info.certificate_deployments[0].received_certificate_chain
    return chain[0], list(chain[1:])


@register("TLS-03", budget=0)
def chain_validation(ctx: ProbeContext) -> list[UnitResult]:
    if (plain := _plaintext(ctx, ("a", "b", "c"))) is not None:
        return plain
    if not ctx.options.ca_file:
        return [not_tested("a", msg("no root given to validate against"), "--ca")]
    scan = _scan(ctx)
    leaf, intermediates = _leaf_and_chain(scan)
    now = datetime.now(UTC)
    roots = x509.load_pem_x509_certificates(Path(ctx.options.ca_file).read_bytes())
    try:
        name: Any = x509.IPAddress(ipaddress.ip_address(ctx.host))
    except ValueError:
        name = x509.DNSName(ctx.host)
    ev = _scan_evidence(
        "received chain",
        subjects=[c.subject.rfc4514_string() for c in [leaf, *intermediates]],
        not_after=leaf.not_valid_after_utc.isoformat(),
    )
    try:
        PolicyBuilder().store(Store(roots)).time(now).build_server_verifier(name).verify(leaf, intermediates)
        a = passed("a", msg("chain validates to the given root for {host}", host=ctx.host), ev)
    except VerificationError as exc:
        a = failed("a", msg("strict path validation failed: {exc}", exc=exc), ev)
    lifetime = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days
    in_validity = leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc
    b = (
        passed("b", msg("in validity; lifetime {lifetime} days", lifetime=lifetime), ev)
        if in_validity and lifetime <= MAX_LEAF_DAYS
        else failed("b", msg("validity {not_valid_before_utc} .. {not_valid_after_utc} ({lifetime} days)", not_valid_before_utc=leaf.not_valid_before_utc, not_valid_after_utc=leaf.not_valid_after_utc, lifetime=lifetime), ev)
    )
    key = leaf.public_key()
    strong = (
        (isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size >= 256)
        or (isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048)
        or isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    )
    c = passed("c", msg("leaf key {name} is strong enough", name=type(key).__name__)) if strong else failed(
        "c", msg("leaf key {name} is weaker than P-256/RSA-2048", name=type(key).__name__)
    )
    return [a, b, c]


def _leaf_spki(host: str, port: int, ca_file: str | None) -> bytes:
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    with socket.create_connection((host, port), timeout=10) as sock, ctx.wrap_socket(sock, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ProbeError(msg("{host}:{port} sent no certificate", host=host, port=port))
    return x509.load_der_x509_certificate(der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@register("TLS-04", budget=0)
def per_device_key(ctx: ProbeContext) -> list[UnitResult]:
    if not ctx.options.peer:
        return [not_tested("a", msg("needs a second unit of the same model"), "--peer")]
    if (plain := _plaintext(ctx, ("a",))) is not None:
        return plain
    from ..http import Target

    peer = Target.parse(ctx.options.peer)
    mine = _leaf_spki(ctx.host, ctx.port, ctx.options.ca_file)
    theirs = _leaf_spki(peer.host, peer.port, ctx.options.ca_file)
    ev = _scan_evidence(
        "leaf SPKI SHA-256 of both units",
        target=hashlib.sha256(mine).hexdigest(),
        peer=hashlib.sha256(theirs).hexdigest(),
    )
    if mine == theirs:
        return [failed("a", msg("both units present the same TLS key"), ev)]
    return [passed("a", msg("the two units have different TLS keys"), ev)]


def _plain_http(host: str, port: int, request: bytes) -> tuple[str, bytes]:
    """Send raw plaintext HTTP; returns ("closed"|"refused"|"answered", first bytes)."""
    return raw_exchange(host, port, request, answer=b"HTTP/", limit=65536)


def _redirect_only(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ")
    location = [ln for ln in lines[1:] if ln.lower().startswith(b"location:")]
    return (
        len(status) >= 2
        and status[1] in (b"301", b"302", b"307", b"308")
        and bool(location)
        and b"https://" in location[0]
        and body.strip() == b""
    )


@register("TLS-05", budget=0)
def no_plaintext(ctx: ProbeContext) -> list[UnitResult]:
    get = f"GET /api/v1/info HTTP/1.1\r\nHost: {ctx.host}\r\nConnection: close\r\n\r\n".encode()
    outcome, data = _plain_http(ctx.host, ctx.port, get)
    ev_a = _scan_evidence(f"plain HTTP to the TLS port: {outcome}", first_bytes=data[:200].decode("latin-1"))
    serves = outcome == "answered" and not _redirect_only(data) and b" 400 " not in data.split(b"\r\n")[0]
    a = failed("a", msg("the management port answers plain HTTP with content"), ev_a) if serves else passed(
        "a", msg("plain HTTP to the management port: {outcome}, no content", outcome=outcome), ev_a
    )
    findings, offending, login_taken = [], [], []
    body = b'{"username": "probe", "password": "not-a-real-password"}'
    login = (
        f"POST /api/v1/session HTTP/1.1\r\nHost: {ctx.host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    for port in ctx.options.plaintext_ports:
        if port == ctx.port:
            continue
        state, reply = _plain_http(ctx.host, port, get)
        findings.append({"port": port, "state": state, "first_bytes": reply[:200].decode("latin-1")})
        if state == "answered" and not _redirect_only(reply):
            offending.append(port)
        if state == "answered":
            _, login_reply = _plain_http(ctx.host, port, login)
            first = login_reply.split(b"\r\n")[0]
            if not _redirect_only(login_reply) and (b" 401 " in first or b" 200 " in first or b" 429 " in first):
                login_taken.append(port)
            findings[-1]["login_reply"] = first.decode("latin-1")
    ev_b = _scan_evidence("plaintext ports", ports=findings)
    b = failed("b", msg("plaintext ports serve content: {map}", map=', '.join(map(str, offending))), ev_b) if offending else passed(
        "b", msg("plaintext ports are closed or redirect-only"), ev_b
    )
    if ctx.channel.get("tls") is False:
        c = failed("c", msg("the management interface itself ({url}) takes logins over plain HTTP", url=ctx.target.url), ev_a)
    elif login_taken:
        c = failed("c", msg("a login over plain HTTP was processed on ports {map}", map=', '.join(map(str, login_taken))), ev_b)
    else:
        c = passed("c", msg("no plaintext endpoint processes a login"), ev_b)
    return [a, b, c]


@register("TLS-06", budget=0)
def known_flaws(ctx: ProbeContext) -> list[UnitResult]:
    if (plain := _plaintext(ctx, ("a", "b", "c", "d", "e"))) is not None:
        return plain
    scan = _scan(ctx)
    heart = _attempt(scan, "heartbleed").is_vulnerable_to_heartbleed
    ccs = _attempt(scan, "openssl_ccs_injection").is_vulnerable_to_ccs_injection
    robot = _attempt(scan, "robot").robot_result
    compression = _attempt(scan, "tls_compression").supports_compression
    reneg = _attempt(scan, "session_renegotiation")
    robot_bad = "VULNERABLE" in robot.name and "NOT_VULNERABLE" not in robot.name
    # A server that refuses renegotiation entirely does not "support secure renegotiation"
    # in sslyze's terms; that is the safest setting, so only client-initiated DoS counts then.
    reneg_bad = reneg.is_vulnerable_to_client_renegotiation_dos
    return [
        unit("a", Verdict.FAIL if heart else Verdict.PASS, msg("Heartbleed: {value}", value=msg("vulnerable") if heart else msg("not vulnerable"))),
        unit("b", Verdict.FAIL if ccs else Verdict.PASS, msg("CCS injection: {value}", value=msg("vulnerable") if ccs else msg("not vulnerable"))),
        unit("c", Verdict.FAIL if robot_bad else Verdict.PASS, msg("ROBOT: {name}", name=robot.name)),
        unit("d", Verdict.FAIL if compression else Verdict.PASS, msg("TLS compression: {value}", value=msg("on") if compression else msg("off"))),
        unit(
            "e",
            Verdict.FAIL if reneg_bad else Verdict.PASS,
            msg(
                "client-initiated renegotiation {client}; secure renegotiation {secure}",
                client=msg("accepted (DoS)") if reneg.is_vulnerable_to_client_renegotiation_dos else msg("refused"),
                secure=msg("supported") if reneg.supports_secure_renegotiation else msg("not offered"),
            ),
        ),
    ]


@register("TLS-07", budget=4)
def hsts(ctx: ProbeContext) -> list[UnitResult]:
    results = []
    first = str(getattr(ctx.adapter, "INFO", None) or getattr(ctx.adapter, "protected_route", "/"))
    for letter, path in (("a", first), ("b", "/refcam-probe-does-not-exist")):
        ex = ctx.http.request("GET", path)
        if ex.status == 0 or ex.status >= 500:
            results.append(inconclusive(letter, msg("no usable answer to read HSTS from: {value}", value=ex.error or ex.status), ex.evidence()))
            continue
        value = ex.header("Strict-Transport-Security") or ""
        age = 0
        for part in value.split(";"):
            key, _, val = part.strip().partition("=")
            if key.lower() == "max-age" and val.strip().isdigit():
                age = int(val)
        if ex.status and age >= HSTS_MIN_AGE:
            results.append(passed(letter, msg("HSTS max-age={age} on {status}", age=age, status=ex.status), ex.evidence()))
        else:
            results.append(failed(letter, msg("HSTS missing or short on {status}: {value}", status=ex.status, value=value or msg("no header")), ex.evidence()))
    return results


@register("TLS-08", budget=0)
def mozilla_profile(ctx: ProbeContext) -> list[UnitResult]:
    if (plain := _plaintext(ctx, ("a",))) is not None:
        return plain
    from sslyze.mozilla_tls_profile.tls_config_checker import (
        MozillaTlsConfiguration,
        ServerNotCompliantWithTlsConfiguration,
        TlsConfigurationEnum,
        check_server_against_tls_configuration,
    )

    scan = _scan(ctx)
    issues: dict[str, dict[str, str]] = {}
    for profile in (TlsConfigurationEnum.MOZILLA_INTERMEDIATE, TlsConfigurationEnum.MOZILLA_MODERN):
        try:
            check_server_against_tls_configuration(scan, MozillaTlsConfiguration.get(profile))
        except ServerNotCompliantWithTlsConfiguration as exc:
            issues[profile.value] = dict(exc.issues)
            continue
        return [passed("a", msg("compliant with Mozilla {value}", value=profile.value), _scan_evidence("Mozilla checker", profile=profile.value))]
    found = issues.get("intermediate", {})
    return [failed("a", msg("not compliant with Mozilla intermediate: {issues}", issues="; ".join(f"{k}: {v}" for k, v in found.items())),
                   _scan_evidence("Mozilla checker issues", issues=issues))]
