"""The firmware's entry point: ``run(handoff, argv) -> int``, called by the boot chain.

``run`` parses the runtime options, builds :class:`DeviceConfig` from the
handoff's data partition, and serves the management app over TLS only::

    --host 127.0.0.1  --port 8443  --tls-profile intermediate|modern
    --password-policy nist-800-63b|kr-terminal  --redirect-port N (plain HTTP, 308 only)
    --source synthetic:640x360@15|file:P|folder:D|device:N|none  (alias --stream-source)
    --stream-mask X,Y,W,H[:black|:pixelate[=N]] (repeatable)  --stream-signing ed25519|ecdsa-p256-sha256
    --stream-frame-hash blake3|sha256
    --update-url https://repo:port [--update-check-interval SECONDS] (default: the vendor)
    --update-auto-install on|off (default off; on: install an admitted release when a check finds it)
    --vendor-url https://vendor (security.txt points there; default https://localhost:9443)
    --flaw NAME (repeatable; UNSAFE test-lab flaw profiles, loopback only, see ``flaws``)

The route sets besides the core API are extensions (``server.Extension``):
the web UI, the signed stream (``stream.web``), the update client
(``update.web``) and security.txt (``disclosure``); :func:`extensions_for`
builds them from the options.

When it is listening it prints one line, ``refcam device serving
https://HOST:PORT (serial ..., firmware ...)``. It returns 0 on SIGINT/SIGTERM
and ``EXIT_REBOOT`` when a route sets ``appkeys.REBOOT_KEY`` (after an
update), so the host boots the whole chain again.

Example (what ``bootloader.firmware.start_firmware`` does)::

    exit_code = run(handoff, ["--port", "8443"])
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import math
import signal
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from common import tls
from common.flaws import PLAINTEXT_FLAW_PORT_OFFSET, UnsafeFlaws
from common.handoff import EXIT_REBOOT, BootHandoff
from common.listener import GuardedSite, runner_options

from . import logs
from .appkeys import AUDIT_KEY, CLOCK_KEY, CONNECTIONS_KEY, REBOOT_KEY
from .config import PASSWORD_POLICIES, DeviceConfig, check_update_url
from .errors import ConfigError
from .rtsp import build_streams, rtsp_extension, rtsp_options
from .server import Extension, builtin_extensions, create_app, create_redirect_app
from .stream import build_pipeline, stream_options
from .stream.web import add_stream_routes

# The vendor this firmware belongs to: its update repository and its PSIRT
# (security.txt points there). `refcam update-server run` listens here by default.
DEFAULT_VENDOR_URL = "https://localhost:9443"

log = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"device run: {message}")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(prog="refcam device run", add_help=False)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--tls-profile", choices=tls.PROFILES, default="intermediate")
    parser.add_argument("--password-policy", choices=PASSWORD_POLICIES, default="nist-800-63b")
    parser.add_argument("--redirect-port", type=int, default=None)
    stream_options(parser)  # --source/--stream-source, --stream-mask, --stream-signing, ...
    rtsp_options(parser)  # --rtsp-port (RTSPS only), --rtsp-digest, session caps
    parser.add_argument("--update-url", default=DEFAULT_VENDOR_URL)
    parser.add_argument("--update-check-interval", type=float, default=None)
    # on: an automatic check that finds a release this unit is admitted to installs it (fleet rollouts)
    parser.add_argument("--update-auto-install", choices=("on", "off"), default="off")
    parser.add_argument("--vendor-url", default=DEFAULT_VENDOR_URL)
    # The https origin clients reach this device at (security.txt Canonical); default: its
    # certificate's name cam-<serial>.local and --port.
    parser.add_argument("--public-url", default=None)
    parser.add_argument("--flaw", action="append", default=[])
    args = parser.parse_args(list(argv))
    args.flaws = UnsafeFlaws.parse(args.flaw, host=args.host)  # loopback only, known names only
    if "sla-breached" in args.flaws:
        raise ConfigError(
            "sla-breached is a vendor-side flaw (the PSIRT misses a deadline): "
            "use refcam update-server run --flaw sla-breached"
        )
    if args.public_url is not None:
        parts = urlsplit(args.public_url)
        try:
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ConfigError(f"--public-url {args.public_url!r} has a bad port") from None
        if (
            parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/")
            or parts.query or parts.fragment or parts.username or parts.password
        ):
            raise ConfigError(f"--public-url {args.public_url!r} must be an https://HOST[:PORT] origin")
        args.public_url = args.public_url.rstrip("/")
    for name in ("port", "redirect_port"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 65535:
            raise ConfigError(f"--{name.replace('_', '-')} {value} is not a TCP port (0..65535)")
    _check_run_inputs(args)
    return args


def _check_run_inputs(args: argparse.Namespace) -> None:
    """Refuse bad values before anything starts: each a one-line ConfigError."""
    if args.update_url is not None:
        try:
            args.update_url = check_update_url(args.update_url)
        except ConfigError as exc:
            raise ConfigError(f"--update-url: {exc}") from exc
        except ValueError as exc:  # urlsplit: "https://[::1" and the like
            raise ConfigError(f"--update-url {args.update_url!r} is not a URL: {exc}") from exc
    interval = args.update_check_interval
    if interval is not None and not (math.isfinite(interval) and interval >= 0):
        raise ConfigError(
            f"--update-check-interval {interval} must be a number of seconds >= 0 (0 turns checks off)"
        )
    kind, _sep, rest = str(args.stream_source).partition(":")
    if kind == "file" and rest and not Path(rest).is_file():
        raise ConfigError(f"--source file:{rest}: no such video file")
    if kind == "folder" and rest and not Path(rest).is_dir():
        raise ConfigError(f"--source folder:{rest}: no such directory")


def extensions_for(handoff: BootHandoff, args: argparse.Namespace) -> list[Extension]:
    """The route sets this run serves besides the core API, from the command line."""
    extensions = builtin_extensions()
    pipeline = build_pipeline(args, handoff)  # None for --source none
    if pipeline is not None:
        extensions.append(lambda app: add_stream_routes(app, pipeline))
    rtsp_streams = build_streams(args, pipeline, handoff)  # None: no source, or --rtsp-port -1
    if rtsp_streams is not None:
        extensions.append(rtsp_extension(rtsp_streams, args))
    if args.update_url is not None:
        from .update.policy import UpdateClientConfig
        from .update.web import update_extension

        update_config = UpdateClientConfig(repository_url=args.update_url)
        if args.update_check_interval is not None:
            update_config = replace(update_config, check_interval=args.update_check_interval)
        if args.update_auto_install == "on":
            update_config = replace(update_config, auto_install=True)
        extensions.append(update_extension(update_config))
    if args.vendor_url is not None:
        from .disclosure import add_disclosure_routes

        vendor_url, flaws = args.vendor_url, args.flaws
        public_url = args.public_url or default_public_url(handoff.identity.serial, args.port)
        extensions.append(
            lambda app: add_disclosure_routes(app, vendor_url=vendor_url, public_url=public_url, flaws=flaws)
        )
    from .disclosure import add_sbom_route

    extensions.append(add_sbom_route)
    extensions.append(_onvif_media_extension(args, rtsp=rtsp_streams is not None))
    from .metrics import add_metrics_route

    extensions.append(add_metrics_route)
    return extensions


def _onvif_media_extension(args: argparse.Namespace, *, rtsp: bool) -> Extension:
    """Tell the ONVIF media services what --source really produces (device.onvif.media):
    with RTSPS on, the H.264 profile and its rtsps:// URI (device.rtsp) are listed too."""

    def extend(app: web.Application) -> None:
        try:
            from .onvif.media import MediaDescription
            from .onvif.web import MEDIA_KEY
            from .stream.sources import parse_source_spec
        except ModuleNotFoundError:  # a build without ONVIF
            return
        if args.stream_source == "none":
            app[MEDIA_KEY] = MediaDescription(mjpeg=False, jpeg_quality=args.stream_jpeg_quality)
            return
        spec = parse_source_spec(args.stream_source)
        media = MediaDescription(jpeg_quality=args.stream_jpeg_quality)
        if spec.width and spec.height and spec.fps:  # synthetic sources say; files and devices are probed later
            media = replace(media, width=spec.width, height=spec.height, fps=spec.fps)
        if rtsp:
            from .rtsp import H264_PATH

            media = replace(media, rtsp_port=args.rtsp_port, rtsp_path=H264_PATH)
        app[MEDIA_KEY] = media

    return extend


def default_public_url(serial: str, port: int) -> str:
    """``https://cam-<serial>.local[:port]``: the name on the device's TLS certificate (bootloader.pki)."""
    suffix = "" if port in (0, 443) else f":{port}"
    return f"https://cam-{serial}.local{suffix}"


def config_for(handoff: BootHandoff, args: argparse.Namespace) -> DeviceConfig:
    return DeviceConfig(
        runtime_dir=handoff.data_dir / "runtime",
        identity_dir=handoff.data_dir / "identity",
        tls_profile=args.tls_profile,
        password_policy=args.password_policy,
        flaws=args.flaws,
        update_url=args.update_url,
    )


def tls_context_for(config: DeviceConfig, *, now: float) -> ssl.SSLContext:
    """The management TLS context; weakened only by an explicit flaw profile."""
    flaws = config.flaws
    chain, key = config.tls_chain_file, config.tls_key_file
    if "self-signed-cert" in flaws:
        chain, key = tls.unsafe_self_signed(config.runtime_dir / "unsafe", now=now)
    if "tls-legacy" in flaws or "weak-ciphers" in flaws:
        return tls.unsafe_server_context(
            chain,
            key,
            profile=config.tls_profile,
            tls_legacy="tls-legacy" in flaws,
            weak_ciphers="weak-ciphers" in flaws,
        )
    return tls.server_context(chain, key, profile=config.tls_profile)


async def serve(
    handoff: BootHandoff,
    args: argparse.Namespace,
    *,
    clock: Callable[[], float] = time.time,
    extensions: Sequence[Extension] | None = None,
    announce: Callable[[str], None] = print,
    stop: asyncio.Event | None = None,
    on_listening: Callable[[web.Application], None] | None = None,
) -> int:
    """Serve until stopped. ``stop`` given (fleet mode: many units on one loop), the
    caller owns the loop's signals and sets it to stop this unit; otherwise SIGINT and
    SIGTERM stop it. ``on_listening`` gets the app once the HTTPS site listens."""
    config = config_for(handoff, args)
    if config.flaws:
        announce(config.flaws.banner())
        log.warning("flaw profiles active: %s", ", ".join(config.flaws))
    context = tls_context_for(config, now=clock())
    if extensions is None:
        extensions = extensions_for(handoff, args)
    app = create_app(config, handoff=handoff, clock=clock, extensions=extensions)
    runner = web.AppRunner(app, **runner_options(config.connections))
    await runner.setup()
    redirect_runner: web.AppRunner | None = None
    discovery = None
    own_signals = stop is None
    stop = asyncio.Event() if stop is None else stop
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM) if own_signals else ():
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    try:
        site = GuardedSite(runner, args.host, args.port, guard=app[CONNECTIONS_KEY], ssl_context=context)
        await _listen(site, args.host, args.port)
        port = _bound_port(site, args.port)
        if "plaintext-http" in config.flaws:  # UNSAFE flaw profile: the whole API over HTTP
            plain_port = port + PLAINTEXT_FLAW_PORT_OFFSET
            await _listen(web.TCPSite(runner, args.host, plain_port), args.host, plain_port)
            announce(f"UNSAFE: management API also on http://{args.host}:{plain_port}")
        if args.redirect_port is not None:
            redirect_app = create_redirect_app(port, host=args.host, limits=config.connections)
            redirect_runner = web.AppRunner(redirect_app, **runner_options(config.connections))
            await redirect_runner.setup()
            redirect_site = GuardedSite(
                redirect_runner, args.host, args.redirect_port, guard=redirect_app[CONNECTIONS_KEY]
            )
            await _listen(redirect_site, args.host, args.redirect_port)
            announce(
                f"refcam device redirecting http://{args.host}:"
                f"{_bound_port(redirect_site, args.redirect_port)} to https (308 only)"
            )
        announce(
            f"refcam device serving https://{args.host}:{port} "
            f"(serial {handoff.identity.serial}, firmware {handoff.firmware.version})"
        )
        discovery = await _start_discovery(app, handoff, args.host, port)
        reboot = app[REBOOT_KEY]
        if on_listening is not None:
            on_listening(app)
        if handoff.trial:
            await confirm_trial(app, handoff, config, host=args.host, port=port, announce=announce)
        waiters = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(reboot.wait())}
        _done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return EXIT_REBOOT if reboot.is_set() else 0
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM) if own_signals else ():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        if discovery is not None:
            await discovery.close()  # Bye
        if redirect_runner is not None:
            await redirect_runner.cleanup()
        await runner.cleanup()


async def _start_discovery(app: web.Application, handoff: BootHandoff, host: str, port: int) -> Any:
    """WS-Discovery on loopback (device.onvif.discovery) when ONVIF is served and reachable there."""
    try:
        from .onvif.discovery import DiscoveryInfo, DiscoveryService
        from .onvif.services import DEVICE_PATH, scopes
        from .onvif.web import MEDIA_KEY, ONVIF_KEY
    except ModuleNotFoundError:  # a build without ONVIF
        return None
    if ONVIF_KEY not in app:
        return None
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = ipaddress.ip_address("127.0.0.1") if host == "localhost" else None
    if address is None or not (address.is_loopback or address.is_unspecified) or address.version != 4:
        return None  # the XAddr would not be reachable over loopback
    media = app.get(MEDIA_KEY, app[ONVIF_KEY].media)
    # a unit of a fleet answers on its own 127.0.x.y; a lone unit on 127.0.0.1
    own = "127.0.0.1" if address.is_unspecified else str(address)
    info = DiscoveryInfo(
        endpoint=DiscoveryInfo.endpoint_for(handoff.identity.serial),
        xaddrs=(f"https://{own}:{port}{DEVICE_PATH}",),
        scopes=tuple(scopes(handoff.identity.model, media)),
    )
    try:
        return await DiscoveryService.start(info, host=own, instance=int(app[CLOCK_KEY]()))
    except OSError as exc:
        log.warning("WS-Discovery not started on %s:3702: %s", own, exc)
        return None


async def _listen(site: web.BaseSite, host: str, port: int) -> None:
    try:
        await site.start()
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


async def health_check(config: DeviceConfig, app: web.Application, *, host: str, port: int) -> None:
    """The trial firmware's self-test: a real HTTPS request to itself, validated to the
    manufacturer root, and an intact audit chain. Raises on any failure."""
    import aiohttp

    ctx = ssl.create_default_context(cafile=str(config.identity_dir / "manufacturer-root.pem"))
    name = "localhost" if host in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::") else host  # noqa: S104
    server_hostname = None
    if _is_loopback_address(name):  # fleet mode: 127.0.x.y; the certificate names localhost
        server_hostname = "localhost"
    url_host = f"[{name}]" if ":" in name else name
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
        f"https://{url_host}:{port}/api/v1/info", ssl=ctx, server_hostname=server_hostname
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"GET /api/v1/info answered {response.status}")
        info = await response.json()
    if info.get("model") is None:
        raise RuntimeError("device info has no model")
    app[AUDIT_KEY].verify_chain()


def _is_loopback_address(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def confirm_trial(
    app: web.Application,
    handoff: BootHandoff,
    config: DeviceConfig,
    *,
    host: str,
    port: int,
    announce: Callable[[str], None],
) -> None:
    """MCUboot's trial semantics, firmware side: confirm only a healthy image.

    A failed health check asks for a reboot at once, and the bootloader reverts
    to the previous slot (as it would after a crash or a power cut).
    """
    now = app[CLOCK_KEY]()
    audit = app[AUDIT_KEY]
    try:
        await health_check(config, app, host=host, port=port)
    except Exception as exc:  # noqa: BLE001 - any failure means "do not confirm"
        announce(f"trial firmware {handoff.firmware.version} failed its health check: {exc}; rebooting to revert")
        audit.record("update_trial_failed", "firmware", "device", {"version": handoff.firmware.version, "error": str(exc)}, now)
        app[REBOOT_KEY].set()
        return
    await asyncio.to_thread(handoff.services.confirm)
    audit.record("update_confirmed", "firmware", "device", {"version": handoff.firmware.version,
                                                              "security_counter": handoff.security_counter}, now)
    announce(f"trial firmware {handoff.firmware.version} passed its health check and is confirmed")


def _bound_port(site: web.BaseSite, requested: int) -> int:
    server = site._server  # the asyncio server: the real port when 0 was asked for
    sockets = getattr(server, "sockets", None) or []
    return int(sockets[0].getsockname()[1]) if sockets else requested


def run(handoff: BootHandoff, argv: list[str]) -> int:
    """Serve until stopped; returns 0, or ``EXIT_REBOOT`` to boot the chain again."""
    args = parse_args(argv)

    def announce(line: str) -> None:
        print(line, flush=True)

    logs.install()  # one line per event, rate-limited: hostile clients cannot fill the log

    result = asyncio.run(serve(handoff, args, announce=announce))
    sys.stdout.flush()
    return result
