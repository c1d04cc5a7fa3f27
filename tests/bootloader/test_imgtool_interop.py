"""Interoperability with MCUboot's own ``imgtool`` (a test dependency only).

Our images must pass ``imgtool verify`` with the firmware-signing public key
and fail it when tampered; and images made by ``imgtool sign`` (with our
hardware id as a custom protected TLV 0x00a0) must parse and verify with our
code. This pins the format to MCUboot's, not to our reading of it.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

import pytest

from bootloader.build import build_firmware_image
from bootloader.keys import KeySet, init_keys, load_private_key, load_public_key
from common.image import (
    TLV_ECDSA_SIG,
    TLV_ED25519,
    TLV_HARDWARE_ID,
    SignedImage,
    sign_image,
    verify_image,
)

NOW = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
HW = "refcam-rc1080-v1"
PAYLOAD = bytes(range(256)) * 40


def imgtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgtool.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeySet:
    pytest.importorskip("imgtool", reason="imgtool is a test dependency (pip install .[test])")
    return init_keys(tmp_path_factory.mktemp("ikeys") / "K", now=NOW)


@pytest.mark.parametrize(
    ("algorithm", "pub"),
    [("ed25519", "firmware-signing.pub.pem"), ("ecdsa-p256", "firmware-signing-p256.pub.pem")],
)
def test_imgtool_verify_accepts_our_image_and_refuses_tampering(
    keys: KeySet, tmp_path: Path, algorithm: str, pub: str
) -> None:
    image = build_firmware_image(
        keys=keys, payload=PAYLOAD, version="1.2.3+7", security_counter=4,
        hardware_id=HW, algorithm=algorithm, build_time=1_800_000_000,
    )  # fmt: skip
    good = tmp_path / "fw.img"
    good.write_bytes(image)
    result = imgtool("verify", "-k", keys.directory / pub, good)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Image was correctly validated" in result.stdout
    assert "Image version: 1.2.3+7" in result.stdout
    digest = SignedImage.parse(image).image_hash.hex()
    assert f"Image digest: {digest}" in result.stdout

    tampered = bytearray(image)
    tampered[100] ^= 0x01
    bad = tmp_path / "bad.img"
    bad.write_bytes(bytes(tampered))
    result = imgtool("verify", "-k", keys.directory / pub, bad)
    assert result.returncode != 0
    assert "Image has an invalid hash" in result.stdout


def test_imgtool_verify_refuses_our_image_with_another_key(keys: KeySet, tmp_path: Path) -> None:
    image = tmp_path / "fw.img"
    image.write_bytes(
        build_firmware_image(keys=keys, payload=PAYLOAD, version="1.0.0", security_counter=1)
    )
    result = imgtool("verify", "-k", keys.rot_pub(0), image)
    assert result.returncode != 0
    assert "No signature found for the given key" in result.stdout


@pytest.mark.parametrize(
    ("key", "pub", "sig_type"),
    [
        ("firmware-signing.key.pem", "firmware-signing.pub.pem", TLV_ED25519),
        ("firmware-signing-p256.key.pem", "firmware-signing-p256.pub.pem", TLV_ECDSA_SIG),
    ],
)
def test_image_signed_by_imgtool_parses_and_verifies_with_our_code(
    keys: KeySet, tmp_path: Path, key: str, pub: str, sig_type: int
) -> None:
    raw = tmp_path / "app.bin"
    raw.write_bytes(PAYLOAD)
    out = tmp_path / "app.signed.bin"
    result = imgtool(
        "sign", "--key", keys.directory / key, "--header-size", "32", "--pad-header",
        "--version", "2.0.1+9", "--security-counter", "6", "--align", "8", "--slot-size", "0x20000",
        "--custom-tlv", "0xa0", HW, raw, out,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    image = SignedImage.parse(out.read_bytes())
    assert str(image.version) == "2.0.1+9"
    assert image.security_counter == 6
    assert image.hardware_id == HW
    assert image.signature_type == sig_type
    assert bytes(image.payload) == PAYLOAD
    assert [t.type for t in image.protected_tlvs][-1] == TLV_HARDWARE_ID
    verify_image(image, public_key=load_public_key(keys.directory / pub))


def test_our_ed25519_image_is_byte_identical_to_imgtool_sign(keys: KeySet, tmp_path: Path) -> None:
    raw = tmp_path / "app.bin"
    raw.write_bytes(PAYLOAD)
    out = tmp_path / "app.signed.bin"
    result = imgtool(
        "sign", "--key", keys.firmware_signing_key, "--header-size", "32", "--pad-header",
        "--version", "3.1.4+1", "--security-counter", "12", "--align", "8",
        "--slot-size", "0x20000", "--custom-tlv", "0xa0", HW, raw, out,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    ours = sign_image(
        PAYLOAD, version="3.1.4+1", security_counter=12, hardware_id=HW,
        signing_key=load_private_key(keys.firmware_signing_key),
    )  # fmt: skip
    assert ours == out.read_bytes()
