"""Every typed key the management server keeps in its ``web.Application``/requests.

One module, so extensions (web UI, stream, update routes) find them in one
place. Read them through ``request.config_dict[...]`` so they also resolve
from a sub-application.

Example::

    from device.appkeys import AUDIT_KEY, CLOCK_KEY
    audit = request.config_dict[AUDIT_KEY]
    now = request.config_dict[CLOCK_KEY]()
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

from aiohttp import web

from common import listener

if TYPE_CHECKING:
    from common.handoff import BootHandoff

    from .access import AuthenticatedUser
    from .audit import AuditLog
    from .config import DeviceConfig
    from .credentials import CredentialStore
    from .sessions import SessionStore

CONFIG_KEY: web.AppKey[DeviceConfig] = web.AppKey("refcam.config")
HANDOFF_KEY: web.AppKey[BootHandoff] = web.AppKey("refcam.handoff")
# Seconds since the epoch; tests inject a fake clock. Read once per operation.
CLOCK_KEY: web.AppKey[Callable[[], float]] = web.AppKey("refcam.clock")
CREDENTIALS_KEY: web.AppKey[CredentialStore] = web.AppKey("refcam.credentials")
SESSIONS_KEY: web.AppKey[SessionStore] = web.AppKey("refcam.sessions")
AUDIT_KEY: web.AppKey[AuditLog] = web.AppKey("refcam.audit")
# Set to ask main.run to stop serving and return EXIT_REBOOT (after an update).
REBOOT_KEY: web.AppKey[asyncio.Event] = web.AppKey("refcam.reboot")
# The authenticated caller of this request, set by access.access_middleware.
USER_KEY: web.RequestKey[AuthenticatedUser] = web.RequestKey("refcam.user")
# The connection guard of the HTTPS site (common.listener.GuardedSite): deadlines and the cap.
CONNECTIONS_KEY = listener.CONNECTIONS_KEY
