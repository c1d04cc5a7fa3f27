"""Stream routes served by the real management app over TLS: access control, parts, signatures."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from cryptography import x509
from device_fixtures import INITIAL_PASSWORD, PKI, RunningDevice, StartDevice
from hypothesis import given, settings
from hypothesis import strategies as st
from stream_fixtures import device_stream_signer

from device.stream import multipart
from device.stream.errors import FormatError
from device.stream.multipart import (
    CONTENT_TYPE,
    END_CONTENT_TYPE,
    MANIFEST_CONTENT_TYPE,
    SIGNED_CONTENT_TYPES,
)
from device.stream.pipeline import PipelineConfig, StreamPipeline
from device.stream.signing import StreamSigner
from device.stream.sources import SyntheticSource
from device.stream.web import SIGNATURE_HEADER, add_stream_routes
from refcam.streamverify import (
    FrameRecord,
    ManifestRecord,
    NoteRecord,
    Record,
    SnapshotRecord,
    verify_records,
)
from refcam.streamwire import PartParser, parse_ranges

ROUTES = ("/api/v1/stream.mjpeg", "/api/v1/snapshot.jpg", "/api/v1/stream/stats")
FRAMES = 40


def signer_for(device_pki: PKI) -> StreamSigner:
    return device_stream_signer(device_pki.device_ca_key, device_pki.device_ca_cert)


def pki_now(device_pki: PKI) -> Any:
    return device_pki.device_ca_cert.not_valid_before_utc


@pytest.fixture
async def streaming(start_device: StartDevice, device_pki: PKI) -> tuple[RunningDevice, StreamPipeline]:
    pipeline = StreamPipeline(
        lambda: SyntheticSource(160, 120, 30, frames=FRAMES, paced=False),
        signer_for(device_pki),
        PipelineConfig(frames_per_segment=5, workers=1),
    )
    device = await start_device(extensions=[lambda app: add_stream_routes(app, pipeline)])
    return device, pipeline


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_every_stream_route_refuses_anonymous_and_pre_password_change_access(
    streaming: tuple[RunningDevice, StreamPipeline],
) -> None:
    device, pipeline = streaming
    first = await device.login("admin", INITIAL_PASSWORD)  # must still change the label password
    async with device.client() as s:
        for route in ROUTES:
            async with s.get(device.url(route)) as r:
                assert r.status == 401, route
                assert (await r.json())["error"] == "authentication_required"
            async with s.get(device.url(route), headers=bearer(first["token"])) as r:
                assert r.status == 403, route
                assert (await r.json())["error"] == "password_change_required"
            async with s.get(device.url(route + "?token=" + first["token"])) as r:
                assert r.status == 401, route  # a token in the URL is not a credential
    assert pipeline.sessions_started == 0 and pipeline.frames_encoded == 0  # nothing was captured


async def read_stream(device: RunningDevice, token: str, query: str = "") -> tuple[list[Record], Any]:
    parser = PartParser()
    records: list[Record] = []
    async with device.client() as s, s.get(device.url("/api/v1/stream.mjpeg" + query), headers=bearer(token)) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == CONTENT_TYPE
        assert r.headers["Cache-Control"] == "no-store"
        async for chunk in r.content.iter_any():
            for part in parser.feed(chunk):
                not_sent = parse_ranges(part.headers.get("x-frames-not-sent", ""))
                if not_sent:  # what the server did not send this viewer, as the recorder keeps it
                    records.append(NoteRecord(part.headers["x-stream-session"], not_sent))
                records.extend(ManifestRecord(m) for m in part.manifests)
                if part.headers["content-type"] in SIGNED_CONTENT_TYPES:
                    records.append(ManifestRecord(part.body))
                else:
                    assert part.headers["content-type"] == "image/jpeg"
                    assert part.body.startswith(b"\xff\xd8")
                    seq, ts = int(part.headers["x-frame-seq"]), int(part.headers["x-capture-timestamp"])
                    records.append(FrameRecord(seq, ts, part.body))
    assert parser.closed  # the stream ended with the close delimiter
    return records, r


async def test_stream_parts_carry_seq_timestamps_and_verifiable_manifests(
    streaming: tuple[RunningDevice, StreamPipeline], device_pki: PKI
) -> None:
    device, _pipeline = streaming
    token = await device.admin_token()
    records, _ = await read_stream(device, token)
    frames = [r for r in records if isinstance(r, FrameRecord)]
    assert frames and [f.seq for f in frames] == sorted({f.seq for f in frames})
    root = x509.load_pem_x509_certificate(device_pki.root_pem)
    report = verify_records(records, trust_root=root, now=pki_now(device_pki))
    assert report.verdict in ("authentic", "authentic_missing_frames"), report.problems
    assert report.sessions[0].frames_listed == FRAMES and report.sessions[0].segments == FRAMES // 5
    (session,) = report.sessions
    assert session.begins and session.ends and session.end_reason == "source ended"  # the end marker came last
    # Every frame this viewer lacks is one the server said it did not send: none is "removed".
    assert {g.kind for g in session.gaps} <= {"not_sent"}
    assert report.complete == (not session.gaps)


async def test_stream_rejects_bad_and_unknown_query_parameters(streaming: tuple[RunningDevice, StreamPipeline]) -> None:
    device, pipeline = streaming
    token = await device.admin_token()
    async with device.client() as s:
        for query, code in (("?fps=abc", "bad_fps"), ("?fps=0", "bad_fps"), ("?fps=nan", "bad_fps"), ("?password=x", "unknown_parameter")):
            async with s.get(device.url("/api/v1/stream.mjpeg" + query), headers=bearer(token)) as r:
                assert r.status == 400, query
                assert (await r.json())["error"] == code
    assert pipeline.sessions_started == 0


async def test_snapshot_carries_a_verifiable_signature(
    streaming: tuple[RunningDevice, StreamPipeline], device_pki: PKI
) -> None:
    device, _ = streaming
    token = await device.admin_token()
    async with device.client() as s, s.get(device.url("/api/v1/snapshot.jpg"), headers=bearer(token)) as r:
        assert r.status == 200 and r.content_type == "image/jpeg"
        jpeg = await r.read()
        frame = FrameRecord(int(r.headers["X-Frame-Seq"]), int(r.headers["X-Capture-Timestamp"]), jpeg)
        signature = r.headers[SIGNATURE_HEADER].encode("ascii")
    root = x509.load_pem_x509_certificate(device_pki.root_pem)
    good = verify_records([frame, SnapshotRecord(signature)], trust_root=root, now=pki_now(device_pki))
    assert good.verdict == "authentic"
    forged = FrameRecord(frame.seq, frame.capture_wall_ns, jpeg[:-2] + b"\x00\xd9")
    bad = verify_records([forged, SnapshotRecord(signature)], trust_root=root, now=pki_now(device_pki))
    assert bad.verdict == "not_authentic"


async def test_stats_route_reports_pipeline_figures(streaming: tuple[RunningDevice, StreamPipeline]) -> None:
    device, _ = streaming
    token = await device.admin_token()
    async with device.client() as s, s.get(device.url("/api/v1/stream/stats"), headers=bearer(token)) as r:
        assert r.status == 200
        stats = json.loads(await r.text())
    assert {"running", "fps", "encode_ms_p50", "encode_ms_p99", "viewers", "signed"} <= set(stats)
    assert stats["signed"] is True and stats["viewers"] == []


async def test_logging_out_ends_a_running_stream(start_device: StartDevice, device_pki: PKI) -> None:
    pipeline = StreamPipeline(
        lambda: SyntheticSource(160, 120, 30),  # paced and endless: only the logout can end it
        signer_for(device_pki),
        PipelineConfig(frames_per_segment=5, workers=1),
    )
    device = await start_device(extensions=[lambda app: add_stream_routes(app, pipeline, reauth_interval=0.05)])
    token = await device.admin_token()
    parser = PartParser()
    parts_before = parts_after = 0
    async with device.client() as s, s.get(device.url("/api/v1/stream.mjpeg"), headers=bearer(token)) as r:
        assert r.status == 200
        while parts_before < 3:
            parts_before += len(parser.feed(await r.content.readany()))
        async with s.delete(device.url("/api/v1/session"), headers=bearer(token)) as out:
            assert out.status in (200, 204)

        async def drain() -> None:
            nonlocal parts_after
            while chunk := await r.content.readany():
                parts_after += len(parser.feed(chunk))

        await asyncio.wait_for(drain(), timeout=10)  # the server ends the response by itself
    assert parts_after < 30  # stopped within the re-check interval, not after the source
    await pipeline.idle()
    assert not pipeline.running  # the last viewer left: capture stopped


async def test_server_shutdown_ends_every_stream_with_the_end_marker(
    start_device: StartDevice, device_pki: PKI
) -> None:
    pipeline = StreamPipeline(
        lambda: SyntheticSource(160, 120, 30),  # paced and endless: only the shutdown can end it
        signer_for(device_pki),
        PipelineConfig(frames_per_segment=5, workers=1),
    )
    device = await start_device(extensions=[lambda app: add_stream_routes(app, pipeline)])
    token = await device.admin_token()
    records: list[Record] = []
    parser = PartParser()
    started = asyncio.Event()

    async def watch() -> None:
        async with device.client() as s, s.get(device.url("/api/v1/stream.mjpeg"), headers=bearer(token)) as r:
            async for chunk in r.content.iter_any():
                for part in parser.feed(chunk):
                    records.extend(ManifestRecord(m) for m in part.manifests)
                    if part.headers["content-type"] in SIGNED_CONTENT_TYPES:
                        records.append(ManifestRecord(part.body))
                    else:
                        records.append(FrameRecord(int(part.headers["x-frame-seq"]), int(part.headers["x-capture-timestamp"]), part.body))
                        if len(records) > 12:
                            started.set()

    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(started.wait(), timeout=10)
    device.stopped = True
    await asyncio.wait_for(device.runner.cleanup(), timeout=20)  # the firmware shuts down while streaming
    await asyncio.wait_for(watcher, timeout=10)
    assert parser.closed  # the response ended with the close delimiter, not a reset
    root = x509.load_pem_x509_certificate(device_pki.root_pem)
    report = verify_records(records, trust_root=root, now=pki_now(device_pki))
    assert report.verdict in ("authentic", "authentic_missing_frames"), report.problems
    (session,) = report.sessions
    assert session.begins and session.ends and session.end_reason == "server shutting down"
    assert report.complete


def wire(frames: int) -> tuple[bytes, list[tuple[int, bytes, tuple[bytes, ...]]]]:
    """A multipart body as the server writes it, and what each part carries."""
    expected: list[tuple[int, bytes, tuple[bytes, ...]]] = []
    data = b""
    for seq in range(frames):
        body = b"\xff\xd8" + bytes([seq]) * (seq * 7 + 1)
        manifests = (b'{"payload":"x%d","k":[1,2]}' % seq,) if seq % 3 == 2 else ()
        data += multipart.frame_part_head(
            seq=seq, capture_wall_ns=10**18 + seq, session="ab" * 16, length=len(body), manifests=manifests
        )
        data += body + b"\r\n"
        expected.append((seq, body, manifests))
    tail = multipart.manifest_part(b'{"last":1}') + multipart.manifest_part(b'{"end":1}', final=True)
    return data + tail + multipart.close_delimiter(), expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=97), min_size=1, max_size=40))
def test_part_parser_reassembles_parts_from_any_chunking(cuts: list[int]) -> None:
    data, expected = wire(8)
    parser = PartParser()
    parts = []
    offset = 0
    for n in cuts * 100:
        if offset >= len(data):
            break
        parts += parser.feed(data[offset : offset + n])
        offset += n
    parts += parser.feed(data[offset:])
    assert parser.closed
    frames = [p for p in parts if p.headers["content-type"] == "image/jpeg"]
    assert [(int(p.headers["x-frame-seq"]), p.body, p.manifests) for p in frames] == expected
    assert parts[-2].headers["content-type"] == MANIFEST_CONTENT_TYPE and parts[-2].body == b'{"last":1}'
    assert parts[-1].headers["content-type"] == END_CONTENT_TYPE and parts[-1].body == b'{"end":1}'


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_part_parser_refuses_garbage_cleanly(garbage: bytes) -> None:
    parser = PartParser()
    try:
        parser.feed(b"--" + multipart.BOUNDARY.encode() + b"\r\n" + garbage)
        parser.feed(garbage)
    except FormatError:
        pass


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", "expected the multipart delimiter"),
        (b"--refcam-frame-7d1e\r\nContent-Type: image/jpeg\r\n\r\n", "Content-Length '' is missing"),
        (b"--refcam-frame-7d1e\r\nContent-Length: 2\r\n\r\nabcd", "not followed by CRLF"),
        (b"--refcam-frame-7d1e\r\nno colon here\r\n\r\n", "malformed part header line"),
    ],
)
def test_part_parser_names_the_problem(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        PartParser().feed(data)
