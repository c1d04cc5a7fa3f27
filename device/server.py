"""The management server: one app factory, its middlewares and the HTTP->HTTPS redirector.

``create_app(config, *, handoff, clock=time.time, extensions=())`` returns the
``web.Application`` that ``main.run`` serves over TLS only:

* ``error_middleware`` (outermost) maps domain errors (``device.errors``) to
  JSON ``{"error": code, "message": text}`` with a 4xx status, turns aiohttp's
  own HTTP errors (404, 405, 413...) into the same JSON shape, and answers an
  unexpected exception with a generic 500 after logging it;
* ``access.access_middleware`` enforces each route's declared requirement;
* every response (errors and files included) gets HSTS, ``Server: refcam``
  without a version, ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
  no-referrer``, ``X-Frame-Options: DENY``, a strict Content-Security-Policy
  and ``Cache-Control: no-store`` on the API.

Resources (the user, session and audit databases) are opened by one
``cleanup_ctx`` each and closed on shutdown. Typed keys live in
``device.appkeys``. Extensions (web UI, stream, update) are callables
``f(app)`` that add routes, each handler decorated with ``access.requires``.

``create_redirect_app(https_port, host=...)`` is the optional plain-HTTP
listener: it answers every request with ``308`` to the same path on HTTPS of
the configured listen address (never the client's ``Host`` header), with an
empty body, and never reads the request body or its credentials.

Example::

    app = create_app(config, handoff=handoff, clock=time.time)
    runner = web.AppRunner(app); await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 8443, ssl_context=ctx).start()
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import ipaddress
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from yarl import URL

from common.handoff import BootHandoff
from common.listener import ConnectionGuard, ConnectionLimits, connection_middleware
from common.passwords import PasswordHashFormatError
from common.sealedsecret import SEALED_SECRET_LABEL

from .access import access_middleware, requires
from .appkeys import (
    AUDIT_KEY,
    CLOCK_KEY,
    CONFIG_KEY,
    CONNECTIONS_KEY,
    CREDENTIALS_KEY,
    HANDOFF_KEY,
    REBOOT_KEY,
    SESSIONS_KEY,
    USER_KEY,
)
from .audit import AuditLog
from .config import DeviceConfig, load_settings
from .credentials import CredentialStore, PolicyContext
from .errors import (
    AuditChainError,
    DeviceError,
    InvalidCredentials,
    PasswordPolicyError,
    RequestError,
    SessionError,
    StorageError,
    Throttled,
    UnsafeUnknownUser,
    UserError,
)
from .i18n import SOURCE_LANGUAGE, msg, negotiate, translate
from .update.errors import UpdateError

log = logging.getLogger(__name__)

Extension = Callable[[web.Application], None]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

# aiohttp HTTP errors -> our error codes
_HTTP_CODES = {
    400: "bad_request",
    401: "authentication_required",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "throttled",
}


def _json_error(status: int, code: str, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": code, "message": message, **extra}, status=status)


def _message(exc: DeviceError, language: str) -> str:
    """The exception's message in ``language`` (a :class:`~device.i18n.Message` keeps its template)."""
    said = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    return translate(said, language)


def error_response(exc: DeviceError, language: str = SOURCE_LANGUAGE) -> web.Response:
    """The HTTP answer for a domain error (the one place this mapping lives).

    ``message`` is in ``language`` where the catalogue has it; ``error`` (the code) never changes.
    """
    if isinstance(exc, RequestError | UserError | UpdateError):  # they carry their status and code
        return _json_error(exc.status, exc.code, _message(exc, language))
    if isinstance(exc, UnsafeUnknownUser):  # the user-enumeration flaw profile only
        return _json_error(404, "unknown_user", translate(msg("no such user"), language))
    if isinstance(exc, InvalidCredentials):
        # one fixed body: unknown user and wrong password look the same (EN 303 645 5.6-2)
        return _json_error(401, "invalid_credentials", translate(msg("invalid user name or password"), language))
    if isinstance(exc, Throttled):
        response = _json_error(
            429, "throttled", translate(msg("too many failed logins; try again later"), language),
            retry_after=exc.retry_after,
        )
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, PasswordPolicyError):
        reasons = [translate(reason, language) for reason in exc.reasons]
        return _json_error(
            400, "password_policy", translate(msg("password rejected: {reasons}", reasons="; ".join(reasons)), language),
            reasons=reasons,
        )
    if isinstance(exc, SessionError):
        return _json_error(401, "authentication_required", _message(exc, language))
    if isinstance(exc, StorageError | AuditChainError):
        log.error("storage failure: %s", exc)
        return _json_error(503, "storage", translate(msg("device storage failure; see the device log"), language))
    return _json_error(400, "bad_request", _message(exc, language))


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DeviceError as exc:
        return error_response(exc, negotiate(request.headers.get("Accept-Language")))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        response = _json_error(exc.status, code, exc.reason)
        for name in ("Allow", "Retry-After"):
            if name in exc.headers:
                response.headers[name] = exc.headers[name]
        return response
    except (asyncio.CancelledError, KeyboardInterrupt):
        raise
    except ConnectionError as exc:  # the client left mid-request (aborted upload, slow body closed)
        log.warning("client left during %s %s: %s", request.method, request.path, exc)
        return _json_error(400, "client_gone", "the connection was lost")  # nobody reads it
    except HttpProcessingError as exc:  # a body the HTTP parser refused mid-stream (bad chunking...)
        log.warning("malformed request body in %s %s: %s", request.method, request.path, exc.message)
        return _json_error(400, "bad_request", "malformed request body")
    except PasswordHashFormatError:
        log.exception("stored password hash is corrupt")
        return _json_error(503, "storage", "device storage failure; see the device log")
    except Exception as exc:
        log.exception("unexpected error in %s %s", request.method, request.path)
        _audit_internal_error(request, exc)
        return _json_error(500, "internal", "internal error")


def _printable(text: str, limit: int = 200) -> str:
    """``text`` as ASCII for the audit log, whatever it holds (lone surrogates included)."""
    return text.encode("ascii", "backslashreplace").decode("ascii")[:limit]


def _audit_internal_error(request: web.Request, exc: Exception) -> None:
    """An unexpected exception is an ``internal_error`` audit entry (effects were rolled back)."""
    audit = request.app.get(AUDIT_KEY)
    if audit is None:
        return
    user = request.get(USER_KEY)
    try:
        audit.record(
            "internal_error",
            actor=user.name if user is not None else "-",
            source=request.remote or "unknown",
            detail={"method": request.method, "path": _printable(request.path), "exception": type(exc).__name__},
            now=request.config_dict[CLOCK_KEY](),
        )
    except DeviceError as audit_exc:  # the 500 goes out anyway; the device log has both
        log.error("cannot record the internal error in the audit log: %s", audit_exc)


def security_headers(config: DeviceConfig) -> dict[str, str]:
    """The headers every HTTPS response carries (parser-level errors included)."""
    return {
        "Strict-Transport-Security": f"max-age={config.hsts_max_age}",
        "Server": config.server_header,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "Cross-Origin-Opener-Policy": "same-origin",
    }


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    headers.update(request.config_dict[CONNECTIONS_KEY].error_headers)
    if request.path.startswith("/api/") and "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"


def _credentials_ctx(config: DeviceConfig, handoff: BootHandoff) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        hash_file = config.initial_password_hash_file
        try:
            # line 1: the label password's hash; line 2 (optional): the hash of its fold
            hashes = hash_file.read_text("ascii").split()
            initial_hash, label_fold_hash = hashes[0], (hashes[1] if len(hashes) > 1 else None)
        except (IndexError, OSError, UnicodeDecodeError) as exc:
            raise StorageError(f"cannot read the initial password hash {hash_file}: {exc}") from exc
        sealed_file = config.initial_password_sealed_file
        try:  # absent on units provisioned before digest logins existed: no digest for admin then
            initial_sealed = sealed_file.read_bytes() if sealed_file.exists() else None
        except OSError as exc:
            raise StorageError(f"cannot read the sealed initial password {sealed_file}: {exc}") from exc
        identity = handoff.identity
        settings = load_settings(config.settings_file)
        store = CredentialStore.open(
            config.users_db,
            initial_hash=initial_hash,
            policy=settings.password_policy or config.password_policy,
            context=PolicyContext(
                username="", serial=identity.serial, model=identity.model, vendor=identity.vendor
            ),
            throttle=config.throttle,
            now=app[CLOCK_KEY](),
            flaws=config.flaws,
            label_fold_hash=label_fold_hash,
            sealing_key=handoff.services.derive_key(SEALED_SECRET_LABEL),
            initial_sealed=initial_sealed,
        )
        app[CREDENTIALS_KEY] = store
        yield
        store.close()

    return ctx


def _sessions_ctx(config: DeviceConfig) -> Callable[[web.Application], AsyncIterator[None]]:
    from .sessions import SessionStore

    sessions = config.sessions
    if "session-no-idle-expiry" in config.flaws:  # UNSAFE flaw profile: an idle session never ends
        sessions = dataclasses.replace(sessions, idle_timeout=math.inf)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        store = SessionStore.open(config.sessions_db, config=sessions)
        app[SESSIONS_KEY] = store
        yield
        store.close()

    return ctx


def _audit_ctx(config: DeviceConfig, handoff: BootHandoff) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        services = handoff.services
        audit = AuditLog.open(config.audit_db, key=services.derive_key("audit-log"), anchor=services)
        app[AUDIT_KEY] = audit
        now = app[CLOCK_KEY]()
        try:  # verified at every boot: a cut or edited log is a boot notice and an audit event
            audit.verify_chain()
            broken = None
        except AuditChainError as exc:
            broken = f"audit log fails verification at boot: {exc}"
            log.warning("%s", broken)
        audit.record(
            "boot",
            actor="-",
            source="device",
            detail={
                "slot": handoff.booted_slot,
                "version": handoff.firmware.version,
                "trial": handoff.trial,
                "measurement_register": handoff.measurement_register,
            },
            now=now,
        )
        for notice in handoff.notices:  # fallbacks and tamper met by the boot chain
            audit.record("boot_notice", actor="-", source="device", detail={"notice": notice}, now=now)
        if broken is not None:
            audit.record("boot_notice", actor="-", source="device", detail={"notice": broken}, now=now)
        yield
        audit.close()

    return ctx


def builtin_extensions() -> list[Extension]:
    """Route sets shipped in the firmware that exist in this build (the web UI and its languages, ONVIF)."""
    found: list[Extension] = []
    try:
        webui = importlib.import_module(".webui", __package__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.webui":
            raise
    else:
        found += [webui.add_webui_routes, webui.add_language_routes]
    try:  # ONVIF Profile S/T services on the same TLS server (device/onvif)
        onvif = importlib.import_module(".onvif", __package__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.onvif":
            raise
    else:
        found.append(onvif.add_onvif_routes)
    return found


def _has_session(request: web.Request) -> bool:
    """A logged-in caller (the access middleware set the user): its body may take its time."""
    return request.get(USER_KEY) is not None


def create_app(
    config: DeviceConfig,
    *,
    handoff: BootHandoff,
    clock: Callable[[], float] = time.time,
    extensions: Sequence[Extension] | None = None,
) -> web.Application:
    """The management application; ``extensions`` default to :func:`builtin_extensions`."""
    from . import api

    app = web.Application(
        middlewares=[connection_middleware, error_middleware, access_middleware],
        client_max_size=config.api_max_body,
    )
    app[CONNECTIONS_KEY] = ConnectionGuard(
        config.connections, headers=security_headers(config), trusted=_has_session
    )
    app[CONFIG_KEY] = config
    app[HANDOFF_KEY] = handoff
    app[CLOCK_KEY] = clock
    app[REBOOT_KEY] = asyncio.Event()
    app.on_response_prepare.append(_security_headers)
    # order matters: the audit log first, so the others can log into it
    app.cleanup_ctx.append(_audit_ctx(config, handoff))
    app.cleanup_ctx.append(_credentials_ctx(config, handoff))
    app.cleanup_ctx.append(_sessions_ctx(config))
    api.add_api_routes(app)
    for extension in builtin_extensions() if extensions is None else extensions:
        extension(app)
    return app


def _redirect_host(listen_host: str, request: web.Request) -> str:
    """The host of the HTTPS URL: the configured listen address, never the Host header.

    A wildcard listen address (``0.0.0.0``, ``::``) names no host, so the local
    address the client reached is used (the kernel's word, not the client's).
    """
    try:
        address = ipaddress.ip_address(listen_host)
    except ValueError:
        return listen_host  # a configured name (e.g. localhost)
    if not address.is_unspecified:
        return str(address)
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    return str(sockname[0]) if isinstance(sockname, tuple) and sockname else "localhost"


def _redirect_handler(https_port: int, listen_host: str) -> Handler:
    @requires("public")
    async def redirect(request: web.Request) -> web.StreamResponse:
        target = URL.build(
            scheme="https",
            host=_redirect_host(listen_host, request),
            port=https_port,
            path=request.path,
            query_string=request.query_string,
        )
        # 308 keeps the method; empty body; the request body and credentials are never read.
        # No HSTS header here: RFC 6797 7.2 forbids it over plain HTTP.
        return web.Response(status=308, headers={"Location": str(target)})

    return redirect


def create_redirect_app(
    https_port: int, *, host: str = "localhost", limits: ConnectionLimits | None = None
) -> web.Application:
    """Plain HTTP that only redirects to HTTPS on ``https_port`` of ``host`` (the listen address)."""
    app = web.Application(client_max_size=1, middlewares=[connection_middleware])
    app[CONNECTIONS_KEY] = ConnectionGuard(limits or ConnectionLimits())
    app.router.add_route("*", "/{tail:.*}", _redirect_handler(https_port, host))
    app.on_response_prepare.append(_redirect_headers)
    return app


async def _redirect_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = DeviceConfig.server_header  # no version, as on HTTPS
