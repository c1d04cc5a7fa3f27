"""The update server: TLS leaf, static TUF files, Range, cache headers, periodic re-signing."""

from __future__ import annotations

import asyncio
import datetime as dt
import http.client
import ipaddress
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from tuf.api.metadata import Metadata
from update_fixtures import NOW_DT, Vendor, update_server

from common import tls
from update_server.errors import ServerConfigError
from update_server.server import (
    REFRESH_LOG_KEY,
    UpdateServerConfig,
    create_app,
)
from update_server.tls import ensure_server_certificate

HW = "refcam-rc1080-v1"


def get(vendor: Vendor, url: str, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    host, port = url.removeprefix("https://").split(":")
    conn = http.client.HTTPSConnection(
        host, int(port), context=tls.client_context(vendor.vendor_root_pem), timeout=10
    )
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read_body = response.read()  # type: ignore[attr-defined]
    conn.close()
    return response


def test_leaf_is_p256_serverauth_for_loopback_names_from_the_vendor_root(vendor: Vendor) -> None:
    chain_path, key_path = ensure_server_certificate(vendor.keys_dir, now=NOW_DT)
    leaf, root = x509.load_pem_x509_certificates(chain_path.read_bytes())
    assert root == x509.load_pem_x509_certificate(vendor.vendor_root_pem.read_bytes())
    leaf.verify_directly_issued_by(root)
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(leaf.public_key().curve, ec.SECP256R1)  # type: ignore[union-attr]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= dt.timedelta(days=366, minutes=5)
    assert key_path.stat().st_mode & 0o777 == 0o600
    # kept while current, re-issued when close to expiry
    assert ensure_server_certificate(vendor.keys_dir, now=NOW_DT)[0].read_bytes() == chain_path.read_bytes()
    ensure_server_certificate(vendor.keys_dir, now=NOW_DT + dt.timedelta(days=340))
    renewed = x509.load_pem_x509_certificates(chain_path.read_bytes())[0]
    assert renewed.serial_number != leaf.serial_number


def test_metadata_and_targets_over_tls_with_cache_headers_and_hsts(vendor: Vendor) -> None:
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")
    digest = Metadata.from_file(
        str(vendor.repo_dir / "metadata" / f"1.models-{HW}.json")
    ).signed.targets[f"{HW}/rc-2.0.0.img"].hashes["sha256"]
    with update_server(vendor) as url:
        timestamp = get(vendor, url, "/metadata/timestamp.json")
        assert timestamp.status == 200
        assert timestamp.getheader("Cache-Control") == "no-cache"
        assert timestamp.getheader("Strict-Transport-Security") == "max-age=31536000"
        versioned = get(vendor, url, "/metadata/2.snapshot.json")
        assert versioned.getheader("Cache-Control") == "public, max-age=31536000, immutable"
        target = get(vendor, url, f"/targets/{HW}/{digest}.rc-2.0.0.img")
        assert target.status == 200
        assert target.read_body == (  # type: ignore[attr-defined]
            vendor.repo_dir / "targets" / HW / f"{digest}.rc-2.0.0.img"
        ).read_bytes()
        assert "immutable" in (target.getheader("Cache-Control") or "")


def test_range_requests_return_206_with_the_requested_bytes(vendor: Vendor) -> None:
    data = (vendor.repo_dir / "metadata" / "1.root.json").read_bytes()
    with update_server(vendor) as url:
        response = get(vendor, url, "/metadata/1.root.json", {"Range": "bytes=10-19"})
        assert response.status == 206
        assert response.read_body == data[10:20]  # type: ignore[attr-defined]
        assert response.getheader("Content-Range") == f"bytes 10-19/{len(data)}"
        tail = get(vendor, url, "/metadata/1.root.json", {"Range": f"bytes={len(data) - 5}-"})
        assert tail.read_body == data[-5:]  # type: ignore[attr-defined]


def test_metadata_validators_match_between_plain_and_conditional_requests(vendor: Vendor) -> None:
    """A plain GET of small metadata is answered without FileResponse; its ETag and
    Last-Modified must still be what a conditional request is judged against."""
    metadata = vendor.repo_dir / "metadata"
    big = metadata / "9.big.json"  # past SMALL_FILE: the FileResponse path
    big.write_bytes(b"[" + b"0," * 70_000 + b"0]")
    with update_server(vendor) as url:
        for name in ("timestamp.json", "9.big.json"):
            plain = get(vendor, url, f"/metadata/{name}")
            assert plain.status == 200
            assert plain.read_body == (metadata / name).read_bytes()  # type: ignore[attr-defined]
            assert plain.getheader("Content-Type") == "application/json"
            etag, modified = plain.getheader("ETag"), plain.getheader("Last-Modified")
            assert etag and modified
            assert get(vendor, url, f"/metadata/{name}", {"If-None-Match": etag}).status == 304
            assert get(vendor, url, f"/metadata/{name}", {"If-Modified-Since": modified}).status == 304
            assert get(vendor, url, f"/metadata/{name}", {"If-Match": '"other"'}).status == 412
        # a new version of the file (atomic replace, as the repository writes) has new validators
        timestamp = metadata / "timestamp.json"
        before = get(vendor, url, "/metadata/timestamp.json").getheader("ETag")
        replacement = metadata / ".timestamp.json.new"
        replacement.write_bytes(timestamp.read_bytes() + b" ")
        replacement.replace(timestamp)
        after = get(vendor, url, "/metadata/timestamp.json")
        assert after.getheader("ETag") != before
        assert after.read_body == timestamp.read_bytes()  # type: ignore[attr-defined]
        assert get(vendor, url, "/metadata/timestamp.json", {"If-None-Match": before or ""}).status == 200


def test_configuration_and_traversal_paths_are_not_served(vendor: Vendor) -> None:
    with update_server(vendor) as url:
        for path in (
            "/repo.json",
            "/metadata/../repo.json",
            "/metadata/%2e%2e/repo.json",
            "/targets/../repo.json",
            "/targets/%2e%2e/repo.json",
            "/targets/.hidden",
            "/metadata/.timestamp.json.tmp",
        ):
            assert get(vendor, url, path).status == 404, path


async def test_periodic_task_resigns_timestamp_before_it_expires(
    vendor: Vendor, aiohttp_client: object
) -> None:
    later = NOW_DT + dt.timedelta(hours=20)  # timestamp (1 day) is within its 12 h margin
    config = UpdateServerConfig(repo_dir=vendor.repo_dir, keys_dir=vendor.keys_dir, refresh_interval=60)
    app = create_app(config, clock=lambda: later)
    client: TestClient = await aiohttp_client(app)  # type: ignore[operator]
    journal = app[REFRESH_LOG_KEY]
    for _ in range(500):
        if journal:
            break
        await asyncio.sleep(0.01)
    assert journal == ["re-signed timestamp (snapshot v1, timestamp v2)"]
    response = await client.get("/metadata/timestamp.json")
    timestamp = Metadata.from_bytes(await response.read()).signed
    assert timestamp.version == 2 and timestamp.expires == later + dt.timedelta(days=1)


async def test_extensions_mount_routes_on_the_vendor_app(vendor: Vendor, aiohttp_client: object) -> None:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="psirt")

    def extension(app: web.Application) -> None:
        app.router.add_get("/psirt/hello", hello)

    config = UpdateServerConfig(repo_dir=vendor.repo_dir, refresh_interval=0)
    client: TestClient = await aiohttp_client(create_app(config, extensions=[extension]))  # type: ignore[operator]
    response = await client.get("/psirt/hello")
    assert await response.text() == "psirt"
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_missing_repository_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ServerConfigError, match="run 'refcam repo init' first"):
        create_app(UpdateServerConfig(repo_dir=tmp_path))
