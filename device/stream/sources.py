"""Frame sources: the simulated camera sensor behind one tiny interface.

A :class:`FrameSource` has two methods: ``read()`` returns the next
:class:`Frame` (or ``None`` at the end of the stream) and ``close()`` frees the
device. Three implementations:

* :class:`SyntheticSource`: a deterministic test pattern (moving colour bars
  and a gradient, a frame counter and a timestamp). Cheap: the pattern is
  computed once at twice the frame width; each frame is one slice copy plus a
  small text box.
* :class:`CaptureSource`: OpenCV ``VideoCapture`` on a video file or a
  camera index.
* :class:`FolderSource`: the images of a folder, in name order.

:func:`parse_source_spec` turns the ``--source`` option into a frozen
:class:`SourceSpec` (strict; a clear message for anything else) and
:func:`open_source` opens it::

    spec = parse_source_spec("synthetic:1280x720@30")
    source = open_source(spec)
    frame = source.read()   # Frame(seq=0, mono_ns=..., wall_ns=..., image=<720x1280x3 BGR>)
    source.close()

Sources are paced at their frame rate by default (a camera cannot deliver
frames faster); tests and benchmarks pass ``paced=False`` and a frame limit.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from .errors import SourceError, SourceSpecError

Image = npt.NDArray[np.uint8]  # H x W x 3, BGR

MAX_WIDTH = 7680  # pixels (8K); larger is refused as a typo
MAX_HEIGHT = 4320
MAX_FPS = 240
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff"})
DEFAULT_FILE_FPS = 30.0  # when the container does not say
DEFAULT_FOLDER_FPS = 10.0


@dataclass(frozen=True, eq=False)
class Frame:
    """One captured frame.

    ``owned`` says who may write into ``image``. A camera, a video decoder or
    the synthetic pattern fill a fresh buffer for every frame and hand it
    over (``owned=True``, writable): the pipeline masks and stamps it in place,
    as firmware does with a buffer it dequeued from the sensor driver. A
    source that hands out shared pixels (a replayed still, a benchmark's
    pre-rendered frames) passes a read-only array and ``owned=False``: the
    pipeline then works on a copy.
    """

    seq: int  # capture sequence number, from 0 per opened source
    mono_ns: int  # time.monotonic_ns() at capture (latency, pacing)
    wall_ns: int  # time.time_ns() at capture (what the overlay and manifests show)
    image: Image = field(repr=False)
    owned: bool = False  # image is this frame's own buffer: the pipeline may modify it in place

    def __post_init__(self) -> None:
        if self.owned and not self.image.flags.writeable:
            raise ValueError("an owned frame needs a writable image")

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


class FrameSource(Protocol):
    def read(self) -> Frame | None:
        """The next frame, or None when the source has ended."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Clock:
    """The two clocks a capture reads; tests inject fixed ones."""

    monotonic_ns: Callable[[], int] = time.monotonic_ns
    time_ns: Callable[[], int] = time.time_ns
    sleep: Callable[[float], None] = time.sleep


SYSTEM_CLOCK = Clock()


class _Pacer:
    """Sleeps so that frames leave at ``fps``; never tries to catch up a backlog."""

    def __init__(self, fps: float, clock: Clock) -> None:
        self._period_ns = int(1e9 / fps)
        self._clock = clock
        self._next_ns: int | None = None

    def wait(self) -> None:
        now = self._clock.monotonic_ns()
        if self._next_ns is None or now - self._next_ns > self._period_ns:
            self._next_ns = now  # first frame, or we fell behind: restart the schedule
        elif self._next_ns > now:
            self._clock.sleep((self._next_ns - now) / 1e9)
        self._next_ns += self._period_ns


def _owned(seq: int, clock: Clock, image: Image) -> Frame:
    """A frame handing over a buffer nobody else holds (see :class:`Frame`)."""
    return Frame(seq, clock.monotonic_ns(), clock.time_ns(), image, owned=True)


def make_test_pattern(width: int, height: int) -> Image:
    """The synthetic pattern at twice the width: colour bars over a gradient with a fixed grain."""
    bars = np.array(
        [[192, 192, 192], [0, 192, 192], [192, 192, 0], [0, 192, 0], [192, 0, 192], [0, 0, 192], [192, 0, 0]],
        dtype=np.uint8,
    )
    xs = np.arange(2 * width)
    columns = bars[(xs * len(bars) // width) % len(bars)]  # two periods of bars over 2*width
    pattern = np.empty((height, 2 * width, 3), dtype=np.uint8)
    top = height * 2 // 3
    pattern[:top] = columns[np.newaxis, :, :]
    ramp = ((xs % width) * 255 // max(width - 1, 1)).astype(np.uint8)
    pattern[top:] = ramp[np.newaxis, :, np.newaxis]
    # Fixed sensor-like grain (+-12), periodic like the bars, so JPEG sizes and
    # encode times resemble a real scene rather than flat colour fields.
    grain = np.random.default_rng(0).integers(-12, 13, size=(height, width, 1), dtype=np.int16)
    textured = pattern.astype(np.int16) + np.concatenate([grain, grain], axis=1)
    out: Image = np.clip(textured, 0, 255).astype(np.uint8)
    return out


class SyntheticSource:
    """A moving test pattern with a frame counter and a timestamp; deterministic pixels per seq.

    The pixels depend only on ``seq`` and the wall-clock time printed in the
    box (inject a :class:`Clock` for fully fixed output).
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: float,
        *,
        frames: int | None = None,
        paced: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        _check_geometry(width, height, fps)
        self.width, self.height, self.fps = width, height, fps
        self._frames = frames
        self._clock = clock
        self._pacer = _Pacer(fps, clock) if paced else None
        self._pattern = make_test_pattern(width, height)
        self._step = max(1, width // 120)  # pixels per frame: one bar width in ~2 s at 30 fps
        self._seq = 0
        self._closed = False

    def read(self) -> Frame | None:
        if self._closed or (self._frames is not None and self._seq >= self._frames):
            return None
        if self._pacer is not None:
            self._pacer.wait()
        seq = self._seq
        self._seq += 1
        mono_ns, wall_ns = self._clock.monotonic_ns(), self._clock.time_ns()
        offset = (seq * self._step) % self.width
        image = self._pattern[:, offset : offset + self.width].copy()
        # Frame counter and timestamp in a small box (cheap: only this region is drawn).
        box = image[8:44, 8 : min(8 + 460, self.width)]
        box[:] = 0
        text = f"#{seq:08d} {wall_ns // 1_000_000_000}.{wall_ns // 1_000_000 % 1000:03d}"
        cv2.putText(box, text, (4, 26), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_8)
        return Frame(seq, mono_ns, wall_ns, image, owned=True)  # a fresh copy: the pipeline's to draw on

    def close(self) -> None:
        self._closed = True


class CaptureSource:
    """OpenCV ``VideoCapture`` on a video file (looped if asked) or a camera index."""

    def __init__(
        self,
        target: str | int,
        *,
        loop: bool = False,
        paced: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._target = target
        self._capture = cv2.VideoCapture(target)
        if not self._capture.isOpened():
            what = f"camera {target}" if isinstance(target, int) else f"video file {target}"
            raise SourceError(f"cannot open {what} with OpenCV VideoCapture")
        self._loop = loop and isinstance(target, str)
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps <= MAX_FPS else DEFAULT_FILE_FPS
        # A camera paces itself; a file would otherwise be read as fast as it decodes.
        self._pacer = _Pacer(self.fps, clock) if paced and isinstance(target, str) else None
        self._clock = clock
        self._seq = 0

    def read(self) -> Frame | None:
        ok, image = self._capture.read()
        if not ok and self._loop and self._seq > 0:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._capture.read()
        if not ok or image is None:
            return None
        if self._pacer is not None:
            self._pacer.wait()
        frame = _owned(self._seq, self._clock, _bgr(image))  # VideoCapture.read() fills a new array
        self._seq += 1
        return frame

    def close(self) -> None:
        self._capture.release()


class FolderSource:
    """The images of a folder in name order, each one frame; optionally looped."""

    def __init__(
        self,
        directory: Path,
        *,
        fps: float = DEFAULT_FOLDER_FPS,
        loop: bool = False,
        paced: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not directory.is_dir():
            raise SourceError(f"image folder {directory} does not exist or is not a directory")
        self._paths = sorted(p for p in directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._paths:
            raise SourceError(
                f"image folder {directory} holds no images (expected one of {sorted(IMAGE_SUFFIXES)})"
            )
        self.fps = fps
        self._loop = loop
        self._pacer = _Pacer(fps, clock) if paced else None
        self._clock = clock
        self._seq = 0

    def read(self) -> Frame | None:
        index = self._seq % len(self._paths) if self._loop else self._seq
        if index >= len(self._paths):
            return None
        path = self._paths[index]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"cannot decode image {path}")
        if self._pacer is not None:
            self._pacer.wait()
        frame = _owned(self._seq, self._clock, _bgr(image))  # decoded into a new array
        self._seq += 1
        return frame

    def close(self) -> None:
        self._paths = []


def _bgr(image: npt.NDArray[Any]) -> Image:
    if image.ndim == 2:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if image.shape[2] == 4:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    return np.ascontiguousarray(image, dtype=np.uint8)


def _check_geometry(width: int, height: int, fps: float) -> None:
    if not (16 <= width <= MAX_WIDTH and 16 <= height <= MAX_HEIGHT):
        raise SourceSpecError(
            f"frame size {width}x{height} is out of range (expected 16x16 to {MAX_WIDTH}x{MAX_HEIGHT})"
        )
    if not 0 < fps <= MAX_FPS:
        raise SourceSpecError(f"frame rate {fps:g} is out of range (expected 0 < fps <= {MAX_FPS})")


SourceKind = Literal["synthetic", "file", "device", "folder"]
SPEC_FORMS = "synthetic:WIDTHxHEIGHT@FPS, file:PATH, device:INDEX or folder:DIR"
_SYNTHETIC = re.compile(r"(?P<w>[1-9][0-9]{0,4})x(?P<h>[1-9][0-9]{0,4})@(?P<fps>[1-9][0-9]{0,2}(?:\.[0-9]{1,3})?)")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``--source`` value."""

    kind: SourceKind
    width: int = 0  # synthetic only, pixels
    height: int = 0  # synthetic only, pixels
    fps: float = 0.0  # synthetic only, frames per second
    path: Path | None = None  # file and folder
    index: int = 0  # device

    def __str__(self) -> str:
        if self.kind == "synthetic":
            return f"synthetic:{self.width}x{self.height}@{self.fps:g}"
        if self.kind == "device":
            return f"device:{self.index}"
        return f"{self.kind}:{self.path}"


def parse_source_spec(text: str) -> SourceSpec:
    """Parse ``synthetic:1920x1080@30``, ``file:PATH``, ``device:0`` or ``folder:DIR``."""
    kind, sep, rest = text.partition(":")
    if not sep:
        raise SourceSpecError(f"source {text!r} has no kind prefix; expected {SPEC_FORMS}")
    if kind == "synthetic":
        match = _SYNTHETIC.fullmatch(rest)
        if match is None:
            raise SourceSpecError(
                f"synthetic source {rest!r} is not WIDTHxHEIGHT@FPS (e.g. synthetic:1920x1080@30)"
            )
        width, height, fps = int(match["w"]), int(match["h"]), float(match["fps"])
        _check_geometry(width, height, fps)
        return SourceSpec("synthetic", width=width, height=height, fps=fps)
    if kind in ("file", "folder"):
        if not rest:
            raise SourceSpecError(f"{kind} source needs a path (e.g. {kind}:/path)")
        return SourceSpec("file" if kind == "file" else "folder", path=Path(rest))
    if kind == "device":
        if not re.fullmatch(r"[0-9]{1,3}", rest):
            raise SourceSpecError(f"device source {rest!r} is not a camera index 0-999 (e.g. device:0)")
        return SourceSpec("device", index=int(rest))
    raise SourceSpecError(f"unknown source kind {kind!r}; expected {SPEC_FORMS}")


def open_source(
    spec: SourceSpec,
    *,
    paced: bool = True,
    loop: bool = True,
    frames: int | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> FrameSource:
    """Open the source a spec names. Files and folders loop by default (a camera never ends)."""
    if spec.kind == "synthetic":
        return SyntheticSource(spec.width, spec.height, spec.fps, frames=frames, paced=paced, clock=clock)
    if spec.kind == "device":
        return CaptureSource(spec.index, paced=paced, clock=clock)
    assert spec.path is not None
    if spec.kind == "file":
        if not spec.path.is_file():
            raise SourceError(f"video file {spec.path} does not exist")
        return CaptureSource(str(spec.path), loop=loop, paced=paced, clock=clock)
    return FolderSource(spec.path, loop=loop, paced=paced, clock=clock)
