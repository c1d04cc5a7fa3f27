"""The nginx configuration of docs/UPDATES.md serves a real repository to the device's update client.

Debian's nginx (``.ci/system-deps.sh`` installs ``nginx-light``) runs in the
foreground on a loopback port with the block :func:`update_server.nginx.server_block`
writes, which is the block the doc shows. ``refcam tuf-client`` (the device's
``Updater`` construction and HTTPS fetcher, vendor root trusted) then refreshes and
downloads a firmware target through it.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from update_fixtures import Vendor

from refcam import cli
from update_server.nginx import server_block, standalone_config
from update_server.tls import ensure_server_certificate

HW = "refcam-rc1080-v1"
DOC = Path(__file__).resolve().parents[2] / "docs" / "UPDATES.md"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def nginx_serving(vendor: Vendor, workdir: Path) -> Iterator[int]:
    """Run nginx on 127.0.0.1 with the doc's server block for ``vendor``'s repository."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is missing: .ci/system-deps.sh installs nginx-light"
    chain, key = ensure_server_certificate(vendor.keys_dir, now=datetime.now(UTC))
    port = _free_port()
    prefix = workdir / "nginx"
    prefix.mkdir()
    user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
    block = server_block(listen=f"127.0.0.1:{port}", server_name="localhost", certificate=str(chain),
                         certificate_key=str(key), root=str(vendor.repo_dir))
    conf = prefix / "nginx.conf"
    conf.write_text(standalone_config(block, prefix=str(prefix), user=user))
    check = subprocess.run([nginx, "-t", "-p", str(prefix), "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
            assert proc.poll() is None and time.monotonic() < deadline, (prefix / "error.log").read_text()
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _get(vendor: Vendor, port: int, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    ctx = ssl.create_default_context(cafile=str(vendor.vendor_root_pem))
    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def test_the_doc_shows_the_block_server_block_writes() -> None:
    text = DOC.read_text()
    start = text.index("```nginx\n") + len("```nginx\n")
    shown = text[start : text.index("```", start)]
    assert shown == server_block(listen="443", server_name="updates.example.com",
                                 certificate="/etc/refcam/update-server.pem",
                                 certificate_key="/etc/refcam/update-server.key.pem", root="/srv/refcam/REPO")


@pytest.mark.parametrize("field", ["root", "server_name", "certificate"])
@pytest.mark.parametrize("value", ["/srv/x; include /etc/passwd", "a}b", "x\ny", "", "a b", "$document_root", "\u202e"])
def test_a_value_that_would_change_the_directives_is_refused(field: str, value: str) -> None:
    values = {"listen": "443", "server_name": "u", "certificate": "/c", "certificate_key": "/k", "root": "/r"}
    with pytest.raises(ValueError, match=f"{field} cannot go into an nginx configuration"):
        server_block(**{**values, field: value})


def test_the_device_update_client_refreshes_and_downloads_through_nginx(vendor: Vendor, tmp_path: Path) -> None:
    image = vendor.image("2.0.0", 2)
    vendor.publish(image, "rc-2.0.0.img")
    root = tmp_path / "initial_root.json"
    root.write_bytes(vendor.initial_root)
    assert cli.main(["tuf-client", "--metadata-dir", str(tmp_path / "md"), "init", str(root)]) == 0
    with nginx_serving(vendor, tmp_path) as port:
        url = f"https://localhost:{port}"
        common = ["tuf-client", "--metadata-dir", str(tmp_path / "md"), "--metadata-url", f"{url}/metadata/",
                  "--ca-file", str(vendor.vendor_root_pem)]
        assert cli.main([*common, "refresh"]) == 0
        assert cli.main([*common, "--target-name", f"{HW}/rc-2.0.0.img", "--target-dir", str(tmp_path / "t"),
                         "--target-base-url", f"{url}/targets/", "download"]) == 0
        assert (tmp_path / "t" / f"{HW}%2Frc-2.0.0.img").read_bytes() == image

        timestamp = _get(vendor, port, "/metadata/timestamp.json")
        assert timestamp.status == 200
        assert timestamp.headers["Cache-Control"] == "no-cache"
        assert timestamp.headers["Content-Type"] == "application/json"
        versioned = _get(vendor, port, "/metadata/1.root.json")
        assert versioned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        target = next(p for p in (vendor.repo_dir / "targets").rglob("*") if p.is_file() and p.name.endswith(".img"))
        path = "/" + target.relative_to(vendor.repo_dir).as_posix()
        ranged = _get(vendor, port, path, {"Range": "bytes=100-"})  # a resumed download
        assert ranged.status == 206
        assert int(ranged.headers["Content-Length"]) == len(image) - 100
        for response in (timestamp, versioned, ranged):
            assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        for hidden in ("/repo.json", "/", "/keys/", "/metadata/../repo.json", "/.git/config"):
            assert _get(vendor, port, hidden).status in (400, 404), hidden


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_nginx_refuses_tls_below_1_2(vendor: Vendor, tmp_path: Path) -> None:
    def handshake(version: ssl.TLSVersion, port: int) -> str | None:
        ctx = ssl.create_default_context(cafile=str(vendor.vendor_root_pem))
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # the client would offer TLS 1.1: the server must refuse it
        ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", port)) as raw, ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.version()

    with nginx_serving(vendor, tmp_path) as port:
        assert handshake(ssl.TLSVersion.TLSv1_2, port) == "TLSv1.2"  # the same client gets through on 1.2
        with pytest.raises(ssl.SSLError):
            handshake(ssl.TLSVersion.TLSv1_1, port)
