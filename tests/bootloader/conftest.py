"""Fixtures for the boot chain: a key directory, tiny firmware images, provisioned devices.

Sizes are tiny (512-byte sectors, 8 KiB slots, a three-file firmware
package) so a power-cut sweep over every flash operation runs in seconds.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bootloader.firmware import build_payload
from bootloader.hardware import Board, FlashGeometry
from bootloader.keys import KeySet, init_keys, load_private_key
from bootloader.provision import (
    HARDWARE_ID,
    MODEL,
    VENDOR,
    ProvisionKeys,
    load_provision_keys,
    provision_device,
)
from bootloader.unit import Device
from common.image import sign_image
from common.passwords import hash_password

NOW = 1_800_000_000  # 2027-01-15, seconds since the epoch
NOW_DT = dt.datetime.fromtimestamp(NOW, dt.UTC)
KEYS_NOW = NOW_DT - dt.timedelta(days=30)
INITIAL_PASSWORD = "k7QmZ-2xR9p-Abcde-Fgh23"
TINY = FlashGeometry(
    sector_size=512, write_align=8, bootloader_size=4096, slot_size=8192, data_size=512
)
BOARD = Board(hardware_id=HARDWARE_ID, model=MODEL, vendor=VENDOR, geometry=TINY)

MAIN = "def run(handoff, argv):\n    return 0\n"


@pytest.fixture(scope="session")
def keyset(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    return init_keys(tmp_path_factory.mktemp("keys") / "K", now=KEYS_NOW)


@pytest.fixture(scope="session")
def provision_keys(keyset: KeySet) -> ProvisionKeys:
    return load_provision_keys(keyset.directory)


@pytest.fixture(scope="session")
def firmware_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pkg = tmp_path_factory.mktemp("fw") / "device"
    pkg.mkdir()
    (pkg / "__init__.py").write_text('"""tiny test firmware"""\n')
    (pkg / "main.py").write_text(MAIN)
    ground = pkg.parent / "common"  # a tiny ground package: it fits the 8 KiB test slots
    ground.mkdir()
    (ground / "__init__.py").write_text('"""tiny ground package"""\n')
    return pkg


Build = Callable[..., bytes]


def make_builder(keyset: KeySet, firmware_source: Path) -> Build:
    """``build("2.0.0", 2)``: a signed slot image of the tiny firmware, signed with ``keyset``."""
    signing_key = load_private_key(keyset.firmware_signing_key)
    assert isinstance(signing_key, Ed25519PrivateKey)
    manifest = keyset.key_manifest.read_bytes()

    def build(
        version: str,
        security_counter: int,
        *,
        hardware_id: str = HARDWARE_ID,
        model: str = MODEL,
        key: Ed25519PrivateKey | None = None,
        key_manifest: bytes | None = manifest,
    ) -> bytes:
        payload = build_payload(
            version=version,
            hardware_id=hardware_id,
            model=model,
            build_time=NOW - 86_400,
            support_end="2031-12-31",
            source_dir=firmware_source,
            ground_dir=firmware_source.parent / "common",
        )
        return sign_image(
            payload,
            version=version,
            security_counter=security_counter,
            hardware_id=hardware_id,
            signing_key=key if key is not None else signing_key,
            key_manifest=key_manifest,
        )

    return build


@pytest.fixture(scope="session")
def build_image(keyset: KeySet, firmware_source: Path) -> Build:
    return make_builder(keyset, firmware_source)


@pytest.fixture(scope="session")
def wallclock_keyset(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    """For the CLI, which reads the real clock: certificates valid today."""
    return init_keys(tmp_path_factory.mktemp("keys-now") / "K", now=dt.datetime.now(dt.UTC))


@pytest.fixture(scope="session")
def wallclock_images(wallclock_keyset: KeySet, firmware_source: Path) -> tuple[bytes, bytes]:
    build = make_builder(wallclock_keyset, firmware_source)
    return build("1.0.0", 1), build("2.0.0", 2)


@pytest.fixture(scope="session")
def image_v1(build_image: Build) -> bytes:
    return build_image("1.0.0", 1)


@pytest.fixture(scope="session")
def image_v2(build_image: Build) -> bytes:
    return build_image("2.0.0", 2)


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(INITIAL_PASSWORD)


@dataclass
class Factory:
    """Provisioned in-memory devices: one is made per session, tests get deep copies."""

    golden: Device

    def device(self) -> Device:
        return copy.deepcopy(self.golden)


@pytest.fixture(scope="session")
def factory(
    tmp_path_factory: pytest.TempPathFactory,
    provision_keys: ProvisionKeys,
    image_v1: bytes,
    password_hash: str,
) -> Factory:
    state = tmp_path_factory.mktemp("device")
    device = Device.in_memory(state, board=BOARD)
    provision_device(
        device,
        keys=provision_keys,
        firmware_image=image_v1,
        serial="RCTEST000001",
        initial_password_hash=password_hash,
        now=NOW_DT,
    )
    return Factory(device)


@pytest.fixture
def device(factory: Factory) -> Device:
    """A provisioned in-memory device: slot a holds v1 (confirmed), slot b is empty."""
    return factory.device()
