"""The ONVIF endpoints on the management TLS server (same port, certificate, TLS profile).

::

    POST /onvif/device_service   Device (ver10)     SOAP 1.2
    POST /onvif/media_service    Media (ver10)      SOAP 1.2
    POST /onvif/media2_service   Media2 (ver20)     SOAP 1.2
    GET  /onvif/snapshot.jpg     one JPEG           HTTP Digest (User level)
    GET  /onvif/stream.mjpeg     the MJPEG stream   HTTP Digest (User level; GetStreamUri names it)

Per request: read at most ``soap.MAX_BODY`` bytes, parse with the hardened
parser, find the operation (``services.OPERATIONS``), authenticate unless the
operation is pre-auth (WS-Security UsernameToken PasswordDigest, or HTTP
Digest RFC 7616 with SHA-256), both through ``CredentialStore.authenticate_proof``
so throttling, lockout and audit are the web login's; then the forced
first-login change (only the caller's own SetUser works while the label
password is in use) and the user level. Every refusal is a SOAP fault with
its ONVIF subcode, never a 500. There is no plaintext ONVIF: the redirector
on plain HTTP answers 308 without reading the request.

Example::

    app = create_app(config, handoff=handoff, extensions=[add_onvif_routes])
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..access import requires
from ..appkeys import (
    AUDIT_KEY,
    CLOCK_KEY,
    CONFIG_KEY,
    CREDENTIALS_KEY,
    HANDOFF_KEY,
    REBOOT_KEY,
    SESSIONS_KEY,
)
from ..digest import DigestAuthority, DigestError, parse_authorization
from ..errors import DeviceError, InvalidCredentials, StorageError, Throttled, UnsafeUnknownUser
from ..factoryreset import reset_to_factory
from .errors import OnvifFault, not_authorized
from .media import MJPEG_PATH, MediaDescription
from .services import (
    DEVICE_PATH,
    LEVEL_OF_ROLE,
    LEVEL_RANK,
    MEDIA2_PATH,
    MEDIA_PATH,
    SNAPSHOT_PATH,
    Call,
    find_operation,
    is_own_password_change,
)
from .soap import CONTENT_TYPE, MAX_BODY, NS, Envelope, fault_envelope, parse_envelope, serialised
from .upgrade import UPLOAD_PREFIX, UploadTickets, start_upgrade_for
from .upgrade import upload as firmware_upload
from .wsse import ReplayGuard, TokenRefused, parse_username_token

if TYPE_CHECKING:
    from ..credentials import User

log = logging.getLogger(__name__)

REALM = "refcam-onvif"
REBOOT_DELAY = 0.5  # seconds: let the SystemReboot answer reach the client first
MUST_CHANGE_REASON = (
    "the password must be changed before any other operation: the label (initial) password is "
    "still in use; send SetUser for your own user with a new password"
)
_PATH_NAMESPACE = {DEVICE_PATH: NS["tds"], MEDIA_PATH: NS["trt"], MEDIA2_PATH: NS["tr2"]}


@dataclass
class OnvifState:
    """Per-app ONVIF state: the replay memory of UsernameTokens and the Digest authority."""

    guard: ReplayGuard
    digest: DigestAuthority
    media: MediaDescription = field(default_factory=MediaDescription)
    tickets: UploadTickets = field(default_factory=UploadTickets)
    # whether the app has the update client (set at start-up, so read once, at the first request)
    has_update_client: bool | None = None
    # what every Call of this app shares (its stores and actions, all set at start-up): made once
    call_parts: dict[str, Any] | None = None


ONVIF_KEY = web.AppKey("refcam.onvif", OnvifState)
# The stream geometry and RTSP state, set by device.main from --source (and the RTSP service).
MEDIA_KEY = web.AppKey("refcam.onvif.media", MediaDescription)


def _soap(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, headers=headers, content_type=CONTENT_TYPE, charset="utf-8")


def fault_response(fault: OnvifFault, headers: dict[str, str] | None = None) -> web.Response:
    return _soap(fault_envelope(fault), fault.http_status, headers)


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise OnvifFault("Sender", ("WellFormed",), f"SOAP request over the {MAX_BODY}-byte limit", http_status=413)
    if request.content_length is not None:  # declared and within the limit: one read of exactly that much
        try:
            return await request.content.readexactly(request.content_length)
        except asyncio.IncompleteReadError as exc:
            raise OnvifFault("Sender", ("WellFormed",), "SOAP request shorter than its Content-Length") from exc
    chunks, size = [], 0  # chunked: count as it arrives
    async for chunk in request.content.iter_chunked(16384):
        size += len(chunk)
        if size > MAX_BODY:
            raise OnvifFault("Sender", ("WellFormed",), f"SOAP request over the {MAX_BODY}-byte limit", http_status=413)
        chunks.append(chunk)
    return b"".join(chunks)


def _local_host(request: web.Request) -> tuple[str, int]:
    """The address and port the client reached (the kernel's word, never the Host header)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return str(sockname[0]), int(sockname[1])
    return "127.0.0.1", 443


def _call(request: web.Request, user: User | None, now: float) -> Call:
    app = request.config_dict
    state = app[ONVIF_KEY]
    parts = state.call_parts
    if parts is None:
        reboot = app[REBOOT_KEY]
        parts = state.call_parts = {
            "store": app[CREDENTIALS_KEY], "audit": app[AUDIT_KEY], "handoff": app[HANDOFF_KEY],
            "reboot": lambda: _reboot_soon(reboot),
            "start_upgrade": start_upgrade_for(state.tickets) if _update_client_present(request, state) else None,
            "factory_reset": functools.partial(_factory_reset, app),
        }
    host, port = _local_host(request)
    return Call(user=user, now=now, host=host, port=port, source=request.remote or "unknown",
                media=app.get(MEDIA_KEY, state.media), **parts)


def _factory_reset(app: Any, call: Call, kind: str) -> None:
    """SetSystemFactoryDefault's effect (off the loop): device.factoryreset on this app's stores."""
    config = app[CONFIG_KEY]
    reset_to_factory(
        store=app[CREDENTIALS_KEY], sessions=app.get(SESSIONS_KEY), settings_file=config.settings_file,
        default_policy=config.password_policy, now=call.now,
        commit_hook=call.hook("factory_default", {"kind": kind, "via": "onvif"}),
    )


def _reboot_soon(event: asyncio.Event) -> None:
    """Reboot once the SystemReboot answer has left (as the update routes do)."""
    asyncio.get_running_loop().call_later(REBOOT_DELAY, event.set)


def _update_client_present(request: web.Request, state: OnvifState) -> bool:
    if state.has_update_client is None:
        state.has_update_client = _has_update_client(request)
    return state.has_update_client


def _has_update_client(request: web.Request) -> bool:
    return request.config_dict.get(_update_client_key()) is not None


@functools.cache
def _update_client_key() -> web.AppKey[Any]:
    from ..update.web import (
        UPDATE_CLIENT_KEY,  # imported late: the update stack is heavy and optional
    )

    return UPDATE_CLIENT_KEY


def _challenge(request: web.Request, now: float, *, stale: bool = False) -> dict[str, str]:
    values = request.config_dict[ONVIF_KEY].digest.challenge(now=now, stale=stale)
    return {"WWW-Authenticate": ", ".join(values)} if len(values) == 1 else {"WWW-Authenticate": values[0]}


def _sink(request: web.Request, actor: str, now: float) -> Callable[[str, dict[str, Any]], None]:
    audit, source = request.config_dict[AUDIT_KEY], request.remote or "unknown"

    def sink(event: str, detail: dict[str, Any]) -> None:
        audit.record(event, actor=actor, source=source, detail=detail, now=now)

    return sink


class _AuthFailed(Exception):
    def __init__(self, response: web.Response) -> None:
        self.response = response


async def authenticate(request: web.Request, header: Any, now: float, *, http_only: bool = False) -> User:
    """The caller, from a UsernameToken in ``header`` or an HTTP Digest ``Authorization``.

    Raises :class:`_AuthFailed` carrying the answer (a NotAuthorized fault, 401
    with a Digest challenge, or 429 when throttled).
    """
    app = request.config_dict
    store, state = app[CREDENTIALS_KEY], app[ONVIF_KEY]
    source = request.remote or "unknown"
    token = None if http_only else parse_username_token(header)
    authorization = request.headers.get("Authorization")
    try:
        if token is not None:
            try:
                state.guard.check(token, now=now)
            except TokenRefused as refused:  # replay or stale: refused before any password check, audited
                app[AUDIT_KEY].record(
                    "onvif_token_refused", actor=token.username[:64], source=source,
                    detail={"reason": refused.kind, "route": "onvif"}, now=now,
                )
                raise
            return await _proof(store, token.username, token.matches, source, now, request)
        if authorization is not None and authorization.lower().startswith("digest "):
            try:
                creds = parse_authorization(authorization)
                state.digest.check_fresh(creds, now=now)
                state.digest.check_uri(creds, request.path_qs)
            except DigestError as exc:
                raise _AuthFailed(_unauthorized(request, now, str(exc), stale=exc.stale)) from exc
            return await _proof(
                store, creds.username,
                lambda secret: state.digest.response_matches(creds, method=request.method, password=secret),
                source, now, request,
            )
    except Throttled as exc:
        fault = OnvifFault("Sender", ("NotAuthorized",), f"too many failed logins; try again in {exc.retry_after} s", http_status=429)
        raise _AuthFailed(fault_response(fault, {"Retry-After": str(exc.retry_after)})) from exc
    except (InvalidCredentials, UnsafeUnknownUser) as exc:
        if token is not None:
            raise _AuthFailed(fault_response(not_authorized("invalid user name or password"))) from exc
        raise _AuthFailed(_unauthorized(request, now, "invalid user name or password")) from exc
    except OnvifFault as fault:
        raise _AuthFailed(fault_response(fault)) from fault
    raise _AuthFailed(_unauthorized(request, now, "authentication required: WS-Security UsernameToken (PasswordDigest) or HTTP Digest"))


async def _proof(store: Any, username: str, proof: Callable[[str], bool], source: str, now: float, request: web.Request) -> User:
    # The common case first, on the loop: an account and source with no failure or lockout
    # recorded and a right proof need no transaction (CredentialStore.authenticate_proof_fast,
    # a few microseconds, never blocks). Anything else takes the full path off the loop.
    fast: User | None = store.authenticate_proof_fast(username[:64], proof, source=source)
    if fast is not None:
        return fast
    call = functools.partial(
        store.authenticate_proof, username[:64], proof, source=source, now=now,
        audit=_sink(request, username[:64], now), route="onvif",
    )
    # ONVIF authenticates every request, and clients send several at once: a digest is
    # checked inside the throttle's own transaction (CredentialStore.authenticate_proof),
    # so a success counts no failure and parallel requests do not throttle each other.
    user: User = await asyncio.get_running_loop().run_in_executor(None, call)
    return user


async def digest_caller(request: web.Request, now: float) -> User | web.Response:
    """The HTTP Digest caller of a plain GET/POST route (snapshot, stream, firmware upload),
    or the answer to send instead: the challenge, the throttle, or the forced-change fault."""
    try:
        user = await authenticate(request, None, now, http_only=True)
    except _AuthFailed as failed:
        return failed.response
    if user.must_change:
        return fault_response(not_authorized(MUST_CHANGE_REASON))
    return user


def _unauthorized(request: web.Request, now: float, reason: str, *, stale: bool = False) -> web.Response:
    fault = OnvifFault("Sender", ("NotAuthorized",), reason, http_status=401)
    return fault_response(fault, _challenge(request, now, stale=stale))


async def _dispatch(request: web.Request, namespace: str) -> web.Response:
    now = request.config_dict[CLOCK_KEY]()
    try:
        env: Envelope = parse_envelope(await _read_body(request))
        if env.namespace != namespace:  # an operation of another service at this endpoint
            raise OnvifFault("Receiver", ("ActionNotSupported",), f"{env.name[:64]} is not an operation of this service")
        op = find_operation(env.namespace, env.name)
        if op.level == "pre-auth":
            return _soap(serialised(await op.handler(_call(request, None, now), env.operation)))
        anonymous = _unsafe_anonymous_level(request, env, op.level)
        if anonymous is not None:  # UNSAFE flaw profiles only
            return _soap(serialised(await op.handler(_call(request, None, now), env.operation)))
        try:
            user = await authenticate(request, env.header, now)
        except _AuthFailed as failed:
            return failed.response
        if user.must_change and not (env.name == "SetUser" and is_own_password_change(user, env.operation)):
            raise not_authorized(MUST_CHANGE_REASON)
        if LEVEL_RANK[LEVEL_OF_ROLE[user.role]] < LEVEL_RANK[op.level]:
            raise not_authorized(f"{env.name} needs the {op.level} level; {user.name} is {LEVEL_OF_ROLE[user.role]}")
        return _soap(serialised(await op.handler(_call(request, user, now), env.operation)))
    except OnvifFault as fault:
        return fault_response(fault)
    except StorageError as exc:
        log.error("ONVIF storage failure: %s", exc)
        return fault_response(OnvifFault("Receiver", ("Action",), "device storage failure; see the device log", http_status=503))
    except DeviceError as exc:  # any other domain refusal: the sender's
        return fault_response(OnvifFault("Sender", ("InvalidArgVal",), str(exc)[:200]))


def _unsafe_anonymous_level(request: web.Request, env: Envelope, level: str) -> str | None:
    """The flaw profiles that answer without credentials: the level they grant, or None.

    ``onvif-preauth-open`` opens the User-level reads; ``onvif-anonymous-default``
    treats a request without credentials as an anonymous Administrator (the
    factory state that made ONVIF deprecate Profile Q). SetUser always needs a user.
    """
    flaws = request.config_dict[CONFIG_KEY].flaws
    if not flaws or env.name == "SetUser" or "Authorization" in request.headers:
        return None
    if parse_username_token(env.header) is not None:
        return None
    if "onvif-anonymous-default" in flaws:
        log.warning("UNSAFE onvif-anonymous-default: %s answered without credentials", env.name)
        return "Administrator"
    if "onvif-preauth-open" in flaws and level == "User":
        log.warning("UNSAFE onvif-preauth-open: %s answered without credentials", env.name)
        return "User"
    return None


def _endpoint(namespace: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @requires("public")  # the SOAP layer authenticates each operation itself (pre-auth ones included)
    async def endpoint(request: web.Request) -> web.StreamResponse:
        return await _dispatch(request, namespace)

    return endpoint


@requires("public")  # HTTP Digest below, the User level at least
async def snapshot(request: web.Request) -> web.StreamResponse:
    from ..stream.errors import StreamError
    from ..stream.web import STREAM_KEY

    now = request.config_dict[CLOCK_KEY]()
    if request.query:
        return fault_response(not_authorized("no query parameters: credentials go in the Authorization header"))
    user = await digest_caller(request, now)
    if isinstance(user, web.Response):
        return user
    routes = request.config_dict.get(STREAM_KEY)
    if routes is None:
        return fault_response(OnvifFault("Receiver", ("ActionNotSupported",), "this device serves no video stream", http_status=404))
    try:
        frame, _ = await routes.pipeline.snapshot()
    except StreamError as exc:
        return fault_response(OnvifFault("Receiver", ("Action",), f"no frame available: {exc}", http_status=503))
    return web.Response(body=frame.jpeg, content_type="image/jpeg", headers={"Cache-Control": "no-store"})


@requires("public")  # HTTP Digest below (the same authority as the SOAP services), the User level at least
async def mjpeg_stream(request: web.Request) -> web.StreamResponse:
    """The MJPEG stream GetStreamUri names, for clients that hold ONVIF credentials, not a web session.

    Digest (RFC 7616, SHA-256) through ``CredentialStore.authenticate_proof``, then
    the web API's stream handler; every few seconds the stream re-checks that the
    user still exists, has not changed their password and needs no forced change.
    """
    from ..stream.web import STREAM_KEY, STREAM_RECHECK, stream_mjpeg

    now = request.config_dict[CLOCK_KEY]()
    user = await digest_caller(request, now)
    if isinstance(user, web.Response):
        return user
    if request.config_dict.get(STREAM_KEY) is None:
        return fault_response(OnvifFault("Receiver", ("ActionNotSupported",), "this device serves no video stream", http_status=404))
    store = request.config_dict[CREDENTIALS_KEY]

    def recheck() -> bool:
        current = store.get_user(user.name)
        return current is not None and not current.must_change and current.password_changed == user.password_changed

    request[STREAM_RECHECK] = recheck
    return await stream_mjpeg(request)


def add_onvif_routes(app: web.Application) -> None:
    """Mount the ONVIF services on ``app`` (the management TLS server)."""
    config = app[CONFIG_KEY]
    flaws = config.flaws
    algorithms = ("MD5",) if "onvif-digest-md5-only" in flaws else ("SHA-256",)
    app[ONVIF_KEY] = OnvifState(
        guard=ReplayGuard(unsafe_no_replay_check="wsse-replay" in flaws),
        digest=DigestAuthority(os.urandom(32), realm=REALM, algorithms=algorithms),
    )
    for path, namespace in _PATH_NAMESPACE.items():
        app.router.add_post(path, _endpoint(namespace))
    app.router.add_get(SNAPSHOT_PATH, snapshot, allow_head=False)
    app.router.add_get(MJPEG_PATH, mjpeg_stream, allow_head=False)
    app.router.add_post(UPLOAD_PREFIX + "{ticket}", firmware_upload)
