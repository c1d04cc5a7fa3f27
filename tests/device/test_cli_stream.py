"""``refcam stream record|verify`` against the real management app over TLS on loopback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from device_fixtures import NEW_PASSWORD, PKI, RunningDevice, StartDevice
from stream_fixtures import device_stream_signer

from device.stream.pipeline import PipelineConfig, StreamPipeline
from device.stream.sources import SyntheticSource
from device.stream.verify import MAGIC, FrameRecord, encode_record, parse_container
from device.stream.web import add_stream_routes
from refcam.cli import main

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
    assert output.splitlines()[-1] in ("verdict: authentic", "verdict: authentic with missing frames (normal for a slow viewer)")
    # The recorder stopped, the camera did not: authentic, from the start, but no end marker.
    assert "  recorded from the session's start (segment 0) without an end marker" in output
    assert "  note: no end marker: the end may have been cut" in output and "complete: no, see the notes" in output
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
    assert await run(["stream", "verify", str(out), "--ca", str(root), "--json", "--require-complete"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["complete"] is True and report["sessions"][0]["frames_listed"] == 60
    assert report["sessions"][0]["end_reason"] == "source ended"
    assert await run(["stream", "verify", str(out), "--ca", str(root)]) == 0
    output = capsys.readouterr().out
    assert "  recorded from the session's start (segment 0) to its signed end (12 segments; source ended)" in output
    assert "complete: yes, the whole session" in output


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
