"""The vendor server and hostile clients (issue 13, defect 8): a client dying
mid-download is no traceback in the log."""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from update_fixtures import Vendor, server_context, update_server

from common import tls
from common.listener import CONNECTIONS_KEY, ConnectionLimits
from update_server.psirt.policy import load_policy
from update_server.psirt.store import PSIRTStore
from update_server.psirt.web import create_vendor_psirt_app
from update_server.server import UpdateServerConfig, create_app, serve_in_thread


def test_a_client_dying_mid_download_logs_no_traceback(vendor: Vendor, caplog: pytest.LogCaptureFixture) -> None:
    big = vendor.repo_dir / "targets" / "big.bin"
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(b"\x5a" * (16 * 1024 * 1024))
    with caplog.at_level(logging.DEBUG), update_server(vendor) as url:
        port = int(url.rsplit(":", 1)[1])
        ctx = tls.client_context(vendor.vendor_root_pem)
        for _ in range(3):
            raw = socket.create_connection(("127.0.0.1", port), timeout=5)
            conn = ctx.wrap_socket(raw, server_hostname="localhost")
            conn.sendall(b"GET /targets/big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
            got = 0
            while got < 256 * 1024:
                got += len(conn.recv(65536))
            # die: RST, no TLS close_notify, most of the body unread
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
        time.sleep(1.0)
        ok = tls.client_context(vendor.vendor_root_pem)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw2, ok.wrap_socket(
            raw2, server_hostname="localhost"
        ) as conn2:  # the server still serves
            conn2.sendall(b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert conn2.recv(64).startswith(b"HTTP/1.1 200")
    noisy = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not noisy, "\n".join(f"{r.name} {r.levelname} {r.getMessage()}" for r in noisy)


async def test_a_lone_surrogate_in_a_report_is_a_400_not_a_stored_500(aiohttp_client: Any, tmp_path: Path) -> None:
    """Valid JSON, invalid Unicode: stored, it made the operator's HTML view of the report a 500."""
    store = PSIRTStore.open(tmp_path / "psirt.db")
    app = create_vendor_psirt_app(store=store, policy=load_policy(), clock=lambda: datetime(2026, 3, 1, tzinfo=UTC),
                                  psirt_token="operator-token-0123456789abcdef", base_url="https://vendor.example")
    client = await aiohttp_client(app)
    body = {"title": "XSS \ud800", "description": "d", "product": "RC-1080", "version": "1.0.0"}
    response = await client.post("/api/v1/reports", json=body)
    assert response.status == 400, await response.text()
    assert "Unicode" in (await response.json())["error"]
    assert store.all() == []
    store.close()


QUICK = ConnectionLimits(
    handshake_timeout=0.5, header_timeout=0.5, body_timeout=0.5, idle_timeout=0.5,
    max_connections=24, per_source=6, reserve=4, new_per_second=100.0, tick=0.05,
)


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    """True if the server closes ``sock`` (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        return sock.recv(1024) == b""
    except (ConnectionResetError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


def test_slow_clients_are_cut_and_a_flood_of_them_locks_nobody_out(vendor: Vendor) -> None:
    """The vendor server faces anyone (the PSIRT intake): a client that never starts TLS, one
    that trickles its request head, and a pile of such connections from one address are
    closed, and a real request still gets through."""
    config = UpdateServerConfig(repo_dir=vendor.repo_dir, keys_dir=vendor.keys_dir, refresh_interval=0,
                                connections=QUICK)
    app = create_app(config)
    ctx = tls.client_context(vendor.vendor_root_pem)
    with serve_in_thread(app, ssl_context=server_context(vendor), guarded=True) as port:
        silent = socket.create_connection(("127.0.0.1", port), timeout=5)  # no ClientHello, ever
        trickle = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                                  server_hostname="localhost")
        trickle.sendall(b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: localhost\r\n")  # no end of head
        assert _closed_by_server(silent, 3.0)
        assert _closed_by_server(trickle, 3.0)
        slow = [ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
                for _ in range(QUICK.per_source)]
        for conn in slow:
            conn.sendall(b"GET / HTTP/1.1\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(
            raw, server_hostname="localhost"
        ) as conn:  # the address's oldest slow connection made room for it
            conn.sendall(b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            assert conn.recv(64).startswith(b"HTTP/1.1 200")
        assert sum(_closed_by_server(c, 3.0) for c in slow) == len(slow)
        stats = app[CONNECTIONS_KEY].stats
        assert stats["timeout_handshake"] >= 1 and stats["timeout_head"] >= 1 and stats["evicted"] >= 1, stats
        for conn in (silent, trickle, *slow):
            conn.close()


def test_a_request_the_parser_refuses_gets_the_vendor_headers_not_aiohttps(
    vendor: Vendor, caplog: pytest.LogCaptureFixture
) -> None:
    """...and one log line without a traceback: anyone can send one."""
    config = UpdateServerConfig(repo_dir=vendor.repo_dir, keys_dir=vendor.keys_dir, refresh_interval=0)
    ctx = tls.client_context(vendor.vendor_root_pem)
    with caplog.at_level(logging.DEBUG, logger="aiohttp.server"), serve_in_thread(create_app(config), ssl_context=server_context(vendor), guarded=True) as port, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as conn:
        conn.sendall(b"GET /metadata/timestamp.json HTTP/1.1\r\nHost: localhost\r\nBad Header\x00: x\r\n\r\n")
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", answer
    assert b"Server: refcam-update" in head and b"Strict-Transport-Security: max-age=" in head
    assert b"aiohttp" not in answer.lower() and b"python" not in answer.lower()
    assert b"malformed HTTP request" in body
    lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(lines) == 1 and lines[0].exc_info is None and "\n" not in lines[0].getMessage(), lines
    assert lines[0].levelno == logging.WARNING and "BadHttpMessage" in lines[0].getMessage()
