"""Slow clients (issue 13, defect 2): handshake, head, body and idle timeouts, the
connection cap with its reserve, and quiet logs. Short limits keep these fast;
the 1000-connection run under a 1024 file limit is tests/integration/test_slow_clients.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from pathlib import Path

import pytest
from device_fixtures import RunningDevice, StartDevice

from device.appkeys import AUDIT_KEY, CONNECTIONS_KEY
from device.config import ConnectionLimits

FAST = ConnectionLimits(
    handshake_timeout=0.6, header_timeout=0.6, body_timeout=0.6, idle_timeout=0.6, tick=0.05,
    max_connections=24, reserve=4,
)


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> float:
    """Seconds until the server closes the connection (reads until EOF)."""
    start = time.monotonic()
    while True:
        try:
            data = await asyncio.wait_for(reader.read(65536), seconds)
        except (ConnectionError, ssl.SSLError):
            break
        if not data:
            break
    return time.monotonic() - start


async def _tls(device: RunningDevice) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", device.port, ssl=device.client_ssl, server_hostname="localhost")


async def test_idle_tcp_without_a_handshake_is_closed(start_device: StartDevice) -> None:
    device = await start_device(connections=FAST)
    reader, writer = await asyncio.open_connection("127.0.0.1", device.port)
    assert await _closed_within(reader, 5) < 3
    writer.close()
    assert device.app[CONNECTIONS_KEY].stats["timeout_handshake"] + device.app[CONNECTIONS_KEY].stats[
        "handshake_failed"] >= 1


async def test_tls_without_a_request_and_trickled_headers_are_closed(start_device: StartDevice) -> None:
    device = await start_device(connections=FAST)
    reader, writer = await _tls(device)
    assert await _closed_within(reader, 5) < 3
    writer.close()
    reader, writer = await _tls(device)
    writer.write(b"GET /api/v1/info HTTP/1.1\r\nHost: localhost\r\n")

    async def trickle() -> None:
        for _ in range(50):
            await asyncio.sleep(0.1)
            writer.write(b"X-Slow: a\r\n")  # bytes keep coming, the head never ends

    task = asyncio.create_task(trickle())
    assert await _closed_within(reader, 5) < 3
    task.cancel()
    writer.close()
    assert device.app[CONNECTIONS_KEY].stats["timeout_head"] == 2


async def test_a_trickled_body_is_closed_with_one_line_and_no_traceback(
    start_device: StartDevice, caplog: pytest.LogCaptureFixture
) -> None:
    device = await start_device(connections=FAST)
    reader, writer = await _tls(device)
    writer.write(
        b"POST /api/v1/session HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )

    async def trickle() -> None:
        for _ in range(50):
            await asyncio.sleep(0.1)
            writer.write(b" ")  # a byte every 100 ms: never a long pause, never done

    task = asyncio.create_task(trickle())
    with caplog.at_level(logging.DEBUG):
        assert await _closed_within(reader, 5) < 3
        await asyncio.sleep(0.2)
    task.cancel()
    writer.close()
    assert device.app[CONNECTIONS_KEY].stats["timeout_body"] == 1
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.WARNING], caplog.text
    assert not [r for r in caplog.records if r.name.startswith("device") and r.levelno >= logging.ERROR]
    # the device still answers
    async with device.client() as s, s.get(device.url("/api/v1/info")) as r:
        assert r.status == 200


async def test_a_kept_alive_connection_is_closed_when_idle(start_device: StartDevice) -> None:
    device = await start_device(connections=FAST)
    reader, writer = await _tls(device)
    writer.write(b"GET /api/v1/info HTTP/1.1\r\nHost: localhost\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    assert await _closed_within(reader, 5) < 3
    writer.close()


async def test_the_cap_evicts_idle_connections_for_a_new_session(start_device: StartDevice) -> None:
    limits = ConnectionLimits(max_connections=24, reserve=4, handshake_timeout=60, header_timeout=60, tick=0.05)
    device = await start_device(connections=limits)
    guard = device.app[CONNECTIONS_KEY]
    held = []
    for i in range(60):  # far more than the cap, all idle, from 3 other addresses
        # a connection closed at accept (over its address's new-connection rate) fails to open
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            held.append(await asyncio.open_connection(
                "127.0.0.1", device.port, ssl=device.client_ssl, server_hostname="localhost",
                local_addr=(f"127.0.0.{2 + i % 3}", 0),
            ))
    await asyncio.sleep(0.1)
    assert len(guard.connections) <= guard.cap
    assert guard.stats["evicted"] + guard.stats["rate_limited"] >= 60 - guard.cap
    start = time.monotonic()
    token = await device.admin_token()
    async with device.client() as s, s.get(device.url("/api/v1/status"), headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200
    assert time.monotonic() - start < 5
    for _reader, writer in held:
        writer.close()


def test_the_log_filter_keeps_one_line_per_client_error_and_rate_limits() -> None:
    from device.logs import QuietFilter

    now = [0.0]
    quiet = QuietFilter(burst=3, window=10.0, clock=lambda: now[0])
    try:
        raise ValueError("Invalid header value char")
    except ValueError:
        import sys

        exc_info = sys.exc_info()
    kept = []
    for _ in range(100):
        record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
                                   ("127.0.0.1",), exc_info)
        if quiet.filter(record):
            kept.append(record)
    assert len(kept) == 3
    assert kept[0].exc_info is None and kept[0].getMessage() == (
        "Error handling request from 127.0.0.1: ValueError: Invalid header value char")
    now[0] = 11.0
    record = logging.LogRecord("aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
                               ("127.0.0.1",), None)
    assert quiet.filter(record) and "97 similar messages suppressed" in record.getMessage()


async def test_an_aborted_upload_is_one_log_line_and_installs_nothing(
    start_device: StartDevice, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from update_fixtures import make_camera, make_vendor, update_client

    from device.update.web import add_update_routes

    vendor = make_vendor(tmp_path / "vendor")
    camera = make_camera(tmp_path / "cam", vendor, vendor.image("1.0.0", 1))
    client = update_client(camera.boot(), vendor, "https://localhost:1")
    device = await start_device(extensions=[lambda app: add_update_routes(app, client)])
    token = await device.admin_token()
    with caplog.at_level(logging.DEBUG):
        _reader, writer = await _tls(device)
        writer.write(
            b"POST /api/v1/update/upload HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
            + token.encode() + b"\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n"
            + b"\0" * 100_000
        )
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.transport.abort()  # the uploader dies half-way
        await asyncio.sleep(0.5)
    left = [r for r in caplog.records if r.name.startswith("device") and "client left" in r.getMessage()]
    assert len(left) == 1 and left[0].exc_info is None
    assert not [r for r in caplog.records if r.exc_info and r.levelno >= logging.WARNING], caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert camera.boot().handoff.slots[1].state == "empty"
    assert "internal_error" not in [e.event for e in device.app[AUDIT_KEY].entries()]
