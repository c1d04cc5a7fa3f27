"""The media behind the RTSP paths: encode once per stream, fan out to every viewer.

::

    H264Stream: capture thread (the pipeline's source, masks and time stamp)
                 -> libx264 (PyAV) -> [GOP signer: SEI] -> RFC 6184 payloads
    MjpegStream: a viewer of the HTTPS pipeline (its JPEG, already masked) -> RFC 2435 payloads
                 │ call_soon_threadsafe / the event loop
                 └──> Fanout: one bounded queue per Subscriber

* Each encoded frame becomes one immutable :class:`MediaFrame` (its RTP
  payloads, built once) shared by reference with every subscriber; a viewer's
  writer adds only its own 12-byte RTP headers.
* A subscriber's queue holds at most ``max_queue`` frames. When a viewer
  falls that far behind (its TLS connection does not drain), its queue is
  emptied and it waits for the next key frame: a slow viewer skips ahead, it
  never stalls the encoder or the others and never grows memory.
* Nothing is captured while nobody watches: the first subscriber starts the
  stream, the last one stops it.
* Privacy masks are applied to the raw pixels before encoding, by the same
  function as the HTTPS pipeline (:func:`device.stream.masks.apply_masks_inplace`).

Example::

    stream = H264Stream(source_factory, masks=(), fps=15, signer=None)
    sub = await stream.subscribe()
    frame = await sub.next()          # MediaFrame(payloads=(...), timestamp=..., key=True)
    stream.unsubscribe(sub)
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fractions
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..stream.masks import MaskRect, apply_masks_inplace
from ..stream.pipeline import _draw_time
from .errors import MediaError
from .rtp import (
    CLOCK_RATE,
    DEFAULT_MTU,
    H264_PAYLOAD_TYPE,
    JPEG_PAYLOAD_TYPE,
    h264_payloads,
    jpeg_payloads,
    nal_type,
    parse_jpeg,
    split_annexb,
)

if TYPE_CHECKING:
    from ..stream.pipeline import StreamPipeline
    from ..stream.sources import Frame, FrameSource
    from .mediasign import GopSigner

log = logging.getLogger(__name__)

DEFAULT_MAX_QUEUE = 30  # frames a viewer may lag behind before it skips to the next key frame


@dataclass(frozen=True, eq=False)
class MediaFrame:
    """One encoded frame as RTP payloads, shared with every viewer."""

    payloads: tuple[bytes, ...] = field(repr=False)
    timestamp: int  # 90 kHz, from the capture time
    key: bool  # a viewer may start here (IDR with SPS/PPS; every JPEG)
    capture_mono_ns: int
    nbytes: int = 0


class Subscriber:
    """One viewer's bounded queue. Used on the event loop only."""

    def __init__(self, max_queue: int) -> None:
        self._queue: deque[MediaFrame] = deque()
        self._max = max_queue
        self._event = asyncio.Event()
        self.waiting_for_key = True  # a viewer starts at a key frame
        self.closed: str | None = None
        self.skipped = 0  # frames never queued for this viewer (waiting for a key frame)
        self.resyncs = 0  # times it fell behind and skipped to a key frame

    def offer(self, frame: MediaFrame) -> None:
        if self.closed is not None:
            return
        if len(self._queue) >= self._max:
            self.skipped += len(self._queue)
            self._queue.clear()
            self.resyncs += 1
            self.waiting_for_key = True
        if self.waiting_for_key:
            if not frame.key:
                self.skipped += 1
                return
            self.waiting_for_key = False
        self._queue.append(frame)
        self._event.set()

    def close(self, reason: str) -> None:
        if self.closed is None:
            self.closed = reason
            self._event.set()

    @property
    def backlog(self) -> int:
        return len(self._queue)

    async def next(self) -> MediaFrame | None:
        """The next frame, or None once the stream ended for this viewer."""
        while True:
            if self._queue:
                return self._queue.popleft()
            if self.closed is not None:
                return None
            self._event.clear()
            await self._event.wait()


class MediaStream:
    """Start on the first subscriber, stop after the last, fan frames out (the shared part)."""

    codec = ""
    payload_type = 0

    def __init__(self, *, max_queue: int = DEFAULT_MAX_QUEUE) -> None:
        self.subscribers: set[Subscriber] = set()
        self._max_queue = max_queue
        self._loop: asyncio.AbstractEventLoop | None = None
        self.frames_published = 0

    async def subscribe(self) -> Subscriber:
        sub = Subscriber(self._max_queue)
        first = not self.subscribers
        self.subscribers.add(sub)
        if first:
            self._loop = asyncio.get_running_loop()
            await self._start()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        sub.close("unsubscribed")
        self.subscribers.discard(sub)
        if not self.subscribers:
            self._stop()

    def publish(self, frame: MediaFrame) -> None:
        """On the event loop: hand one frame to every subscriber."""
        self.frames_published += 1
        for sub in self.subscribers:
            sub.offer(frame)

    def end(self, reason: str) -> None:
        for sub in list(self.subscribers):
            sub.close(reason)

    def publish_threadsafe(self, frame: MediaFrame) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is left to deliver to
            loop.call_soon_threadsafe(self.publish, frame)

    async def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        self.end("server shutting down")
        self.subscribers.clear()
        self._stop()

    def fmtp(self) -> list[str]:
        return []

    async def sdp_media(self, *, timeout: float = 10.0) -> list[str]:
        """The SDP media section for this stream (RFC 4566, control ``trackID=0``)."""
        lines = [f"m=video 0 RTP/AVP {self.payload_type}"]
        if self.payload_type >= 96:
            lines.append(f"a=rtpmap:{self.payload_type} {self.codec}/{CLOCK_RATE}")
        lines += self.fmtp()
        lines.append("a=control:trackID=0")
        return lines


def prepare_frame(frame: Frame, masks: tuple[MaskRect, ...], overlay: bool) -> np.ndarray[Any, Any]:
    """The pipeline's capture stage: masks (before any encoding) and the capture-time stamp."""
    image = frame.image
    if masks or overlay:
        if not frame.owned:
            image = image.copy()
        apply_masks_inplace(image, masks)
        if overlay:
            _draw_time(image, frame.wall_ns)
    return image


def timestamp_90k(mono_ns: int) -> int:
    return (mono_ns * 9 // 100_000) & 0xFFFFFFFF


class H264Encoder:
    """libx264 through PyAV: constrained baseline, zerolatency, ultrafast, one IDR per ``gop`` frames.

    SPS and PPS are repeated before every IDR (``repeat-headers``), so any
    viewer can start at any key frame; :attr:`parameter_sets` keeps the last
    ones for the SDP ``sprop-parameter-sets``.
    """

    def __init__(self, width: int, height: int, fps: float, *, threads: int = 1) -> None:
        import av

        if width % 2 or height % 2:
            raise MediaError(f"{width}x{height}: H.264 4:2:0 needs even dimensions")
        self.gop = max(1, round(fps))
        codec: Any = av.CodecContext.create("libx264", "w")
        codec.width, codec.height, codec.pix_fmt = width, height, "yuv420p"
        codec.time_base = fractions.Fraction(1, CLOCK_RATE)
        codec.framerate = fractions.Fraction(fps).limit_denominator(1000)
        codec.thread_count = threads
        codec.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "g": str(self.gop),
            "keyint_min": str(self.gop),
            "sc_threshold": "0",
            "bf": "0",
            "x264-params": "repeat-headers=1",
        }
        self._codec = codec
        self._av = av
        self.width, self.height = width, height
        self.parameter_sets: tuple[bytes, bytes] | None = None

    def encode(self, image: np.ndarray[Any, Any], pts: int) -> list[tuple[list[bytes], bool]]:
        """Encode one BGR frame: [(NAL units of an access unit, is key frame)] (zerolatency: one)."""
        frame = self._av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = pts
        out = []
        for packet in self._codec.encode(frame):
            nals = split_annexb(bytes(packet))
            key = bool(packet.is_keyframe)
            sps = next((n for n in nals if nal_type(n) == 7), None)
            pps = next((n for n in nals if nal_type(n) == 8), None)
            if sps is not None and pps is not None:
                self.parameter_sets = (sps, pps)
            out.append((nals, key))
        return out


class H264Stream(MediaStream):
    """The ``/h264`` stream: one capture thread and one encoder for every viewer."""

    codec = "H264"
    payload_type = H264_PAYLOAD_TYPE

    def __init__(
        self,
        source_factory: Callable[[], FrameSource],
        *,
        masks: tuple[MaskRect, ...] = (),
        overlay: bool = True,
        fps_hint: float = 15.0,
        signer_factory: Callable[[], GopSigner] | None = None,
        max_queue: int = DEFAULT_MAX_QUEUE,
        mtu: int = DEFAULT_MTU,
        threads: int = 1,
    ) -> None:
        super().__init__(max_queue=max_queue)
        self.source_factory = source_factory
        self.masks = masks
        self.overlay = overlay
        self.fps_hint = fps_hint
        self.signer_factory = signer_factory
        self.mtu = mtu
        self.threads = threads
        self.parameter_sets: tuple[bytes, bytes] | None = None
        self.size: tuple[int, int] | None = None
        self._stop_event: threading.Event | None = None
        self._thread: threading.Thread | None = None
        self._first_key: asyncio.Event = asyncio.Event()
        self.encode_ns: deque[int] = deque(maxlen=512)
        self.sign_ns: deque[int] = deque(maxlen=512)

    @property
    def signed(self) -> bool:
        return self.signer_factory is not None

    async def _start(self) -> None:
        previous = self._thread
        if previous is not None:  # let the previous session release the source first
            await asyncio.get_running_loop().run_in_executor(None, previous.join, 5.0)
        self._first_key = asyncio.Event()
        stop = self._stop_event = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(stop,), name="rtsp-h264", daemon=True)
        self._thread.start()

    def _stop(self) -> None:
        if self._stop_event is not None:
            self._stop_event.set()

    def _run(self, stop: threading.Event) -> None:
        reason = "source ended"
        source = None
        try:
            source = self.source_factory()
            encoder: H264Encoder | None = None
            signer = self.signer_factory() if self.signer_factory is not None else None
            while not stop.is_set():
                frame = source.read()
                if frame is None:
                    break
                if encoder is None:
                    encoder = H264Encoder(frame.width, frame.height, self.fps_hint, threads=self.threads)
                    self.size = (frame.width, frame.height)
                image = prepare_frame(frame, self.masks, self.overlay)
                stamp = timestamp_90k(frame.mono_ns)
                start = time.perf_counter_ns()
                units = encoder.encode(image, frame.seq * (CLOCK_RATE // max(1, encoder.gop)))
                self.encode_ns.append(time.perf_counter_ns() - start)
                for nals, key in units:
                    if signer is not None:
                        begin = time.perf_counter_ns()
                        nals = signer.add_access_unit(nals, key=key, capture_wall_ns=frame.wall_ns)
                        self.sign_ns.append(time.perf_counter_ns() - begin)
                    payloads = tuple(h264_payloads(nals, mtu=self.mtu))
                    if key and encoder.parameter_sets is not None and self.parameter_sets != encoder.parameter_sets:
                        self.parameter_sets = encoder.parameter_sets
                    self.publish_threadsafe(
                        MediaFrame(payloads, stamp, key, frame.mono_ns, sum(len(p) for p in payloads))
                    )
                    if key:
                        self._signal_key()
            else:
                reason = "stream stopped"
        except MediaError as exc:
            reason = f"encoder failed: {exc}"
            log.error("RTSP H.264 stream: %s", exc)
        except Exception as exc:
            reason = "source or encoder failed"
            log.exception("RTSP H.264 stream failed: %s", type(exc).__name__)
        finally:
            if source is not None:
                source.close()
            loop = self._loop
            if loop is not None and not stop.is_set():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self.end, reason)

    def _signal_key(self) -> None:
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._first_key.set)

    def fmtp(self) -> list[str]:
        if self.parameter_sets is None:
            raise MediaError("no SPS/PPS yet")
        sps, pps = self.parameter_sets
        sprop = ",".join(base64.b64encode(n).decode("ascii") for n in (sps, pps))
        lines = [
            f"a=fmtp:{self.payload_type} packetization-mode=1;profile-level-id={sps[1:4].hex()};"
            f"sprop-parameter-sets={sprop}"
        ]
        if self.size is not None:
            lines.append(f"a=framesize:{self.payload_type} {self.size[0]}-{self.size[1]}")
        return lines

    async def sdp_media(self, *, timeout: float = 10.0) -> list[str]:
        """Needs SPS/PPS: the first DESCRIBE runs the encoder until its first key frame."""
        if self.parameter_sets is None:
            sub = await self.subscribe()
            try:
                await asyncio.wait_for(self._first_key.wait(), timeout)
            except TimeoutError:
                raise MediaError("the encoder produced no key frame in time") from None
            finally:
                self.unsubscribe(sub)
        return await super().sdp_media()

    async def close(self) -> None:
        await super().close()
        thread = self._thread
        if thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 5.0)


class MjpegStream(MediaStream):
    """The ``/mjpeg`` stream: the HTTPS pipeline's JPEG frames (masked there) as RFC 2435."""

    codec = "JPEG"
    payload_type = JPEG_PAYLOAD_TYPE

    def __init__(self, pipeline: StreamPipeline, *, max_queue: int = DEFAULT_MAX_QUEUE, mtu: int = DEFAULT_MTU) -> None:
        super().__init__(max_queue=max_queue)
        self.pipeline = pipeline
        self.mtu = mtu
        self._task: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        self._task = asyncio.create_task(self._pump())

    def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _pump(self) -> None:
        viewer = await self.pipeline.subscribe()
        reason = "stream ended"
        try:
            while True:
                delivery = await viewer.next()
                if delivery is None or delivery.frame is None:
                    break
                frame = delivery.frame
                try:
                    payloads = tuple(jpeg_payloads(parse_jpeg(frame.jpeg), mtu=self.mtu))
                except MediaError as exc:
                    reason = f"JPEG cannot be carried over RTP: {exc}"
                    log.error("RTSP MJPEG stream: %s", exc)
                    break
                self.publish(
                    MediaFrame(
                        payloads, timestamp_90k(frame.capture_mono_ns), True, frame.capture_mono_ns,
                        sum(len(p) for p in payloads),
                    )
                )
        finally:
            self.pipeline.unsubscribe(viewer)
        self.end(reason)
