"""ONVIF StartFirmwareUpgrade: a one-time upload URI on the TLS server, feeding the signed update path.

``StartFirmwareUpgrade`` (Administrator) returns ``https://<device>/onvif/firmware/<ticket>``;
the ticket is 256 random bits, single use, bound to the user who asked and valid
for ``TICKET_LIFETIME`` seconds. The client then ``POST``s the image there with
HTTP Digest as that same user; the body goes through exactly the path of
``POST /api/v1/update/upload`` (``device.update.web.install_uploaded_image``):
size cap, MCUboot/signature/counter verification, the inactive slot written,
marked pending, then the reboot into a trial boot that the new firmware
confirms after its health check. A refused image gets the ONVIF fault with
the update client's one-line reason, and is audited as ``update_upload_refused``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from ..access import requires
from ..appkeys import CLOCK_KEY
from ..update.errors import UpdateError
from .errors import OnvifFault, not_authorized
from .services import Call

UPLOAD_PREFIX = "/onvif/firmware/"
TICKET_LIFETIME = 300.0  # seconds from StartFirmwareUpgrade to the upload
MAX_TICKETS = 8  # outstanding upload tickets


@dataclass
class UploadTickets:
    """Outstanding upload URIs: ticket -> (user, expiry). Pure: time is an argument."""

    _tickets: dict[str, tuple[str, float]] = field(default_factory=dict)

    def issue(self, username: str, *, now: float) -> str:
        self._tickets = {t: v for t, v in self._tickets.items() if v[1] > now}
        while len(self._tickets) >= MAX_TICKETS:  # the oldest goes first
            del self._tickets[next(iter(self._tickets))]
        ticket = secrets.token_urlsafe(32)
        self._tickets[ticket] = (username, now + TICKET_LIFETIME)
        return ticket

    def redeem(self, ticket: str, username: str, *, now: float) -> None:
        """Use ``ticket`` once; raise ``ter:NotAuthorized`` unless it is live and ``username``'s."""
        entry = self._tickets.get(ticket)
        if entry is None or entry[1] <= now:
            self._tickets.pop(ticket, None)
            raise not_authorized("this firmware upload URI is unknown, used or expired; call StartFirmwareUpgrade")
        if not secrets.compare_digest(entry[0], username):
            raise not_authorized("this firmware upload URI was issued to another user")
        del self._tickets[ticket]


def start_upgrade_for(tickets: UploadTickets) -> Callable[[Call], str]:
    """The ``Call.start_upgrade`` hook: a new upload URI for the calling Administrator."""

    def start(call: Call) -> str:
        assert call.user is not None
        ticket = tickets.issue(call.user.name, now=call.now)
        call.record("onvif_firmware_upgrade_started", {"expires_in": TICKET_LIFETIME})
        return f"{call.base_url}{UPLOAD_PREFIX}{ticket}"

    return start


@requires("public")  # the ticket and HTTP Digest (Administrator) below
async def upload(request: web.Request) -> web.StreamResponse:
    from ..update.web import UPDATE_CLIENT_KEY, audit_refusal, install_uploaded_image
    from .web import ONVIF_KEY, digest_caller, fault_response

    now = request.config_dict[CLOCK_KEY]()
    user = await digest_caller(request, now)
    if isinstance(user, web.Response):
        return user
    if user.role != "admin":
        return fault_response(not_authorized("a firmware upgrade needs the Administrator level"))
    client = request.config_dict.get(UPDATE_CLIENT_KEY)
    state = request.config_dict[ONVIF_KEY]
    if client is None:
        return fault_response(OnvifFault("Receiver", ("ActionNotSupported",), "this build has no update client", http_status=404))
    try:
        state.tickets.redeem(request.match_info["ticket"], user.name, now=now)
    except OnvifFault as fault:
        return fault_response(fault)
    try:
        facts = await install_uploaded_image(request, client)
    except UpdateError as exc:
        audit_refusal(request, "upload", exc)
        return fault_response(OnvifFault("Sender", ("InvalidArgVal", "InvalidFirmware"), exc.message, http_status=exc.status))
    body = f"firmware {facts.version} written; rebooting into a trial boot".encode()
    return web.Response(body=body, content_type="text/plain")  # ONVIF defines no body for the upload
