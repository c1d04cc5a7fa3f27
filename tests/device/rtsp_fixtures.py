"""Helpers for the RTSPS tests: a device with the RTSP extension on an ephemeral port, and clients."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.flaws import UnsafeFlaws
from device.rtsp import RTSP_KEY, build_streams, rtsp_extension
from device.rtsp.server import RtspServer
from device.stream.pipeline import PipelineConfig, StreamPipeline
from device.stream.signing import StreamSigner
from device.stream.sources import open_source, parse_source_spec

SOURCE = "synthetic:320x240@15"
FFPROBE = shutil.which("ffprobe")
FFMPEG = shutil.which("ffmpeg")


def rtsp_args(*, flaws: tuple[str, ...] = (), md5: bool = True, **changes: Any) -> argparse.Namespace:
    values: dict[str, Any] = dict(
        host="127.0.0.1", rtsp_port=0, rtsp_digest="sha256+md5" if md5 else "sha256", rtsp_max_sessions=8,
        rtsp_max_sessions_per_client=4, rtsp_session_timeout=60.0, stream_source=SOURCE,
        flaws=UnsafeFlaws.parse(flaws, host="127.0.0.1"),
    )
    values.update(changes)
    return argparse.Namespace(**values)


def rtsp_extensions(handoff: Any, args: argparse.Namespace, *, masks: tuple[Any, ...] = ()) -> list[Any]:
    signer = StreamSigner.from_identity_dir(handoff.data_dir / "identity", device=handoff.identity.serial)
    spec = parse_source_spec(args.stream_source)
    pipeline = StreamPipeline(lambda: open_source(spec), signer, PipelineConfig(masks=masks, workers=1))
    streams = build_streams(args, pipeline, handoff)
    assert streams is not None
    return [rtsp_extension(streams, args, announce=lambda line: None)]


def server_of(device: Any) -> RtspServer:
    return device.app[RTSP_KEY]


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


async def run(*argv: str, timeout: float = 60.0, env: dict[str, str] | None = None) -> Run:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError(f"{argv[0]} timed out: {err.decode(errors='replace')[-2000:]}") from None
    return Run(proc.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace"))


async def ffprobe(url: str, *extra: str) -> Run:
    assert FFPROBE, "Debian ffmpeg is missing (.ci/system-deps.sh installs it)"
    return await run(
        FFPROBE, "-v", "error", "-rtsp_transport", "tcp", *extra, "-show_streams", "-of", "json", url, timeout=60
    )


def streams_json(result: Run) -> list[dict[str, Any]]:
    doc = json.loads(result.stdout or "{}")
    streams: list[dict[str, Any]] = doc.get("streams", [])
    return streams


class RawRtsp:
    """A minimal RTSP client over TLS for hostile-input tests (no RTSP library involved)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int, ctx: ssl.SSLContext | None) -> RawRtsp:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="localhost" if ctx else None
        )
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        while True:
            first = await asyncio.wait_for(self.reader.readexactly(1), timeout)
            if first == b"$":  # interleaved media: skip it
                header = await self.reader.readexactly(3)
                await self.reader.readexactly(int.from_bytes(header[1:3], "big"))
                continue
            break
        head = first + await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                key = name.strip().lower()
                headers[key] = headers[key] + "\n" + value.strip() if key in headers else value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return status, headers, body

    async def request(self, method: str, uri: str, cseq: int, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {cseq}"] + [f"{k}: {v}" for k, v in (headers or {}).items()]
        await self.send(("\r\n".join(lines) + "\r\n\r\n").encode())
        return await self.response()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await self.writer.wait_closed()


def root_file(tmp: Path, pem: bytes) -> Path:
    path = tmp / "root.pem"
    path.write_bytes(pem)
    return path


def parse_challenge(value: str) -> dict[str, str]:
    import re

    return {k.lower(): v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', value)}


def digest_authorization(
    challenge: str, *, method: str, uri: str, user: str, password: str, nc: int = 1, cnonce: str = "0a4f113b"
) -> str:
    import hashlib

    params = parse_challenge(challenge)
    algorithm = params.get("algorithm", "MD5")
    h = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}[algorithm]

    def hexd(text: str) -> str:
        return h(text.encode()).hexdigest()

    ha1 = hexd(f"{user}:{params['realm']}:{password}")
    ha2 = hexd(f"{method}:{uri}")
    response = hexd(f"{ha1}:{params['nonce']}:{nc:08x}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}", '
        f'algorithm={algorithm}, qop=auth, nc={nc:08x}, cnonce="{cnonce}", response="{response}", '
        f'opaque="{params["opaque"]}"'
    )
