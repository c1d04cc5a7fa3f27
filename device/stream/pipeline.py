"""The frame pipeline: capture -> mask + overlay -> JPEG once -> every viewer.

::

    capture thread ──frames──> worker pool (mask, overlay, cv2.imencode, SHA-256)
                                   │ the worker that finishes the next frame in capture order
                                   │ publishes it: stream seq, segment signer
                                   └──call_soon_threadsafe──> event loop
         Distributor: one latest-frame slot per viewer + its queue of manifests
         viewer writer tasks (web.py) take from their own slot at their own pace

* Every frame is encoded once; the :class:`EncodedFrame` (bytes, seq,
  timestamps, SHA-256) is immutable and shared by reference with all viewers.
* Masks are applied to the raw pixels before encoding, so masked pixels never
  leave the device (:mod:`.masks`). A frame whose buffer the source handed
  over (``Frame.owned``: cameras, decoders, the synthetic pattern) is masked
  and stamped in place; shared pixels are copied first.
* The worker that encodes a frame also hashes it (the signer's
  ``frame_hash``, SHA-256 or BLAKE3, of the JPEG, only when the stream is
  signed; both release the GIL on large inputs); publishing only
  appends the digest to the open segment and signs once a segment.
* A viewer has one slot: a newer frame replaces an unsent one (counted as a
  drop), so a slow viewer gets fewer frames and never delays the others, and
  each viewer holds at most one frame. Signed segment manifests are never
  dropped: they queue per viewer (bounded: a viewer that cannot take even one
  manifest per second for ``max_pending_manifests`` segments is disconnected).
* Nothing is captured or encoded while nobody watches: the first viewer opens
  the source and starts a new stream session (new random session id), the
  last one to leave stops it.
* Every session ends with a signed end marker (:mod:`.signing`) chained to
  its last segment, sent to the viewers still connected after the last
  segment: when the source ends or fails, and when the server shuts down
  (:meth:`StreamPipeline.end_session`, which ``web.py`` calls on shutdown).
  A recording without it may have been cut at the end.
* ``cv2.imencode`` releases the GIL, so the pool (one worker per core) encodes
  frames in parallel; at most ``2 * workers + 2`` frames wait between capture and
  publication and 4 publications for the event loop: back-pressure instead of
  memory growth.

Example::

    pipeline = StreamPipeline(lambda: open_source(spec), signer, PipelineConfig(masks=masks))
    viewer = await pipeline.subscribe(fps=10)
    delivery = await viewer.next()       # Delivery(frame=EncodedFrame(...), manifests=(...))
    pipeline.unsubscribe(viewer)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from . import multipart
from .errors import StreamError
from .masks import MaskRect, apply_masks_inplace
from .signing import SegmentSigner, StreamSigner, frame_digest
from .sources import Frame, FrameSource

log = logging.getLogger(__name__)

MIN_FPS_CAP, MAX_FPS_CAP = 0.1, 120.0  # frames per second a viewer may ask for


@dataclass(frozen=True)
class PipelineConfig:
    jpeg_quality: int = 80  # 0..100
    chroma_420: bool = True  # 4:2:0 chroma subsampling (cv2.IMWRITE_JPEG_SAMPLING_FACTOR)
    workers: int = 0  # encoder threads; 0 = one per core
    frames_per_segment: int = 30  # frames per signed manifest (~1 s at 30 fps)
    overlay: bool = True  # draw the capture time into the frame
    masks: tuple[MaskRect, ...] = ()
    max_pending_manifests: int = 64  # per viewer; beyond this the viewer is disconnected
    stats_window: int = 512  # samples kept for percentiles

    def jpeg_params(self) -> list[int]:
        params = [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality]
        if self.chroma_420 and hasattr(cv2, "IMWRITE_JPEG_SAMPLING_FACTOR"):
            params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
        return params

    def worker_count(self) -> int:
        return self.workers or max(1, os.cpu_count() or 1)


@dataclass(frozen=True, eq=False)
class EncodedFrame:
    """One encoded frame, shared by reference with every viewer."""

    seq: int  # stream sequence number within the session, from 0
    session: str  # hex stream session id
    capture_mono_ns: int
    capture_wall_ns: int
    jpeg: bytes = field(repr=False)
    digest: bytes = field(repr=False)  # the signer's frame_hash of jpeg; b"" when unsigned
    width: int = 0
    height: int = 0
    encode_ns: int = 0  # time in cv2.imencode
    segment: int = 0  # the signed segment that lists this frame
    previous: str | None = None  # that segment's "previous" anchor (None in segment 0 or unsigned)
    # The whole multipart part (head, JPEG, CRLF) every viewer is sent unless its own
    # head carries manifests or skipped seqs: framed once, by the encoder thread that
    # publishes the frame, so the event loop copies nothing per frame or per viewer.
    part: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class SignedSegment:
    """A signed segment manifest (or the session's end marker) and the last stream seq it covers."""

    envelope: bytes = field(repr=False)
    segment: int  # the segment's counter; for the end marker, the number of segments
    last_seq: int
    final: bool = False  # the end-of-session marker, not a segment


@dataclass(frozen=True)
class Delivery:
    """What a viewer's writer sends next: a frame (None at the end) and the manifests to send first.

    ``not_sent`` lists the frames of the session this viewer will never get
    (it joined after them, they were replaced in its slot, or its fps cap
    left them out), as inclusive seq ranges, since the previous delivery. The
    writer tells the viewer (``X-Frames-Not-Sent``), so a recording can say
    which listed frames it lacks because they never came, apart from frames
    removed from it later.
    """

    frame: EncodedFrame | None
    manifests: tuple[SignedSegment, ...]
    not_sent: tuple[tuple[int, int], ...] = ()


def percentile(values: list[int], q: float) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def encode_frame(
    frame: Frame, config: PipelineConfig, params: list[int], *, frame_hash: str | None = "sha256"
) -> tuple[bytes, bytes, int]:
    """Mask, overlay, JPEG-encode and hash one frame (runs in a pool worker): (jpeg, digest, encode ns).

    An owned frame (``Frame.owned``) is masked and stamped in its own buffer;
    anything else is copied first, into this worker's scratch buffer.
    The digest is ``frame_hash`` of the JPEG (``signing.frame_digest``);
    ``frame_hash=None`` (an unsigned stream) skips it and returns ``b""``.
    """
    image = frame.image
    if config.masks or config.overlay:
        if not frame.owned:
            image = _scratch_copy(image)
        apply_masks_inplace(image, config.masks)  # before encoding: masked pixels never leave
        if config.overlay:
            _draw_time(image, frame.wall_ns)
    start = time.perf_counter_ns()
    ok, buffer = cv2.imencode(".jpg", image, params)
    encode_ns = time.perf_counter_ns() - start
    if not ok:
        raise StreamError(f"JPEG encoding failed for frame {frame.seq}")
    jpeg = buffer.tobytes()
    return jpeg, frame_digest(frame_hash, jpeg) if frame_hash else b"", encode_ns


_scratch = threading.local()  # per encoder thread: the buffer shared frames are copied into


def _scratch_copy(image: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A writable copy of ``image`` in this thread's scratch buffer (valid until its next call).

    Reusing one buffer per worker spares a fresh multi-megabyte allocation per
    frame, which the kernel would map and zero anew each time.
    """
    buffer: np.ndarray[Any, Any] | None = getattr(_scratch, "image", None)
    if buffer is None or buffer.shape != image.shape or buffer.dtype != image.dtype:
        buffer = _scratch.image = np.empty_like(image)
    np.copyto(buffer, image)
    return buffer


STAMP_HEIGHT, STAMP_WIDTH = 36, 400  # pixels: the capture-time box, bottom left
_STAMP_FONT, _STAMP_SCALE, _STAMP_THICKNESS = cv2.FONT_HERSHEY_SIMPLEX, 0.7, 2
_stamps = threading.local()  # per encoder thread: the box for the current second, drawn once


def _draw_time(image: np.ndarray[Any, Any], wall_ns: int) -> None:
    """Stamp the capture time (UTC, ms) into the bottom-left box of ``image``.

    The date and time to the second change once a second: that part of the
    box is drawn once per second per worker and copied in; only the
    milliseconds are drawn per frame (``cv2.putText`` costs ~50 us a frame
    for the whole line).
    """
    height, width = image.shape[:2]
    box = image[max(0, height - STAMP_HEIGHT) : height, 0 : min(width, STAMP_WIDTH)]
    seconds = wall_ns // 1_000_000_000
    key = (seconds, box.shape)
    if getattr(_stamps, "key", None) != key:
        strip = np.zeros(box.shape, dtype=image.dtype)
        text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))
        baseline = min(26, box.shape[0] - 4)
        cv2.putText(strip, text, (6, baseline), _STAMP_FONT, _STAMP_SCALE, (255, 255, 255), _STAMP_THICKNESS)
        (advance, _), _ = cv2.getTextSize(text, _STAMP_FONT, _STAMP_SCALE, _STAMP_THICKNESS)
        _stamps.key, _stamps.strip, _stamps.origin = key, strip, (6 + advance, baseline)
    box[:] = _stamps.strip
    millis = f".{wall_ns // 1_000_000 % 1000:03d}Z"
    cv2.putText(box, millis, _stamps.origin, _STAMP_FONT, _STAMP_SCALE, (255, 255, 255), _STAMP_THICKNESS)


class Viewer:
    """One viewer's latest-frame slot, manifest queue and counters. Used on the event loop only."""

    _ids = itertools.count(1)

    def __init__(self, *, fps: float | None, max_pending_manifests: int, window: int) -> None:
        if fps is not None and not MIN_FPS_CAP <= fps <= MAX_FPS_CAP:
            raise ValueError(f"fps cap {fps:g} is out of range ({MIN_FPS_CAP:g}..{MAX_FPS_CAP:g})")
        self.id = next(Viewer._ids)
        self.fps = fps
        self._interval_ns = int(1e9 / fps) if fps else 0
        self._slot: EncodedFrame | None = None
        self._manifests: deque[SignedSegment] = deque()
        self._max_pending = max_pending_manifests
        self._event = asyncio.Event()
        self._next_due_ns: int | None = None
        self.closed: str | None = None  # why the stream ended
        self._offered = False  # a frame of the session was offered: later seqs are this viewer's business
        self._not_sent: list[tuple[int, int]] = []  # seq ranges not sent since the last delivery
        self._finished = False
        self.sent = 0
        self.dropped = 0  # replaced in the slot before the writer took them
        self.skipped = 0  # left out to honour the fps cap
        self.bytes = 0
        self.latencies_ns: deque[int] = deque(maxlen=window)

    def _skip(self, first: int, last: int) -> None:
        """Note seqs ``first..last`` as never sent to this viewer (merged into the last range)."""
        if self._not_sent and self._not_sent[-1][1] + 1 == first:
            self._not_sent[-1] = (self._not_sent[-1][0], last)
        else:
            self._not_sent.append((first, last))

    def offer(self, frame: EncodedFrame) -> None:
        if self.closed is not None:
            return
        if not self._offered:
            self._offered = True
            if frame.seq > 0:  # joined a running session: its earlier frames are not ours to get
                self._skip(0, frame.seq - 1)
        if self._interval_ns:
            # Frames are due every interval on a fixed schedule, so the cap is met on
            # average even when capture times jitter; after a long gap, restart it.
            t, due = frame.capture_mono_ns, self._next_due_ns
            if due is not None and t < due:
                self.skipped += 1
                self._skip(frame.seq, frame.seq)
                return
            late = due is None or t - due >= self._interval_ns
            self._next_due_ns = t + self._interval_ns if late else due + self._interval_ns  # type: ignore[operator]
        if self._slot is not None:
            self.dropped += 1
            self._skip(self._slot.seq, self._slot.seq)
        self._slot = frame
        self._event.set()

    def _take_not_sent(self) -> tuple[tuple[int, int], ...]:
        taken = tuple(self._not_sent)
        self._not_sent.clear()
        return taken

    def offer_segment(self, segment: SignedSegment) -> None:
        if self.closed is not None:
            return
        if len(self._manifests) >= self._max_pending:
            self.close(f"viewer took no frame for {self._max_pending} segments")
            return
        self._manifests.append(segment)
        self._event.set()

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason  # an unsent frame in the slot is still delivered, then the end
            self._event.set()

    @property
    def holds_frame(self) -> bool:
        return self._slot is not None

    async def next(self) -> Delivery | None:
        """Wait for the next frame; manifests covering earlier frames come with it.

        A manifest travels only with a frame *after* the frames it covers, so
        a recorder always sees a segment's frames before its manifest. At the
        end of the stream: one Delivery with ``frame=None`` and the remaining
        manifests, then None.
        """
        while True:
            frame = self._slot
            if frame is not None:
                self._slot = None
                ready = tuple(m for m in self._manifests if m.last_seq < frame.seq)
                for _ in ready:
                    self._manifests.popleft()
                return Delivery(frame, ready, self._take_not_sent())
            if self.closed is not None:
                if self._finished:
                    return None
                self._finished = True
                rest = tuple(self._manifests)
                self._manifests.clear()
                return Delivery(None, rest, self._take_not_sent())
            self._event.clear()
            await self._event.wait()

    def record_sent(self, frame: EncodedFrame, nbytes: int, now_mono_ns: int) -> None:
        self.sent += 1
        self.bytes += nbytes
        self.latencies_ns.append(now_mono_ns - frame.capture_mono_ns)

    def stats(self) -> dict[str, Any]:
        lat = list(self.latencies_ns)
        return {
            "id": self.id,
            "fps_cap": self.fps,
            "sent": self.sent,
            "dropped": self.dropped,
            "skipped": self.skipped,
            "bytes": self.bytes,
            "pending_manifests": len(self._manifests),
            "latency_ms_p50": round(percentile(lat, 0.50) / 1e6, 2),
            "latency_ms_p99": round(percentile(lat, 0.99) / 1e6, 2),
        }


class Distributor:
    """Hands each published frame and manifest to every viewer. Event-loop side, never blocks."""

    def __init__(self) -> None:
        self.viewers: set[Viewer] = set()

    def publish(self, frame: EncodedFrame, segment: SignedSegment | None) -> None:
        for viewer in self.viewers:
            viewer.offer(frame)
        if segment is not None:  # after the frame: the manifest covers it
            for viewer in self.viewers:
                viewer.offer_segment(segment)

    def end(self, reason: str) -> None:
        for viewer in self.viewers:
            viewer.close(reason)


class _CaptureSession:
    """One stream session: opens the source, captures, and publishes the frames the pool encodes.

    The capture thread reads frames and submits them to the encoder pool;
    at most ``2 * workers + 2`` frames are between capture and publication
    (back-pressure instead of memory growth). The worker that finishes a
    frame publishes it and every later frame already finished, in capture
    order, under one lock: stream seq, segment signer, then
    ``call_soon_threadsafe`` to the event loop. No thread sits between the
    encoders and the loop, so a frame costs no extra handoff.
    """

    def __init__(self, pipeline: StreamPipeline, loop: asyncio.AbstractEventLoop) -> None:
        self.pipeline = pipeline
        self.loop = loop
        self.session_id = os.urandom(16)
        self._session_hex = self.session_id.hex()
        self.stop_event = threading.Event()
        self.stop_reason = "stream stopped"  # what the end marker says when stop() ends the session
        self.ended: asyncio.Future[str] = loop.create_future()  # the end reason, once delivered
        # Frames captured but not yet published: one waiting per worker besides the one it
        # encodes absorbs the jitter of ordered publication (measured: 0.78-0.81 -> 0.81-0.85
        # of the bare encode rate at 1080p, for 2 more 6 MB frames in flight).
        self._window = 2 * pipeline.config.worker_count() + 2
        self._slots = threading.Semaphore(self._window)
        self._in_flight = threading.Semaphore(4)  # publications waiting for the loop
        self._order = threading.Lock()  # publication in capture order, by whichever worker finishes
        self._finished: dict[int, tuple[Frame, Future[tuple[bytes, bytes, int]]]] = {}
        self._next = 0  # capture index of the next frame to publish
        self._seq = 0  # stream seq of the next published frame
        self._failure: str | None = None  # set when an encoding failed: nothing after it is published
        self._thread = threading.Thread(target=self._capture, name="stream-capture", daemon=True)
        self.segments = (
            SegmentSigner(
                pipeline.signer,
                session=self.session_id,
                frames_per_segment=pipeline.config.frames_per_segment,
            )
            if pipeline.signer is not None
            else None
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, reason: str = "stream stopped") -> None:
        if not self.stop_event.is_set():
            self.stop_reason = reason
            self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _take_slot(self) -> bool:
        while not self._slots.acquire(timeout=0.1):
            if self.stop_event.is_set():
                return False
        return True

    def _capture(self) -> None:
        pipeline = self.pipeline
        reason = "source ended"
        source: FrameSource | None = None
        try:
            source = pipeline.source_factory()
            config, params, submit = pipeline.config, pipeline.config.jpeg_params(), pipeline.pool.submit
            # an unsigned stream needs no frame hash
            frame_hash = pipeline.signer.frame_hash if self.segments is not None and pipeline.signer else None
            index = 0
            while not self.stop_event.is_set():
                frame = source.read()
                if frame is None:
                    break
                if not self._take_slot():
                    reason = self.stop_reason
                    break
                future = submit(encode_frame, frame, config, params, frame_hash=frame_hash)
                future.add_done_callback(functools.partial(self._encoded, index, frame))
                index += 1
            else:
                reason = self.stop_reason
        except StreamError as e:
            reason = f"source failed: {e}"
            log.error("stream source failed: %s", e)
        except Exception:
            reason = "source failed"
            log.exception("stream capture failed")
        finally:
            if source is not None:
                source.close()
            for _ in range(self._window):  # every captured frame is published (or dropped after a failure)
                self._slots.acquire()
            self._finish(reason)

    def _encoded(self, index: int, frame: Frame, future: Future[tuple[bytes, bytes, int]]) -> None:
        """Runs in the worker that encoded frame ``index``: publish every frame that is next in order."""
        with self._order:
            self._finished[index] = (frame, future)
            while self._next in self._finished:
                done, work = self._finished.pop(self._next)
                self._next += 1
                try:
                    self._publish(done, work)
                finally:
                    self._slots.release()

    def _publish(self, frame: Frame, work: Future[tuple[bytes, bytes, int]]) -> None:
        try:
            jpeg, digest, encode_ns = work.result()
        except Exception as e:
            if self._failure is None:
                self._failure = f"encoding failed: {e}"
                log.exception("stream encoding failed")
                self.stop_event.set()
            return
        if self._failure is not None:
            return  # after a failed frame nothing is published: seq and segments stay contiguous
        seq, segments, segment = self._seq, self.segments, None
        if segments is not None:
            number, previous = segments.position
            envelope = segments.add(seq, digest, frame.wall_ns)
            if envelope is not None:
                segment = SignedSegment(envelope, number, seq)
        else:
            number, previous = 0, None
        head = multipart.frame_part_head(
            seq=seq, capture_wall_ns=frame.wall_ns, session=self._session_hex, length=len(jpeg)
        )
        encoded = EncodedFrame(
            seq, self._session_hex, frame.mono_ns, frame.wall_ns, jpeg, digest,
            frame.width, frame.height, encode_ns, number, previous, b"".join((head, jpeg, b"\r\n")),
        )
        self.pipeline.record_encode(encoded)
        self._seq += 1
        self._permit()
        self._call(self._deliver, encoded, segment)

    def _finish(self, reason: str) -> None:
        """After the last frame: the open segment, the end marker, then the end of the session."""
        with self._order:
            reason = self._failure or reason
            segments, last_seq = self.segments, self._seq - 1
            if segments is not None:
                tail = segments.flush()
                if tail is not None:  # the partial last segment: still signed, still delivered
                    self._permit()
                    self._call(self._deliver_segment, SignedSegment(tail, segments.segment - 1, last_seq))
                end = segments.end(reason=reason, end_wall_ns=time.time_ns())
                self._permit()
                self._call(self._deliver_segment, SignedSegment(end, segments.segment, last_seq, final=True))
            self._call(self.pipeline._session_ended, self, reason, holds_permit=False)

    def _permit(self) -> None:
        """Wait while 4 publications are pending for the event loop (back-pressure).

        A loop that stopped running will never take them: then stop the
        session rather than block an encoder thread for good.
        """
        while not self._in_flight.acquire(timeout=0.5):
            if not self.loop.is_running():
                self.stop_event.set()
                return

    def _call(self, callback: Callable[..., None], *args: Any, holds_permit: bool = True) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the event loop is closed: nobody is left to deliver to
            self.stop_event.set()
            if holds_permit:
                self._in_flight.release()

    def _deliver(self, frame: EncodedFrame, segment: SignedSegment | None) -> None:
        self._in_flight.release()
        if self.pipeline._session is self:
            self.pipeline.distributor.publish(frame, segment)

    def _deliver_segment(self, segment: SignedSegment) -> None:
        self._in_flight.release()
        if self.pipeline._session is self:
            for viewer in self.pipeline.distributor.viewers:
                viewer.offer_segment(segment)


class StreamPipeline:
    """Capture, encode, sign and distribute frames to the current viewers (see the module docstring)."""

    def __init__(
        self,
        source_factory: Callable[[], FrameSource],
        signer: StreamSigner | None,
        config: PipelineConfig | None = None,
    ) -> None:
        self.source_factory = source_factory
        self.signer = signer
        self.config = config = config or PipelineConfig()
        self.distributor = Distributor()
        self._pool: ThreadPoolExecutor | None = None
        self._session: _CaptureSession | None = None
        self._stopping: list[_CaptureSession] = []
        self._lock = threading.Lock()
        self._encode_ns: deque[int] = deque(maxlen=config.stats_window)
        self._published_ns: deque[int] = deque(maxlen=config.stats_window)
        self.frames_encoded = 0
        self.sessions_started = 0
        self.last_end_reason: str | None = None

    @property
    def pool(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.config.worker_count(), thread_name_prefix="stream-encode")
        return self._pool

    @property
    def running(self) -> bool:
        return self._session is not None

    @property
    def session_id(self) -> str | None:
        return self._session.session_id.hex() if self._session is not None else None

    async def subscribe(self, *, fps: float | None = None) -> Viewer:
        """Add a viewer; the first one starts a new stream session."""
        viewer = Viewer(fps=fps, max_pending_manifests=self.config.max_pending_manifests, window=self.config.stats_window)
        self.distributor.viewers.add(viewer)
        if self._session is None:
            loop = asyncio.get_running_loop()
            await self.idle()  # let a previous session release the camera first
            if self._session is None and viewer in self.distributor.viewers:
                self._session = _CaptureSession(self, loop)
                self.sessions_started += 1
                self._session.start()
        return viewer

    def unsubscribe(self, viewer: Viewer) -> None:
        """Remove a viewer; the last one to leave stops the session."""
        viewer.close("unsubscribed")
        self.distributor.viewers.discard(viewer)
        if not self.distributor.viewers and self._session is not None:
            self._session.stop("the last viewer left")
            self._stopping.append(self._session)
            self._session = None

    async def end_session(self, reason: str, *, timeout: float = 5.0) -> bool:
        """End the running session cleanly; True once its viewers have been handed the end.

        Capture stops, the open segment is signed, then the signed end marker,
        and every viewer's stream ends after them (``web.py`` writes them out
        and closes each response). False if no session runs or the capture
        thread did not stop within ``timeout`` seconds (a camera stuck in a
        read): :meth:`close` then cuts the viewers off without an end marker.
        """
        session = self._session
        if session is None:
            return False
        session.stop(reason)
        try:
            await asyncio.wait_for(asyncio.shield(session.ended), timeout)
        except TimeoutError:
            log.warning("stream session did not end within %.1f s; closing without an end marker", timeout)
            return False
        return True

    async def snapshot(self) -> tuple[EncodedFrame, bytes | None]:
        """The next encoded frame and its signed snapshot envelope (None when unsigned).

        The frame belongs to the running stream session if there is one; the
        envelope names that session, the frame's seq, the segment that lists
        it and that segment's ``previous`` anchor (:mod:`.signing`).
        """
        viewer = await self.subscribe()
        try:
            delivery = await viewer.next()
        finally:
            self.unsubscribe(viewer)
        if delivery is None or delivery.frame is None:
            raise StreamError(f"no frame available: {viewer.closed or 'stream ended'}")
        frame = delivery.frame
        if self.signer is None:
            return frame, None
        envelope = self.signer.sign_snapshot(
            session=frame.session,
            seq=frame.seq,
            segment=frame.segment,
            previous=frame.previous,
            digest=frame.digest,
            capture_wall_ns=frame.capture_wall_ns,
            width=frame.width,
            height=frame.height,
        )
        return frame, envelope

    async def idle(self) -> None:
        """Wait until stopped sessions have released the source (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        stopping, self._stopping = self._stopping, []
        for session in stopping:
            await loop.run_in_executor(None, session.join)

    def record_encode(self, frame: EncodedFrame) -> None:
        with self._lock:
            self._encode_ns.append(frame.encode_ns)
            self._published_ns.append(frame.capture_mono_ns)
            self.frames_encoded += 1

    def _session_ended(self, session: _CaptureSession, reason: str) -> None:
        if not session.ended.done():
            session.ended.set_result(reason)
        if self._session is session:
            self._session = None
            self._stopping.append(session)
            self.last_end_reason = reason
            self.distributor.end(reason)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            encode = list(self._encode_ns)
            published = list(self._published_ns)
            total = self.frames_encoded
        recent = published[-60:]
        span = (recent[-1] - recent[0]) / 1e9 if len(recent) > 1 else 0.0
        return {
            "running": self.running,
            "session": self.session_id,
            "signed": self.signer is not None,
            "algorithm": self.signer.algorithm if self.signer else None,
            "frames_encoded": total,
            "last_end_reason": self.last_end_reason,
            "fps": round((len(recent) - 1) / span, 2) if span > 0 else 0.0,
            "encode_ms_p50": round(percentile(encode, 0.50) / 1e6, 2),
            "encode_ms_p99": round(percentile(encode, 0.99) / 1e6, 2),
            "viewers": [v.stats() for v in sorted(self.distributor.viewers, key=lambda v: v.id)],
        }

    async def close(self) -> None:
        """End the session (with its end marker), then stop capture and the encoder pool (app shutdown)."""
        await self.end_session("server shutting down")
        for viewer in list(self.distributor.viewers):
            viewer.close("server shutting down")
            self.unsubscribe(viewer)
        for session in self._stopping:
            session.stop()
        await self.idle()
        loop = asyncio.get_running_loop()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            with contextlib.suppress(RuntimeError):
                await loop.run_in_executor(None, pool.shutdown)
