"""RTSPS with real clients: Debian's ffprobe/ffmpeg and PyAV, through the device's TLS and Digest."""

from __future__ import annotations

import sys
from urllib.parse import quote

from device_fixtures import NEW_PASSWORD
from rtsp_fixtures import (
    FFMPEG,
    FFPROBE,
    ffprobe,
    root_file,
    rtsp_args,
    rtsp_extensions,
    run,
    server_of,
    streams_json,
)

assert FFPROBE, "Debian ffmpeg is missing: make sysdeps (.ci/system-deps.sh) installs it"


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


def _url(port: int, path: str = "/h264", password: str = NEW_PASSWORD, user: str = "admin") -> str:
    return f"rtsps://{user}:{quote(password, safe='')}@127.0.0.1:{port}{path}"


async def test_ffprobe_is_refused_without_and_with_wrong_credentials(start_device, handoff) -> None:  # type: ignore[no-untyped-def]
    device = await start_device(extensions=rtsp_extensions(handoff, rtsp_args()))
    await device.admin_token()
    port = server_of(device).port
    anonymous = await ffprobe(f"rtsps://127.0.0.1:{port}/h264")
    assert anonymous.returncode != 0 and "401" in anonymous.stderr, anonymous.stderr
    wrong = await ffprobe(_url(port, password="not the password"))
    assert wrong.returncode != 0 and "401" in wrong.stderr, wrong.stderr


async def test_sha256_only_device_refuses_md5_only_ffmpeg(start_device, handoff) -> None:  # type: ignore[no-untyped-def]
    """Without the declared MD5 compatibility option, FFmpeg (MD5 only) cannot log in."""
    device = await start_device(extensions=rtsp_extensions(handoff, rtsp_args(md5=False)))
    await device.admin_token()
    result = await ffprobe(_url(server_of(device).port))
    assert result.returncode != 0, result.stdout


PYAV_OPEN = """
import sys, av
url, ca = sys.argv[1], sys.argv[2]
opts = {"rtsp_transport": "tcp", "tls_verify": "1", "ca_file": ca}
try:
    with av.open(url, options=opts, timeout=20) as c:
        s = c.streams.video[0]
        frames = 0
        for frame in c.decode(s):
            frames += 1
            if frames == 5:
                break
        print("OPENED", s.codec_context.name, frame.width, frame.height, frames)
except Exception as e:
    print("FAILED", type(e).__name__, e)
"""


async def test_pyav_opens_the_same_url_and_verifies_the_chain(start_device, handoff, device_pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    device = await start_device(extensions=rtsp_extensions(handoff, rtsp_args()))
    await device.admin_token()
    port = server_of(device).port
    root = root_file(tmp_path, device_pki.root_pem)
    ok = await run(sys.executable, "-c", PYAV_OPEN, _url(port), str(root))
    assert ok.stdout.startswith("OPENED h264 320 240 5"), ok.stdout + ok.stderr
    other = tmp_path / "other-root.pem"
    other.write_bytes(_other_root())
    refused = await run(sys.executable, "-c", PYAV_OPEN, _url(port), str(other))
    print("with a foreign root:", refused.stdout)
    assert refused.stdout.startswith("FAILED"), refused.stdout


def _other_root() -> bytes:
    import datetime as dt

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from bootloader.keys import make_ca_certificate

    key = ec.generate_private_key(ec.SECP256R1())
    cert = make_ca_certificate(
        key=key, common_name="not the manufacturer", now=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
        lifetime=dt.timedelta(days=30), path_length=1,
    )
    return cert.public_bytes(serialization.Encoding.PEM)


async def test_ffmpeg_records_h264_and_the_file_plays(start_device, handoff, tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert FFMPEG
    device = await start_device(extensions=rtsp_extensions(handoff, rtsp_args()))
    await device.admin_token()
    out = tmp_path / "rec.mkv"
    rec = await run(
        FFMPEG, "-v", "error", "-rtsp_transport", "tcp", "-i", _url(server_of(device).port),
        "-c", "copy", "-frames:v", "45", "-y", str(out), timeout=90,
    )
    assert rec.returncode == 0, rec.stderr
    probe = await run(
        FFPROBE or "ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", str(out)
    )
    (video,) = streams_json(probe)
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 320, 240)
    assert int(video["nb_read_frames"]) == 45


async def test_privacy_mask_is_applied_before_encoding(start_device, handoff, device_pki, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Decoded H.264 frames are black where the mask is (the synthetic pattern is not)."""
    from device.stream.masks import parse_masks

    masks = parse_masks(["0,0,160,120:black"])
    device = await start_device(extensions=rtsp_extensions(handoff, rtsp_args(), masks=masks))
    await device.admin_token()
    root = root_file(tmp_path, device_pki.root_pem)
    script = PYAV_OPEN.replace(
        'print("OPENED", s.codec_context.name, frame.width, frame.height, frames)',
        'import numpy as np; img = frame.to_ndarray(format="gray"); '
        'print("OPENED", int(img[8:112, 8:152].max()), int(img[130:230, 170:310].max()))',
    )
    result = await run(sys.executable, "-c", script, _url(server_of(device).port), str(root))
    assert result.stdout.startswith("OPENED"), result.stdout + result.stderr
    masked_max, open_max = (int(v) for v in result.stdout.split()[1:3])
    assert masked_max < 40 and open_max > 100, result.stdout
