"""Access control for every route of the management server, in one place.

Each handler declares who may call it with :func:`requires`::

    @requires("admin")
    async def delete_user(request: web.Request) -> web.Response: ...

Requirements, weakest first:

* ``"public"``: no login needed (device info, login, OpenAPI, web UI files);
* ``"password-change"``: any logged-in session, even one that must still
  change its initial password (change password, logout, "who am I");
* ``"viewer"`` < ``"operator"`` < ``"admin"``: a role at least this high.

:func:`access_middleware` enforces them for every route, including routes
added later by extensions (web UI, stream, update) and sub-applications:

1. a route that declares nothing is refused (fail closed);
2. no valid session -> 401 ``{"error": "authentication_required"}``;
3. a cookie session on a state-changing method without the right
   ``X-CSRF-Token`` header -> 403 ``{"error": "csrf"}``;
4. a session that must change its password -> 403
   ``{"error": "password_change_required"}`` except on ``password-change``
   routes (EN 303 645 5.1-1: only setup works until a password is set);
5. a role below the requirement -> 403 ``{"error": "forbidden"}``.

The caller is then ``request[USER_KEY]`` (an :class:`AuthenticatedUser`).
Sessions come as a cookie (browsers; CSRF token required) or as
``Authorization: Bearer <token>`` (API clients; no CSRF token needed, since
a browser never attaches it by itself).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args

from aiohttp import web

from common.flaws import UnsafeFlaws

from .appkeys import CLOCK_KEY, CONFIG_KEY, CREDENTIALS_KEY, SESSIONS_KEY, USER_KEY
from .errors import SessionError
from .i18n import msg, negotiate, translate

Role = Literal["viewer", "operator", "admin"]
Requirement = Literal["public", "password-change", "viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
REQUIREMENTS: tuple[Requirement, ...] = get_args(Requirement)
ROLE_RANK: dict[str, int] = {"viewer": 1, "operator": 2, "admin": 3}

SESSION_COOKIE = "refcam_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_ATTRIBUTE = "__refcam_requires__"

Handler = Callable[..., Awaitable[web.StreamResponse]]
H = TypeVar("H", bound=Callable[..., Any])

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuthenticatedUser:
    name: str
    role: Role
    must_change: bool  # must change the password before anything else
    session_id: str  # hex SHA-256 of the session token
    via: Literal["cookie", "bearer"]


def requires(requirement: Requirement) -> Callable[[H], H]:
    """Declare the minimum requirement of a route handler (see the module docstring)."""
    if requirement not in REQUIREMENTS:
        raise ValueError(f"unknown access requirement {requirement!r}; expected one of {REQUIREMENTS}")

    def mark(handler: H) -> H:
        setattr(handler, _ATTRIBUTE, requirement)
        return handler

    return mark


def requirement_of(handler: object) -> Requirement | None:
    """The requirement a handler declared, or None (which the middleware refuses)."""
    value = getattr(handler, _ATTRIBUTE, None)
    return value if value in REQUIREMENTS else None


def _error(request: web.Request, status: int, code: str, message: str) -> web.Response:
    """A refusal in the client's language (``Accept-Language``); ``code`` never changes."""
    language = negotiate(request.headers.get("Accept-Language"))
    return web.json_response({"error": code, "message": translate(message, language)}, status=status)


def session_token(request: web.Request) -> tuple[str, Literal["cookie", "bearer"]] | None:
    """The session token the request presents, and how; Bearer wins over the cookie."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip(), "bearer"
        return None
    cookie = request.cookies.get(SESSION_COOKIE)
    return (cookie, "cookie") if cookie else None


def authenticate(request: web.Request, *, now: float) -> AuthenticatedUser | None:
    """The caller of ``request`` if it presents a live session, else None."""
    presented = session_token(request)
    if presented is None:
        return None
    token, via = presented
    config = request.config_dict  # a new mapping view per access: read it once
    sessions = config[SESSIONS_KEY]
    try:
        session = sessions.resolve(token, now=now)
    except SessionError:
        return None
    user = config[CREDENTIALS_KEY].get_user(session.username)
    if user is None:  # deleted while logged in
        return None
    if via == "cookie" and request.method not in SAFE_METHODS and "no-csrf-check" not in _flaws(request):
        try:
            sessions.check_csrf(token, request.headers.get(CSRF_HEADER, ""))
        except SessionError:
            raise _CSRFRefused from None
    return AuthenticatedUser(
        name=user.name,
        role=user.role,
        must_change=user.must_change,
        session_id=session.session_id,
        via=via,
    )


class _CSRFRefused(Exception):
    pass


# UNSAFE flaw profiles that lower a route's declared requirement (the role matrix's
# seam): (method, canonical path) -> (flaw, the requirement it lowers the route to).
_UNSAFE_LOWERED: dict[tuple[str, str], tuple[str, Requirement]] = {
    ("PATCH", "/api/v1/settings"): ("viewer-can-change-settings", "viewer"),
    **{
        (method, path): ("operator-can-manage-users", "operator")
        for method, path in (
            ("GET", "/api/v1/users"),
            ("POST", "/api/v1/users"),
            ("GET", "/api/v1/users/{name}"),
            ("PATCH", "/api/v1/users/{name}"),
            ("DELETE", "/api/v1/users/{name}"),
            ("POST", "/api/v1/users/{name}/password"),
        )
    },
}


def _flaws(request: web.Request) -> UnsafeFlaws:
    config = request.config_dict.get(CONFIG_KEY)  # bare test apps carry no config
    return config.flaws if config is not None else UnsafeFlaws()


def _unsafe_requirement(request: web.Request, requirement: Requirement) -> Requirement:
    """The declared requirement, lowered only by an explicit flaw profile."""
    flaws = _flaws(request)
    if not flaws:
        return requirement
    resource = request.match_info.route.resource
    lowered = _UNSAFE_LOWERED.get((request.method, resource.canonical if resource is not None else ""))
    if lowered is not None and lowered[0] in flaws:
        log.warning("UNSAFE flaw profile %s: %s %s needs only %s", lowered[0], request.method, request.path, lowered[1])
        return lowered[1]
    return requirement


def current_user(request: web.Request) -> AuthenticatedUser | None:
    """The caller, or None on a public route used without a session."""
    return request.get(USER_KEY)


@web.middleware
async def access_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    match = request.match_info
    if match.http_exception is not None:  # 404 / 405: nothing to protect
        return await handler(request)
    requirement = requirement_of(match.handler)
    if requirement is None:
        log.error("refusing %s %s: its handler declares no access requirement", request.method, request.path)
        return _error(request, 403, "forbidden", msg("this route declares no access requirement"))
    requirement = _unsafe_requirement(request, requirement)
    now = request.config_dict[CLOCK_KEY]()
    try:
        user = authenticate(request, now=now)
    except _CSRFRefused:
        if requirement == "public":
            user = None
        else:
            return _error(request, 403, "csrf", msg("missing or wrong {header} header for a cookie session", header=CSRF_HEADER))
    if user is not None:
        request[USER_KEY] = user
    if requirement == "public":
        return await handler(request)
    if user is None:
        return _error(request, 401, "authentication_required", msg("log in first (POST /api/v1/session)"))
    if user.must_change and requirement != "password-change":
        return _error(
            request,
            403,
            "password_change_required",
            msg("change the initial password first (POST /api/v1/session/password)"),
        )
    if requirement != "password-change" and ROLE_RANK[user.role] < ROLE_RANK[requirement]:
        return _error(request, 403, "forbidden", msg("this needs the {needed} role; you are {role}", needed=requirement, role=user.role))
    return await handler(request)
