"""Signed H.264 over RTSPS: `refcam stream record` then `refcam stream verify`, and tampering."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from device_fixtures import NEW_PASSWORD, SERIAL
from rtsp_fixtures import root_file, rtsp_args, rtsp_extensions, run, server_of, streams_json

from device.rtsp.rtp import annexb, split_annexb

REFCAM = [sys.executable, "-m", "refcam.cli"]


async def _record(start_device, handoff, device_pki, tmp_path: Path, *, flaws=(), frames: int = 70):  # type: ignore[no-untyped-def]
    device = await start_device(extensions=rtsp_extensions(handoff, rtsp_args(flaws=flaws)))
    await device.admin_token()
    root = root_file(tmp_path, device_pki.root_pem)
    out = tmp_path / "rec.h264"
    result = await run(
        *REFCAM, "stream", "record", f"rtsps://127.0.0.1:{server_of(device).port}/h264", "--out", str(out),
        "--ca", str(root), "--user", "admin", "--password-env", "CAM_PW", "--frames", str(frames),
        env={"CAM_PW": NEW_PASSWORD}, timeout=90,
    )
    assert result.returncode == 0, result.stderr
    return out, root


async def _verify(path: Path, root: Path) -> tuple[int, str]:
    result = await run(*REFCAM, "stream", "verify", str(path), "--ca", str(root))
    return result.returncode, result.stdout + result.stderr


async def test_recorded_signed_h264_verifies_and_tampering_is_named(start_device, handoff, device_pki, oms_tool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out, root = await _record(start_device, handoff, device_pki, tmp_path)
    probe = await run("ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(out))
    (video,) = streams_json(probe)
    assert (video["codec_name"], video["width"], video["height"], video["nb_read_frames"]) == ("h264", 320, 240, "70")
    code, text = await _verify(out, root)
    assert code == 0, text
    assert "GOP 1: authentic" in text and "verdict: authentic" in text
    assert f"signed by serial {SERIAL}" in text
    # ONVIF's reference validator agrees: authentic, provenance proven to the manufacturer root
    reference = await run(str(oms_tool), "validate", str(root), str(out))
    summary = reference.stdout.splitlines()[-1]
    assert "authenticity=4 provenance=3" in summary and f"serial={SERIAL}" in summary, reference.stdout

    nals = split_annexb(out.read_bytes())
    starts = _gop_nal_starts(nals)
    assert len(starts) >= 4, text
    # cut GOP at index 2 out of the file
    cut = nals[: starts[2]] + nals[starts[3] :]
    cut_file = tmp_path / "cut.h264"
    cut_file.write_bytes(annexb(cut))
    code, text = await _verify(cut_file, root)
    assert code == 1, text
    assert "is missing from the recording" in text and "verdict: not_authentic" in text

    # one byte of a slice in the GOP at index 1 changed
    index = next(i for i in range(starts[1], starts[2]) if nals[i][0] & 0x1F == 1)
    changed = list(nals)
    body = bytearray(changed[index])
    body[len(body) // 2] ^= 0x01
    changed[index] = bytes(body)
    changed_file = tmp_path / "changed.h264"
    changed_file.write_bytes(annexb(changed))
    code, text = await _verify(changed_file, root)
    assert code == 1, text
    assert "tampered" in text and "differs" in text


def _gop_nal_starts(nals: list[bytes]) -> list[int]:
    """Index of the first NAL (the SPS) of each GOP."""
    return [i for i, n in enumerate(nals) if n[0] & 0x1F == 7]


async def test_unsigned_stream_flaw_verifies_as_unsigned(start_device, handoff, device_pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out, root = await _record(start_device, handoff, device_pki, tmp_path, flaws=("unsigned-stream",), frames=40)
    code, text = await _verify(out, root)
    assert code == 1 and "verdict: not_signed" in text, text
    await asyncio.sleep(0)


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
