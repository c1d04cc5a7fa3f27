"""``refcam stream record|verify`` against the real management app over TLS on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from device_fixtures import NEW_PASSWORD, PKI, RunningDevice, StartDevice
from stream_fixtures import device_stream_signer, make_pki, pem

from device.stream.pipeline import PipelineConfig, StreamPipeline
from device.stream.signing import SegmentSigner
from device.stream.sources import SyntheticSource
from device.stream.web import add_stream_routes
from refcam.cli import main
from refcam.streamverify import (
    MAGIC,
    FrameRecord,
    ManifestRecord,
    NoteRecord,
    Record,
    encode_record,
    parse_container,
)

FRAMES = 60


@pytest.fixture
async def camera(start_device: StartDevice, device_pki: PKI, tmp_path: Path) -> tuple[RunningDevice, Path]:
    pipeline = StreamPipeline(
        lambda: SyntheticSource(160, 120, 30, frames=FRAMES, paced=False),
        device_stream_signer(device_pki.device_ca_key, device_pki.device_ca_cert),
        PipelineConfig(frames_per_segment=5, workers=1),
    )
    device = await start_device(extensions=[lambda app: add_stream_routes(app, pipeline)])
    await device.admin_token()  # the forced password change is done: NEW_PASSWORD works
    root = tmp_path / "root.pem"
    root.write_bytes(device_pki.root_pem)
    return device, root


async def run(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)


async def test_recorded_stream_verifies(
    camera: tuple[RunningDevice, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    device, root = camera
    monkeypatch.setenv("CAM_PW", NEW_PASSWORD)
    out = tmp_path / "cam.rcs"
    argv = ["stream", "record", device.base, "--ca", str(root), "--user", "admin", "--password-env", "CAM_PW"]
    assert await run([*argv, "--frames", "12", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "recorded 12 frames" in captured.out
    # Not a terminal: progress as plain lines on stderr, ending at 100 %.
    assert captured.err.splitlines()[-2:] == ["recording: 100% (12/12 frames)", "recording: done"]
    assert "\r" not in captured.err
    records = parse_container(out.read_bytes())
    assert sum(isinstance(r, FrameRecord) for r in records) == 12
    assert await run(["stream", "verify", str(out), "--ca", str(root)]) == 0
    output = capsys.readouterr().out
    assert output.splitlines()[-1] in (
        "verdict: authentic",
        "verdict: authentic with missing frames (each noted by the recorder as not sent to it, or after it stopped)",
    )
    # The recorder stopped, the camera did not: authentic, from the start, but no end marker,
    # and the recorder's note says where and why it stopped.
    assert "  recorded from the session's start (segment 0) without an end marker" in output
    assert "  note: no end marker: the recorder stopped after seq " in output
    assert "(frame limit (12) reached; its unsigned note)" in output and "complete: no, see the notes" in output
    assert "removed" not in output
    assert await run(["stream", "verify", str(out), "--ca", str(root), "--require-complete"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("verdict: authentic")

    # One byte changed in one frame: not authentic, exit 1, the frame is named.
    tampered = list(records)
    index = next(i for i, r in enumerate(tampered) if isinstance(r, FrameRecord))
    frame = tampered[index]
    assert isinstance(frame, FrameRecord)
    tampered[index] = FrameRecord(frame.seq, frame.capture_wall_ns, frame.jpeg[:100] + b"\x00" + frame.jpeg[101:])
    bad = tmp_path / "bad.rcs"
    bad.write_bytes(MAGIC + b"".join(encode_record(r) for r in tampered))
    assert await run(["stream", "verify", str(bad), "--ca", str(root)]) == 1
    output = capsys.readouterr().out
    assert f"frame seq {frame.seq} (record {index}): not authentic: JPEG hash differs" in output
    assert output.splitlines()[-1] == "verdict: NOT AUTHENTIC"

    unsigned = tmp_path / "unsigned.rcs"
    unsigned.write_bytes(MAGIC + b"".join(encode_record(r) for r in records if isinstance(r, FrameRecord)))
    assert await run(["stream", "verify", str(unsigned), "--ca", str(root)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "verdict: not signed"


async def test_recorded_snapshot_verifies(
    camera: tuple[RunningDevice, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    device, root = camera
    token = (await device.login("admin", NEW_PASSWORD))["token"]
    monkeypatch.setenv("CAM_TOKEN", token)
    out = tmp_path / "snap.rcs"
    argv = ["stream", "record", device.url("/api/v1/snapshot.jpg"), "--ca", str(root), "--token-env", "CAM_TOKEN"]
    assert await run([*argv, "--out", str(out)]) == 0
    assert await run(["stream", "verify", str(out), "--ca", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "verdict: authentic"


@pytest.mark.parametrize(
    ("url_suffix", "message"),
    [
        ("/api/v1/stream.mjpeg?token=abc", "credentials and query strings do not go in the URL"),
        ("/api/v1/users", "is neither /api/v1/stream.mjpeg nor /api/v1/snapshot.jpg"),
    ],
)
async def test_record_refuses_bad_urls_with_one_line(
    camera: tuple[RunningDevice, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], url_suffix: str, message: str
) -> None:
    device, root = camera
    out = tmp_path / "x.rcs"
    assert await run(["stream", "record", device.base + url_suffix, "--ca", str(root), "--token", "t", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("refcam: error: ")
    assert not out.exists() and not (tmp_path / "x.rcs.part").exists()


async def test_record_refuses_a_camera_the_ca_does_not_vouch_for(
    camera: tuple[RunningDevice, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device, _ = camera
    from stream_fixtures import make_pki, pem

    other_root = tmp_path / "other.pem"
    other_root.write_bytes(pem(make_pki().root))
    out = tmp_path / "x.rcs"
    argv = ["stream", "record", device.base, "--ca", str(other_root), "--token", "t", "--out", str(out)]
    assert await run(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("refcam: error: cannot record") and "CERTIFICATE_VERIFY_FAILED" in err
    assert not out.exists()


async def test_record_with_a_bad_token_fails_with_the_server_reason(
    camera: tuple[RunningDevice, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    device, root = camera
    argv = ["stream", "record", device.base, "--ca", str(root), "--token", "wrong", "--out", str(tmp_path / "x.rcs")]
    assert await run(argv) == 1
    assert "HTTP 401 (authentication_required" in capsys.readouterr().err


def test_verify_refuses_a_file_that_is_not_a_recording(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stream_fixtures import make_pki, pem

    root = tmp_path / "root.pem"
    root.write_bytes(pem(make_pki().root))
    junk = tmp_path / "junk.rcs"
    junk.write_bytes(b"GIF89a")
    assert main(["stream", "verify", str(junk), "--ca", str(root)]) == 1
    err = capsys.readouterr().err
    assert err == "refcam: error: not a refcam stream recording: starts with b'GIF89a', expected b'RCSTRM1\\n'\n"
    assert main(["stream", "verify", str(tmp_path / "none"), "--ca", str(root)]) == 1
    assert "cannot read recording" in capsys.readouterr().err


async def test_recording_until_the_stream_ends_is_complete(
    camera: tuple[RunningDevice, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    device, root = camera
    monkeypatch.setenv("CAM_TOKEN", (await device.login("admin", NEW_PASSWORD))["token"])
    out = tmp_path / "all.rcs"
    argv = ["stream", "record", device.base, "--ca", str(root), "--token-env", "CAM_TOKEN", "--seconds", "60"]
    assert await run([*argv, "--out", str(out)]) == 0  # the 60-frame source ends long before 60 s
    recorded = capsys.readouterr()
    assert "warning" not in recorded.err and "and the session's end marker" in recorded.out
    code = await run(["stream", "verify", str(out), "--ca", str(root), "--json", "--require-complete"])
    report = json.loads(capsys.readouterr().out)
    (session,) = report["sessions"]
    assert session["frames_listed"] == 60 and session["end_reason"] == "source ended"
    assert session["begins"] and session["ends"]
    # The unpaced source outruns the viewer now and then: each frame it lacks is one the
    # server said it did not send, and then --require-complete refuses (naming them).
    assert {gap["kind"] for gap in session["gaps"]} <= {"not_sent"}
    assert report["complete"] is (not session["gaps"]) and code == (0 if report["complete"] else 1)
    assert await run(["stream", "verify", str(out), "--ca", str(root)]) == 0
    output = capsys.readouterr().out
    assert "  recorded from the session's start (segment 0) to its signed end (12 segments; source ended)" in output
    assert ("complete: yes, the whole session" in output) is report["complete"]


@pytest.fixture
async def paced_camera(
    start_device: StartDevice, device_pki: PKI, tmp_path: Path
) -> tuple[RunningDevice, Path, StreamPipeline]:
    pipeline = StreamPipeline(
        lambda: SyntheticSource(160, 120, 30, frames=600),  # paced: 20 s at most
        device_stream_signer(device_pki.device_ca_key, device_pki.device_ca_cert),
        PipelineConfig(frames_per_segment=5, workers=1),
    )
    device = await start_device(extensions=[lambda app: add_stream_routes(app, pipeline)])
    await device.admin_token()
    root = tmp_path / "root.pem"
    root.write_bytes(device_pki.root_pem)
    return device, root, pipeline


async def test_snapshot_is_checked_against_the_recording_of_its_session(
    paced_camera: tuple[RunningDevice, Path, StreamPipeline],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    device, root, pipeline = paced_camera
    monkeypatch.setenv("CAM_TOKEN", (await device.login("admin", NEW_PASSWORD))["token"])
    auth = ["--ca", str(root), "--token-env", "CAM_TOKEN"]
    rec, snap, other = tmp_path / "rec.rcs", tmp_path / "snap.rcs", tmp_path / "other.rcs"
    recording = asyncio.create_task(run(["stream", "record", device.base, *auth, "--frames", "30", "--out", str(rec)]))
    while pipeline.frames_encoded < 5:  # the recorder's session is running
        await asyncio.sleep(0.02)
    assert await run(["stream", "record", device.url("/api/v1/snapshot.jpg"), *auth, "--out", str(snap)]) == 0
    assert await recording == 0
    async with asyncio.timeout(10):
        while pipeline.running:  # the server notices the recorder left and ends that session
            await asyncio.sleep(0.02)
    assert await run(["stream", "record", device.url("/api/v1/snapshot.jpg"), *auth, "--out", str(other)]) == 0
    capsys.readouterr()

    assert await run(["stream", "verify", str(rec), "--ca", str(root), "--snapshot", str(snap)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2].startswith(f"snapshot {snap} (seq ")
    assert ": belongs to the recorded session: frame seq " in lines[-2]
    assert "listed with the same hash in recorded segment" in lines[-2]

    argv = ["stream", "verify", str(rec), "--ca", str(root), "--snapshot", str(snap), "--snapshot", str(other)]
    assert await run(argv) == 1  # a snapshot of a later session does not belong to this recording
    lines = capsys.readouterr().out.splitlines()
    assert ": NOT from a recorded session: the snapshot is from stream session " in lines[-2]
    assert lines[-1].startswith("verdict: authentic")  # the recording itself is fine

    assert await run(["stream", "verify", str(snap), "--ca", str(root), "--snapshot", str(other)]) == 1
    assert "is a snapshot; --snapshot checks snapshots against a stream recording" in capsys.readouterr().err


async def test_an_fps_capped_recording_names_its_gaps_as_not_sent_and_passes(
    paced_camera: tuple[RunningDevice, Path, StreamPipeline], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A real slow viewer: the server skips frames for an fps cap and says so; the recording
    verifies (exit 0), every gap is named as not sent, and --require-complete refuses it."""
    device, root, _ = paced_camera
    monkeypatch.setenv("CAM_PW", NEW_PASSWORD)
    out = tmp_path / "slow.rcs"
    argv = ["stream", "record", device.base, "--ca", str(root), "--user", "admin", "--password-env", "CAM_PW"]
    assert await run([*argv, "--fps", "5", "--frames", "6", "--out", str(out)]) == 0
    capsys.readouterr()
    records = parse_container(out.read_bytes())
    notes = [r for r in records if isinstance(r, NoteRecord)]
    assert any(n.not_sent for n in notes) and notes[-1].stopped  # what the server said, and where it stopped
    assert await run(["stream", "verify", str(out), "--ca", str(root)]) == 0
    output = capsys.readouterr().out
    assert "not sent to the recorder" in output and "removed" not in output
    assert "  note: no end marker: the recorder stopped after seq " in output
    assert await run(["stream", "verify", str(out), "--ca", str(root), "--require-complete"]) == 1
    capsys.readouterr()
    # The same recording without the recorder's notes: the gaps are now removals.
    stripped = tmp_path / "stripped.rcs"
    stripped.write_bytes(MAGIC + b"".join(encode_record(r) for r in records if not isinstance(r, NoteRecord)))
    assert await run(["stream", "verify", str(stripped), "--ca", str(root)]) == 1
    assert "removed from the recording" in capsys.readouterr().out


# -- `refcam stream verify` on tampered recordings: exit 1, with and without --require-complete,
#    and the missing frames named by seq (offline: a recording made with the signer directly) --------

TAMPER_PKI = make_pki()
PER_SEGMENT = 5


def _recording(frames: int = 20) -> list[Record]:
    signer = TAMPER_PKI.stream_signer()
    segments = SegmentSigner(signer, session=os.urandom(16), frames_per_segment=PER_SEGMENT)
    records: list[Record] = []
    for seq in range(frames):
        jpeg = b"\xff\xd8 frame %d" % seq
        wall = 1_763_800_000_000_000_000 + seq * 33_333_333
        records.append(FrameRecord(seq, wall, jpeg))
        envelope = segments.add(seq, signer.frame_digest(jpeg), wall)
        if envelope is not None:
            records.append(ManifestRecord(envelope))
    records.append(ManifestRecord(segments.end(reason="source ended", end_wall_ns=1_763_800_100_000_000_000)))
    return records


def _drop(records: list[Record], seqs: range) -> list[Record]:
    return [r for r in records if not (isinstance(r, FrameRecord) and r.seq in seqs)]


def _manifest_at(records: list[Record], n: int) -> int:
    return [i for i, r in enumerate(records) if isinstance(r, ManifestRecord)][n]


TAMPERS: dict[str, tuple[Callable[[list[Record]], list[Record]], list[str]]] = {
    "one frame": (lambda r: _drop(r, range(7, 8)), ["seq 7 (segment 1, captured 2025-11-22T08:26:40.233Z)"]),
    "a segment, manifest kept": (lambda r: _drop(r, range(5, 10)), ["seq 5..9 (segment 1, captured "]),
    "a segment with its manifest": (
        lambda r: r[: _manifest_at(r, 0) + 1] + r[_manifest_at(r, 1) + 1 :],
        ["seq 5..9 (segment 1, manifests missing too, captured between 2025-11-22T08:26:40.133Z and 2025-11-22T08:26:40.333Z)",
         "segments 1..1 are missing: removed"],
    ),
    "the head": (lambda r: r[_manifest_at(r, 0) + 1 :], ["seq 0..4 (segment 0, manifests missing too, captured before 2025-11-22T08:26:40.166Z)"]),
    "the tail, end marker kept": (lambda r: _drop(r, range(15, 20)), ["seq 15..19 (segment 3, captured "]),
    "the tail with the end marker": (
        lambda r: r[: _manifest_at(r, 2) + 1],
        ["the end is missing: no end marker after segment 2 (seq 14, captured 2025-11-22T08:26:40.466Z)"],
    ),
    "the tail's frames and the end marker": (
        lambda r: _drop(r, range(17, 20))[:-1],
        ["seq 17..19 (segment 3, captured ", "the end is missing: no end marker after segment 3 (seq 19"],
    ),
}


@pytest.mark.parametrize("require_complete", [False, True], ids=["plain", "require-complete"])
@pytest.mark.parametrize("tamper", list(TAMPERS))
def test_verify_names_what_was_removed_and_fails(
    tamper: str, require_complete: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cut, named = TAMPERS[tamper]
    root, path = tmp_path / "root.pem", tmp_path / "cut.rcs"
    root.write_bytes(pem(TAMPER_PKI.root))
    path.write_bytes(MAGIC + b"".join(encode_record(r) for r in cut(_recording())))
    argv = ["stream", "verify", str(path), "--ca", str(root)] + (["--require-complete"] if require_complete else [])
    assert main(argv) == 1
    output = capsys.readouterr().out
    for text in named:
        assert text in output, output
    assert output.splitlines()[-1] == "verdict: NOT AUTHENTIC"


def test_verify_tells_frames_not_sent_apart_from_removed_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = _recording()
    session = json.loads(base64.b64decode(json.loads(records[_manifest_at(records, 0)].envelope)["payload"]))["session"]  # type: ignore[union-attr]
    recorded = [NoteRecord(session, ((3, 4),)), *_drop(records, range(3, 5))]  # the server did not send 3..4
    root, path = tmp_path / "root.pem", tmp_path / "slow.rcs"
    root.write_bytes(pem(TAMPER_PKI.root))
    path.write_bytes(MAGIC + b"".join(encode_record(r) for r in recorded))
    assert main(["stream", "verify", str(path), "--ca", str(root)]) == 0
    output = capsys.readouterr().out
    assert "  missing: frames seq 3..4 (segment 0, captured 2025-11-22T08:26:40.099Z..2025-11-22T08:26:40.133Z): not sent to the recorder" in output
    assert main(["stream", "verify", str(path), "--ca", str(root), "--require-complete", "--all-frames"]) == 1
    output = capsys.readouterr().out
    assert "    frame seq 3: missing (not sent), captured 2025-11-22T08:26:40.099Z" in output
    # The same recording with one more frame cut, that no note covers: refused, and told apart.
    path.write_bytes(MAGIC + b"".join(encode_record(r) for r in _drop(recorded, range(9, 10))))
    assert main(["stream", "verify", str(path), "--ca", str(root)]) == 1
    output = capsys.readouterr().out
    assert "  missing: frames seq 3..4 (segment 0, " in output and "not sent to the recorder" in output
    assert "  missing: frames seq 9 (segment 1, captured 2025-11-22T08:26:40.299Z): removed from the recording" in output
