"""The vendor server and hostile clients (issue 13, defect 8): a client dying
mid-download is no traceback in the log."""

from __future__ import annotations

import logging
import socket
import struct
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from update_fixtures import Vendor, update_server

from common import tls
from update_server.psirt.policy import load_policy
from update_server.psirt.store import PSIRTStore
from update_server.psirt.web import create_vendor_psirt_app


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
