"""The ONVIF target adapter: the credential and TLS cases against a camera that speaks only ONVIF.

Selected by the declaration (``management.interface = "onvif"``, ``auth =
"ws-security"``) or by ``probe --adapter onvif``. Everything goes to the
standard device service (``/onvif/device_service``, SOAP 1.2) with the
probe's own client (:mod:`conformance.onvifsoap`):

- login: ``GetDeviceInformation`` with a WS-Security UsernameToken
  (PasswordDigest, fresh nonce and Created); an answer that is no fault is a
  session; a ``ter:NotAuthorized`` fault (or HTTP 401) a refusal. A refusal
  whose reason says the password must be changed first (the forced first
  change, as refcam words it) is a session that must change;
- password change: ``SetUser`` for the logged-in user;
- users: ``CreateUsers`` / ``DeleteUsers`` / ``GetUsers``, the probe's roles
  mapped onto ONVIF user levels (viewer -> User, operator -> Operator,
  admin -> Administrator);
- identity: ``GetDeviceInformation`` (Manufacturer, Model, SerialNumber,
  FirmwareVersion).

ONVIF has no session token: every request carries its own UsernameToken,
so :class:`~conformance.adapters.Session` keeps the credentials.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from lxml import etree
from lxml.builder import ElementMaker

from .adapters import Session
from .errors import ProbeError
from .http import Exchange, ProbeHTTP
from .i18n import msg
from .onvifsoap import (
    DEVICE_SERVICE,
    NS,
    answered,
    fault_codes,
    fault_reason,
    parse_answer,
    soap,
    username_token,
)
from .verdicts import retry_after

ADMIN_RETRIES = 4
ADMIN_MAX_WAIT = 20.0  # seconds an admin request may wait for a back-off in all
LEVEL_OF_ROLE = {"viewer": "User", "operator": "Operator", "admin": "Administrator"}
MUST_CHANGE_WORDS = ("must be changed", "must change", "change the password", "password change")
_TT = ElementMaker(namespace=NS["tt"], nsmap=NS)
_TDS = ElementMaker(namespace=NS["tds"], nsmap=NS)


def _token(username: str, password: str) -> etree._Element:
    return username_token(username, password, now=time.time())


def _as_admin(http: ProbeHTTP, send: Callable[[], Exchange]) -> Exchange:
    """Send an admin's request, waiting out a short 429 ``Retry-After``.

    ONVIF authenticates every request, so after the probe's own wrong-password
    runs the source's back-off meets the admin's bookkeeping too (listing and
    deleting test users); each retry carries a fresh UsernameToken."""
    waited = 0.0
    for _ in range(ADMIN_RETRIES):
        ex = send()
        wait = retry_after(ex) if ex.status == 429 else None
        if wait is None or waited + wait > ADMIN_MAX_WAIT:
            return ex
        http.sleep(wait)
        waited += wait
    return send()


class OnvifAdapter:
    """A camera managed through ONVIF's device service (WS-Security UsernameToken)."""

    interface = "onvif"
    protected_route = DEVICE_SERVICE  # what TLS-07 reads the HSTS header from

    def __init__(self, *, admin_user: str = "admin") -> None:
        self.admin_user = admin_user
        # SetUser carries the user's level (required by the schema): the levels of the users
        # the probe created, so a password change never reads as a level change
        self._levels: dict[str, str] = {admin_user: "Administrator"}

    def login(self, http: ProbeHTTP, username: str, password: str) -> Exchange:
        return soap(http, "tds", "GetDeviceInformation", token=_token(username, password))

    def session(self, ex: Exchange, username: str, password: str) -> Session | None:
        if answered(ex):
            return Session(username, password, {}, None, False)
        if self.is_refusal(ex) and any(w in fault_reason(ex).lower() for w in MUST_CHANGE_WORDS):
            return Session(username, password, {}, None, True)
        return None

    def is_refusal(self, ex: Exchange) -> bool:
        """HTTP 401, or a SOAP fault with ``ter:NotAuthorized`` (ONVIF Core 5.11.2.4)."""
        if ex.status == 401:
            return True
        codes = fault_codes(ex)
        return ex.status in (400, 403) and codes is not None and "NotAuthorized" in codes

    def anonymous(self, http: ProbeHTTP) -> Exchange:
        return soap(http, "tds", "GetDeviceInformation")

    def info(self, http: ProbeHTTP, session: Session | None = None) -> Exchange:
        token = _token(session.username, session.password) if session is not None else None
        return soap(http, "tds", "GetDeviceInformation", token=token)

    def identity(self, info: Exchange) -> dict[str, str]:
        root = parse_answer(info) if answered(info) else None
        if root is None:
            return {}
        found = {
            "vendor": root.findtext(".//tds:Manufacturer", namespaces=NS),
            "model": root.findtext(".//tds:Model", namespaces=NS),
            "serial": root.findtext(".//tds:SerialNumber", namespaces=NS),
            "firmware": root.findtext(".//tds:FirmwareVersion", namespaces=NS),
        }
        return {k: v.strip() for k, v in found.items() if v and v.strip()}

    def change_password(self, http: ProbeHTTP, session: Session, current: str, new: str) -> Exchange:
        level = self._levels.get(session.username) or self._level_of(http, session)
        user = _user(session.username, new, level)
        return soap(http, "tds", "SetUser", user, token=_token(session.username, current))

    def _level_of(self, http: ProbeHTTP, session: Session) -> str:
        ex = soap(http, "tds", "GetUsers", token=_token(session.username, session.password))
        for name, level in _users(ex).items():
            if name == session.username:
                return level
        return "User"  # a user who may not list users is no Administrator

    def create_user(self, http: ProbeHTTP, boss: Session, username: str, password: str, role: str) -> Exchange:
        level = LEVEL_OF_ROLE.get(role)
        if level is None:
            raise ProbeError(msg("no ONVIF user level for the role {role}", role=repr(role)))
        self._levels[username] = level
        return _as_admin(http, lambda: soap(
            http, "tds", "CreateUsers", _user(username, password, level), token=_token(boss.username, boss.password)
        ))

    def delete_user(self, http: ProbeHTTP, boss: Session, username: str) -> Exchange:
        return _as_admin(http, lambda: soap(
            http, "tds", "DeleteUsers", _TDS.Username(username), token=_token(boss.username, boss.password)
        ))

    def accounts(self, http: ProbeHTTP, boss: Session) -> list[str]:
        ex = _as_admin(http, lambda: soap(http, "tds", "GetUsers", token=_token(boss.username, boss.password)))
        if not answered(ex):
            raise ProbeError(msg("cannot list the unit's accounts over ONVIF: HTTP {status} {reason}", status=ex.status, reason=fault_reason(ex)[:160]))
        return list(_users(ex))


def _user(username: str, password: str, level: str) -> etree._Element:
    return _TDS.User(_TT.Username(username), _TT.Password(password), _TT.UserLevel(level))


def _users(ex: Exchange) -> dict[str, str]:
    root = parse_answer(ex) if answered(ex) else None
    if root is None:
        return {}
    users = {}
    for node in root.iter(f"{{{NS['tds']}}}User"):
        name = (node.findtext("tt:Username", namespaces=NS) or "").strip()
        if name:
            users[name] = (node.findtext("tt:UserLevel", namespaces=NS) or "").strip()
    return users


def onvif_adapter(management: Mapping[str, Any]) -> OnvifAdapter:
    """The adapter for a declaration's ``management`` table naming ONVIF."""
    return OnvifAdapter(admin_user=str(management.get("admin_user", "admin")))
