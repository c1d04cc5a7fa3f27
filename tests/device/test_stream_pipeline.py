"""The frame pipeline: encode once, fan out by reference, slow viewers never hold others back."""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import threading
import tracemalloc
import weakref
from typing import Any

import cv2
import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from stream_fixtures import NOW, make_pki

from bootloader import pki
from device.stream import build_pipeline, stream_options
from device.stream.errors import (
    MaskError,
    SigningKeyError,
    SourceError,
    SourceSpecError,
    StreamError,
)
from device.stream.masks import MaskRect
from device.stream.pipeline import (
    Distributor,
    EncodedFrame,
    PipelineConfig,
    SignedSegment,
    StreamPipeline,
    Viewer,
    encode_frame,
)
from device.stream.sources import Frame, SyntheticSource
from refcam.streamverify import (
    FrameRecord,
    ManifestRecord,
    NoteRecord,
    Record,
    SnapshotRecord,
    StreamReport,
    link_snapshot,
    verify_records,
)

PKI = make_pki()
SIGNER = PKI.stream_signer()


def encoded(seq: int, size: int = 1000, mono_ns: int | None = None) -> EncodedFrame:
    jpeg = bytes([seq % 256]) * size
    mono = seq * 33_000_000 if mono_ns is None else mono_ns
    return EncodedFrame(seq, "00" * 16, mono, 1_700_000_000_000_000_000 + mono, jpeg, hashlib.sha256(jpeg).digest())


def segment(n: int, last_seq: int) -> SignedSegment:
    return SignedSegment(b'{"segment":%d}' % n, n, last_seq)


def viewer(fps: float | None = None, max_pending: int = 64) -> Viewer:
    return Viewer(fps=fps, max_pending_manifests=max_pending, window=64)


async def test_manifest_never_travels_before_the_frames_it_covers() -> None:
    v = viewer()
    v.offer(encoded(29))
    v.offer_segment(segment(0, last_seq=29))  # published with frame 29, the segment's last
    first = await v.next()
    assert first is not None and first.frame is not None
    assert first.frame.seq == 29 and first.manifests == ()  # the manifest must come after frame 29
    v.offer(encoded(30))
    second = await v.next()
    assert second is not None and second.frame is not None
    assert second.frame.seq == 30 and [m.segment for m in second.manifests] == [0]


async def test_slow_viewer_does_not_slow_a_fast_one() -> None:
    frames, per_segment = 300, 30
    distributor = Distributor()
    fast, slow = viewer(), viewer()
    distributor.viewers |= {fast, slow}
    received: list[int] = []
    manifests: list[int] = []

    async def fast_writer() -> None:
        while (delivery := await fast.next()) is not None and delivery.frame is not None:
            received.append(delivery.frame.seq)
            manifests.extend(m.segment for m in delivery.manifests)
            fast.record_sent(delivery.frame, len(delivery.frame.jpeg), 0)

    task = asyncio.create_task(fast_writer())
    for seq in range(frames):
        done = seq % per_segment == per_segment - 1
        distributor.publish(encoded(seq), segment(seq // per_segment, seq) if done else None)
        await asyncio.sleep(0)  # one loop turn per frame: the fast writer keeps up, the slow one never reads
    # The slow viewer held the publisher up for no frame: its slot was simply overwritten.
    assert slow.dropped == frames - 1 and slow.sent == 0
    distributor.publish(encoded(frames), None)
    await asyncio.sleep(0)
    distributor.end("test over")
    await task
    assert received == list(range(frames + 1))
    assert fast.dropped == 0 and fast.sent == frames + 1
    assert manifests == list(range(frames // per_segment))
    # The slow viewer still gets every manifest, with its one (latest) frame.
    late = await slow.next()
    assert late is not None and late.frame is not None and late.frame.seq == frames
    assert [m.segment for m in late.manifests] == list(range(frames // per_segment))


async def test_fps_cap_skips_frames_without_counting_them_as_drops() -> None:
    v = viewer(fps=10)
    for seq in range(30):  # 30 frames 33 ms apart: one second
        v.offer(encoded(seq))
        if v.holds_frame and (delivery := await v.next()) is not None and delivery.frame is not None:
            v.record_sent(delivery.frame, 1, delivery.frame.capture_mono_ns)
    assert v.sent == 10 and v.skipped == 20 and v.dropped == 0


async def test_viewer_that_takes_no_frames_is_cut_off_before_its_manifest_queue_grows() -> None:
    v = viewer(max_pending=3)
    for n in range(4):
        v.offer_segment(segment(n, n))
    assert v.closed is not None and "took no frame for 3 segments" in v.closed
    end = await v.next()
    assert end is not None and end.frame is None and len(end.manifests) == 3
    assert await v.next() is None


async def test_memory_stays_bounded_with_100_idle_viewers() -> None:
    distributor = Distributor()
    viewers = [viewer() for _ in range(100)]
    distributor.viewers |= set(viewers)
    live: weakref.WeakSet[EncodedFrame] = weakref.WeakSet()
    size = 200_000
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        for seq in range(60):
            frame = encoded(seq, size=size)
            live.add(frame)
            distributor.publish(frame, None)
            del frame
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    gc.collect()
    assert len(live) == 1  # every viewer holds the same, latest frame; nothing older survives
    assert all(v.holds_frame for v in viewers)
    assert all(v.dropped == 59 for v in viewers)
    assert current - base < 2 * size  # one frame (plus small bookkeeping), not 100 or 60 frames
    assert peak - base < 3 * size


class CountingSource:
    """A synthetic source that counts reads and closes, for the start/stop contract."""

    def __init__(self, frames: int | None = None) -> None:
        self.inner = SyntheticSource(160, 120, 30, frames=frames, paced=False)
        self.reads = 0
        self.closed = threading.Event()

    def read(self) -> Frame | None:
        self.reads += 1
        return self.inner.read()

    def close(self) -> None:
        self.closed.set()


SESSION_SEEN: dict[int, str | None] = {}  # viewer id -> the stream session of the frames it was sent


async def collect(v: Viewer, limit: int | None = None, records: list[Record] | None = None) -> list[Record]:
    """Records in the order a recorder writes them (manifests before the frame they ride on), with its
    notes of the frames the viewer was not sent; at most ``limit`` deliveries, appended to ``records``."""
    records = [] if records is None else records
    session = SESSION_SEEN.get(v.id)
    taken = 0
    while (limit is None or taken < limit) and (delivery := await v.next()) is not None:
        taken += 1
        session = delivery.frame.session if delivery.frame is not None else session
        SESSION_SEEN[v.id] = session
        if delivery.not_sent:
            assert session is not None
            records.append(NoteRecord(session, delivery.not_sent))
        records.extend(ManifestRecord(m.envelope) for m in delivery.manifests)
        if delivery.frame is not None:
            f = delivery.frame
            records.append(FrameRecord(f.seq, f.capture_wall_ns, f.jpeg))
    return records


def whole_session(report: StreamReport) -> bool:
    """Authentic, from segment 0 to the signed end, and every frame it lacks was not sent to this viewer."""
    return report.verdict in ("authentic", "authentic_missing_frames") and all(
        s.begins and s.ends and {g.kind for g in s.gaps} <= {"not_sent"} for s in report.sessions
    )


async def test_pipeline_stream_is_signed_and_verifies() -> None:
    sources: list[CountingSource] = []

    def factory() -> CountingSource:
        sources.append(CountingSource(frames=60))
        return sources[-1]

    pipeline = StreamPipeline(factory, SIGNER, PipelineConfig(frames_per_segment=10, workers=2))
    try:
        fast = await pipeline.subscribe()
        slow = await pipeline.subscribe()
        records = await collect(fast)
        slow_records = await collect(slow)  # read only after the source ended: most frames dropped
    finally:
        await pipeline.close()
    assert len(sources) == 1 and sources[0].closed.is_set()
    report = verify_records(records, trust_root=PKI.root, now=NOW)
    assert report.verdict in ("authentic", "authentic_missing_frames")
    assert report.sessions[0].frames_listed == 60 and report.sessions[0].segments == 6
    slow_report = verify_records(slow_records, trust_root=PKI.root, now=NOW)
    assert slow_report.verdict == "authentic_missing_frames"
    assert slow_report.sessions[0].segments == 6  # manifests are never dropped
    assert slow.dropped > 0
    frame = next(r for r in records if isinstance(r, FrameRecord))
    image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (120, 160, 3)


async def test_nothing_is_captured_while_nobody_watches() -> None:
    sources: list[CountingSource] = []

    def factory() -> CountingSource:
        sources.append(CountingSource())
        return sources[-1]

    pipeline = StreamPipeline(factory, SIGNER, PipelineConfig(workers=1))
    try:
        await asyncio.sleep(0)
        assert sources == [] and pipeline.frames_encoded == 0 and not pipeline.running
        v = await pipeline.subscribe()
        first_session = ""
        for _ in range(3):
            delivery = await v.next()
            assert delivery is not None and delivery.frame is not None
            first_session = delivery.frame.session
        pipeline.unsubscribe(v)  # the last viewer leaves
        assert not pipeline.running
        await pipeline.idle()
        assert sources[0].closed.is_set()
        reads = sources[0].reads
        encoded_count = pipeline.frames_encoded
        await asyncio.sleep(0.05)
        assert sources[0].reads == reads and pipeline.frames_encoded == encoded_count
        again = await pipeline.subscribe()  # a new viewer: a new session with a new id
        delivery = await again.next()
        assert delivery is not None and delivery.frame is not None
        assert len(sources) == 2 and delivery.frame.session != first_session
        assert delivery.frame.seq == again.dropped  # seq restarts at 0 in the new session
    finally:
        await pipeline.close()


async def test_snapshot_is_masked_and_signed() -> None:
    pipeline = StreamPipeline(
        lambda: CountingSource(), SIGNER, PipelineConfig(masks=(MaskRect(0, 0, 80, 60),), overlay=False, workers=1)
    )
    try:
        frame, envelope = await pipeline.snapshot()
    finally:
        await pipeline.close()
    assert envelope is not None
    image = cv2.imdecode(np.frombuffer(frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    assert int(image[0:48, 0:64].max()) <= 12  # the mask covers the frame counter box
    report = verify_records(
        [FrameRecord(frame.seq, frame.capture_wall_ns, frame.jpeg), SnapshotRecord(envelope)], trust_root=PKI.root, now=NOW
    )
    assert report.verdict == "authentic"


async def test_stats_report_encoder_and_viewer_figures() -> None:
    pipeline = StreamPipeline(lambda: CountingSource(), SIGNER, PipelineConfig(workers=1))
    try:
        v = await pipeline.subscribe(fps=60)
        for _ in range(5):
            delivery = await v.next()
            assert delivery is not None and delivery.frame is not None
            v.record_sent(delivery.frame, len(delivery.frame.jpeg), delivery.frame.capture_mono_ns + 5_000_000)
        stats = pipeline.stats()
    finally:
        await pipeline.close()
    assert stats["running"] and stats["signed"] and stats["algorithm"] == "ed25519"
    assert stats["frames_encoded"] >= 5 and stats["encode_ms_p50"] > 0
    (vs,) = stats["viewers"]
    assert vs["sent"] == 5 and vs["fps_cap"] == 60 and vs["latency_ms_p50"] == 5.0


def test_bad_fps_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="out of range"):
        viewer(fps=0)


def test_device_options_build_a_signed_masked_pipeline(handoff: Any, device_pki: Any) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    cert = pki.issue_stream_certificate(
        serial="RCTEST000001", public_key=key.public_key(), device_ca_key=device_pki.device_ca_key,
        device_ca_cert=device_pki.device_ca_cert, now=device_pki.device_ca_cert.not_valid_before_utc,
    )
    identity = handoff.data_dir / "identity"
    (identity / "stream.key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (identity / "stream.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))  # leaf only
    parser = argparse.ArgumentParser()
    stream_options(parser)
    args = parser.parse_args(
        ["--stream-source", "synthetic:320x240@15", "--stream-mask", "0,0,32,32:pixelate", "--stream-segment-frames", "15"]
    )
    pipeline = build_pipeline(args, handoff)
    assert pipeline is not None and pipeline.signer is not None and pipeline.signer.device == "RCTEST000001"
    assert pipeline.signer.chain[1] == device_pki.device_ca_cert  # the device CA came from tls.pem
    assert pipeline.config.masks == (MaskRect(0, 0, 32, 32, "pixelate"),) and pipeline.config.frames_per_segment == 15
    assert not pipeline.running  # building it captures nothing
    assert pipeline.signer.frame_hash == "blake3"  # the default: signing < 3 % of an encode
    approved = build_pipeline(parser.parse_args(["--stream-frame-hash", "sha256"]), handoff)
    assert approved is not None and approved.signer is not None and approved.signer.frame_hash == "sha256"
    with pytest.raises(SourceSpecError, match="unknown source kind 'webcam'"):
        build_pipeline(parser.parse_args(["--stream-source", "webcam:0"]), handoff)
    with pytest.raises(MaskError, match="is not X,Y,W,H"):
        build_pipeline(parser.parse_args(["--stream-mask", "everything"]), handoff)
    assert build_pipeline(parser.parse_args(["--stream-signing", "ecdsa-p256-sha256"]), handoff) is not None
    (identity / "stream-p256.key.pem").unlink()
    with pytest.raises(SigningKeyError, match="cannot load stream signing identity"):
        build_pipeline(parser.parse_args(["--stream-signing", "ecdsa-p256-sha256"]), handoff)
    assert build_pipeline(parser.parse_args(["--stream-source", "none"]), handoff) is None


async def test_camera_that_cannot_be_opened_ends_the_stream_with_the_reason() -> None:
    def factory() -> CountingSource:
        raise SourceError("cannot open camera 7 with OpenCV VideoCapture")

    pipeline = StreamPipeline(factory, SIGNER, PipelineConfig(workers=1))
    try:
        v = await pipeline.subscribe()
        end = await v.next()
        assert end is not None and end.frame is None
        (marker,) = end.manifests  # the session still ends with a signed end marker, naming the reason
        assert marker.final and marker.segment == 0
        report = verify_records([ManifestRecord(marker.envelope)], trust_root=PKI.root, now=NOW)
        assert report.complete and report.sessions[0].frames_listed == 0
        assert report.sessions[0].end_reason == "source failed: cannot open camera 7 with OpenCV VideoCapture"
        assert await v.next() is None
        assert v.closed == "source failed: cannot open camera 7 with OpenCV VideoCapture"
        assert pipeline.stats()["last_end_reason"] == v.closed
        with pytest.raises(StreamError, match="no frame available: source failed"):
            await pipeline.snapshot()
    finally:
        await pipeline.close()


async def test_pipeline_stream_ends_with_a_signed_end_marker() -> None:
    pipeline = StreamPipeline(lambda: CountingSource(frames=23), SIGNER, PipelineConfig(frames_per_segment=10, workers=2))
    try:
        records = await collect(await pipeline.subscribe())
    finally:
        await pipeline.close()
    report = verify_records(records, trust_root=PKI.root, now=NOW)
    assert whole_session(report), report.problems
    (session,) = report.sessions
    assert session.total_segments == 3 and session.frames_listed == 23 and session.end_reason == "source ended"


async def test_ending_the_session_hands_every_viewer_the_end_marker() -> None:
    pipeline = StreamPipeline(lambda: CountingSource(), SIGNER, PipelineConfig(frames_per_segment=4, workers=1))
    try:
        first, second = await pipeline.subscribe(), await pipeline.subscribe()
        head = await collect(first, limit=6)
        assert len([r for r in head if isinstance(r, FrameRecord)]) == 6
        assert await pipeline.end_session("server shutting down")  # what web.py does on shutdown
        assert not pipeline.running and first.closed == "server shutting down"
        tail = await collect(first, records=head)
        everything = await collect(second)
    finally:
        await pipeline.close()
    assert isinstance(tail[-1], ManifestRecord)
    for records in (tail, everything):
        report = verify_records(records, trust_root=PKI.root, now=NOW)
        assert report.verdict in ("authentic", "authentic_missing_frames")
        assert report.sessions[0].ends and report.sessions[0].end_reason == "server shutting down"
    assert not await pipeline.end_session("again")  # nothing left to end


async def test_snapshot_during_a_stream_is_a_frame_of_its_session() -> None:
    pipeline = StreamPipeline(lambda: CountingSource(frames=40), SIGNER, PipelineConfig(frames_per_segment=5, workers=1))
    try:
        watcher = await pipeline.subscribe()
        records = await collect(watcher, limit=12)  # the stream is well under way
        sessions = {SESSION_SEEN[watcher.id]}
        frame, envelope = await pipeline.snapshot()
        records = await collect(watcher, records=records)
    finally:
        await pipeline.close()
    assert envelope is not None and {frame.session} == sessions
    snapshot: list[Record] = [FrameRecord(frame.seq, frame.capture_wall_ns, frame.jpeg), SnapshotRecord(envelope)]
    link = link_snapshot(snapshot, records, trust_root=PKI.root, now=NOW)
    assert link.verdict == "in_session", link.detail
    assert link.segment == frame.seq // 5 and link.session == frame.session
    link.check()


async def test_snapshot_without_a_stream_opens_a_session_of_its_own() -> None:
    pipeline = StreamPipeline(lambda: CountingSource(), SIGNER, PipelineConfig(workers=1))
    try:
        frame, envelope = await pipeline.snapshot()
        again, _ = await pipeline.snapshot()
    finally:
        await pipeline.close()
    # A session of its own: its first segment (the frames the encoders already had in
    # flight are in it too; the snapshot is the newest of them).
    assert envelope is not None and (frame.segment, frame.previous) == (0, None)
    assert frame.seq < PipelineConfig().frames_per_segment
    assert again.session != frame.session


def test_owned_frames_are_stamped_in_place_and_shared_ones_copied() -> None:
    config = PipelineConfig(masks=(MaskRect(0, 0, 16, 16),), workers=1)
    params = config.jpeg_params()
    pattern = np.full((120, 160, 3), 200, dtype=np.uint8)
    shared = pattern.copy()
    shared.flags.writeable = False
    jpeg_shared, digest, _ = encode_frame(Frame(0, 0, 0, shared), config, params)
    assert np.array_equal(shared, pattern)  # the source's pixels were not touched
    owned = pattern.copy()
    jpeg_owned, _, _ = encode_frame(Frame(0, 0, 0, owned, owned=True), config, params)
    assert int(owned[0:16, 0:16].max()) == 0 and not np.array_equal(owned, pattern)  # masked in place
    assert jpeg_owned == jpeg_shared and digest == hashlib.sha256(jpeg_shared).digest()  # same pixels encoded
    _, no_digest, _ = encode_frame(Frame(0, 0, 0, shared), config, params, frame_hash=None)
    assert no_digest == b""  # an unsigned stream does not hash
    with pytest.raises(ValueError, match="owned frame needs a writable image"):
        Frame(0, 0, 0, shared, owned=True)


class BrokenFrameSource(CountingSource):
    """Good frames, then one the JPEG encoder refuses (float pixels), then good frames again."""

    def __init__(self, broken_at: int) -> None:
        super().__init__()
        self.broken_at = broken_at

    def read(self) -> Frame | None:
        frame = super().read()
        if frame is not None and frame.seq == self.broken_at:
            return Frame(frame.seq, frame.mono_ns, frame.wall_ns, np.zeros((120, 160, 3), np.float64))
        return frame


async def test_failed_encoding_ends_the_session_after_the_frames_before_it() -> None:
    pipeline = StreamPipeline(lambda: BrokenFrameSource(7), SIGNER, PipelineConfig(frames_per_segment=3, workers=2))
    try:
        v = await pipeline.subscribe()
        records = await collect(v)
    finally:
        await pipeline.close()
    assert v.closed is not None and v.closed.startswith("encoding failed: ")
    frames = [r.seq for r in records if isinstance(r, FrameRecord)]
    assert frames == sorted(frames) and frames[-1] <= 6  # nothing after the broken frame 7 is published
    report = verify_records(records, trust_root=PKI.root, now=NOW)
    assert whole_session(report) and report.sessions[0].frames_listed == 7
    assert report.sessions[0].end_reason == v.closed


async def test_each_frame_is_framed_once_as_the_part_every_viewer_is_sent() -> None:
    from device.stream import multipart
    from refcam.streamwire import PartParser

    pipeline = StreamPipeline(lambda: CountingSource(frames=3), SIGNER, PipelineConfig(workers=2))
    try:
        viewer = await pipeline.subscribe()
        delivery = await viewer.next()
    finally:
        await pipeline.close()
    assert delivery is not None and delivery.frame is not None
    frame = delivery.frame
    head = multipart.frame_part_head(
        seq=frame.seq, capture_wall_ns=frame.capture_wall_ns, session=frame.session, length=len(frame.jpeg)
    )
    assert frame.part == head + frame.jpeg + b"\r\n"
    (part,) = PartParser().feed(frame.part)
    assert part.body == frame.jpeg and part.headers["x-frame-seq"] == str(frame.seq)
