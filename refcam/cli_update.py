"""``refcam device update``: upload or install firmware on a running camera, with progress.

The camera's own update routes do the work (``device.update.web``): with
``--image FILE`` the signed image is uploaded (``POST /api/v1/update/upload``),
without it the camera installs the newest release from its update source
(``POST /api/v1/update/install``, TUF). Either way the camera verifies the
image, writes its inactive slot and reboots into a trial; this command then
waits for the camera to come back and says what became of the update:
*confirmed* (the trial passed its health check), *running as a trial* (not
confirmed within ``--wait``), or *not kept* (the camera restarted on another
firmware: the bootloader refused the image or the trial reverted).

Progress goes to stderr (a bar on a terminal, plain lines otherwise; see
:mod:`refcam.progress`): the upload's bytes, the camera's download and slot
write (read from ``GET /api/v1/update/status``), then each state. The result
is one line on stdout. Exit status: 0 confirmed (or accepted, with
``--no-wait``), 1 refused by the camera or not kept, 2 still a trial at the
end of ``--wait``.

Authentication as ``refcam stream record``: ``--token-env VAR`` or ``--user
NAME --password-env VAR``; secrets never come from argv. TLS is verified
against ``--ca`` (the manufacturer root) with the host name checked::

    refcam device update https://localhost:8443 --ca root.pem --user admin \\
        --password-env ADMIN --image fw2.img
    refcam device update https://localhost:8443 --ca root.pem --token-env T
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yarl import URL

from common import tls
from common.errors import RefcamError
from refcam.i18n import _

if TYPE_CHECKING:  # aiohttp is imported where it is used: `refcam device ...` starts faster
    import aiohttp

UPLOAD_PATH = "/api/v1/update/upload"
INSTALL_PATH = "/api/v1/update/install"
STATUS_PATH = "/api/v1/update/status"
DEVICE_STATUS_PATH = "/api/v1/status"
SESSION_PATH = "/api/v1/session"
CHUNK = 64 * 1024
POLL_S = 0.25  # seconds between status polls
REQUEST_TIMEOUT = 600.0  # seconds for the upload/install request (verify + slot write included)


class UpdateCommandError(RefcamError):
    """The update could not be done as asked (bad option, transport, refusal)."""


class StillTrial(UpdateCommandError):
    """The new firmware runs, but its trial was not confirmed within ``--wait``."""

    exit_code = 2


def register(groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    p = groups["device"].add_parser(
        "update", help=_("upload (--image) or install (from the update source) firmware on a running camera")
    )
    p.add_argument("url", help=_("the camera: https://HOST:PORT"))
    p.add_argument("--ca", type=Path, required=True, help=_("PEM trust anchor for the camera's TLS (manufacturer root)"))
    p.add_argument("--image", type=Path, help=_("signed image to upload; without it the camera installs from its update source"))
    auth = p.add_mutually_exclusive_group(required=True)
    auth.add_argument("--token-env", metavar="VAR", help=_("environment variable holding an admin session token"))
    auth.add_argument("--user", help=_("log in as this admin user (password from --password-env)"))
    p.add_argument("--password-env", metavar="VAR", help=_("environment variable holding the password"))
    p.add_argument("--wait", type=float, default=120.0, metavar="SECONDS",
                   help=_("how long to wait for the reboot and the trial's confirmation (default 120)"))  # fmt: skip
    p.add_argument("--no-wait", action="store_true", help=_("return once the camera has accepted the image"))
    p.set_defaults(handler=cmd_update)


@dataclass(frozen=True)
class Outcome:
    """What became of an accepted update."""

    version: str  # the version the camera accepted
    slot: str
    result: str  # "accepted" (not waited for), "confirmed", "trial", "not kept"
    running: str = ""  # the version running at the end
    running_slot: str = ""
    reason: str = ""  # why the bootloader refused the slot, when the camera says


def _base(url: str) -> URL:
    parsed = URL(url)
    if parsed.scheme != "https":
        raise UpdateCommandError(_("URL {url!r} is not https://; the camera's management API is TLS only").format(url=url))
    if parsed.user or parsed.password or parsed.query:
        raise UpdateCommandError(_("credentials and query strings do not go in the URL; use --token-env or --user"))
    if not parsed.host or parsed.path not in ("", "/"):
        raise UpdateCommandError(_("URL {url!r} must be https://HOST:PORT").format(url=url))
    return parsed.with_path("/")


def _env(name: str, option: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise UpdateCommandError(_("{option} {name}: that environment variable is not set or empty").format(option=option, name=name))
    return value


async def _error_text(response: aiohttp.ClientResponse) -> str:
    import aiohttp

    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return f"HTTP {response.status}"
    if isinstance(body, dict) and "error" in body:
        return f"{body.get('error')}: {body.get('message')}"
    return f"HTTP {response.status}"


async def _login(session: aiohttp.ClientSession, base: URL, user: str, password: str) -> str:
    async with session.post(base.with_path(SESSION_PATH), json={"username": user, "password": password}) as r:
        if r.status != 200:
            raise UpdateCommandError(_("login as {user!r} refused ({value})").format(user=user, value=await _error_text(r)))
        body = await r.json()
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str):
        raise UpdateCommandError(_("the login answer has no session token"))
    return token


async def _status(session: aiohttp.ClientSession, base: URL, headers: dict[str, str]) -> dict[str, Any] | None:
    """The camera's update status, or None while it does not answer (rebooting)."""
    import aiohttp

    try:
        async with session.get(base.with_path(STATUS_PATH), headers=headers) as r:
            if r.status != 200:
                if r.status in (401, 403):
                    raise UpdateCommandError(_("the camera refused the status request ({value})").format(value=await _error_text(r)))
                return None
            body = await r.json()
            return body if isinstance(body, dict) else None
    except (TimeoutError, aiohttp.ClientConnectionError):
        return None


async def _watch_camera(
    session: aiohttp.ClientSession, base: URL, headers: dict[str, str], make_progress: Callable[..., Any]
) -> None:
    """While the camera works on the request: its state in words, and its download and
    slot-write bytes as a second progress ("camera"), read from the update status."""
    noted = ""
    camera: Any = None
    try:
        while True:
            await asyncio.sleep(POLL_S)
            status = await _status(session, base, headers)
            if status is None:
                continue
            state = str(status.get("state", ""))
            done = status.get("progress")
            if isinstance(done, dict) and isinstance(done.get("bytes"), int) and isinstance(done.get("total"), int):
                if camera is None:
                    camera = make_progress("camera", total=done["total"], unit="bytes")
                camera.total = done["total"]
                camera.update(done["bytes"])
            if state and state != noted and state not in ("idle", "available", "error"):
                if camera is not None:
                    camera.note(state)
                noted = state
    finally:
        if camera is not None:
            camera.finish("done")


async def _send(
    session: aiohttp.ClientSession,
    base: URL,
    headers: dict[str, str],
    image: bytes | None,
    make_progress: Callable[..., Any],
) -> dict[str, Any]:
    """POST the upload (or install); returns the camera's 202 answer."""
    import aiohttp

    if image is not None:
        sending = make_progress("upload", total=len(image), unit="bytes")

        async def body() -> AsyncIterator[bytes]:
            for start in range(0, len(image), CHUNK):
                chunk = image[start : start + CHUNK]
                yield chunk
                sending.advance(len(chunk))

        request = session.post(
            base.with_path(UPLOAD_PATH), data=body(),
            headers={**headers, "Content-Type": "application/octet-stream", "Content-Length": str(len(image))},
        )  # fmt: skip
    else:
        sending = make_progress("install", total=None, unit="bytes")
        sending.note(_("the camera checks its update source"))
        request = session.post(base.with_path(INSTALL_PATH), headers=headers)
    watcher = asyncio.create_task(_watch_camera(session, base, headers, make_progress))
    try:
        async with request as r:
            if r.status != 202:
                sending.finish("refused")
                raise UpdateCommandError(_("the camera refused the update ({value})").format(value=await _error_text(r)))
            answer = await r.json()
    except aiohttp.ClientError as exc:
        sending.finish("failed")
        raise UpdateCommandError(_("cannot reach the camera at {base}: {exc}").format(base=base, exc=exc)) from exc
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    sending.finish("accepted")
    if not isinstance(answer, dict) or not isinstance(answer.get("installed"), dict):
        raise UpdateCommandError(_("the camera's answer does not say what it installed"))
    return answer


async def _await_outcome(
    session: aiohttp.ClientSession,
    base: URL,
    headers: dict[str, str],
    version: str,
    slot: str,
    wait: float,
    make_progress: Callable[..., Any],
) -> Outcome:
    """Wait for the reboot (the old firmware stops answering 'pending-reboot'), then for
    the trial's confirmation."""
    steps = make_progress("reboot")
    steps.note(_("the camera restarts into the new firmware"))
    deadline = time.monotonic() + wait
    last: dict[str, Any] | None = None
    said_trial = False
    while time.monotonic() < deadline:
        status = await _status(session, base, headers)
        if status is not None and status.get("state") != "pending-reboot":
            last = status
            running = status.get("running") or {}
            if running.get("version") != version or running.get("slot") != slot:
                steps.note(_("the camera runs {version} (slot {slot})").format(version=running.get("version"), slot=running.get("slot")))
                reason = await _slot_reason(session, base, headers, slot)
                return Outcome(
                    version, slot, "not kept", str(running.get("version")), str(running.get("slot")), reason
                )
            if not running.get("trial"):
                steps.note(_("{version} passed its trial").format(version=version))
                return Outcome(version, slot, "confirmed", version, slot)
            if not said_trial:
                steps.note(_("{version} runs as a trial; waiting for its health check").format(version=version))
                said_trial = True
        await asyncio.sleep(POLL_S)
    if last is None:
        raise UpdateCommandError(_("the camera did not come back within {wait:g} s of the reboot").format(wait=wait))
    return Outcome(version, slot, "trial", version, slot)


async def _slot_reason(session: aiohttp.ClientSession, base: URL, headers: dict[str, str], slot: str) -> str:
    """The bootloader's verdict on ``slot`` from the device status ('' if it gives none)."""
    import aiohttp

    try:
        async with session.get(base.with_path(DEVICE_STATUS_PATH), headers=headers) as r:
            body = await r.json() if r.status == 200 else {}
    except (TimeoutError, aiohttp.ClientError, ValueError):
        return ""
    for entry in body.get("slots", []) if isinstance(body, dict) else []:
        if isinstance(entry, dict) and entry.get("slot") == slot and entry.get("reason"):
            return str(entry["reason"])
    return ""


async def run_update(
    url: str,
    *,
    ssl_context: ssl.SSLContext,
    image: bytes | None,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    wait: float | None = 120.0,
    make_progress: Callable[..., Any],
) -> Outcome:
    """Upload ``image`` (or install from the update source when None) and follow it through."""
    import aiohttp

    base = _base(url)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT, sock_connect=10)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_context), timeout=timeout) as session:
        try:
            if token is None:
                assert user is not None and password is not None
                token = await _login(session, base, user, password)
            headers = {"Authorization": f"Bearer {token}"}
            answer = await _send(session, base, headers, image, make_progress)
        except aiohttp.ClientError as exc:
            raise UpdateCommandError(_("cannot reach the camera at {base}: {exc}").format(base=base, exc=exc)) from exc
        version, slot = str(answer["installed"].get("version")), str(answer.get("slot"))
        if wait is None:
            return Outcome(version, slot, "accepted")
        return await _await_outcome(session, base, headers, version, slot, wait, make_progress)


def cmd_update(args: argparse.Namespace) -> int:
    _base(args.url)  # a bad URL is named before anything else is read
    if not args.wait > 0:
        raise UpdateCommandError(_("--wait {wait:g} must be positive").format(wait=args.wait))
    token = user = password = None
    if args.token_env:
        token = _env(args.token_env, "--token-env")
    else:
        if not args.password_env:
            raise UpdateCommandError(_("--user needs --password-env VAR (the password is never taken from argv)"))
        user, password = args.user, _env(args.password_env, "--password-env")
    image = None
    if args.image is not None:
        try:
            image = args.image.read_bytes()
        except OSError as exc:
            raise UpdateCommandError(_("cannot read the image {image}: {strerror}").format(image=args.image, strerror=exc.strerror)) from exc
    ssl_context = tls.client_context(args.ca)  # TLSConfigError: one line naming the file
    outcome = asyncio.run(
        run_update(
            args.url, ssl_context=ssl_context, image=image, token=token, user=user, password=password,
            wait=None if args.no_wait else args.wait, make_progress=args.progress,
        )
    )  # fmt: skip
    if outcome.result == "accepted":
        print(_("accepted {version} into slot {slot}; the camera reboots into a trial").format(version=outcome.version, slot=outcome.slot))
        return 0
    if outcome.result == "confirmed":
        print(_("updated: {version} in slot {slot} is confirmed").format(version=outcome.version, slot=outcome.slot))
        return 0
    if outcome.result == "trial":
        raise StillTrial(_("{version} runs as a trial, not confirmed within {wait:g} s").format(version=outcome.version, wait=args.wait))
    why = (
        _("the bootloader refused slot {slot}: {reason}").format(slot=outcome.slot, reason=outcome.reason)
        if outcome.reason
        else _("the bootloader refused the image or its trial reverted")
    )
    raise UpdateCommandError(
        _("update to {version} not kept: the camera restarted on {running} (slot {running_slot}); {why}").format(version=outcome.version, running=outcome.running, running_slot=outcome.running_slot, why=why)
    )
