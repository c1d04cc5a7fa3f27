"""Update routes of the management server (admin only), and automatic checks.

::

    POST /api/v1/update/check     refresh TUF metadata; the newest acceptable image, if any
    POST /api/v1/update/install   check, download, verify, write the inactive slot, reboot
    POST /api/v1/update/upload    a signed image in the body (no TUF); same image checks
    GET  /api/v1/update/status    state, slots, counters, TUF versions/expiries, last error

Install and upload answer once the image is verified in the inactive slot
and marked pending; the device then reboots (``REBOOT_KEY``) into a trial of
the new image. Refusals are JSON ``{"error": code, "message": text}`` with a
4xx status (``device.update.errors``); a transport failure is 502.

Example::

    app = create_app(config, handoff=handoff,
                     extensions=[update_extension(UpdateClientConfig(repository_url=url))])
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiohttp import web

from common import tls
from common.image import ImageFacts

from ..access import requires
from ..appkeys import AUDIT_KEY, CLOCK_KEY, CONFIG_KEY, HANDOFF_KEY, REBOOT_KEY, USER_KEY
from ..config import load_settings
from .client import UpdateClient
from .errors import ImageTooLarge, UpdateError
from .fetcher import HTTPSFetcher
from .policy import UpdateClientConfig, next_check_delay

log = logging.getLogger(__name__)

UPDATE_CLIENT_KEY = web.AppKey[UpdateClient]("refcam.update.client")
REBOOT_DELAY = 0.5  # seconds: let the install response reach the client first

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _audit(request: web.Request, event: str, detail: dict[str, Any]) -> None:
    """Update events go to the device's hash-chained audit log (who, from where, what)."""
    audit = request.config_dict.get(AUDIT_KEY)
    if audit is None:  # an app built without the audit log (unit tests of these routes)
        return
    user = request.get(USER_KEY)
    audit.record(event, user.name if user else "-", request.remote or "-", detail, request.config_dict[CLOCK_KEY]())


def _typed(handler: Handler) -> Handler:
    """Every refusal is audited as ``update_<route>_refused`` with its error class; the
    server's one error middleware turns it into the answer (``device.server``)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except UpdateError as exc:
            audit_refusal(request, handler.__name__, exc)
            raise

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def _candidate(client: UpdateClient) -> dict[str, Any] | None:
    return client.status_document()["available"]  # type: ignore[no-any-return]


@requires("admin")
@_typed
async def check(request: web.Request) -> web.StreamResponse:
    client = request.config_dict[UPDATE_CLIENT_KEY]
    result = await asyncio.to_thread(client.check)
    available = _candidate(client)
    _audit(request, "update_check", {"available": available["version"] if available else None})
    return web.json_response({"current_version": result.current_version, "available": available})


def _schedule_reboot(app: web.Application) -> None:
    event = app[REBOOT_KEY]
    asyncio.get_running_loop().call_later(REBOOT_DELAY, event.set)


@requires("admin")
@_typed
async def install(request: web.Request) -> web.StreamResponse:
    client = request.config_dict[UPDATE_CLIENT_KEY]
    # The intent is on record before flash is touched: a write to a slot cannot be rolled
    # back with an audit entry that failed, so no slot is written without one.
    _audit(request, "update_install_started", {"running": client.handoff.firmware.version})
    candidate = await asyncio.to_thread(client.install)
    _audit(request, "update_install", {"version": candidate.version, "slot": client.status.installed_slot})
    _schedule_reboot(request.app)
    return web.json_response(
        {
            "installed": asdict(candidate),
            "slot": client.status.installed_slot,
            "rebooting": True,
        },
        status=202,
    )


@requires("admin")
@_typed
async def upload(request: web.Request) -> web.StreamResponse:
    client = request.config_dict[UPDATE_CLIENT_KEY]
    if request.content_type != "application/octet-stream":
        return web.json_response(
            {"error": "unsupported_media_type", "message": "send the image as application/octet-stream"},
            status=415,
        )
    facts = await install_uploaded_image(request, client)
    return web.json_response(
        {"installed": asdict(facts), "slot": client.status.installed_slot, "rebooting": True},
        status=202,
    )


async def install_uploaded_image(request: web.Request, client: UpdateClient) -> ImageFacts:
    """Read a signed image from the request body (size-capped), verify and write it, schedule the reboot.

    The one upload path: ``POST /api/v1/update/upload`` and ONVIF's StartFirmwareUpgrade
    upload URI (``device.onvif.upgrade``) both end here. Raises :class:`UpdateError`.
    """
    limit = client.config.max_image_size
    declared = request.content_length
    if declared is not None and declared > limit:
        raise ImageTooLarge(f"image of {declared} bytes exceeds the limit of {limit}")
    body = bytearray()
    async for chunk in request.content.iter_chunked(256 * 1024):
        body += chunk
        if len(body) > limit:
            raise ImageTooLarge(f"image exceeds the limit of {limit} bytes")
    _audit(request, "update_upload_started", {"bytes": len(body)})  # before any slot write
    facts = await asyncio.to_thread(client.install_upload, bytes(body))
    _audit(request, "update_upload", {"version": facts.version, "slot": client.status.installed_slot})
    _schedule_reboot(request.app)
    return facts


def audit_refusal(request: web.Request, route: str, exc: UpdateError) -> None:
    """Record a refused update like the update routes do (``update_<route>_refused``)."""
    _audit(request, f"update_{route}_refused", {"error": exc.code, "message": exc.message})


@requires("admin")
@_typed
async def status(request: web.Request) -> web.StreamResponse:
    client = request.config_dict[UPDATE_CLIENT_KEY]
    return web.json_response(await asyncio.to_thread(client.status_document))


def add_update_routes(app: web.Application, client: UpdateClient) -> None:
    """Mount the routes for ``client`` (tests pass a client they built)."""
    app[UPDATE_CLIENT_KEY] = client
    app.router.add_post("/api/v1/update/check", check)
    app.router.add_post("/api/v1/update/install", install)
    app.router.add_post("/api/v1/update/upload", upload)
    app.router.add_get("/api/v1/update/status", status)


def _vendor_root_file(data_dir: Path, pem: bytes) -> Path:
    path = data_dir / "update" / "vendor-root.pem"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != pem:
        path.write_bytes(pem)
    return path


def build_client(app: web.Application, config: UpdateClientConfig) -> UpdateClient:
    """The device's client: vendor TLS root and TUF root from the verified firmware."""
    handoff = app[HANDOFF_KEY]
    pem = handoff.firmware.vendor_tls_root
    # Without a vendor root there is no trusted https: network updates fail closed
    # ("no TLS context configured"), signed uploads still work.
    context = tls.client_context(_vendor_root_file(handoff.data_dir, pem)) if pem else None
    flaws = app[CONFIG_KEY].flaws
    fetcher = HTTPSFetcher(
        ssl_context=context,
        partial_dir=handoff.data_dir / "update" / "partial",
        config=config.fetcher,
        unsafe_no_tls_validation="update-client-no-tls-validation" in flaws,
    )
    settings_file = app[CONFIG_KEY].settings_file

    def repository_url() -> str:  # read per check: PATCH /api/v1/settings takes effect at once
        return load_settings(settings_file).update_url or config.repository_url

    return UpdateClient(
        handoff, config, fetcher=fetcher, clock=app[CLOCK_KEY], repository_url=repository_url, flaws=flaws
    )


async def _periodic_checks(client: UpdateClient, rng: random.Random, app: web.Application | None = None) -> None:
    """EN 303 645 5.3-4/-5: automatic, configurable checks (interval +/- jitter).

    The first check comes after a uniformly random share of the interval, so a fleet
    powered on together does not reach the repository at once. With ``auto_install``
    (fleet rollouts), a check that finds a release this unit is admitted to installs it
    and reboots into the trial, audited as the device's own action."""
    config = client.config
    await asyncio.sleep(config.check_interval * rng.uniform(config.check_jitter, 1.0))
    while True:
        try:
            result = await asyncio.to_thread(client.check)
            if result.candidate is not None:
                log.info("update %s is available", result.candidate.version)
                if config.auto_install and app is not None:
                    await _auto_install(client, app)
                    return
        except UpdateError as exc:  # recorded in the status; try again next period
            log.warning("automatic update check failed: %s", exc)
        await asyncio.sleep(next_check_delay(config.check_interval, config.check_jitter, rng))


async def _auto_install(client: UpdateClient, app: web.Application) -> None:
    audit = app.get(AUDIT_KEY)
    now = app[CLOCK_KEY]
    if audit is not None:  # the intent is on record before flash is touched
        audit.record("update_install_started", "device", "automatic",
                     {"running": client.handoff.firmware.version}, now())
    candidate = await asyncio.to_thread(client.install)
    if audit is not None:
        audit.record("update_install", "device", "automatic",
                     {"version": candidate.version, "slot": client.status.installed_slot}, now())
    _schedule_reboot(app)


def update_extension(config: UpdateClientConfig) -> Callable[[web.Application], None]:
    """A management-server extension: build the client at start-up, mount routes, schedule checks."""

    def extend(app: web.Application) -> None:
        async def ctx(app: web.Application) -> AsyncIterator[None]:
            client = build_client(app, config)
            app[UPDATE_CLIENT_KEY] = client
            task = None
            if config.check_interval > 0:
                task = asyncio.create_task(_periodic_checks(client, random.Random(), app))
            yield
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        app.router.add_post("/api/v1/update/check", check)
        app.router.add_post("/api/v1/update/install", install)
        app.router.add_post("/api/v1/update/upload", upload)
        app.router.add_get("/api/v1/update/status", status)
        app.cleanup_ctx.append(ctx)

    return extend
