"""The JSON API under ``/api/v1``: device info and status, sessions, users, audit, attestation.

Every handler declares its access requirement (``access.requires``) and a
one-line summary (its docstring, used by ``openapi.py``). Bodies are JSON
objects read by :func:`read_json` (``Content-Type: application/json``, at
most ``DeviceConfig.api_max_body`` bytes, strict UTF-8, no NaN/Infinity);
:func:`parse_json_object` is the pure parser the fuzz tests drive. Domain
errors are raised, and ``server.error_middleware`` turns them into 4xx JSON.

Routes::

    GET    /api/v1/info                 public (more fields when logged in)
    GET    /api/v1/status               viewer
    POST   /api/v1/session              public   login -> token, csrf_token, cookie
    GET    /api/v1/session              password-change   who am I
    DELETE /api/v1/session              password-change   logout
    POST   /api/v1/session/password     password-change   change own password
    GET    /api/v1/users                admin
    POST   /api/v1/users                admin
    GET    /api/v1/users/{name}         admin
    PATCH  /api/v1/users/{name}         admin    {"role": ...}
    DELETE /api/v1/users/{name}         admin
    POST   /api/v1/users/{name}/password admin   reset (user must change it)
    GET    /api/v1/settings             admin
    PATCH  /api/v1/settings             admin    {"password_policy": ...}
    GET    /api/v1/audit                admin    ?after=SEQ&limit=N
    GET    /api/v1/audit/export         admin    JSON lines
    GET    /api/v1/audit/verify         admin
    POST   /api/v1/attestation          viewer   {"nonce": hex, 16..64 bytes}
    GET    /api/v1/openapi.json         public
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import math
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from .access import SESSION_COOKIE, current_user, requires, session_token
from .appkeys import (
    AUDIT_KEY,
    CLOCK_KEY,
    CONFIG_KEY,
    CREDENTIALS_KEY,
    HANDOFF_KEY,
    SESSIONS_KEY,
    USER_KEY,
)
from .config import (
    PASSWORD_POLICIES,
    SETTING_NAMES,
    RuntimeSettings,
    check_update_url,
    load_settings,
    restore_settings,
    save_settings,
)
from .credentials import AuditSink, User
from .devicecookies import DEVICE_COOKIE
from .i18n import msg
from .inputs import ascii_int, first_unencodable
from .sessions import csrf_token_for

if TYPE_CHECKING:
    from common.handoff import BootHandoff
from .errors import AuditChainError, ConfigError, RequestError, StorageError, UserError

PREFIX = "/api/v1"
MAX_NAME_CHARS = 64
MAX_PASSWORD_INPUT = 1024  # characters accepted on input; the policy caps new ones at 128
NONCE_MIN, NONCE_MAX = 16, 64  # bytes

T = TypeVar("T")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from request bytes; raises :class:`RequestError` for anything else."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError("bad_encoding", msg("request body is not UTF-8: {reason} at byte {start}", reason=exc.reason, start=exc.start)) from exc
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError as exc:
        raise RequestError("malformed_json", msg("request body nests too deeply")) from exc
    except ValueError as exc:
        raise RequestError("malformed_json", msg("request body is not valid JSON: {error}", error=exc)) from exc
    if not isinstance(value, dict):
        raise RequestError("bad_type", msg("request body must be a JSON object, found {kind}", kind=type(value).__name__))
    bad = first_unencodable(value)
    if bad is not None:  # a lone surrogate ("\ud800"): valid JSON, but not text anything can store
        raise RequestError("bad_encoding", msg("request body holds a string that is not valid Unicode: {text}", text=ascii(bad)[:40]))
    return value


async def read_json(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise RequestError(
            "unsupported_media_type",
            f"Content-Type must be application/json, found {request.content_type or 'none'}",
            status=415,
        )
    raw = await request.read()  # aiohttp raises 413 beyond client_max_size
    return parse_json_object(raw)


def field(body: dict[str, Any], name: str, kind: type[T], *, max_len: int | None = None) -> T:
    """``body[name]`` checked to be a ``kind`` (bool is not an int)."""
    if name not in body:
        raise RequestError("missing_field", msg("field {name!r} is required", name=name))
    value = body[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise RequestError("bad_type", msg("field {name!r} must be {kind}, found {found}", name=name, kind=kind.__name__, found=type(value).__name__))
    if max_len is not None and isinstance(value, str) and len(value) > max_len:
        raise RequestError("too_long", msg("field {name!r} has {length} characters, at most {limit} allowed", name=name, length=len(value), limit=max_len))
    return value


def _now(request: web.Request) -> float:
    return request.config_dict[CLOCK_KEY]()


def _source(request: web.Request) -> str:
    return request.remote or "unknown"


async def _off_loop(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run slow password hashing off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(func, *args, **kwargs))


def _audit(request: web.Request, event: str, actor: str, detail: dict[str, Any], now: float) -> None:
    request.config_dict[AUDIT_KEY].record(event, actor=actor, source=_source(request), detail=detail, now=now)


def _audit_hook(
    request: web.Request, event: str, actor: str, detail: dict[str, Any], now: float
) -> Callable[[], object]:
    """The audit record of an effect, to run inside the effect's transaction before COMMIT:
    if recording fails, the effect is rolled back (they commit together or not at all)."""
    return functools.partial(
        request.config_dict[AUDIT_KEY].record, event, actor=actor, source=_source(request), detail=detail, now=now
    )


def _audit_sink(request: web.Request, actor: str, now: float) -> AuditSink:
    """Where the credential store records login decisions (failure, lockout, its end)."""
    audit, source = request.config_dict[AUDIT_KEY], _source(request)

    def sink(event: str, detail: dict[str, Any]) -> None:
        audit.record(event, actor=actor, source=source, detail=detail, now=now)

    return sink


def _user_json(user: User) -> dict[str, Any]:
    return {
        "username": user.name,
        "role": user.role,
        "password_change_required": user.must_change,
        "created": user.created,
        "password_changed": user.password_changed,
    }


# -- device -----------------------------------------------------------------


@requires("public")
async def get_info(request: web.Request) -> web.Response:
    """Vendor, model and support period (EN 303 645 5.3-13); serial and firmware when logged in."""
    handoff = request.config_dict[HANDOFF_KEY]
    info: dict[str, Any] = {
        "vendor": handoff.identity.vendor,
        "model": handoff.identity.model,
        "support_end": handoff.firmware.support_end,
        "password_policy": request.config_dict[CREDENTIALS_KEY].policy,
    }
    flaws = request.config_dict[CONFIG_KEY].flaws
    if flaws:  # a deliberately flawed device says so (common.flaws)
        info["unsafe_flaws"] = list(flaws)
    if current_user(request) is not None:
        info.update(
            serial=handoff.identity.serial,
            hardware_id=handoff.identity.hardware_id,
            firmware_version=handoff.firmware.version,
        )
    return web.json_response(info)


def status_document(h: BootHandoff) -> dict[str, Any]:
    """The boot facts of this run, with the live trial flag and fuses (they change once, at confirm)."""
    fuses = h.services.fuses()
    return {
        "booted_slot": h.booted_slot,
        "firmware_version": h.firmware.version,
        "security_counter": h.security_counter,
        "trial": h.services.trial,  # live: false once confirmed
        "slots": [asdict(s) for s in h.slots],
        "fuses": {
            "firmware_counter": fuses.firmware_counter,
            "bootloader_counter": fuses.bootloader_counter,
            "key_manifest_counter": fuses.key_manifest_counter,
            "debug_disabled": fuses.debug_disabled,
            "rot_keys": [{"spki_sha256": k, "revoked": r} for k, r in fuses.rot_keys],
        },
        "lifecycle": fuses.lifecycle,
        "measurement_register": h.measurement_register,
        "measurements": [asdict(m) for m in h.measurements],
    }


# password policy -> the encoded status document (boot facts never change while running)
_STATUS_BODY: web.AppKey[dict[tuple[str, bool], bytes]] = web.AppKey("refcam.api.status_body")


@requires("viewer")
async def get_status(request: web.Request) -> web.Response:
    """Boot state: booted slot, both slots, fused counters, lifecycle, trial flag, measurements."""
    policy = request.config_dict[CREDENTIALS_KEY].policy
    handoff = request.app[HANDOFF_KEY]
    # Only the policy and a confirm (trial flag, fuses) change the document while running.
    key = (policy, handoff.services.trial)
    cache = request.app[_STATUS_BODY]
    body = cache.get(key)
    if body is None:
        document = status_document(handoff)
        document["tls_profile"] = request.config_dict[CONFIG_KEY].tls_profile
        document["password_policy"] = policy
        body = cache[key] = json.dumps(document).encode("utf-8")
    return web.Response(body=body, content_type="application/json")


@requires("viewer")
async def post_attestation(request: web.Request) -> web.Response:
    """Fresh attestation evidence over this boot's measurements, bound to the caller's nonce."""
    body = await read_json(request)
    nonce_hex = field(body, "nonce", str, max_len=2 * NONCE_MAX)
    try:
        nonce = bytes.fromhex(nonce_hex)
    except ValueError as exc:
        raise RequestError("bad_nonce", msg("nonce must be hexadecimal")) from exc
    if not NONCE_MIN <= len(nonce) <= NONCE_MAX:
        raise RequestError("bad_nonce", msg("nonce has {length} bytes; {low} to {high} required", length=len(nonce), low=NONCE_MIN, high=NONCE_MAX))
    attester = request.config_dict[HANDOFF_KEY].attester
    evidence = attester.evidence(nonce, now=int(_now(request)))
    return web.json_response({"nonce": nonce.hex(), "evidence": base64.b64encode(evidence).decode("ascii")})


# -- session ----------------------------------------------------------------


@requires("public")
async def post_session(request: web.Request) -> web.Response:
    """Log in with {username, password}; returns a bearer token, a CSRF token and a cookie."""
    body = await read_json(request)
    username = field(body, "username", str, max_len=MAX_NAME_CHARS)
    password = field(body, "password", str, max_len=MAX_PASSWORD_INPUT)
    now = _now(request)
    store = request.config_dict[CREDENTIALS_KEY]
    user = await _off_loop(
        store.authenticate,
        username,
        password,
        source=_source(request),
        now=now,
        device_cookie=request.cookies.get(DEVICE_COOKIE),
        audit=_audit_sink(request, username, now),
    )
    config = request.config_dict[CONFIG_KEY]
    detail = {"password_change_required": user.must_change}
    issued = request.config_dict[SESSIONS_KEY].create(
        user.name, now=now, commit_hook=_audit_hook(request, "login_success", user.name, detail, now)
    )
    response = web.json_response(
        {
            "token": issued.token,
            "csrf_token": issued.csrf_token,
            "username": user.name,
            "role": user.role,
            "password_change_required": user.must_change,
            "password_policy": store.policy,
            # what the session store enforces; null: no limit (never on a secure device)
            "idle_timeout": _finite_or_none(request.config_dict[SESSIONS_KEY].config.idle_timeout),
            "absolute_timeout": _finite_or_none(request.config_dict[SESSIONS_KEY].config.absolute_timeout),
        }
    )
    if "session-cookie-insecure" in config.flaws:  # UNSAFE flaw profile: a cookie any script or HTTP page gets
        response.set_cookie(SESSION_COOKIE, issued.token, path="/", max_age=int(config.sessions.absolute_timeout))
    else:
        response.set_cookie(
            SESSION_COOKIE,
            issued.token,
            secure=True,
            httponly=True,
            samesite="Strict",
            path="/",
            max_age=int(config.sessions.absolute_timeout),
        )
    # OWASP device cookie: this client is now recognised, and an account lockout
    # caused by others does not stop its next logins (credentials.authenticate)
    response.set_cookie(
        DEVICE_COOKIE,
        store.device_cookie(user.name, now=now),
        secure=True,
        httponly=True,
        samesite="Strict",
        path=f"{PREFIX}/session",
        max_age=int(config.throttle.device_cookie_max_age),
    )
    return response


def _finite_or_none(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) else None


@requires("password-change")
async def get_session(request: web.Request) -> web.Response:
    """Who am I: user name, role, whether the password must be changed first."""
    user = request[USER_KEY]
    answer: dict[str, Any] = {
        "username": user.name,
        "role": user.role,
        "password_change_required": user.must_change,
        "password_policy": request.config_dict[CREDENTIALS_KEY].policy,
        "via": user.via,
    }
    presented = session_token(request)
    if user.via == "cookie" and presented is not None:
        # a reloaded page lost its CSRF token; the same-origin policy keeps this answer private
        answer["csrf_token"] = csrf_token_for(presented[0])
    return web.json_response(answer)


@requires("password-change")
async def delete_session(request: web.Request) -> web.Response:
    """Log out: end this session and clear the cookie."""
    user = request[USER_KEY]
    if "session-survives-logout" in request.config_dict[CONFIG_KEY].flaws:
        # UNSAFE flaw profile: only the browser forgets the session; the server keeps it valid
        _audit(request, "logout", user.name, {}, _now(request))
    else:
        request.config_dict[SESSIONS_KEY].delete(
            user.session_id, commit_hook=_audit_hook(request, "logout", user.name, {}, _now(request))
        )
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    return response


@requires("password-change")
async def post_password(request: web.Request) -> web.Response:
    """Change your own password {current_password, new_password}; ends your other sessions."""
    body = await read_json(request)
    current = field(body, "current_password", str, max_len=MAX_PASSWORD_INPUT)
    new = field(body, "new_password", str, max_len=MAX_PASSWORD_INPUT)
    user = request[USER_KEY]
    now = _now(request)
    store = request.config_dict[CREDENTIALS_KEY]
    sessions = request.config_dict[SESSIONS_KEY]

    keep_others = "session-survives-password-change" in request.config_dict[CONFIG_KEY].flaws

    def end_other_sessions_and_audit() -> None:  # inside the password change's transaction
        # UNSAFE flaw profile session-survives-password-change: a thief's session lives on
        ended = 0 if keep_others else sessions.delete_user_sessions(user.name, keep=user.session_id)
        detail = {"forced": user.must_change, "sessions_ended": ended}
        _audit_hook(request, "password_change", user.name, detail, now)()

    # a wrong current password counts like a failed login (and is audited as one)
    await _off_loop(
        store.change_password,
        user.name,
        current,
        new,
        source=_source(request),
        now=now,
        device_cookie=request.cookies.get(DEVICE_COOKIE),
        audit=_audit_sink(request, user.name, now),
        commit_hook=end_other_sessions_and_audit,
    )
    return web.Response(status=204)


# -- users ------------------------------------------------------------------


@requires("admin")
async def list_users(request: web.Request) -> web.Response:
    """Every user with role and password state."""
    users = request.config_dict[CREDENTIALS_KEY].list_users()
    return web.json_response({"users": [_user_json(u) for u in users]})


@requires("admin")
async def create_user(request: web.Request) -> web.Response:
    """Create a user {username, role, password}; the password must pass the policy and be changed at first login."""
    body = await read_json(request)
    name = field(body, "username", str, max_len=MAX_NAME_CHARS)
    role = field(body, "role", str, max_len=16)
    password = field(body, "password", str, max_len=MAX_PASSWORD_INPUT)
    now = _now(request)
    hook = _audit_hook(request, "user_create", request[USER_KEY].name, {"username": name, "role": role}, now)
    user = await _off_loop(
        request.config_dict[CREDENTIALS_KEY].create_user, name, role, password, now=now, commit_hook=hook
    )
    return web.json_response(_user_json(user), status=201)


def _target(request: web.Request) -> str:
    return request.match_info["name"]


@requires("admin")
async def get_user(request: web.Request) -> web.Response:
    """One user."""
    user = request.config_dict[CREDENTIALS_KEY].get_user(_target(request))
    if user is None:
        raise UserError("no_such_user", msg("there is no user {name!r}", name=_target(request)), status=404)
    return web.json_response(_user_json(user))


@requires("admin")
async def patch_user(request: web.Request) -> web.Response:
    """Change a user's role {role}."""
    body = await read_json(request)
    role = field(body, "role", str, max_len=16)
    name = _target(request)
    detail = {"username": name, "role": role}
    hook = _audit_hook(request, "user_role", request[USER_KEY].name, detail, _now(request))
    user = request.config_dict[CREDENTIALS_KEY].set_role(name, role, commit_hook=hook)
    return web.json_response(_user_json(user))


@requires("admin")
async def delete_user(request: web.Request) -> web.Response:
    """Delete a user and end their sessions (the last admin cannot be deleted)."""
    name = _target(request)
    hook = _audit_hook(request, "user_delete", request[USER_KEY].name, {"username": name}, _now(request))
    request.config_dict[CREDENTIALS_KEY].delete_user(name, commit_hook=hook)
    # a session of a deleted user is refused anyway (access.authenticate finds no user)
    request.config_dict[SESSIONS_KEY].delete_user_sessions(name)
    return web.Response(status=204)


@requires("admin")
async def reset_user_password(request: web.Request) -> web.Response:
    """Set a user's password {password}; they must change it at their next login."""
    body = await read_json(request)
    password = field(body, "password", str, max_len=MAX_PASSWORD_INPUT)
    name = _target(request)
    now = _now(request)
    sessions = request.config_dict[SESSIONS_KEY]

    def end_sessions_and_audit() -> None:  # inside the reset's transaction
        sessions.delete_user_sessions(name)
        _audit_hook(request, "user_password_reset", request[USER_KEY].name, {"username": name}, now)()

    await _off_loop(
        request.config_dict[CREDENTIALS_KEY].reset_password, name, password, now=now,
        commit_hook=end_sessions_and_audit,
    )
    return web.Response(status=204)


# -- settings ---------------------------------------------------------------


@requires("admin")
async def get_settings(request: web.Request) -> web.Response:
    """Run-time settings in force: the password policy profile and the update source."""
    store = request.config_dict[CREDENTIALS_KEY]
    return web.json_response({"password_policy": store.policy, "update_url": _update_url(request)})


def _update_url(request: web.Request) -> str | None:
    config = request.config_dict[CONFIG_KEY]
    return load_settings(config.settings_file).update_url or config.update_url


@requires("admin")
async def patch_settings(request: web.Request) -> web.Response:
    """Change run-time settings {"password_policy": ..., "update_url": "https://..." | null}; audited.

    A null ``update_url`` returns to the firmware's default update source.
    """
    body = await read_json(request)
    unknown = sorted(set(body) - set(SETTING_NAMES))
    if unknown or not body:
        raise RequestError("unknown_setting", msg("unknown or no settings {unknown}; known: {known}", unknown=unknown, known=list(SETTING_NAMES)))
    config = request.config_dict[CONFIG_KEY]
    store = request.config_dict[CREDENTIALS_KEY]
    current = load_settings(config.settings_file)
    changes: dict[str, list[object]] = {}
    policy = current.password_policy
    if "password_policy" in body:
        wanted = field(body, "password_policy", str, max_len=32)
        if wanted not in PASSWORD_POLICIES:
            raise RequestError("bad_value", msg("password_policy must be one of {known}, found {found!r}", known=list(PASSWORD_POLICIES), found=wanted))
        policy = wanted
        changes["password_policy"] = [store.policy, policy]
    update_url = current.update_url
    if "update_url" in body:
        try:
            update_url = None if body["update_url"] is None else check_update_url(body["update_url"])
        except ConfigError as exc:
            raise RequestError("bad_value", str(exc)) from exc
        changes["update_url"] = [_update_url(request), update_url or config.update_url]
    # Settings live in a file, the audit log in SQLite: write, audit, and put the old
    # file back if the audit record fails, so the change and its record go together.
    path = config.settings_file
    try:
        previous: bytes | None = path.read_bytes()
    except FileNotFoundError:
        previous = None
    except OSError as exc:
        raise StorageError(f"cannot read the settings {path}: {exc}") from exc
    try:
        save_settings(path, RuntimeSettings(password_policy=policy, update_url=update_url))
        _audit(request, "config_change", request[USER_KEY].name, changes, _now(request))
    except BaseException:
        restore_settings(path, previous)
        raise
    if policy is not None:
        store.policy = policy
    return web.json_response({"password_policy": store.policy, "update_url": _update_url(request)})


# -- audit ------------------------------------------------------------------


def _int_query(request: web.Request, name: str, default: int, *, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    value = ascii_int(raw)  # ASCII digits only: "²".isdigit() is true, int("²") raises
    if value is None or not low <= value <= high:
        raise RequestError("bad_query", msg("query parameter {name!r} must be an integer from {low} to {high}", name=name, low=low, high=high))
    return value


@requires("admin")
async def get_audit(request: web.Request) -> web.Response:
    """A page of audit entries after ?after=SEQ (default 0), at most ?limit=N."""
    config = request.config_dict[CONFIG_KEY]
    after = _int_query(request, "after", 0, low=0, high=2**62)
    limit = _int_query(request, "limit", 100, low=1, high=config.audit_page_max)
    audit = request.config_dict[AUDIT_KEY]
    entries = audit.page(after=after, limit=limit)
    seq, digest = audit.head()
    return web.json_response(
        {
            "entries": [e.to_json() for e in entries],
            "next_after": entries[-1].seq if len(entries) == limit else None,
            "head": {"seq": seq, "hash": digest},
        }
    )


@requires("admin")
async def export_audit(request: web.Request) -> web.StreamResponse:
    """The whole audit log as JSON lines, oldest first."""
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    for entry in request.config_dict[AUDIT_KEY].entries():
        await response.write((json.dumps(entry.to_json(), sort_keys=True) + "\n").encode("utf-8"))
    await response.write_eof()
    return response


@requires("admin")
async def verify_audit(request: web.Request) -> web.Response:
    """Verify the audit hash chain; 409 naming the first bad entry if it was tampered with."""
    audit = request.config_dict[AUDIT_KEY]
    try:
        count = audit.verify_chain()
    except AuditChainError as exc:
        return web.json_response({"error": "audit_chain", "message": str(exc), "seq": exc.seq}, status=409)
    seq, digest = audit.head()
    return web.json_response({"entries": count, "head": {"seq": seq, "hash": digest}})


def add_api_routes(app: web.Application) -> None:
    from .openapi import get_openapi

    app[_STATUS_BODY] = {}
    r = app.router
    r.add_get(f"{PREFIX}/info", get_info)
    r.add_get(f"{PREFIX}/status", get_status)
    r.add_post(f"{PREFIX}/attestation", post_attestation)
    r.add_post(f"{PREFIX}/session", post_session)
    r.add_get(f"{PREFIX}/session", get_session)
    r.add_delete(f"{PREFIX}/session", delete_session)
    r.add_post(f"{PREFIX}/session/password", post_password)
    r.add_get(f"{PREFIX}/users", list_users)
    r.add_post(f"{PREFIX}/users", create_user)
    r.add_get(f"{PREFIX}/users/{{name}}", get_user)
    r.add_patch(f"{PREFIX}/users/{{name}}", patch_user)
    r.add_delete(f"{PREFIX}/users/{{name}}", delete_user)
    r.add_post(f"{PREFIX}/users/{{name}}/password", reset_user_password)
    r.add_get(f"{PREFIX}/settings", get_settings)
    r.add_patch(f"{PREFIX}/settings", patch_settings)
    r.add_get(f"{PREFIX}/audit", get_audit)
    r.add_get(f"{PREFIX}/audit/export", export_audit)
    r.add_get(f"{PREFIX}/audit/verify", verify_audit)
    r.add_get(f"{PREFIX}/openapi.json", get_openapi)
