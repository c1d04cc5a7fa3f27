"""The update fetcher: TLS chain + host name, plain HTTP refused, size limits, resume."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tuf.api import exceptions
from update_fixtures import Vendor, app_server, fetcher_for, make_vendor, server_context

from bootloader.keys import load_certificate, load_private_key
from common import tls
from device.update.fetcher import FetcherConfig, HTTPSFetcher
from update_server.tls import issue_leaf

NOW = dt.datetime.now(dt.UTC)
BODY = bytes(range(256)) * 64  # 16 KiB


@pytest.fixture(scope="module")
def vendor(tmp_path_factory: pytest.TempPathFactory) -> Vendor:
    return make_vendor(tmp_path_factory.mktemp("vendor"))


def _write_pem(tmp: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def body_app(calls: list[dict[str, str]] | None = None) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        if calls is not None:
            calls.append(dict(request.headers))
        return web.Response(body=BODY)

    app = web.Application()
    app.router.add_get("/f", handler)
    return app


def test_self_signed_server_certificate_is_rejected(vendor: Vendor, tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    chain, key_path = _write_pem(tmp_path, "self", cert, key)
    context = tls.server_context(chain, key_path)
    with (
        app_server(body_app(), context) as url,
        pytest.raises(exceptions.DownloadError, match="not trusted: .*self.signed"),
    ):
        fetcher_for(vendor).download_bytes(f"{url}/f", 10**6)


def test_wrong_host_certificate_is_rejected(vendor: Vendor, tmp_path: Path) -> None:
    """A leaf from the right vendor root but for another host name (stolen cert)."""
    key = ec.generate_private_key(ec.SECP256R1())
    ca_key = load_private_key(vendor.keys_dir / "vendor" / "root-ca.key.pem")
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    leaf = issue_leaf(
        public_key=key.public_key(),
        ca_key=ca_key,
        ca_cert=load_certificate(vendor.vendor_root_pem),
        names=["updates.evil.example"],
        now=NOW,
    )
    chain, key_path = _write_pem(tmp_path, "wronghost", leaf, key)
    with (
        app_server(body_app(), tls.server_context(chain, key_path)) as url,
        pytest.raises(exceptions.DownloadError, match="not trusted: .*[Hh]ostname mismatch"),
    ):
        fetcher_for(vendor).download_bytes(f"{url}/f", 10**6)


def test_right_certificate_is_accepted(vendor: Vendor) -> None:
    with app_server(body_app(), server_context(vendor)) as url:
        assert fetcher_for(vendor).download_bytes(f"{url}/f", 10**6) == BODY


def test_a_context_that_skips_verification_cannot_be_used() -> None:
    lax = ssl.create_default_context()
    lax.check_hostname = False
    with pytest.raises(ValueError, match="verifies chain and host name"):
        HTTPSFetcher(ssl_context=lax)


def test_plain_http_is_refused_by_default(vendor: Vendor) -> None:
    with (
        app_server(body_app(), None) as url,
        pytest.raises(exceptions.DownloadError, match="over https only"),
    ):
        fetcher_for(vendor).download_bytes(f"{url}/f", 10**6)


def test_endless_data_is_cut_at_the_allowed_length(vendor: Vendor) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        try:
            for _ in range(4096):  # 64 MiB without Content-Length: "endless" next to 16 KiB
                if request.transport is None or request.transport.is_closing():
                    break
                await response.write(BODY)
                await asyncio.sleep(0)
        except (ConnectionError, asyncio.CancelledError):
            pass
        return response

    app = web.Application()
    app.router.add_get("/timestamp.json", endless)
    fetcher = fetcher_for(vendor)
    with (
        app_server(app, server_context(vendor)) as url,
        pytest.raises(exceptions.DownloadLengthMismatchError, match="more than the allowed 16384"),
    ):
        fetcher.download_bytes(f"{url}/timestamp.json", 16384)
    assert fetcher.bytes_received <= 16384 + fetcher.config.chunk_size


def test_announced_oversize_is_refused_before_the_body(vendor: Vendor) -> None:
    fetcher = fetcher_for(vendor)
    with (
        app_server(body_app(), server_context(vendor)) as url,
        pytest.raises(exceptions.DownloadLengthMismatchError, match="announces 16384 bytes"),
    ):
        fetcher.download_bytes(f"{url}/f", 1000)
    assert fetcher.bytes_received == 0


def test_http_error_status_is_reported_with_its_code(vendor: Vendor) -> None:
    with (
        app_server(body_app(), server_context(vendor)) as url,
        pytest.raises(exceptions.DownloadHTTPError) as info,
    ):
        fetcher_for(vendor).download_bytes(f"{url}/missing", 1000)
    assert info.value.status_code == 404


def test_silent_server_hits_the_read_timeout(vendor: Vendor) -> None:
    async def silent(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(1)
        return web.Response(body=b"late")

    app = web.Application()
    app.router.add_get("/slow", silent)
    fetcher = HTTPSFetcher(
        ssl_context=tls.client_context(vendor.vendor_root_pem),
        config=FetcherConfig(read_timeout=0.2),
    )
    with (
        app_server(app, server_context(vendor)) as url,
        pytest.raises(exceptions.DownloadError, match="timed out"),
    ):
        fetcher.download_bytes(f"{url}/slow", 1000)


def test_a_trickling_target_is_cut_at_the_transfer_deadline(vendor: Vendor) -> None:
    """A target is read a large buffer at a time; a server that sends a byte now and then
    (each in time for the read timeout) is still cut when the whole-transfer deadline passes."""

    async def trickle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(BODY))})
        await response.prepare(request)
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            for byte in BODY:
                await response.write(bytes([byte]))
                await asyncio.sleep(0.05)
        return response

    app = web.Application()
    app.router.add_get("/target", trickle)
    fetcher = HTTPSFetcher(
        ssl_context=tls.client_context(vendor.vendor_root_pem),
        config=FetcherConfig(read_timeout=1.0, max_transfer_seconds=0.5),
    )
    received = bytearray()

    @contextlib.contextmanager
    def sink(start: int) -> Iterator[bytearray]:
        yield received

    started = time.monotonic()
    with (
        app_server(app, server_context(vendor)) as url,
        pytest.raises(exceptions.SlowRetrievalError, match="exceeded 0.5 s"),
    ):
        fetcher.download_into(f"{url}/target", len(BODY), offset=0, open_sink=sink)
    assert time.monotonic() - started < 3
    assert len(received) < len(BODY)


def test_cut_transfer_resumes_with_a_range_request(vendor: Vendor, tmp_path: Path) -> None:
    calls: list[str | None] = []

    async def flaky(request: web.Request) -> web.StreamResponse:
        calls.append(request.headers.get("Range"))
        if len(calls) == 1:  # first attempt: 5000 bytes, then the connection drops
            response = web.StreamResponse(headers={"Content-Length": str(len(BODY))})
            await response.prepare(request)
            await response.write(BODY[:5000])
            assert request.transport is not None
            request.transport.close()
            return response
        return web.FileResponse(tmp_path / "body.bin")

    (tmp_path / "body.bin").write_bytes(BODY)
    app = web.Application()
    app.router.add_get("/target", flaky)
    partial_dir = tmp_path / "partial"
    seen: list[tuple[int, int]] = []
    fetcher = fetcher_for(vendor, partial_dir)
    fetcher.progress = lambda done, total: seen.append((done, total))
    with app_server(app, server_context(vendor)) as url:
        with (
            pytest.raises(exceptions.DownloadError, match="5000|missing"),
            fetcher.download_file(f"{url}/target", len(BODY)),
        ):
            pass
        assert [p.stat().st_size for p in partial_dir.iterdir()] == [5000]
        with fetcher.download_file(f"{url}/target", len(BODY)) as handle:
            assert handle.read() == BODY
    assert calls == [None, "bytes=5000-"]
    assert seen[-1] == (len(BODY), len(BODY)) and min(d for d, _ in seen[1:]) > 5000
    assert list(partial_dir.iterdir()) == []  # removed after use


def test_newer_releases_name_the_advisories_affecting_the_running_firmware() -> None:
    from device.update.policy import Candidate, advisories_affecting

    def release(version: str, *ids: str) -> Candidate:
        return Candidate(f"hw/{version}.img", version, 1, "hw", 1, "00", ids)

    offered = [release("1.0.0", "SA-1"), release("2.0.0", "SA-2", "SA-3"), release("3.0.0", "SA-3", "SA-4")]
    assert advisories_affecting(offered, "2.0.0") == [
        {"id": "SA-3", "status": "affected", "fixed_in": "3.0.0"},
        {"id": "SA-4", "status": "affected", "fixed_in": "3.0.0"},
    ]
    assert advisories_affecting(offered, "1.0.0")[0] == {"id": "SA-2", "status": "affected", "fixed_in": "2.0.0"}
    assert advisories_affecting(offered, "3.0.0") == []


def test_requests_to_one_origin_reuse_one_connection(vendor: Vendor) -> None:
    """A TUF refresh asks one origin for several documents: one TLS handshake, not one each."""
    with app_server(body_app(), server_context(vendor)) as url:
        fetcher = fetcher_for(vendor)
        for _ in range(3):
            assert fetcher.download_bytes(f"{url}/f", 10**6) == BODY
        assert (fetcher.requests, fetcher.connections) == (3, 1)
        fetcher.close()
        assert fetcher.download_bytes(f"{url}/f", 10**6) == BODY
        assert fetcher.connections == 2


def test_a_connection_the_server_closed_meanwhile_is_replaced(vendor: Vendor) -> None:
    closing: list[bool] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.Response(body=BODY)
        response.force_close()  # the server ends the connection after this response...
        closing.append(True)
        return response

    app = web.Application()
    app.router.add_get("/f", handler)
    with app_server(app, server_context(vendor)) as url:
        fetcher = fetcher_for(vendor)
        assert fetcher.download_bytes(f"{url}/f", 10**6) == BODY
        assert fetcher.download_bytes(f"{url}/f", 10**6) == BODY  # ...so the next one opens another
        assert (len(closing), fetcher.connections) == (2, 2)
