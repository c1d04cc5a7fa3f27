"""HTTP routes of the stream: MJPEG, signed snapshot, statistics (viewer role).

* ``GET /api/v1/stream.mjpeg[?fps=N]``: ``multipart/x-mixed-replace`` of JPEG
  parts with ``X-Frame-Seq``, ``X-Capture-Timestamp`` and, on the part after
  each segment, the signed manifest (:mod:`.multipart`), and
  ``X-Frames-Not-Sent`` after frames this viewer was not sent. ``fps`` caps this
  viewer's rate (0.1..120). When the stream session ends (source ended,
  server shutdown) the last manifests and the signed end marker follow as
  parts of their own, then the close delimiter.
* ``GET /api/v1/snapshot.jpg``: one JPEG with ``X-Snapshot-Signature``, a
  signed envelope over its SHA-256, seq, capture time and size, tied to the
  running stream session (its id, the segment listing the frame and that
  segment's anchor; :mod:`.signing`); ``refcam stream record`` + ``verify``
  check it, alone or against a recording of the session.
* ``GET /api/v1/stream/stats``: pipeline fps, encode p50/p99, per-viewer
  sent / dropped / skipped / bytes / capture-to-send latency.

Every route declares ``requires("viewer")``; the server's access middleware
authenticates (session cookie or ``Authorization: Bearer``; never anything in
the URL) and refuses sessions that must still change the initial password.
Query parameters other than ``fps`` are refused, so credentials cannot be
smuggled into URLs and logs.

On application shutdown (``on_shutdown``, which aiohttp runs before it
waits for the running handlers) the stream session is ended cleanly, so
every connected viewer receives the end marker before its stream closes.

Example::

    app = create_app(config, handoff=handoff)
    add_stream_routes(app, StreamPipeline(source_factory, signer, PipelineConfig()))
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web

from ..access import ROLE_RANK, authenticate, requires
from ..appkeys import CLOCK_KEY, USER_KEY
from . import multipart
from .errors import StreamError
from .pipeline import MAX_FPS_CAP, MIN_FPS_CAP, EncodedFrame, StreamPipeline


class _PartCache:
    """The latest frame's whole part (head, JPEG, CRLF), built once and written to every viewer.

    One write per part instead of three: one TLS record run and one
    ``send`` per frame per viewer. The pipeline frames each part as it
    publishes the frame (``EncodedFrame.part``); for a frame without one,
    a one-entry cache serves every viewer (they all take the latest frame).
    """

    def __init__(self) -> None:
        self._frame: EncodedFrame | None = None
        self._part = b""

    def part(
        self, frame: EncodedFrame, manifests: tuple[bytes, ...], not_sent: tuple[tuple[int, int], ...] = ()
    ) -> bytes:
        if manifests or not_sent:  # once a segment, or after a skip, per viewer: its own head
            return b"".join((_head(frame, manifests, not_sent), frame.jpeg, b"\r\n"))
        if frame.part:
            return frame.part
        if frame is not self._frame:
            self._frame, self._part = frame, b"".join((_head(frame, (), ()), frame.jpeg, b"\r\n"))
        return self._part


def _head(frame: EncodedFrame, manifests: tuple[bytes, ...], not_sent: tuple[tuple[int, int], ...]) -> bytes:
    return multipart.frame_part_head(
        seq=frame.seq,
        capture_wall_ns=frame.capture_wall_ns,
        session=frame.session,
        length=len(frame.jpeg),
        manifests=manifests,
        not_sent=not_sent,
    )


@dataclass(frozen=True)
class StreamRoutes:
    pipeline: StreamPipeline
    reauth_interval: float = 2.0  # seconds between re-checks of a streaming viewer's session
    parts: _PartCache = field(default_factory=_PartCache)  # one per app


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


# A route that authenticates without a session (ONVIF's HTTP Digest stream) puts its own
# re-check here: a callable saying whether the caller may still watch.
STREAM_RECHECK: web.RequestKey[Callable[[], bool]] = web.RequestKey("refcam.stream.recheck")


def still_authorized(request: web.Request) -> bool:
    """Re-check a long-lived stream's session: logout, expiry, deletion or demotion end it."""
    recheck = request.get(STREAM_RECHECK)
    if recheck is not None:
        return bool(recheck())
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
    session = pipeline.session_id  # the stream session, named on the end parts too
    response = web.StreamResponse(headers={"Content-Type": multipart.CONTENT_TYPE, **_NO_STORE})
    try:
        await response.prepare(request)
        while True:
            delivery = await viewer.next()
            if delivery is None:
                break
            if delivery.frame is None:  # stream over: pending manifests (and the end marker) as parts
                tail = [
                    multipart.manifest_part(
                        m.envelope, final=m.final, session=session, not_sent=delivery.not_sent if i == 0 else ()
                    )
                    for i, m in enumerate(delivery.manifests)
                ]
                await response.write(b"".join([*tail, multipart.close_delimiter()]))
                continue
            if time.monotonic() >= next_check:
                if not still_authorized(request):
                    break  # the session ended: stop streaming to it
                next_check = time.monotonic() + routes.reauth_interval
            frame = delivery.frame
            session = frame.session
            part = routes.parts.part(frame, tuple(m.envelope for m in delivery.manifests), delivery.not_sent)
            await response.write(part)
            viewer.record_sent(frame, len(part), time.monotonic_ns())
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

    async def end_session(app: web.Application) -> None:
        await pipeline.end_session("server shutting down")  # viewers get the end marker, then EOF

    async def pipeline_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await pipeline.close()

    app.on_shutdown.append(end_session)
    app.cleanup_ctx.append(pipeline_ctx)
