"""The frame pipeline: capture -> mask + overlay -> JPEG once -> every viewer.

::

    capture thread ──frames──> worker pool (mask, overlay, cv2.imencode, SHA-256)
         │ (bounded queue of futures, in order)
    publisher thread: stream seq, segment signer ──call_soon_threadsafe──> event loop
         Distributor: one latest-frame slot per viewer + its queue of manifests
         viewer writer tasks (web.py) take from their own slot at their own pace

* Every frame is encoded once; the :class:`EncodedFrame` (bytes, seq,
  timestamps, SHA-256) is immutable and shared by reference with all viewers.
* Masks are applied to the raw pixels before encoding, so masked pixels never
  leave the device (:mod:`.masks`).
* A viewer has one slot: a newer frame replaces an unsent one (counted as a
  drop), so a slow viewer gets fewer frames and never delays the others, and
  each viewer holds at most one frame. Signed segment manifests are never
  dropped: they queue per viewer (bounded: a viewer that cannot take even one
  manifest per second for ``max_pending_manifests`` segments is disconnected).
* Nothing is captured or encoded while nobody watches: the first viewer opens
  the source and starts a new stream session (new random session id), the
  last one to leave stops it.
* ``cv2.imencode`` releases the GIL, so the pool (one worker per core) encodes
  frames in parallel; the bounded queues give back-pressure instead of memory
  growth.

Example::

    pipeline = StreamPipeline(lambda: open_source(spec), signer, PipelineConfig(masks=masks))
    viewer = await pipeline.subscribe(fps=10)
    delivery = await viewer.next()       # Delivery(frame=EncodedFrame(...), manifests=(...))
    pipeline.unsubscribe(viewer)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from .errors import StreamError
from .masks import MaskRect, apply_masks_inplace
from .signing import SegmentSigner, StreamSigner
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
    sha256: bytes = field(repr=False)
    width: int = 0
    height: int = 0
    encode_ns: int = 0  # time in cv2.imencode


@dataclass(frozen=True)
class SignedSegment:
    """A signed segment manifest and the last stream seq it covers."""

    envelope: bytes = field(repr=False)
    segment: int
    last_seq: int


@dataclass(frozen=True)
class Delivery:
    """What a viewer's writer sends next: a frame (None at the end) and the manifests to send first."""

    frame: EncodedFrame | None
    manifests: tuple[SignedSegment, ...]


def percentile(values: list[int], q: float) -> int:
    if not values:
        return 0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def encode_frame(frame: Frame, config: PipelineConfig, params: list[int]) -> tuple[bytes, bytes, int]:
    """Mask, overlay and JPEG-encode one frame (runs in a pool worker): (jpeg, sha256, encode ns)."""
    image = frame.image
    if config.masks or config.overlay:
        image = image.copy()
        apply_masks_inplace(image, config.masks)  # before encoding: masked pixels never leave
        if config.overlay:
            _draw_time(image, frame.wall_ns)
    start = time.perf_counter_ns()
    ok, buffer = cv2.imencode(".jpg", image, params)
    encode_ns = time.perf_counter_ns() - start
    if not ok:
        raise StreamError(f"JPEG encoding failed for frame {frame.seq}")
    jpeg = buffer.tobytes()
    return jpeg, hashlib.sha256(jpeg).digest(), encode_ns


def _draw_time(image: np.ndarray[Any, Any], wall_ns: int) -> None:
    height, width = image.shape[:2]
    text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(wall_ns // 1_000_000_000))
    text += f".{wall_ns // 1_000_000 % 1000:03d}Z"
    y0 = max(0, height - 36)
    box = image[y0:height, 0 : min(width, 400)]  # draw on a small region only
    box[:] = 0
    cv2.putText(box, text, (6, min(26, box.shape[0] - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)


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
        self._finished = False
        self.sent = 0
        self.dropped = 0  # replaced in the slot before the writer took them
        self.skipped = 0  # left out to honour the fps cap
        self.bytes = 0
        self.latencies_ns: deque[int] = deque(maxlen=window)

    def offer(self, frame: EncodedFrame) -> None:
        if self.closed is not None:
            return
        if self._interval_ns:
            # Frames are due every interval on a fixed schedule, so the cap is met on
            # average even when capture times jitter; after a long gap, restart it.
            t, due = frame.capture_mono_ns, self._next_due_ns
            if due is not None and t < due:
                self.skipped += 1
                return
            late = due is None or t - due >= self._interval_ns
            self._next_due_ns = t + self._interval_ns if late else due + self._interval_ns  # type: ignore[operator]
        if self._slot is not None:
            self.dropped += 1
        self._slot = frame
        self._event.set()

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
                return Delivery(frame, ready)
            if self.closed is not None:
                if self._finished:
                    return None
                self._finished = True
                rest = tuple(self._manifests)
                self._manifests.clear()
                return Delivery(None, rest)
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


_END = object()


class _CaptureSession:
    """One stream session: opens the source, runs the capture and publisher threads."""

    def __init__(self, pipeline: StreamPipeline, loop: asyncio.AbstractEventLoop) -> None:
        self.pipeline = pipeline
        self.loop = loop
        self.session_id = os.urandom(16)
        self.stop_event = threading.Event()
        workers = pipeline.config.worker_count()
        self._futures: queue.Queue[Any] = queue.Queue(maxsize=workers + 1)
        self._in_flight = threading.Semaphore(4)  # publications waiting for the loop
        self._threads = [
            threading.Thread(target=self._capture, name="stream-capture", daemon=True),
            threading.Thread(target=self._publish, name="stream-publish", daemon=True),
        ]
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
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self.stop_event.set()

    def join(self, timeout: float | None = None) -> None:
        for thread in self._threads:
            thread.join(timeout)

    def _put(self, item: Any) -> bool:
        while not self.stop_event.is_set():
            try:
                self._futures.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _capture(self) -> None:
        pipeline = self.pipeline
        reason = "source ended"
        source: FrameSource | None = None
        try:
            source = pipeline.source_factory()
            params = pipeline.config.jpeg_params()
            while not self.stop_event.is_set():
                frame = source.read()
                if frame is None:
                    break
                future = pipeline.pool.submit(encode_frame, frame, pipeline.config, params)
                if not self._put((frame, future)):
                    reason = "stream stopped"
                    break
            else:
                reason = "stream stopped"
        except StreamError as e:
            reason = f"source failed: {e}"
            log.error("stream source failed: %s", e)
        except Exception:
            reason = "source failed"
            log.exception("stream capture failed")
        finally:
            if source is not None:
                source.close()
            self._futures.put((None, reason))  # never lost: the publisher drains until it sees it

    def _publish(self) -> None:
        session = self.session_id.hex()
        seq = 0
        reason = "stream stopped"
        while True:
            frame, work = self._futures.get()
            if frame is None:
                reason = str(work)
                break
            assert isinstance(work, Future)
            try:
                jpeg, digest, encode_ns = work.result()
            except Exception as e:
                reason = f"encoding failed: {e}"
                log.exception("stream encoding failed")
                self.stop_event.set()
                continue
            encoded = EncodedFrame(
                seq, session, frame.mono_ns, frame.wall_ns, jpeg, digest, frame.width, frame.height, encode_ns
            )
            segment = None
            if self.segments is not None:
                envelope = self.segments.add(seq, digest, frame.wall_ns)
                if envelope is not None:
                    segment = SignedSegment(envelope, self.segments.segment - 1, seq)
            self.pipeline.record_encode(encoded)
            self._in_flight.acquire()  # back-pressure if the loop falls behind
            self._call(self._deliver, encoded, segment)
            seq += 1
        if self.segments is not None:
            envelope = self.segments.flush()
            if envelope is not None:  # the partial last segment: still signed, still delivered
                self._in_flight.acquire()
                self._call(self._deliver_segment, SignedSegment(envelope, self.segments.segment - 1, seq - 1))
        self._call(self.pipeline._session_ended, self, reason)

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the event loop is closed: nobody is left to deliver to
            self.stop_event.set()

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
            self._session.stop()
            self._stopping.append(self._session)
            self._session = None

    async def snapshot(self) -> tuple[EncodedFrame, bytes | None]:
        """The next encoded frame and its signed snapshot envelope (None when unsigned)."""
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
            sha256=frame.sha256,
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
        """Stop capture and the encoder pool (app shutdown)."""
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
