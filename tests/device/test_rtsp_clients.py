"""RTSPS with real clients: Debian's ffprobe/ffmpeg and PyAV, through the device's TLS and Digest."""

from __future__ import annotations

import pytest
from device_fixtures import NEW_PASSWORD
from rtsp_fixtures import FFPROBE, ffprobe, rtsp_args, rtsp_extensions, server_of, streams_json

pytestmark = pytest.mark.skipif(FFPROBE is None, reason="needs Debian ffmpeg (.ci/system-deps.sh)")


async def test_ffprobe_reads_h264_and_mjpeg_with_digest(start_device, handoff) -> None:  # type: ignore[no-untyped-def]
    device = await start_device(extensions=rtsp_extensions(handoff, rtsp_args()))
    await device.admin_token()
    port = server_of(device).port
    h264 = await ffprobe(f"rtsps://admin:{NEW_PASSWORD.replace(' ', '%20')}@127.0.0.1:{port}/h264")
    assert h264.returncode == 0, h264.stderr
    (video,) = streams_json(h264)
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    assert video["profile"] == "Constrained Baseline"
    mjpeg = await ffprobe(f"rtsps://admin:{NEW_PASSWORD.replace(' ', '%20')}@127.0.0.1:{port}/mjpeg")
    assert mjpeg.returncode == 0, mjpeg.stderr
    (video,) = streams_json(mjpeg)
    assert (video["codec_name"], video["width"], video["height"]) == ("mjpeg", 320, 240)
