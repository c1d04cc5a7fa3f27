"""RTSPS: the camera's H.264 and MJPEG streams over RTSP on TLS (docs/RTSP.md).

Modules: :mod:`.protocol` (RTSP wire format, strict parsing), :mod:`.rtp`
(RFC 6184 / RFC 2435 payloads), :mod:`.media` (encode once, fan out),
:mod:`.mediasign` (signed H.264: SEI per GOP), :mod:`.auth` (Digest against
the device users), :mod:`.server` (the listener and sessions).

``device.main`` wires it with three helpers::

    rtsp_options(parser)                                    # --rtsp-port, --rtsp-digest, ...
    streams = build_streams(args, pipeline, handoff)        # None when streaming is off
    extensions.append(rtsp_extension(streams, args))        # starts the server beside HTTPS

:func:`rtsp_streams` is the pure list of what is served (path, codec,
resolution, fps), for ONVIF's profiles and GetStreamUri.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from common.flaws import PLAINTEXT_FLAW_PORT_OFFSET, UnsafeFlaws

from ..errors import ConfigError
from .server import DEFAULT_PORT, RtspConfig, RtspServer

if TYPE_CHECKING:
    from aiohttp import web

    from common.handoff import BootHandoff

    from ..stream.pipeline import StreamPipeline
    from ..stream.sources import SourceSpec
    from .media import MediaStream

log = logging.getLogger(__name__)

DIGEST_CHOICES: dict[str, tuple[str, ...]] = {"sha256": ("SHA-256",), "sha256+md5": ("SHA-256", "MD5")}
H264_PATH = "/h264"
MJPEG_PATH = "/mjpeg"


@dataclass(frozen=True)
class RtspStreamInfo:
    """One stream the RTSPS server offers: what ONVIF's media profiles describe."""

    path: str  # rtsps://HOST:PORT{path}
    codec: str  # "H264" or "JPEG"
    width: int  # 0 when the source decides at run time (file, camera)
    height: int
    fps: float
    signed: bool  # H.264 carries signed-GOP SEI (ONVIF Media Signing)


def rtsp_streams(spec: SourceSpec, *, signed: bool = True) -> list[RtspStreamInfo]:
    """The RTSP streams for a source spec (pure: nothing is opened)."""
    width, height, fps = (spec.width, spec.height, spec.fps) if spec.kind == "synthetic" else (0, 0, 0.0)
    return [
        RtspStreamInfo(H264_PATH, "H264", width, height, fps, signed),
        RtspStreamInfo(MJPEG_PATH, "JPEG", width, height, fps, False),
    ]


def rtsp_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("RTSPS")
    group.add_argument(
        "--rtsp-port", type=int, default=DEFAULT_PORT,
        help=f"RTSPS port (TLS only; default {DEFAULT_PORT}, -1 turns RTSP off)",
    )
    group.add_argument(
        "--rtsp-digest", choices=DIGEST_CHOICES, default="sha256",
        help="Digest algorithms: sha256 (default), or sha256+md5 to also offer MD5, a declared compatibility "
        "option for clients such as FFmpeg that lack SHA-256",
    )
    group.add_argument("--rtsp-max-sessions", type=int, default=32)
    group.add_argument("--rtsp-max-sessions-per-client", type=int, default=4)
    group.add_argument("--rtsp-session-timeout", type=float, default=60.0)


def build_streams(
    args: argparse.Namespace, pipeline: StreamPipeline | None, handoff: BootHandoff
) -> dict[str, MediaStream] | None:
    """The RTSP streams over the HTTPS pipeline's source, masks and signing key (None: RTSP off)."""
    if pipeline is None or args.rtsp_port == -1:
        return None
    if not 0 <= args.rtsp_port <= 65535:
        raise ConfigError(f"--rtsp-port {args.rtsp_port} is not a TCP port (0..65535, or -1 for off)")
    if not 1 <= args.rtsp_max_sessions_per_client <= args.rtsp_max_sessions <= 1024:
        raise ConfigError("RTSP session caps must satisfy 1 <= --rtsp-max-sessions-per-client <= --rtsp-max-sessions <= 1024")
    if not 5.0 <= args.rtsp_session_timeout <= 3600.0:
        raise ConfigError(f"--rtsp-session-timeout {args.rtsp_session_timeout} must be 5..3600 seconds")
    from ..stream.signing import StreamSigner
    from ..stream.sources import parse_source_spec
    from .media import H264Stream, MjpegStream
    from .mediasign import GopSigner

    spec = parse_source_spec(args.stream_source)
    flaws: UnsafeFlaws = args.flaws
    factory = None
    if "unsigned-stream" not in flaws:
        # ONVIF Media Signing: ECDSA P-256 whatever --stream-signing says (its validators verify
        # with EVP_PKEY_verify on a SHA-256 digest, which Ed25519 does not do).
        signer = StreamSigner.from_identity_dir(
            handoff.data_dir / "identity", algorithm="ecdsa-p256-sha256", device=handoff.identity.serial
        )
        version = handoff.firmware.version

        def factory() -> GopSigner:
            return GopSigner(signer, firmware_version=version)
    fps = spec.fps if spec.kind == "synthetic" else 15.0
    return {
        H264_PATH: H264Stream(
            pipeline.source_factory, masks=pipeline.config.masks, overlay=pipeline.config.overlay,
            fps_hint=fps, signer_factory=factory,
        ),
        MJPEG_PATH: MjpegStream(pipeline),
    }


def rtsp_extension(
    streams: dict[str, MediaStream],
    args: argparse.Namespace,
    *,
    announce: Callable[[str], None] = print,
) -> Callable[[web.Application], None]:
    """An app extension that runs the RTSPS server while the management app runs.

    It starts after the credential store and audit log are open (their
    ``cleanup_ctx`` come first) and uses the device's TLS context.
    """
    config = RtspConfig(
        host=args.host,
        port=args.rtsp_port,
        max_sessions=args.rtsp_max_sessions,
        max_sessions_per_client=args.rtsp_max_sessions_per_client,
        session_timeout=args.rtsp_session_timeout,
    )
    algorithms = DIGEST_CHOICES[args.rtsp_digest]
    flaws: UnsafeFlaws = args.flaws

    def extension(app: web.Application) -> None:
        app.cleanup_ctx.append(lambda app: _run(app, streams, config, algorithms, flaws, announce))

    return extension


async def _run(
    app: web.Application,
    streams: dict[str, MediaStream],
    config: RtspConfig,
    algorithms: tuple[str, ...],
    flaws: UnsafeFlaws,
    announce: Callable[[str], None],
) -> AsyncIterator[None]:
    from ..appkeys import AUDIT_KEY, CLOCK_KEY, CONFIG_KEY, CREDENTIALS_KEY
    from ..digest import DigestAuthority
    from ..main import tls_context_for
    from .auth import RtspAuthenticator

    clock = app[CLOCK_KEY]
    authority = DigestAuthority(os.urandom(32), realm="refcam", algorithms=algorithms)
    authenticator = RtspAuthenticator(app.get(CREDENTIALS_KEY), authority, audit=app.get(AUDIT_KEY), flaws=flaws)
    server = RtspServer(streams, authenticator, config, clock=clock)
    app[RTSP_KEY] = server
    context = tls_context_for(app[CONFIG_KEY], now=clock())
    try:
        port = await server.start(context)
    except OSError as exc:
        # Management stays up: a camera whose RTSP port is taken (or needs privileges, 322 < 1024)
        # still serves its API; the line below says so, and --rtsp-port picks another port.
        reason = f"cannot listen for RTSPS on {config.host}:{config.port}: {exc.strerror or exc}"
        log.warning("%s", reason)
        announce(f"refcam device: RTSPS off ({reason}; use --rtsp-port)")
        await server.close()
        yield
        return
    announce(f"refcam device RTSPS on rtsps://{config.host}:{port}{H264_PATH} and {MJPEG_PATH}")
    if "rtsp-plaintext" in flaws:  # UNSAFE flaw profile, loopback only (UnsafeFlaws.parse)
        try:
            plain = await server.start_plaintext_unsafe(port + PLAINTEXT_FLAW_PORT_OFFSET)
        except OSError as exc:
            await server.close()
            raise ConfigError(f"rtsp-plaintext: cannot listen on {port + PLAINTEXT_FLAW_PORT_OFFSET}: {exc}") from exc
        announce(f"UNSAFE: plaintext rtsp://{config.host}:{plain}{H264_PATH}")
    yield
    await server.close()


def _key() -> web.AppKey[RtspServer]:
    from aiohttp import web

    return web.AppKey("rtsp_server", RtspServer)


RTSP_KEY = _key()
