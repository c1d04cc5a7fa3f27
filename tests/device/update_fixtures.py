"""Helpers for the update tests: a vendor (keys + TUF repository), signed images,
the update server on loopback TLS, and a provisioned simulated camera.

Everything is generated in pytest tmp dirs (``refcam keys init`` layout via
``bootloader.keys.init_keys``); servers bind 127.0.0.1 on free ports. The
clock for keys, certificates and metadata is the real one (the TLS client
checks certificates against it), so tests move the *device* clock instead.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bootloader.chain import BootOutcome, boot
from bootloader.firmware import build_payload
from bootloader.hardware import Board, FlashGeometry
from bootloader.keys import init_keys, load_private_key
from bootloader.provision import (
    HARDWARE_ID,
    MODEL,
    VENDOR,
    load_provision_keys,
    provision_device,
)
from bootloader.unit import Device
from common import tls
from common.image import sign_image
from common.passwords import hash_password
from device.update.client import UpdateClient
from device.update.fetcher import HTTPSFetcher
from device.update.policy import UpdateClientConfig
from update_server.repo import TUFRepository, facts_from_image
from update_server.server import UpdateServerConfig, create_app, serve_in_thread, server_ssl_context

NOW_DT = dt.datetime.now(dt.UTC).replace(microsecond=0)
NOW = int(NOW_DT.timestamp())
GEOMETRY = FlashGeometry(
    sector_size=512, write_align=8, bootloader_size=4096, slot_size=64 * 1024, data_size=512
)
BOARD = Board(hardware_id=HARDWARE_ID, model=MODEL, vendor=VENDOR, geometry=GEOMETRY)
MAIN = "def run(handoff, argv):\n    return 0\n"


@dataclass
class Vendor:
    keys_dir: Path
    repo_dir: Path
    firmware_source: Path
    initial_root: bytes  # root v1, what the factory firmware embeds

    def repo(self, *, now: dt.datetime = NOW_DT) -> TUFRepository:
        return TUFRepository.open_dir(self.repo_dir, now=now)

    @property
    def vendor_root_pem(self) -> Path:
        return self.keys_dir / "vendor" / "root-ca.pem"

    def image(
        self,
        version: str,
        counter: int,
        *,
        hardware_id: str = HARDWARE_ID,
        tuf_root: bytes | None = None,
        padding: int = 0,
    ) -> bytes:
        """A signed slot image of the tiny firmware; ``padding`` adds a file of that size."""
        source = self.firmware_source
        if padding:
            source = self.firmware_source.parent / f"pad-{padding}" / "device"
            if not source.exists():
                shutil.copytree(self.firmware_source, source)
                # incompressible (the payload zip stores it as is): the image really grows
                blocks = (hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(padding // 32))
                (source / "padding.bin").write_bytes(b"".join(blocks))
        payload = build_payload(
            version=version,
            hardware_id=hardware_id,
            model=MODEL,
            build_time=NOW - 86_400,
            support_end="2031-12-31",
            tuf_root=tuf_root if tuf_root is not None else self.initial_root,
            vendor_tls_root=self.vendor_root_pem.read_bytes(),
            source_dir=source,
        )
        return sign_image(
            payload,
            version=version,
            security_counter=counter,
            hardware_id=hardware_id,
            signing_key=load_private_key(self.keys_dir / "firmware-signing.key.pem"),
            key_manifest=(self.keys_dir / "key-manifest.bin").read_bytes(),
            build_time=NOW - 86_400,
        )

    def publish(self, image: bytes, name: str, *, now: dt.datetime = NOW_DT) -> None:
        repo = self.repo(now=now)
        repo.publish(name, image, facts_from_image(image))
        repo.commit()


def make_vendor(tmp: Path) -> Vendor:
    keys_dir = tmp / "K"
    init_keys(keys_dir, now=NOW_DT - dt.timedelta(days=1))
    repo_dir = tmp / "REPO"
    repo = TUFRepository.initialise(repo_dir, keys_dir, now=NOW_DT)
    repo.commit()
    source = tmp / "fw" / "device"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text('"""tiny test firmware"""\n')
    (source / "main.py").write_text(MAIN)
    return Vendor(
        keys_dir=keys_dir,
        repo_dir=repo_dir,
        firmware_source=source,
        initial_root=(repo_dir / "metadata" / "1.root.json").read_bytes(),
    )


def server_context(vendor: Vendor) -> ssl.SSLContext:
    config = UpdateServerConfig(repo_dir=vendor.repo_dir, keys_dir=vendor.keys_dir)
    return server_ssl_context(config, now=NOW_DT)


@contextmanager
def update_server(vendor: Vendor, *, repo_dir: Path | None = None) -> Iterator[str]:
    """Serve ``repo_dir`` (default: the vendor's) over TLS; yields ``https://localhost:PORT``."""
    config = UpdateServerConfig(
        repo_dir=repo_dir or vendor.repo_dir, keys_dir=vendor.keys_dir, refresh_interval=0
    )
    with serve_in_thread(create_app(config), ssl_context=server_context(vendor), guarded=True) as port:
        yield f"https://localhost:{port}"


@contextmanager
def app_server(app: web.Application, context: ssl.SSLContext | None) -> Iterator[str]:
    with serve_in_thread(app, ssl_context=context) as port:
        yield f"{'https' if context else 'http'}://localhost:{port}"


def fetcher_for(vendor: Vendor, partial_dir: Path | None = None) -> HTTPSFetcher:
    return HTTPSFetcher(
        ssl_context=tls.client_context(vendor.vendor_root_pem), partial_dir=partial_dir
    )


def snapshot_repo(vendor: Vendor, dest: Path) -> Path:
    """A frozen copy of the repository as it is now (for rollback/freeze attacks)."""
    shutil.copytree(vendor.repo_dir, dest)
    return dest


# --------------------------------------------------------------------------- device


@dataclass
class Camera:
    device: Device

    def boot(self, *, now: int = NOW) -> BootOutcome:
        self.device = self.device.power_on()
        return boot(self.device, now=now)


def make_camera(tmp: Path, vendor: Vendor, factory_image: bytes) -> Camera:
    device = Device.in_memory(tmp / "state", board=BOARD)
    provision_device(
        device,
        keys=load_provision_keys(vendor.keys_dir),
        firmware_image=factory_image,
        serial="RCTEST000001",
        initial_password_hash=hash_password("k7QmZ-2xR9p-Abcde-Fgh23"),
        now=NOW_DT,
    )
    return Camera(device)


def update_client(
    outcome: BootOutcome, vendor: Vendor, url: str, *, clock: float = NOW, **config: object
) -> UpdateClient:
    return UpdateClient(
        outcome.handoff,
        UpdateClientConfig(repository_url=url, **config),  # type: ignore[arg-type]
        fetcher=fetcher_for(vendor, outcome.handoff.data_dir / "update" / "partial"),
        clock=lambda: clock,
    )
