"""TLS-only management: protocol versions, suites, groups, chain validation, redirect listener."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from device_fixtures import PKI, RunningDevice, StartDevice

from common import tls
from common.errors import TLSConfigError
from device.server import create_redirect_app


def handshake(port: int, ctx: ssl.SSLContext) -> tuple[str | None, tuple[str, str, int] | None]:
    """Connect and return (version, cipher); raises ssl.SSLError if refused."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, ctx.wrap_socket(
        raw, server_hostname="localhost"
    ) as conn:
        return conn.version(), conn.cipher()


def client(root: bytes, *, version: ssl.TLSVersion | None = None, ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=root.decode())
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
async def test_tls_1_0_and_1_1_are_refused(device: RunningDevice, device_pki: PKI, version: ssl.TLSVersion) -> None:
    ctx = client(device_pki.root_pem, version=version, ciphers="ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        await asyncio.to_thread(handshake, device.port, ctx)


async def test_tls_1_2_and_1_3_work_with_ecdhe_aead_only(device: RunningDevice, device_pki: PKI) -> None:
    version, cipher = await asyncio.to_thread(handshake, device.port, client(device_pki.root_pem))
    assert version == "TLSv1.3"
    ctx12 = client(device_pki.root_pem, version=ssl.TLSVersion.TLSv1_2)
    version, cipher = await asyncio.to_thread(handshake, device.port, ctx12)
    assert version == "TLSv1.2" and cipher is not None
    assert cipher[0].startswith("ECDHE-ECDSA-") and ("GCM" in cipher[0] or "CHACHA20" in cipher[0])
    for weak in ("AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "DHE-RSA-AES128-GCM-SHA256"):
        ctx = client(device_pki.root_pem, version=ssl.TLSVersion.TLSv1_2, ciphers=weak + ":@SECLEVEL=0")
        with pytest.raises(ssl.SSLError):
            await asyncio.to_thread(handshake, device.port, ctx)


@pytest.mark.parametrize("curve", ["secp521r1", "secp224r1"])
async def test_groups_outside_x25519_p256_p384_are_refused(device: RunningDevice, device_pki: PKI, curve: str) -> None:
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client(device_pki.root_pem, version=version)
        ctx.set_ecdh_curve(curve)  # the client offers only this group
        with pytest.raises(ssl.SSLError):
            await asyncio.to_thread(handshake, device.port, ctx)
    ok = client(device_pki.root_pem)
    ok.set_ecdh_curve("secp384r1")
    assert (await asyncio.to_thread(handshake, device.port, ok))[0] == "TLSv1.3"


async def test_modern_profile_is_tls_1_3_only(start_device: StartDevice, device_pki: PKI) -> None:
    device = await start_device(profile="modern")
    with pytest.raises(ssl.SSLError):
        await asyncio.to_thread(handshake, device.port, client(device_pki.root_pem, version=ssl.TLSVersion.TLSv1_2))
    assert (await asyncio.to_thread(handshake, device.port, client(device_pki.root_pem)))[0] == "TLSv1.3"


def test_server_context_has_no_compression_no_renegotiation_no_tickets(tmp_path: Path, device_pki: PKI) -> None:
    (tmp_path / "c.pem").write_bytes(device_pki.chain_pem)
    (tmp_path / "k.pem").write_bytes(device_pki.tls_key_pem)
    ctx = tls.server_context(tmp_path / "c.pem", tmp_path / "k.pem")
    for option in (ssl.OP_NO_COMPRESSION, ssl.OP_NO_RENEGOTIATION, ssl.OP_NO_TICKET):
        assert ctx.options & option
    assert not ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    names = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names and all(n.startswith("ECDHE-") and ("GCM" in n or "CHACHA20" in n) for n in names)


def test_bad_key_files_raise_tls_config_error(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("not a certificate")
    with pytest.raises(TLSConfigError, match="cannot load the TLS certificate chain"):
        tls.server_context(tmp_path / "c.pem", tmp_path / "missing.pem")
    with pytest.raises(TLSConfigError, match="unknown"):
        tls.server_context(tmp_path / "c.pem", tmp_path / "c.pem", profile="old")  # type: ignore[arg-type]


async def test_outbound_client_context_refuses_untrusted_and_wrong_host(
    device: RunningDevice, device_pki: PKI, tmp_path: Path
) -> None:
    root = tmp_path / "root.pem"
    root.write_bytes(device_pki.root_pem)
    ctx = tls.client_context(root)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as s:
        async with s.get(f"https://localhost:{device.port}/api/v1/info") as r:
            assert r.status == 200
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            # the certificate names localhost and cam-<serial>.local, not this host
            await s.get(f"https://localhost:{device.port}/api/v1/info", server_hostname="cam-other.local")
    system = ssl.create_default_context()  # the public WebPKI does not know the device
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=system)) as s:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await s.get(f"https://localhost:{device.port}/api/v1/info")


async def test_redirect_listener_only_redirects(device: RunningDevice) -> None:
    runner = web.AppRunner(create_redirect_app(device.port), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as s:
            for method in ("GET", "POST", "DELETE"):
                async with s.request(
                    method,
                    f"http://localhost:{port}/api/v1/session?x=1",
                    data=b'{"username":"admin","password":"secret"}',
                    allow_redirects=False,
                ) as r:
                    assert r.status == 308
                    assert r.headers["Location"] == f"https://localhost:{device.port}/api/v1/session?x=1"
                    assert await r.read() == b""
                    assert "Strict-Transport-Security" not in r.headers
                    assert "Set-Cookie" not in r.headers
                    assert r.headers["Server"] == "refcam"
    finally:
        await runner.cleanup()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
async def test_tls_legacy_flaw_accepts_tls_1_0_and_cbc(device_pki: PKI, tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_bytes(device_pki.chain_pem)
    (tmp_path / "k.pem").write_bytes(device_pki.tls_key_pem)
    ctx = tls.unsafe_server_context(tmp_path / "c.pem", tmp_path / "k.pem", tls_legacy=True, weak_ciphers=True)
    runner = web.AppRunner(web.Application())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        legacy = client(device_pki.root_pem, version=ssl.TLSVersion.TLSv1, ciphers="ALL:@SECLEVEL=0")
        assert (await asyncio.to_thread(handshake, port, legacy))[0] == "TLSv1"
        cbc = client(device_pki.root_pem, version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0")
        assert (await asyncio.to_thread(handshake, port, cbc))[1][0] == "ECDHE-ECDSA-AES128-SHA"  # type: ignore[index]
    finally:
        await runner.cleanup()


def test_self_signed_flaw_replaces_the_manufacturer_chain(tmp_path: Path) -> None:
    from common.flaws import UnsafeFlaws
    from device.config import DeviceConfig
    from device.main import tls_context_for

    config = DeviceConfig(
        runtime_dir=tmp_path / "runtime", identity_dir=tmp_path / "missing",
        flaws=UnsafeFlaws.parse(["self-signed-cert"], host="127.0.0.1"),
    )
    ctx = tls_context_for(config, now=time.time())  # the identity files are never read
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert oct((tmp_path / "runtime" / "unsafe" / "unsafe-self-signed.key.pem").stat().st_mode & 0o777) == "0o600"
