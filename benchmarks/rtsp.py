"""RTSPS H.264 fan-out: fps per viewer, capture-to-send latency, server CPU, against a bare libx264 encode.

All in one run, on the same pre-rendered synthetic frames (default 1080p):

1. bare: ``H264Encoder.encode`` (PyAV/libx264, ultrafast, zerolatency,
   baseline, one key frame a second) of the frames in a loop: frames/s;
2. ratio: the RTSPS server (``device.rtsp``, real TLS from a tmp-generated
   chain, signed GOPs) with one viewer and an unpaced source: frames/s the
   viewer receives / bare frames/s, bracketed by two bare runs (the machine
   may be shared; the mean of the two is the baseline);
3. paced at ``--fps`` (30) to 1, 10 and 20 viewers (a separate process,
   raw TLS sockets, RTSP DESCRIBE/SETUP/PLAY, counting RTP marker bits):
   frames/s per viewer (min / median), capture-to-send p50 / p99 (server
   side: the capture time of the frame to the write of its last packet),
   server process CPU (user + system seconds per wall second);
4. signing cost: the GOP signer's time per frame (hashing every NAL unit,
   one signature per GOP) as a percentage of the encode time.

Authentication is not measured (the viewers are admitted by a fixed
authenticator; Digest costs one HMAC and one hash per request, not per frame).
The last line is ``ratio: X.XX``. Targets (issue 19): 20 viewers at 30 fps
with p99 <= 100 ms; ratio >= 0.9; signing < 3 % of an encode::

    .venv/bin/python benchmarks/rtsp.py [--seconds 5] [--size 1920x1080] [--viewers 1,10,20]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import resource
import ssl
import statistics
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bootloader import pki
from bootloader.keys import make_ca_certificate
from common import tls
from device.rtsp.auth import Principal
from device.rtsp.media import H264Encoder, H264Stream
from device.rtsp.mediasign import GopSigner
from device.rtsp.server import RtspConfig, RtspServer
from device.stream.signing import StreamSigner
from device.stream.sources import Frame

SERIAL = "RCBENCH0001"


class FixedAuth:
    """Admits every request (authentication is not what is measured here)."""

    def authenticate(self, request: Any, *, source: str, now: float) -> Principal:
        return Principal("bench", "viewer")


class FrameRing:
    """Pre-rendered frames, read as a camera delivers them (paced or not)."""

    def __init__(self, frames: list[np.ndarray[Any, Any]], fps: float | None) -> None:
        self.frames, self.fps, self.seq = frames, fps, 0
        self.start = time.monotonic()

    def read(self) -> Frame | None:
        if self.fps:
            due = self.start + self.seq / self.fps
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        image = self.frames[self.seq % len(self.frames)]
        frame = Frame(self.seq, time.monotonic_ns(), time.time_ns(), image, owned=False)
        self.seq += 1
        return frame

    def close(self) -> None:
        return


def make_frames(width: int, height: int, count: int = 30) -> list[np.ndarray[Any, Any]]:
    rng = np.random.default_rng(7)
    base = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    frames = []
    for i in range(count):
        frame = np.roll(base, i * 4, axis=1).copy()
        frame.flags.writeable = False
        frames.append(frame)
    return frames


def bare_fps(frames: list[np.ndarray[Any, Any]], seconds: float, fps: float) -> tuple[float, float]:
    height, width = frames[0].shape[:2]
    encoder = H264Encoder(width, height, fps)
    start, n, encode_ns = time.perf_counter(), 0, []
    while time.perf_counter() - start < seconds:
        t = time.perf_counter_ns()
        encoder.encode(frames[n % len(frames)], n * 3000)
        encode_ns.append(time.perf_counter_ns() - t)
        n += 1
    return n / (time.perf_counter() - start), statistics.median(encode_ns) / 1e6


def make_pki(directory: Path) -> tuple[Path, Path, Path, StreamSigner]:
    now = dt.datetime.now(dt.UTC)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_ca_certificate(key=root_key, common_name="bench root", now=now - dt.timedelta(days=1),
                               lifetime=dt.timedelta(days=30), path_length=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_ca_certificate(key=ca_key, common_name="bench device CA", now=now - dt.timedelta(days=1),
                             lifetime=dt.timedelta(days=30), path_length=0, issuer_key=root_key, issuer_cert=root)
    tls_key = ec.generate_private_key(ec.SECP256R1())
    leaf = pki.issue_tls_certificate(serial=SERIAL, public_key=tls_key.public_key(), device_ca_key=ca_key,
                                     device_ca_cert=ca, now=now - dt.timedelta(hours=1), days=30)
    stream_key = ec.generate_private_key(ec.SECP256R1())  # ONVIF Media Signing: ECDSA P-256
    stream_cert = pki.issue_stream_certificate(serial=SERIAL, public_key=stream_key.public_key(),
                                               device_ca_key=ca_key, device_ca_cert=ca, now=now - dt.timedelta(hours=1))
    pem = serialization.Encoding.PEM
    chain, key, root_file = directory / "tls.pem", directory / "tls.key.pem", directory / "root.pem"
    chain.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key.write_bytes(tls_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.chmod(key, 0o600)
    root_file.write_bytes(root.public_bytes(pem))
    return chain, key, root_file, StreamSigner(stream_key, [stream_cert, ca], device=SERIAL)


# -- viewers (a separate process) ---------------------------------------------------


async def _viewer(port: int, root: str, seconds: float, results: list[int]) -> None:
    ctx = ssl.create_default_context(cafile=root)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname="localhost")
    url = f"rtsps://localhost:{port}/h264"

    async def request(method: str, uri: str, cseq: int, extra: str = "") -> dict[str, str]:
        writer.write(f"{method} {uri} RTSP/1.0\r\nCSeq: {cseq}\r\n{extra}\r\n".encode())
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:]) if k}
        await reader.readexactly(int(headers.get("content-length", "0")))
        return headers

    await request("DESCRIBE", url, 1)
    setup = await request("SETUP", url + "/trackID=0", 2, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n")
    session = setup["session"].split(";")[0]
    await request("PLAY", url, 3, f"Session: {session}\r\n")
    frames, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        header = await reader.readexactly(4)
        size = struct.unpack("!H", header[2:])[0]
        packet = await reader.readexactly(size)
        if packet[1] & 0x80:
            frames += 1
    results.append(frames)
    writer.close()


def viewers_main(port: int, root: str, count: int, seconds: float, queue: Any) -> None:
    async def main() -> list[int]:
        results: list[int] = []
        await asyncio.gather(*(_viewer(port, root, seconds, results) for _ in range(count)))
        return results

    queue.put(asyncio.run(main()))


async def run_server(
    frames: list[np.ndarray[Any, Any]], fps: float | None, viewers: int, seconds: float,
    files: tuple[Path, Path, Path, StreamSigner], fps_hint: float,
) -> dict[str, Any]:
    chain, key, root, signer = files
    stream = H264Stream(lambda: FrameRing(frames, fps), overlay=False, fps_hint=fps_hint,
                        signer_factory=lambda: GopSigner(signer), max_queue=30)
    config = RtspConfig(port=0, max_sessions=64, max_sessions_per_client=64, max_connections=128)
    server = RtspServer({"/h264": stream}, FixedAuth(), config)  # type: ignore[arg-type]
    port = await server.start(tls.server_context(chain, key, profile="intermediate"))
    queue: Any = multiprocessing.get_context("spawn").Queue()
    proc = multiprocessing.get_context("spawn").Process(
        target=viewers_main, args=(port, str(root), viewers, seconds + 1.0, queue)
    )
    proc.start()
    await asyncio.sleep(1.0)  # connections, DESCRIBE (first key frame), warm-up
    usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    latencies: list[int] = []
    await asyncio.sleep(seconds)
    usage1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    for session in server.sessions.values():
        latencies += list(session.latencies_ns)
    counts = await asyncio.get_running_loop().run_in_executor(None, queue.get)
    proc.join()
    await server.close()
    cpu = (usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime) / (wall1 - wall0)
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] / 1e6 if latencies else 0.0

    per_viewer = [c / (seconds + 1.0) for c in counts]
    sign = statistics.median(stream.sign_ns) / 1e6 if stream.sign_ns else 0.0
    encode = statistics.median(stream.encode_ns) / 1e6 if stream.encode_ns else 0.0
    return {"fps_min": min(per_viewer), "fps_median": statistics.median(per_viewer), "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "cpu": cpu, "sign_ms": sign, "encode_ms": encode}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--viewers", default="1,10,20")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    frames = make_frames(width, height)
    with tempfile.TemporaryDirectory() as tmp:
        files = make_pki(Path(tmp))
        bare_fps(frames, 1.0, args.fps)  # warm-up (caches, clocks, libx264's first GOP): not counted
        bare_before, encode_ms = bare_fps(frames, args.seconds, args.fps)
        print(f"bare libx264 {width}x{height}: {bare_before:.1f} fps ({encode_ms:.2f} ms per frame)")
        one = asyncio.run(run_server(frames, None, 1, args.seconds, files, args.fps))
        bare_after, _ = bare_fps(frames, args.seconds, args.fps)
        bare = (bare_before + bare_after) / 2
        print(f"bare libx264 again: {bare_after:.1f} fps; pipeline, 1 viewer, unpaced: {one['fps_median']:.1f} fps")
        for count in (int(v) for v in args.viewers.split(",")):
            r = asyncio.run(run_server(frames, args.fps, count, args.seconds, files, args.fps))
            print(
                f"{count:>3} viewers @ {args.fps:g} fps: per viewer min {r['fps_min']:.1f} median {r['fps_median']:.1f} fps; "
                f"capture-to-send p50 {r['p50_ms']:.1f} ms p99 {r['p99_ms']:.1f} ms; server CPU {r['cpu']:.2f} cores"
            )
        if one["encode_ms"]:
            print(f"signing: {one['sign_ms']:.3f} ms per frame = {100 * one['sign_ms'] / one['encode_ms']:.2f} % of an encode "
                  f"({one['encode_ms']:.2f} ms)")
    print(f"ratio: {one['fps_median'] / bare:.2f}")


if __name__ == "__main__":
    main()
