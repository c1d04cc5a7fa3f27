"""Frame sources and the --source spec parser."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from device.stream.errors import SourceError, SourceSpecError
from device.stream.sources import (
    CaptureSource,
    Clock,
    FolderSource,
    SourceSpec,
    SyntheticSource,
    open_source,
    parse_source_spec,
)


class FakeClock:
    def __init__(self) -> None:
        self.mono = 1_000_000_000
        self.sleeps: list[float] = []

    def clock(self) -> Clock:
        return Clock(monotonic_ns=lambda: self.mono, time_ns=lambda: 1_763_800_000_000_000_000, sleep=self.sleep)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.mono += int(seconds * 1e9)


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("synthetic:1920x1080@30", SourceSpec("synthetic", width=1920, height=1080, fps=30.0)),
        ("synthetic:640x360@12.5", SourceSpec("synthetic", width=640, height=360, fps=12.5)),
        ("file:/videos/a.mp4", SourceSpec("file", path=Path("/videos/a.mp4"))),
        ("device:0", SourceSpec("device", index=0)),
        ("folder:frames", SourceSpec("folder", path=Path("frames"))),
    ],
)
def test_spec_parser_accepts_the_documented_forms(text: str, spec: SourceSpec) -> None:
    assert parse_source_spec(text) == spec
    assert str(parse_source_spec(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("synthetic", "has no kind prefix"),
        ("camera:0", "unknown source kind 'camera'"),
        ("synthetic:1920x1080", "is not WIDTHxHEIGHT@FPS"),
        ("synthetic:1920*1080@30", "is not WIDTHxHEIGHT@FPS"),
        ("synthetic:99999x1080@30", "out of range"),
        ("synthetic:8x8@30", "out of range"),
        ("synthetic:640x480@500", "frame rate 500 is out of range"),
        ("synthetic:640x480@0", "is not WIDTHxHEIGHT@FPS"),
        ("device:-1", "is not a camera index"),
        ("device:cam", "is not a camera index"),
        ("file:", "file source needs a path"),
        ("folder:", "folder source needs a path"),
    ],
)
def test_spec_parser_refuses_anything_else_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(SourceSpecError, match=message):
        parse_source_spec(text)


def test_synthetic_frames_are_deterministic_and_moving() -> None:
    fake = FakeClock()
    a = SyntheticSource(320, 240, 30, frames=3, paced=False, clock=fake.clock())
    b = SyntheticSource(320, 240, 30, frames=3, paced=False, clock=fake.clock())
    frames_a = [a.read() for _ in range(3)]
    frames_b = [b.read() for _ in range(3)]
    assert a.read() is None  # frame limit reached
    for fa, fb in zip(frames_a, frames_b, strict=True):
        assert fa is not None and fb is not None
        assert np.array_equal(fa.image, fb.image)
        assert fa.image.shape == (240, 320, 3) and fa.image.dtype == np.uint8
    assert [f.seq for f in frames_a if f] == [0, 1, 2]
    f0, f1 = frames_a[0], frames_a[1]
    assert f0 is not None and f1 is not None
    assert not np.array_equal(f0.image[60:], f1.image[60:])  # the pattern moves
    assert not np.array_equal(f0.image[8:44, 8:200], f1.image[8:44, 8:200])  # the counter changes
    assert f0.owned and f0.image.flags.writeable  # a fresh buffer per frame, handed to the pipeline
    assert not np.shares_memory(f0.image, f1.image)


def test_synthetic_source_is_paced_at_its_rate() -> None:
    fake = FakeClock()
    source = SyntheticSource(64, 48, 25, frames=4, clock=fake.clock())
    frames = [source.read() for _ in range(4)]
    assert [f.mono_ns for f in frames if f] == [1_000_000_000 + i * 40_000_000 for i in range(4)]
    assert fake.sleeps == pytest.approx([0.04] * 3)


def test_folder_source_reads_images_in_name_order_and_ends(tmp_path: Path) -> None:
    for i, value in enumerate((10, 20, 30)):
        cv2.imwrite(str(tmp_path / f"img{i:02d}.png"), np.full((24, 32, 3), value, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    source = FolderSource(tmp_path, paced=False)
    values = []
    while (frame := source.read()) is not None:
        values.append(int(frame.image[0, 0, 0]))
    assert values == [10, 20, 30]
    looped = FolderSource(tmp_path, paced=False, loop=True)
    assert [int(looped.read().image[0, 0, 0]) for _ in range(4)] == [10, 20, 30, 10]  # type: ignore[union-attr]


def test_folder_without_images_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="holds no images"):
        FolderSource(tmp_path)
    with pytest.raises(SourceError, match="does not exist"):
        open_source(parse_source_spec(f"folder:{tmp_path / 'missing'}"))


def test_video_file_source_reads_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 15, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    source = CaptureSource(str(path), paced=False)
    assert source.fps == 15
    frames = []
    while (frame := source.read()) is not None:
        frames.append(frame)
    source.close()
    assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
    assert [round(float(f.image.mean()) / 40) for f in frames] == [0, 1, 2, 3, 4]
    assert frames[0].image.shape == (48, 64, 3)


def test_missing_video_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        open_source(parse_source_spec(f"file:{tmp_path / 'none.mp4'}"))
    (tmp_path / "junk.mp4").write_bytes(b"not a video")
    with pytest.raises(SourceError, match="cannot open video file"):
        open_source(parse_source_spec(f"file:{tmp_path / 'junk.mp4'}"))
