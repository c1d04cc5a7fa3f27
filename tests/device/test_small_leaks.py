"""Small leaks (issue 13, defect 8): parser-level 400s, the redirect's Location, TLS tickets."""

from __future__ import annotations

import asyncio
import socket
import ssl

import pytest
from aiohttp import web
from device_fixtures import RunningDevice

from device.server import create_redirect_app

SECURITY_HEADERS = ("Strict-Transport-Security", "X-Content-Type-Options", "Content-Security-Policy",
                    "X-Frame-Options", "Referrer-Policy")


async def _raw(device: RunningDevice, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", device.port, ssl=device.client_ssl, server_hostname="localhost"
    )
    writer.write(request)
    data = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    return data


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /api/v1/info HTTP/1.1\r\nHost: localhost\r\nBad Header\r\n\r\n",
        b"GET /api/v1/info HTTP/1.1\r\nHost: localhost\r\nX: \x01\r\n\r\n",
        b"GET /\x00 HTTP/1.1\r\nHost: localhost\r\n\r\n",
        b"GET /api/v1/info HTTP/9.9\r\nHost: localhost\r\n\r\n",
        b"POST /api/v1/session HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    ],
)
async def test_parser_level_400s_reveal_nothing_and_carry_the_security_headers(
    device: RunningDevice, request_bytes: bytes
) -> None:
    answer = await _raw(device, request_bytes)
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].split(" ")[1] == "400", answer[:200]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["server"] == "refcam", headers
    assert b"aiohttp" not in answer and b"Python" not in answer
    for name in SECURITY_HEADERS:
        assert name.lower() in headers, (name, headers)
    assert headers["content-type"].startswith("application/json")
    assert body.startswith(b'{"error": "bad_request"')


async def test_the_redirect_never_echoes_the_host_header() -> None:
    app = create_redirect_app(8443, host="127.0.0.1")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        for host in (b"evil.example", b"evil.example:443", b"[::1]", b"localhost"):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /x?y=1 HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(65536), 5)
            writer.close()
            assert b"308" in answer.split(b"\r\n")[0]
            location = next(line for line in answer.split(b"\r\n") if line.lower().startswith(b"location:"))
            assert location == b"Location: https://127.0.0.1:8443/x?y=1", location
    finally:
        await runner.cleanup()
    wildcard = create_redirect_app(8443, host="0.0.0.0")
    runner = web.AppRunner(wildcard, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(65536), 5)
        writer.close()
        assert b"Location: https://127.0.0.1:8443/" in answer  # the address the client reached
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2])
async def test_no_tls_session_tickets_and_no_tls13_resumption(device: RunningDevice, version: ssl.TLSVersion) -> None:
    """A real TLS client: the device issues no session ticket (so no TLS 1.3 resumption)."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cadata=_root_pem(device.client_ssl))
    client.minimum_version = client.maximum_version = version

    def fetch(session: ssl.SSLSession | None) -> tuple[ssl.SSLSession | None, bool]:
        with socket.create_connection(("127.0.0.1", device.port), timeout=5) as raw, client.wrap_socket(
            raw, server_hostname="localhost", session=session
        ) as tls:
            tls.sendall(b"GET /api/v1/info HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            while tls.recv(65536):  # reading lets any NewSessionTicket arrive
                pass
            return tls.session, tls.session_reused

    first, _ = await asyncio.to_thread(fetch, None)
    assert first is not None and not first.has_ticket
    _, reused = await asyncio.to_thread(fetch, first)
    if version is ssl.TLSVersion.TLSv1_3:
        assert not reused  # TLS 1.3 resumes only from tickets, and none are issued


def _root_pem(ctx: ssl.SSLContext) -> str:
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in ctx.get_ca_certs(binary_form=True))
