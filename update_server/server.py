"""The vendor update server: the TUF repository over TLS, and its online re-signing.

``REPO/metadata`` and ``REPO/targets`` are static files; this server adds
what a production deployment (see ``docs/UPDATES.md`` for nginx) must have:

* TLS only, with the management server's policy (``common.tls.server_context``,
  Mozilla "intermediate" by default) and a leaf from the vendor root
  (:mod:`update_server.tls`); ``Strict-Transport-Security`` on every response;
* HTTP ``Range`` for resumable downloads (aiohttp's ``FileResponse``, copying
  in chunks so a client leaving mid-download is no traceback: ``TLSFileResponse``);
* slow clients and connection floods handled as on the camera
  (:mod:`common.listener`: handshake, head and anonymous-body deadlines,
  caps per address and in all), since the PSIRT intake faces anyone;
* cache headers: ``timestamp.json`` and the ``root.json`` copy must be
  revalidated every time, every versioned or hash-prefixed file is immutable;
* a periodic task re-signing snapshot and timestamp before they expire
  (:meth:`update_server.repo.TUFRepository.refresh`) when the online keys
  are available.

Other vendor services (PSIRT, advisories) mount their routes on the same
application through ``create_app(config, extensions=[...])``.

Example::

    app = create_app(UpdateServerConfig(repo_dir=Path("REPO"), keys_dir=Path("K")))
    run(config)   # refcam update-server run --repo REPO --keys K --port 9443
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.web_request import BaseRequest

from common import tls as device_tls
from common.listener import (
    CONNECTIONS_KEY,
    ConnectionGuard,
    ConnectionLimits,
    GuardedSite,
    connection_middleware,
    runner_options,
)

from .errors import ServerConfigError, UpdateServerError
from .repo import TUFRepository
from .tls import DEFAULT_NAMES, ensure_server_certificate

log = logging.getLogger(__name__)

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"  # may be stored, but must be revalidated on every use
MUTABLE_METADATA = frozenset({"timestamp.json", "root.json"})
SMALL_FILE = 64 * 1024  # metadata up to this size is read in the event loop (no executor hop)
# A request with any of these goes through FileResponse (ranges, validators, preconditions).
_FILE_RESPONSE_HEADERS = frozenset(
    {"range", "if-range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since"}
)


@dataclass(frozen=True)
class UpdateServerConfig:
    repo_dir: Path
    keys_dir: Path | None = None  # None: serve only, never re-sign
    host: str = "127.0.0.1"
    port: int = 9443
    tls_profile: device_tls.TLSProfile = "intermediate"
    names: tuple[str, ...] = DEFAULT_NAMES  # host names in the TLS leaf
    refresh_interval: float = 3600.0  # seconds between re-signing checks; 0 disables
    passphrase: bytes | None = field(default=None, repr=False)  # for encrypted key files
    hsts_max_age: int = 31536000  # seconds (1 year)
    # slow clients and the connection cap (common.listener): the PSIRT intake faces anyone
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)


CONFIG_KEY = web.AppKey[UpdateServerConfig]("update_server.config")
CLOCK_KEY = web.AppKey[Callable[[], datetime]]("update_server.clock")
REFRESH_LOG_KEY = web.AppKey[list[str]]("update_server.refresh_log")

Extension = Callable[[web.Application], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _safe_file(base: Path, relative: str) -> Path:
    """``base/relative`` if it is a regular file inside ``base``; else 404."""
    parts = relative.split("/")
    if any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise web.HTTPNotFound(text="not found")
    path = base.joinpath(*parts)
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise web.HTTPNotFound(text="not found") from None
    if not resolved.is_relative_to(base.resolve()) or not resolved.is_file():
        raise web.HTTPNotFound(text="not found")
    return resolved


class TLSFileResponse(web.FileResponse):
    """``FileResponse`` (Range, conditional requests) that copies the file in chunks itself.

    Over TLS the kernel's ``sendfile`` cannot be used anyway, and asyncio's own
    fallback fails on a client that leaves mid-download with an ``AttributeError``
    from the closed TLS transport, logged as an unhandled exception with a
    traceback. aiohttp's chunked copy raises ``ConnectionResetError`` there,
    which aiohttp treats as the client's normal leaving (nothing logged).
    """

    async def _sendfile(
        self, request: BaseRequest, fobj: IO[Any], offset: int, count: int
    ) -> AbstractStreamWriter:
        writer = await web.StreamResponse.prepare(self, request)
        if writer is None:  # prepared already: nothing more to send
            raise ConnectionResetError("response already sent")
        return await self._sendfile_fallback(writer, fobj, offset, count)


async def metadata_file(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG_KEY]
    name = request.match_info["name"]
    path = _safe_file(config.repo_dir / "metadata", name)
    headers = {
        "Cache-Control": REVALIDATE if name in MUTABLE_METADATA else IMMUTABLE,
        "Content-Type": "application/json",
    }
    if not any(h.lower() in _FILE_RESPONSE_HEADERS for h in request.headers):
        small = _read_small(path)
        if small is not None:
            body, st = small
            response = web.Response(body=body, headers=headers)
            # the validators FileResponse sends, so a later conditional request matches them
            response.etag = f"{st.st_mtime_ns:x}-{st.st_size:x}"
            response.last_modified = st.st_mtime
            return response
    return TLSFileResponse(path, headers=headers)


def _read_small(path: Path) -> tuple[bytes, os.stat_result] | None:
    """The bytes of ``path`` and their stat if at most ``SMALL_FILE`` long, else None.

    A TUF refresh asks for five small documents; reading one from the page
    cache takes microseconds, less than the executor round trips of
    ``FileResponse``. The file is stat'ed through the descriptor it is read
    from, so body and validators are of one version even when the repository
    replaces the file meanwhile (an atomic rename).
    """
    try:
        with path.open("rb") as handle:
            st = os.fstat(handle.fileno())
            if st.st_size > SMALL_FILE:
                return None
            body = handle.read(SMALL_FILE + 1)
    except OSError:
        return None  # FileResponse answers (404, 403) as for any file
    return (body, st) if len(body) == st.st_size else None


async def target_file(request: web.Request) -> web.StreamResponse:
    config = request.app[CONFIG_KEY]
    path = _safe_file(config.repo_dir / "targets", request.match_info["path"])
    # Hash-prefixed names (consistent snapshots): the bytes behind a URL never change.
    return TLSFileResponse(
        path, headers={"Cache-Control": IMMUTABLE, "Content-Type": "application/octet-stream"}
    )


def security_headers(config: UpdateServerConfig) -> dict[str, str]:
    return {
        "Strict-Transport-Security": f"max-age={config.hsts_max_age}",
        "X-Content-Type-Options": "nosniff",
        "Server": "refcam-update",  # no software versions (fingerprinting)
    }


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(security_headers(request.app[CONFIG_KEY]))


def refresh_repository(config: UpdateServerConfig, now: datetime) -> str:
    """One re-signing pass of the online roles; returns a log line."""
    if config.keys_dir is None:
        return "no key directory: not re-signing"
    repo = TUFRepository.open_dir(
        config.repo_dir, now=now, passphrase=config.passphrase, keys_dir=config.keys_dir
    )
    result = repo.refresh()
    if repo.has_changes:
        repo.commit()
    for warning in result.warnings:
        log.warning("repository: %s", warning)
    resigned = ", ".join(result.resigned) or "nothing"
    return f"re-signed {resigned} (snapshot v{result.snapshot_version}, timestamp v{result.timestamp_version})"


async def _refresher(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: re-sign snapshot/timestamp periodically while the server runs."""
    config = app[CONFIG_KEY]
    clock = app[CLOCK_KEY]
    journal = app[REFRESH_LOG_KEY]

    async def loop() -> None:
        while True:
            try:
                line = await asyncio.to_thread(refresh_repository, config, clock())
                journal.append(line)
                log.info("repository refresh: %s", line)
            except UpdateServerError as exc:  # keep serving; the next pass may succeed
                journal.append(f"error: {exc}")
                log.error("repository refresh failed: %s", exc)
            await asyncio.sleep(config.refresh_interval)

    task = None
    if config.refresh_interval > 0 and config.keys_dir is not None:
        task = asyncio.create_task(loop())
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(
    config: UpdateServerConfig,
    *,
    clock: Callable[[], datetime] = _utc_now,
    extensions: Iterable[Extension] = (),
) -> web.Application:
    """The vendor application; ``extensions`` add routes (PSIRT, advisories) before start."""
    if not (config.repo_dir / "metadata" / "timestamp.json").is_file():
        raise ServerConfigError(
            f"{config.repo_dir} has no metadata/timestamp.json; run 'refcam repo init' first"
        )
    app = web.Application(middlewares=[connection_middleware])
    # Deadlines and the cap apply where the app is served through a GuardedSite (run,
    # serve_in_thread(guarded=True)); the headers also go on the parser's own 400s.
    app[CONNECTIONS_KEY] = ConnectionGuard(config.connections, headers=security_headers(config))
    app[CONFIG_KEY] = config
    app[CLOCK_KEY] = clock
    app[REFRESH_LOG_KEY] = []
    app.router.add_get(r"/metadata/{name:[A-Za-z0-9][A-Za-z0-9._-]*\.json}", metadata_file)
    app.router.add_get("/targets/{path:.+}", target_file)
    app.on_response_prepare.append(_security_headers)
    app.cleanup_ctx.append(_refresher)
    for extend in extensions:
        extend(app)
    return app


def server_ssl_context(config: UpdateServerConfig, *, now: datetime) -> ssl.SSLContext:
    if config.keys_dir is None:
        raise ServerConfigError("the update server needs --keys K for its TLS certificate")
    chain, key = ensure_server_certificate(
        config.keys_dir, now=now, names=config.names, passphrase=config.passphrase
    )
    return device_tls.server_context(chain, key, profile=config.tls_profile)


def run(config: UpdateServerConfig, *, extensions: Iterable[Extension] = ()) -> None:
    """Serve until interrupted (the ``refcam update-server run`` command).

    Prints ``refcam update-server serving https://HOST:PORT`` once listening
    (with the real port when ``config.port`` is 0), which scripts wait for.
    """
    context = server_ssl_context(config, now=_utc_now())
    app = create_app(config, extensions=extensions)

    async def serve() -> None:
        runner = web.AppRunner(app, keepalive_timeout=runner_options(config.connections)["keepalive_timeout"])
        await runner.setup()
        site = GuardedSite(runner, config.host, config.port, guard=app[CONNECTIONS_KEY], ssl_context=context)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ServerConfigError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from exc
        port = runner.addresses[0][1]
        host = "localhost" if config.host in ("127.0.0.1", "::1", "localhost") else config.host
        print(f"refcam update-server serving https://{host}:{port}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


@contextlib.contextmanager
def serve_in_thread(
    app: web.Application, *, ssl_context: ssl.SSLContext | None, host: str = "127.0.0.1", guarded: bool = False
) -> Iterator[int]:
    """Run ``app`` on a free loopback port in a background thread; yields the port.

    For synchronous callers (the TUF client, tests, benchmarks). ``guarded``:
    through a :class:`GuardedSite` with the app's ``CONNECTIONS_KEY`` guard, as
    :func:`run` serves it (slow clients cut, connections capped).
    """
    loop = asyncio.new_event_loop()
    guard = app[CONNECTIONS_KEY] if guarded else None
    runner = web.AppRunner(app, **({} if guard is None else {
        "keepalive_timeout": runner_options(guard.limits)["keepalive_timeout"]}))
    started = threading.Event()
    port_box: list[int] = []

    async def start() -> None:
        await runner.setup()
        site: web.BaseSite
        if guard is not None:
            site = GuardedSite(runner, host, 0, guard=guard, ssl_context=ssl_context)
        else:
            site = web.TCPSite(runner, host, 0, ssl_context=ssl_context)
        await site.start()
        server = site._server
        assert server is not None and isinstance(server, asyncio.base_events.Server)
        port_box.append(server.sockets[0].getsockname()[1])

    failure: list[Exception] = []

    def main() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except (OSError, RuntimeError) as exc:  # bind failure: reported to the caller below
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=main, name="update-server", daemon=True)
    thread.start()
    if not started.wait(timeout=10) or failure:
        thread.join(timeout=10)
        loop.close()
        raise ServerConfigError(f"update server did not start: {failure[0] if failure else 'timeout'}")
    try:
        yield port_box[0]
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
