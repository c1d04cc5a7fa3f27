"""One running unit as its host sees it (fleet mode): firmware, update state, cohort.

``refcam fleet run`` hosts many units per process and reports each in its status
files; it reads them through this function of the unit's own firmware, so the host
never reaches into the firmware's internals.

Example::

    view = snapshot(app)   # {"firmware": "1.0.0", "update_state": "idle", ...}
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .appkeys import AUDIT_KEY, HANDOFF_KEY, SESSIONS_KEY

LOGIN_REFUSED_EVENT = "login_failure"


def snapshot(app: web.Application) -> dict[str, Any]:
    """A plain-JSON view of the unit: safe to call from another thread (reads only)."""
    from .update.web import UPDATE_CLIENT_KEY

    handoff = app[HANDOFF_KEY]
    view: dict[str, Any] = {
        "serial": handoff.identity.serial,
        "firmware": handoff.firmware.version,
        "slot": handoff.booted_slot,
        "trial": bool(handoff.services.trial),
        "update_state": None,
        "rollout": None,
        "logins_refused": app[AUDIT_KEY].count(LOGIN_REFUSED_EVENT),
        "sessions": app[SESSIONS_KEY].count(),
    }
    client = app.get(UPDATE_CLIENT_KEY)
    if client is not None:
        view["update_state"] = client.status.state
        view["rollout"] = client.status.rollout
        view["last_error"] = None if client.status.last_error is None else client.status.last_error[1]
    return view
