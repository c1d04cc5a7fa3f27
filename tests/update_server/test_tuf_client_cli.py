"""``refcam tuf-client``: the tuf-conformance CLI protocol on the device's Updater and fetcher."""

from __future__ import annotations

from pathlib import Path

import pytest
from tuf.api.metadata import Metadata
from update_fixtures import Vendor, update_server

from refcam import cli
from update_server.server import UpdateServerConfig, create_app, serve_in_thread

HW = "refcam-rc1080-v1"


def client(vendor: Vendor, tmp: Path, url: str, *args: str) -> int:
    return cli.main(
        [
            "tuf-client",
            "--metadata-dir",
            str(tmp / "md"),
            "--metadata-url",
            f"{url}/metadata/",
            "--ca-file",
            str(vendor.vendor_root_pem),
            *args,
        ]
    )


def init(vendor: Vendor, tmp: Path) -> None:
    root = tmp / "initial_root.json"
    root.write_bytes(vendor.initial_root)
    assert cli.main(["tuf-client", "--metadata-dir", str(tmp / "md"), "init", str(root)]) == 0


def trusted_version(tmp: Path, role: str) -> int:
    return Metadata.from_file(str(tmp / "md" / f"{role}.json")).signed.version


def test_init_refresh_download_over_tls(vendor: Vendor, tmp_path: Path) -> None:
    image = vendor.image("2.0.0", 2)
    vendor.publish(image, "rc-2.0.0.img")
    init(vendor, tmp_path)
    with update_server(vendor) as url:
        assert client(vendor, tmp_path, url, "refresh") == 0
        download = [
            "--target-name",
            f"{HW}/rc-2.0.0.img",
            "--target-dir",
            str(tmp_path / "t"),
            "--target-base-url",
            f"{url}/targets/",
            "download",
        ]
        assert client(vendor, tmp_path, url, *download) == 0
        assert client(vendor, tmp_path, url, *download) == 0  # cached: not fetched again
    assert (tmp_path / "t" / f"{HW}%2Frc-2.0.0.img").read_bytes() == image
    # conformance CLI: non-versioned names in METADATA_DIR
    assert trusted_version(tmp_path, "timestamp") == 2
    assert (tmp_path / "md" / f"models-{HW}.json").exists()


def test_unknown_target_fails_with_exit_1(
    vendor: Vendor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init(vendor, tmp_path)
    with update_server(vendor) as url:
        code = client(
            vendor, tmp_path, url,
            "--target-name", "nope/x.img", "--target-dir", str(tmp_path / "t"),
            "--target-base-url", f"{url}/targets/", "download",
        )  # fmt: skip
    assert code == 1
    assert "target 'nope/x.img' is not in the repository" in capsys.readouterr().err


def test_plain_http_needs_the_explicit_switch(
    vendor: Vendor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init(vendor, tmp_path)
    app = create_app(UpdateServerConfig(repo_dir=vendor.repo_dir, refresh_interval=0))
    with serve_in_thread(app, ssl_context=None) as port:
        url = f"http://127.0.0.1:{port}"
        assert client(vendor, tmp_path, url, "refresh") == 1
        assert "updates are fetched over https only" in capsys.readouterr().err
        assert client(vendor, tmp_path, url, "--allow-plain-http", "refresh") == 0


def test_https_without_trust_anchor_fails(
    vendor: Vendor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    init(vendor, tmp_path)
    with update_server(vendor) as url:
        code = cli.main(
            ["tuf-client", "--metadata-dir", str(tmp_path / "md"),
             "--metadata-url", f"{url}/metadata/", "refresh"]
        )  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("refcam: error: download failed") and err.count("\n") == 1


def test_client_follows_root_and_timestamp_key_rotation(vendor: Vendor, tmp_path: Path) -> None:
    init(vendor, tmp_path)
    with update_server(vendor) as url:
        assert client(vendor, tmp_path, url, "refresh") == 0
        repo = vendor.repo()
        repo.rotate("root")
        repo.commit()
        repo = vendor.repo()
        repo.rotate("timestamp", replace_keyid=None)
        repo.commit()
        assert client(vendor, tmp_path, url, "refresh") == 0
    assert trusted_version(tmp_path, "root") == 3
    assert (tmp_path / "md" / "root_history" / "2.root.json").exists()


def test_refresh_without_init_fails(vendor: Vendor, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with update_server(vendor) as url:
        assert client(vendor, tmp_path, url, "refresh") == 1
    assert "run 'refcam tuf-client init' first" in capsys.readouterr().err
