"""TLS contexts for the management server (Mozilla guideline 5.7) and for outbound calls.

``server_context`` builds an :class:`ssl.SSLContext` for one of Mozilla's
server-side profiles:

* ``intermediate``: TLS 1.2 and 1.3; TLS 1.2 suites ECDHE + AEAD only
  (AES-GCM, ChaCha20-Poly1305); client cipher order (Mozilla
  ``server_preferred_order: false``); key-exchange groups X25519, P-256, P-384.
* ``modern``: TLS 1.3 only, same groups.

Both: no TLS compression (CRIME), no renegotiation, and no session tickets of
any kind: ``OP_NO_TICKET`` stops TLS 1.2 tickets, and ``num_tickets = 0`` stops
TLS 1.3 ones (with ``OP_NO_TICKET`` alone OpenSSL still sends *stateful* TLS 1.3
tickets). Tickets encrypted under a long-lived key weaken forward secrecy; a
camera has few clients, so a full handshake each time costs little. TLS 1.3
therefore never resumes; TLS 1.2 may still resume by session ID from the
server's in-memory cache (bounded lifetime, no ticket key).

Python 3.11's ``ssl`` has no ``SSLContext.set_groups`` (added in 3.15), and the
only built-in knob, ``set_ecdh_curve``, allows exactly one group. We set the
group list with OpenSSL's own ``SSL_CTX_set1_groups_list`` on the context's
``SSL_CTX`` (see :func:`_set_groups`), after checking that the pointer we found
really is this context; if that check fails we fall back to P-256 alone, which
is still inside the Mozilla profile (fewer groups, never more).

``client_context(cafile)`` is for outbound TLS (update client, probes):
TLS 1.2+, the given trust anchors only, chain and host name verified.

Example::

    ctx = server_context(Path("tls.pem"), Path("tls.key.pem"), profile="intermediate")
    site = web.TCPSite(runner, "127.0.0.1", 8443, ssl_context=ctx)
"""

from __future__ import annotations

import ctypes
import logging
import ssl
from pathlib import Path
from typing import Literal

from common.errors import TLSConfigError

TLSProfile = Literal["intermediate", "modern"]
PROFILES: tuple[TLSProfile, ...] = ("intermediate", "modern")

# Mozilla server-side TLS 5.7, "intermediate": TLS 1.2 cipher suites (OpenSSL names).
# DHE suites are left out: we serve ECDSA certificates only.
INTERMEDIATE_TLS12_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)
# Mozilla 5.7 "tls_curves" for both profiles.
GROUPS = "X25519:P-256:P-384"
_FALLBACK_CURVE = "prime256v1"

_SSL_CTRL_SET_GROUPS_LIST = 92  # openssl/ssl.h: SSL_CTX_set1_groups_list is SSL_CTX_ctrl(ctx, 92, 0, list)

log = logging.getLogger(__name__)


def _ssl_ctx_pointer(ctx: ssl.SSLContext) -> int | None:
    """The ``SSL_CTX *`` inside a CPython ``_ssl._SSLContext`` (first field after PyObject_HEAD)."""
    head = ctypes.sizeof(ctypes.c_ssize_t) + ctypes.sizeof(ctypes.c_void_p)
    return ctypes.c_void_p.from_address(id(ctx) + head).value


def _set_groups(ctx: ssl.SSLContext, groups: str) -> bool:
    """Call ``SSL_CTX_set1_groups_list`` on ``ctx``; False if that cannot be done safely.

    The libssl functions are looked up through CPython's own ``_ssl`` module,
    so they are the library the context was made by. Before writing anything,
    the pointer is checked: ``SSL_CTX_get_options`` on it must return
    ``ctx.options`` after we toggle a harmless option bit both ways.
    """
    import _ssl  # only to locate the libssl this process uses

    try:
        lib = ctypes.CDLL(_ssl.__file__)
        get_options = lib.SSL_CTX_get_options
        ctrl = lib.SSL_CTX_ctrl
    except (OSError, AttributeError):
        return False
    get_options.restype = ctypes.c_uint64
    get_options.argtypes = [ctypes.c_void_p]
    ctrl.restype = ctypes.c_long
    ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_char_p]
    pointer = _ssl_ctx_pointer(ctx)
    if not pointer:
        return False
    probe = ssl.OP_NO_TICKET
    for _ in range(2):  # the value must follow ctx.options both ways
        ctx.options ^= probe
        if get_options(pointer) != int(ctx.options):
            return False
    result: int = ctrl(pointer, _SSL_CTRL_SET_GROUPS_LIST, 0, groups.encode("ascii"))
    return result == 1


def server_context(
    cert_chain: Path, key: Path, *, profile: TLSProfile = "intermediate"
) -> ssl.SSLContext:
    """A server context for ``profile``; raises :class:`TLSConfigError` for bad files."""
    if profile not in PROFILES:
        raise TLSConfigError(f"TLS profile {profile!r} is unknown; expected one of {PROFILES}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = (
        ssl.TLSVersion.TLSv1_3 if profile == "modern" else ssl.TLSVersion.TLSv1_2
    )
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    if profile == "intermediate":
        # TLS 1.3 suites are all AEAD and are set separately by OpenSSL.
        ctx.set_ciphers(INTERMEDIATE_TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_TICKET
    ctx.num_tickets = 0  # TLS 1.3: OP_NO_TICKET alone still issues stateful tickets
    ctx.options |= ssl.OP_SINGLE_ECDH_USE
    ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE  # Mozilla 5.7: server_preferred_order false
    if not _set_groups(ctx, GROUPS):
        log.warning("cannot set TLS groups %s; restricting key exchange to P-256", GROUPS)
        ctx.set_ecdh_curve(_FALLBACK_CURVE)
    try:
        ctx.load_cert_chain(certfile=str(cert_chain), keyfile=str(key))
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(
            f"cannot load the TLS certificate chain {cert_chain} with key {key}: {exc}"
        ) from exc
    return ctx


def client_context(cafile: Path) -> ssl.SSLContext:
    """An outbound context trusting only ``cafile``; verifies the chain and the host name."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED + check_hostname by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    try:
        ctx.load_verify_locations(cafile=str(cafile))
    except (OSError, ssl.SSLError) as exc:
        raise TLSConfigError(f"cannot load trust anchors from {cafile}: {exc}") from exc
    return ctx


# -- flaw profiles (test-lab calibration only; see common.flaws) --------------------

UNSAFE_CBC_CIPHERS = "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES128-SHA:AES128-SHA:AES256-SHA"


def unsafe_server_context(
    cert_chain: Path,
    key: Path,
    *,
    profile: TLSProfile = "intermediate",
    tls_legacy: bool = False,
    weak_ciphers: bool = False,
) -> ssl.SSLContext:
    """A deliberately weakened server context for the ``tls-legacy``/``weak-ciphers`` flaws.

    Never used unless a flaw profile asks for it (``common.flaws``, loopback only).
    """
    ctx = server_context(cert_chain, key, profile=profile)
    log.warning(
        "UNSAFE TLS context: tls-legacy=%s weak-ciphers=%s (flaw profile, loopback only)",
        tls_legacy,
        weak_ciphers,
    )
    ciphers = INTERMEDIATE_TLS12_CIPHERS
    if weak_ciphers:
        ciphers += ":" + UNSAFE_CBC_CIPHERS
    if tls_legacy:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ciphers += ":" + UNSAFE_CBC_CIPHERS  # TLS 1.0/1.1 have no AEAD suites
    ctx.set_ciphers(ciphers + ":@SECLEVEL=0")
    return ctx


def unsafe_self_signed(directory: Path, *, now: float) -> tuple[Path, Path]:
    """A self-signed localhost certificate and its key (the ``self-signed-cert`` flaw)."""
    import datetime as dt
    import ipaddress
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    start = dt.datetime.fromtimestamp(now, dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - dt.timedelta(minutes=5))
        .not_valid_after(start + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    chain_path, key_path = directory / "unsafe-self-signed.pem", directory / "unsafe-self-signed.key.pem"
    chain_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return chain_path, key_path
