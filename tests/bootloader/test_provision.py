"""Factory provisioning into a state directory (bootloader/provision.py)."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from bootloader.chain import boot
from bootloader.dice import derive_sealing_key
from bootloader.hardware import FlashGeometry
from bootloader.keys import KeySet
from bootloader.provision import ProvisionResult, new_serial, provision_state_dir
from bootloader.unit import open_device
from common.errors import ProvisioningError
from common.passwords import label_fold, verify_password
from common.sealedsecret import SEALED_SECRET_LABEL, SealedSecretError, open_secret
from tests.bootloader.conftest import NOW, NOW_DT, Build

SMALL = FlashGeometry(slot_size=16 * 4096, bootloader_size=4 * 4096)


def provision(state: Path, keyset: KeySet, image: bytes, **kwargs: object) -> ProvisionResult:
    return provision_state_dir(
        state,
        keys_dir=keyset.directory,
        firmware_image=image,
        now=NOW_DT,
        geometry=SMALL,
        **kwargs,  # type: ignore[arg-type]
    )


def test_provisioned_state_directory_has_the_documented_layout(
    tmp_path: Path, keyset: KeySet, image_v1: bytes
) -> None:
    result = provision(tmp_path / "cam", keyset, image_v1)
    state = result.state_dir
    identity = state / "data" / "identity"
    for name in ("otp.bin", "flash.bin", "hardware.json", "label.txt"):
        assert (state / name).is_file(), name
    for name in ("device.json", "tls.key.pem", "tls.pem", "manufacturer-root.pem", "deviceid.pem"):
        assert (identity / name).is_file(), name
    assert stat.S_IMODE((identity / "tls.key.pem").stat().st_mode) == 0o600
    label = (state / "label.txt").read_text()
    assert f"serial: {result.serial}\n" in label and "RC-1080" in label
    assert f"initial password: {result.initial_password}\n" in label
    assert "change at first login" in label
    label_hash, fold_hash = (identity / "initial-password.hash").read_text().split()
    verify_password(result.initial_password, label_hash)
    verify_password(label_fold(result.initial_password), fold_hash)
    secret = result.initial_password.encode()
    for path in state.rglob("*"):
        if path.is_file() and path.name != "label.txt":
            assert secret not in path.read_bytes(), f"initial password leaked into {path}"
    assert list(tmp_path.iterdir()) == [state]  # no staging directory left behind
    # the label password sealed for admin, under this unit's own protocol-secrets key only
    device = open_device(state)
    uds = device.fuses.read().uds
    assert uds is not None
    sealed = (identity / "initial-password.sealed").read_bytes()
    assert stat.S_IMODE((identity / "initial-password.sealed").stat().st_mode) == 0o600
    assert open_secret(derive_sealing_key(uds, SEALED_SECRET_LABEL), "admin", sealed) == result.initial_password
    with pytest.raises(SealedSecretError):
        open_secret(derive_sealing_key(bytes(32), SEALED_SECRET_LABEL), "admin", sealed)


def test_file_backed_device_boots_updates_and_survives_reopen(
    tmp_path: Path, keyset: KeySet, image_v1: bytes, image_v2: bytes
) -> None:
    state = provision(tmp_path / "cam", keyset, image_v1).state_dir
    outcome = boot(open_device(state), now=NOW)
    assert outcome.summary == "booted slot a, firmware 1.0.0 (security counter 1)"
    assert outcome.handoff.fuses.lifecycle == "secured" and outcome.handoff.fuses.debug_disabled
    services = outcome.handoff.services
    services.write_image("b", image_v2)
    services.set_pending("b")
    boot(open_device(state), now=NOW).handoff.services.confirm()
    again = boot(open_device(state), now=NOW)  # a fresh process would see the same
    assert again.summary == "booted slot b, firmware 2.0.0 (security counter 2)"
    assert open_device(state).fuses.read().firmware_counter == 2


def test_provision_refuses_a_non_empty_directory(tmp_path: Path, keyset: KeySet, image_v1: bytes) -> None:
    state = tmp_path / "cam"
    state.mkdir()
    (state / "keep.txt").write_text("precious")
    with pytest.raises(ProvisioningError, match="is not empty; refusing to overwrite"):
        provision(state, keyset, image_v1)
    assert [p.name for p in state.iterdir()] == ["keep.txt"]


def test_provision_accepts_an_existing_empty_directory(
    tmp_path: Path, keyset: KeySet, image_v1: bytes
) -> None:
    state = tmp_path / "cam"
    state.mkdir()
    provision(state, keyset, image_v1, serial="RC-BENCH-1")
    assert open_device(state).fuses.read().uds is not None


def test_two_devices_have_different_serials_uds_and_initial_passwords(
    tmp_path: Path, keyset: KeySet, image_v1: bytes
) -> None:
    one = provision(tmp_path / "one", keyset, image_v1)
    two = provision(tmp_path / "two", keyset, image_v1)
    assert one.serial != two.serial
    assert one.initial_password != two.initial_password
    assert open_device(one.state_dir).fuses.read().uds != open_device(two.state_dir).fuses.read().uds
    tls = "data/identity/tls.key.pem"
    assert (one.state_dir / tls).read_bytes() != (two.state_dir / tls).read_bytes()


def test_tampered_firmware_is_refused_before_anything_is_written(
    tmp_path: Path, keyset: KeySet, image_v1: bytes
) -> None:
    bad = bytearray(image_v1)
    bad[len(bad) // 2] ^= 1
    with pytest.raises(ProvisioningError, match="firmware image refused: .*hash"):
        provision(tmp_path / "cam", keyset, bytes(bad))
    assert list(tmp_path.iterdir()) == []


def test_firmware_for_another_model_is_refused(
    tmp_path: Path, keyset: KeySet, build_image: Build
) -> None:
    other = build_image("1.0.0", 1, model="RC-4K")
    with pytest.raises(ProvisioningError, match="built for RC-4K"):
        provision(tmp_path / "cam", keyset, other)
    assert list(tmp_path.iterdir()) == []


def test_invalid_serial_is_refused(tmp_path: Path, keyset: KeySet, image_v1: bytes) -> None:
    with pytest.raises(ProvisioningError, match="serial 'bad serial!'"):
        provision(tmp_path / "cam", keyset, image_v1, serial="bad serial!")
    assert list(tmp_path.iterdir()) == []


def test_development_lifecycle_leaves_debug_enabled(
    tmp_path: Path, keyset: KeySet, image_v1: bytes
) -> None:
    state = provision(tmp_path / "cam", keyset, image_v1, lifecycle="development").state_dir
    fuses = open_device(state).fuses.read()
    assert fuses.lifecycle == "development" and not fuses.debug_disabled


def test_serials_are_random_base32() -> None:
    serials = {new_serial() for _ in range(50)}
    assert len(serials) == 50
    assert all(re.fullmatch(r"RC[A-Z2-7]{10}", s) for s in serials)
