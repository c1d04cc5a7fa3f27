"""Target adapters: how the probe logs in, reads identity and manages users on one interface.

The TLS, discovery, credential and session cases talk to a camera through a
:class:`TargetAdapter` chosen by the device declaration's management
interface (``management.interface``), never through refcam routes directly:

- :class:`RefcamAPIAdapter` (``refcam-api``): JSON login returning a bearer
  token, ``/api/v1/info``, users under ``/api/v1/users``, an OpenAPI document.
- :class:`HTTPBasicAdapter` (``web-ui`` with ``auth = "http-basic"``): a web
  UI or REST API guarded by HTTP Basic (RFC 7617), routes from the declaration.

- :class:`~conformance.onvif_adapter.OnvifAdapter` (``onvif`` with ``auth =
  "ws-security"``, or ``probe --adapter onvif``): a camera that speaks only
  ONVIF; login is an authenticated ``GetDeviceInformation``.
Adapters answer :class:`~conformance.errors.ProbeError` subclass
:class:`NotSupported` for what their interface cannot do; a case then reports
that unit NOT APPLICABLE or INCONCLUSIVE, never PASS.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from .errors import ProbeError
from .http import Exchange, ProbeHTTP
from .i18n import msg


class NotSupported(ProbeError):
    """The target's interface has no such function (no user management, no OpenAPI...)."""


@dataclass(frozen=True)
class Session:
    """A logged-in session: what to send with each request, and what the login said."""

    username: str
    password: str
    headers: Mapping[str, str]
    token: str | None  # the bearer token, where the interface has one
    must_change: bool  # the device demands a password change first


class TargetAdapter(Protocol):
    interface: str  # the declaration's interface name
    admin_user: str  # the account the label password belongs to

    def login(self, http: ProbeHTTP, username: str, password: str) -> Exchange: ...
    def session(self, ex: Exchange, username: str, password: str) -> Session | None: ...
    def is_refusal(self, ex: Exchange) -> bool: ...
    def anonymous(self, http: ProbeHTTP) -> Exchange: ...
    def info(self, http: ProbeHTTP, session: Session | None = None) -> Exchange: ...
    def identity(self, info: Exchange) -> dict[str, str]: ...
    def change_password(self, http: ProbeHTTP, session: Session, current: str, new: str) -> Exchange: ...
    def create_user(self, http: ProbeHTTP, boss: Session, username: str, password: str, role: str) -> Exchange: ...
    def delete_user(self, http: ProbeHTTP, boss: Session, username: str) -> Exchange: ...
    def accounts(self, http: ProbeHTTP, boss: Session) -> list[str]: ...


def _doc(ex: Exchange) -> dict[str, Any]:
    doc = ex.json()
    return doc if isinstance(doc, dict) else {}


def _pick(doc: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = doc.get(name)
        if isinstance(value, str | int) and str(value):
            return str(value)
    return None


def identity_from(doc: Mapping[str, Any]) -> dict[str, str]:
    """Model, serial and firmware from an info document, under the names cameras use."""
    found = {
        "vendor": _pick(doc, "vendor", "manufacturer"),
        "model": _pick(doc, "model", "hardware_id"),
        "serial": _pick(doc, "serial", "serial_number", "serialNumber"),
        "firmware": _pick(doc, "firmware", "firmware_version", "version"),
    }
    return {k: v for k, v in found.items() if v is not None}


class RefcamAPIAdapter:
    """refcam's JSON API under /api/v1 (bearer tokens)."""

    interface = "refcam-api"
    admin_user = "admin"
    LOGIN = "/api/v1/session"
    CHANGE = "/api/v1/session/password"
    USERS = "/api/v1/users"
    INFO = "/api/v1/info"
    PROTECTED = "/api/v1/status"

    def login(self, http: ProbeHTTP, username: str, password: str) -> Exchange:
        return http.request("POST", self.LOGIN, json_body={"username": username, "password": password})

    def session(self, ex: Exchange, username: str, password: str) -> Session | None:
        doc = _doc(ex)
        token = doc.get("token")
        if ex.status != 200 or not isinstance(token, str):
            return None
        return Session(
            username, password, {"Authorization": f"Bearer {token}"}, token,
            bool(doc.get("password_change_required")),
        )

    def is_refusal(self, ex: Exchange) -> bool:
        """refcam refuses with 401/403 and a JSON body {"error": code, "message": ...}."""
        return ex.status in (401, 403) and isinstance(_doc(ex).get("error"), str)

    def anonymous(self, http: ProbeHTTP) -> Exchange:
        return http.request("GET", self.PROTECTED)

    def info(self, http: ProbeHTTP, session: Session | None = None) -> Exchange:
        return http.request("GET", self.INFO, token=session.token if session else None)

    def identity(self, info: Exchange) -> dict[str, str]:
        return identity_from(_doc(info)) if info.status == 200 else {}

    def change_password(self, http: ProbeHTTP, session: Session, current: str, new: str) -> Exchange:
        return http.request(
            "POST", self.CHANGE, json_body={"current_password": current, "new_password": new}, token=session.token
        )

    def create_user(self, http: ProbeHTTP, boss: Session, username: str, password: str, role: str) -> Exchange:
        return http.request(
            "POST", self.USERS, json_body={"username": username, "password": password, "role": role}, token=boss.token
        )

    def delete_user(self, http: ProbeHTTP, boss: Session, username: str) -> Exchange:
        return http.request("DELETE", f"{self.USERS}/{quote(username)}", token=boss.token)

    def accounts(self, http: ProbeHTTP, boss: Session) -> list[str]:
        ex = http.request("GET", self.USERS, token=boss.token)
        doc = ex.json()
        users = doc.get("users") if isinstance(doc, dict) else doc
        if ex.status != 200 or not isinstance(users, list):
            raise ProbeError(msg("cannot list the unit's accounts: HTTP {status}", status=ex.status))
        names = [u.get("username") or u.get("name") for u in users if isinstance(u, dict)]
        return [str(n) for n in names if n]


class HTTPBasicAdapter:
    """A web UI / REST API guarded by HTTP Basic; routes come from the declaration."""

    interface = "web-ui"

    def __init__(self, *, protected_route: str, info_route: str | None, admin_user: str = "admin") -> None:
        self.protected_route = protected_route
        self.info_route = info_route
        self.admin_user = admin_user

    @staticmethod
    def _basic(username: str, password: str) -> dict[str, str]:
        raw = f"{username}:{password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode("ascii")}

    def login(self, http: ProbeHTTP, username: str, password: str) -> Exchange:
        return http.request("GET", self.protected_route, headers=self._basic(username, password))

    def session(self, ex: Exchange, username: str, password: str) -> Session | None:
        if not 200 <= ex.status < 300:
            return None
        return Session(username, password, self._basic(username, password), None, False)

    def is_refusal(self, ex: Exchange) -> bool:
        """RFC 7235: a 401 carries a WWW-Authenticate challenge; a 403 refuses outright."""
        return (ex.status == 401 and ex.header("WWW-Authenticate") is not None) or ex.status == 403

    def anonymous(self, http: ProbeHTTP) -> Exchange:
        return http.request("GET", self.protected_route)

    def info(self, http: ProbeHTTP, session: Session | None = None) -> Exchange:
        if self.info_route is None:
            raise NotSupported(msg("the declaration names no info route for this interface"))
        return http.request("GET", self.info_route, headers=dict(session.headers) if session else None)

    def identity(self, info: Exchange) -> dict[str, str]:
        return identity_from(_doc(info)) if 200 <= info.status < 300 else {}

    def change_password(self, http: ProbeHTTP, session: Session, current: str, new: str) -> Exchange:
        raise NotSupported(msg("the {interface} interface has no password-change route the probe knows", interface=self.interface))

    def create_user(self, http: ProbeHTTP, boss: Session, username: str, password: str, role: str) -> Exchange:
        raise NotSupported(msg("the {interface} interface has no user management the probe knows", interface=self.interface))

    def delete_user(self, http: ProbeHTTP, boss: Session, username: str) -> Exchange:
        raise NotSupported(msg("the {interface} interface has no user management the probe knows", interface=self.interface))

    def accounts(self, http: ProbeHTTP, boss: Session) -> list[str]:
        raise NotSupported(msg("the {interface} interface cannot list accounts", interface=self.interface))


ADAPTERS = ("refcam-api", "web-ui", "onvif")


def adapter_for(management: Mapping[str, Any] | None, *, name: str | None = None) -> TargetAdapter:
    """The adapter for the declaration's ``management`` table (default: the refcam API).

    ``name`` (``probe --adapter``) chooses one without a declaration; with one, the
    two must agree."""
    if name is not None:
        declared = (management or {}).get("interface")
        if declared is not None and declared != name:
            raise ProbeError(f"--adapter {name} contradicts the declaration's management interface {declared!r}")
        if name not in ADAPTERS:
            raise ProbeError(f"no probe adapter {name!r} (adapters: {', '.join(ADAPTERS)})")
        if name == "onvif":
            from .onvif_adapter import onvif_adapter

            return onvif_adapter(management or {})
        if name == "refcam-api" or management is None:
            if name == "web-ui":
                raise ProbeError("--adapter web-ui needs a declaration naming its routes (--declaration)")
            return RefcamAPIAdapter()
    if not management or management.get("interface", "refcam-api") == "refcam-api":
        return RefcamAPIAdapter()
    interface = management.get("interface")
    if interface == "onvif" and management.get("auth") == "ws-security":
        from .onvif_adapter import onvif_adapter  # it builds on this module's Session

        return onvif_adapter(management)
    if interface == "web-ui" and management.get("auth") == "http-basic":
        return HTTPBasicAdapter(
            protected_route=str(management.get("protected_route", "/")),
            info_route=management.get("info_route"),
            admin_user=str(management.get("admin_user", "admin")),
        )
    raise ProbeError(
        f"no probe adapter for management interface {interface!r} with auth {management.get('auth')!r}"
        f" (adapters: {', '.join(ADAPTERS)})"
    )
