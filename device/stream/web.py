"""HTTP routes of the stream: MJPEG, signed snapshot, statistics (viewer role).

* ``GET /api/v1/stream.mjpeg[?fps=N]``: ``multipart/x-mixed-replace`` of JPEG
  parts with ``X-Frame-Seq``, ``X-Capture-Timestamp`` and, on the part after
  each segment, the signed manifest (:mod:`.multipart`). ``fps`` caps this
  viewer's rate (0.1..120).
* ``GET /api/v1/snapshot.jpg``: one JPEG with ``X-Snapshot-Signature``, a
  signed envelope over its SHA-256, seq, capture time and size
  (:mod:`.signing`); ``refcam stream record`` + ``verify`` check it.
* ``GET /api/v1/stream/stats``: pipeline fps, encode p50/p99, per-viewer
  sent / dropped / skipped / bytes / capture-to-send latency.

Every route declares ``requires("viewer")``; the server's access middleware
authenticates (session cookie or ``Authorization: Bearer``; never anything in
the URL) and refuses sessions that must still change the initial password.
Query parameters other than ``fps`` are refused, so credentials cannot be
smuggled into URLs and logs.

Example::

    app = create_app(config, handoff=handoff)
    add_stream_routes(app, StreamPipeline(source_factory, signer, PipelineConfig()))
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from ..access import ROLE_RANK, authenticate, requires
from ..appkeys import CLOCK_KEY, USER_KEY
from . import multipart
from .errors import StreamError
from .pipeline import MAX_FPS_CAP, MIN_FPS_CAP, StreamPipeline


@dataclass(frozen=True)
class StreamRoutes:
    pipeline: StreamPipeline
    reauth_interval: float = 2.0  # seconds between re-checks of a streaming viewer's session


STREAM_KEY = web.AppKey("refcam.stream.routes", StreamRoutes)
SIGNATURE_HEADER = "X-Snapshot-Signature"
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _bad_request(code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=400)


def _query_error(request: web.Request, allowed: frozenset[str]) -> web.Response | None:
    extra = sorted(set(request.query) - allowed)
    if extra:
        return _bad_request(
            "unknown_parameter",
            f"query parameters {extra} are not accepted (allowed: {sorted(allowed) or 'none'}); "
            "credentials go in the Authorization header or the session cookie, never in the URL",
        )
    return None


def parse_fps(text: str | None) -> float | None:
    """The ``fps`` query value, or None when absent; raises ValueError with the reason."""
    if text is None:
        return None
    try:
        fps = float(text)
    except ValueError:
        raise ValueError(f"fps {text[:20]!r} is not a number") from None
    if not math.isfinite(fps) or not MIN_FPS_CAP <= fps <= MAX_FPS_CAP:
        raise ValueError(f"fps {text[:20]!r} is out of range ({MIN_FPS_CAP:g}..{MAX_FPS_CAP:g})")
    return fps


def still_authorized(request: web.Request) -> bool:
    """Re-check a long-lived stream's session: logout, expiry, deletion or demotion end it."""
    if request.get(USER_KEY) is None:
        return True  # an app without the access middleware (benchmarks): nothing to re-check
    user = authenticate(request, now=request.config_dict[CLOCK_KEY]())
    return user is not None and not user.must_change and ROLE_RANK[user.role] >= ROLE_RANK["viewer"]


@requires("viewer")
async def stream_mjpeg(request: web.Request) -> web.StreamResponse:
    error = _query_error(request, frozenset({"fps"}))
    if error is not None:
        return error
    try:
        fps = parse_fps(request.query.get("fps"))
    except ValueError as e:
        return _bad_request("bad_fps", str(e))
    routes = request.config_dict[STREAM_KEY]
    pipeline = routes.pipeline
    viewer = await pipeline.subscribe(fps=fps)
    next_check = time.monotonic() + routes.reauth_interval
    response = web.StreamResponse(headers={"Content-Type": multipart.CONTENT_TYPE, **_NO_STORE})
    try:
        await response.prepare(request)
        while True:
            delivery = await viewer.next()
            if delivery is None:
                break
            if delivery.frame is None:  # stream over: pending manifests as their own parts
                for manifest in delivery.manifests:
                    await response.write(multipart.manifest_part(manifest.envelope))
                await response.write(multipart.close_delimiter())
                continue
            if time.monotonic() >= next_check:
                if not still_authorized(request):
                    break  # the session ended: stop streaming to it
                next_check = time.monotonic() + routes.reauth_interval
            frame = delivery.frame
            head = multipart.frame_part_head(
                seq=frame.seq,
                capture_wall_ns=frame.capture_wall_ns,
                session=frame.session,
                length=len(frame.jpeg),
                manifests=tuple(m.envelope for m in delivery.manifests),
            )
            await response.write(head)
            await response.write(frame.jpeg)  # the shared bytes, not a copy
            await response.write(b"\r\n")
            viewer.record_sent(frame, len(head) + len(frame.jpeg) + 2, time.monotonic_ns())
        await response.write_eof()
    except ConnectionError:
        pass  # the viewer went away mid-write: nothing to answer, the transport is closed
    finally:  # also when the viewer goes away (write raises, or the handler is cancelled)
        pipeline.unsubscribe(viewer)
    return response


@requires("viewer")
async def snapshot_jpg(request: web.Request) -> web.StreamResponse:
    error = _query_error(request, frozenset())
    if error is not None:
        return error
    pipeline = request.config_dict[STREAM_KEY].pipeline
    try:
        frame, envelope = await pipeline.snapshot()
    except StreamError as e:
        return web.json_response({"error": "no_frame", "message": str(e)}, status=503)
    headers = {
        "X-Frame-Seq": str(frame.seq),
        "X-Capture-Timestamp": str(frame.capture_wall_ns),
        "X-Stream-Session": frame.session,
        **_NO_STORE,
    }
    if envelope is not None:
        headers[SIGNATURE_HEADER] = envelope.decode("ascii")
    return web.Response(body=frame.jpeg, content_type="image/jpeg", headers=headers)


@requires("viewer")
async def stream_stats(request: web.Request) -> web.StreamResponse:
    error = _query_error(request, frozenset())
    if error is not None:
        return error
    return web.json_response(request.config_dict[STREAM_KEY].pipeline.stats(), headers=_NO_STORE)


def add_stream_routes(app: web.Application, pipeline: StreamPipeline, *, reauth_interval: float = 2.0) -> None:
    """Register the stream routes on ``app`` and stop ``pipeline`` when the app shuts down.

    A streaming viewer's session is re-checked every ``reauth_interval``
    seconds, so logging out (or an expired, deleted or demoted account) ends
    the stream too, not only new requests.
    """
    app[STREAM_KEY] = StreamRoutes(pipeline, reauth_interval)
    app.router.add_get("/api/v1/stream.mjpeg", stream_mjpeg, allow_head=False)
    app.router.add_get("/api/v1/snapshot.jpg", snapshot_jpg, allow_head=False)
    app.router.add_get("/api/v1/stream/stats", stream_stats)

    async def pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await pipeline.close()

    app.cleanup_ctx.append(pipeline_ctx)
