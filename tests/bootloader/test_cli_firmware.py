"""``refcam keys ...`` and ``refcam firmware ...`` run in-process (refcam/cli_keys.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bootloader.firmware import FirmwarePayload
from bootloader.keys import load_public_key, spki_sha256
from common.image import SignedImage
from device.disclosure import with_image_digest
from refcam.cli import main

PW_ENV = "REFCAM_TEST_KEY_PASSPHRASE"


@pytest.fixture(scope="module")
def keydir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli") / "K"
    assert main(["keys", "init", "--dir", str(directory)]) == 0
    return directory


@pytest.fixture(scope="module")
def firmware(keydir: Path) -> Path:
    out = keydir.parent / "fw.img"
    code = main([
        "firmware", "build", "--keys", str(keydir), "--version", "1.4.0",
        "--security-counter", "7", "-o", str(out), "--build-time", "1800000000",
    ])  # fmt: skip
    assert code == 0
    return out


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("refcam: error: ")
    assert "Traceback" not in err
    return lines[0]


def test_keys_init_prints_paths_and_hashes_but_no_private_material(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PW_ENV, "s3cret passphrase")
    directory = tmp_path / "K"
    assert main(["keys", "init", "--dir", str(directory), "--passphrase-env", PW_ENV]) == 0
    out, err = capsys.readouterr()
    rot0 = spki_sha256(load_public_key(directory / "rot-0.pub.pem")).hex()
    assert rot0 in out
    assert "rot-0.key.pem (0600)" in out
    assert "(encrypted)" in out
    assert "PRIVATE KEY" not in out + err
    assert "s3cret" not in out + err
    for key_file in directory.rglob("*.key.pem"):
        body = "".join(key_file.read_text().splitlines()[1:-1])
        assert body[:40] not in out


def test_keys_init_refuses_to_overwrite(keydir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (keydir / "rot-0.key.pem").read_bytes()
    assert main(["keys", "init", "--dir", str(keydir)]) == 1
    assert "refusing to overwrite" in _one_error_line(capsys)
    assert (keydir / "rot-0.key.pem").read_bytes() == before


def test_missing_passphrase_variable_is_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REFCAM_NO_SUCH_VAR", raising=False)
    code = main(
        ["keys", "init", "--dir", str(tmp_path / "K"), "--passphrase-env", "REFCAM_NO_SUCH_VAR"]
    )
    assert code == 1
    assert _one_error_line(capsys) == (
        "refcam: error: environment variable REFCAM_NO_SUCH_VAR (--passphrase-env) is not set"
    )
    assert not (tmp_path / "K").exists()


def test_firmware_build_packs_the_device_package(firmware: Path, keydir: Path) -> None:
    image = SignedImage.parse(firmware.read_bytes())
    assert (str(image.version), image.security_counter, image.hardware_id) == (
        "1.4.0",
        7,
        "refcam-rc1080-v1",
    )
    assert image.build_time == 1_800_000_000
    payload = FirmwarePayload.parse(image.payload)
    assert payload.manifest.version == "1.4.0"
    assert payload.manifest.model == "RC-1080"
    assert payload.manifest.support_end == "2032-01-15"
    assert payload.manifest.vendor_tls_root == (keydir / "vendor" / "root-ca.pem").read_bytes()
    assert "device/main.py" in payload.files


def test_firmware_build_publishes_an_sbom_naming_the_measured_image_digest(firmware: Path) -> None:
    """The SBOM beside the image carries the digest the bootloader measures; the packed copy
    cannot (the device adds its measured digest when it serves it)."""
    image = SignedImage.parse(firmware.read_bytes())
    published = json.loads(firmware.with_suffix(".cdx.json").read_text())
    assert published["metadata"]["component"]["hashes"] == [{"alg": "SHA-256", "content": image.image_hash.hex()}]
    packed = json.loads(FirmwarePayload.parse(image.payload).files["device/sbom.cdx.json"])
    assert "hashes" not in packed["metadata"]["component"]
    served = json.loads(with_image_digest(json.dumps(packed).encode(), image.image_hash.hex()))
    assert served["metadata"]["component"]["hashes"] == published["metadata"]["component"]["hashes"]
    assert {c["name"] for c in served["components"]} == {c["name"] for c in packed["components"]}


def test_firmware_build_packs_another_source_tree(keydir: Path, tmp_path: Path) -> None:
    source = tmp_path / "vendor-fw" / "device"
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("")
    (source / "main.py").write_text("def run(handoff, argv):\n    return 0\n")
    out = tmp_path / "fw.img"
    code = main(["firmware", "build", "--keys", str(keydir), "--version", "3.0.0",
                 "--security-counter", "3", "--source", str(source), "-o", str(out)])  # fmt: skip
    assert code == 0
    payload = FirmwarePayload.parse(SignedImage.parse(out.read_bytes()).payload)
    assert payload.files["device/main.py"] == (source / "main.py").read_bytes()
    assert "device/api.py" not in payload.files  # only what the tree holds


def test_firmware_build_refuses_a_source_without_an_entry_point(
    keydir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["firmware", "build", "--keys", str(keydir), "--version", "3.0.0",
                 "--security-counter", "3", "--source", str(tmp_path), "-o", str(tmp_path / "x.img")])  # fmt: skip
    assert code == 1
    assert "is not a firmware package directory (no main.py)" in _one_error_line(capsys)
    assert not (tmp_path / "x.img").exists()


def test_firmware_verify_accepts_a_genuine_image(
    firmware: Path, keydir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["firmware", "verify", str(firmware), "--keys", str(keydir)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"{firmware}: OK: version 1.4.0, security counter 7")


def test_firmware_verify_refuses_a_changed_byte(
    firmware: Path, keydir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = bytearray(firmware.read_bytes())
    data[500] ^= 0x40
    bad = tmp_path / "bad.img"
    bad.write_bytes(bytes(data))
    assert main(["firmware", "verify", str(bad), "--keys", str(keydir)]) == 1
    assert _one_error_line(capsys).startswith("refcam: error: image hash mismatch")


def test_firmware_verify_refuses_another_vendors_keys(
    firmware: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["keys", "init", "--dir", str(tmp_path / "other")]) == 0
    capsys.readouterr()
    assert main(["firmware", "verify", str(firmware), "--keys", str(tmp_path / "other")]) == 1
    assert "is not a fused root-of-trust key" in _one_error_line(capsys)


def test_firmware_verify_refuses_other_hardware(
    firmware: Path, keydir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "firmware",
            "verify",
            str(firmware),
            "--keys",
            str(keydir),
            "--hardware-id",
            "refcam-rc4k-v2",
        ]
    )
    assert code == 1
    assert _one_error_line(capsys) == (
        "refcam: error: image is for hardware 'refcam-rc1080-v1', this device is 'refcam-rc4k-v2'"
    )


def test_firmware_inspect_lists_header_tlvs_and_payload(
    firmware: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["firmware", "inspect", str(firmware)]) == 0
    out = capsys.readouterr().out
    image = SignedImage.parse(firmware.read_bytes())
    assert "magic 0x96f3b83d" in out and "version 1.4.0" in out
    for name in (
        "SEC_CNT",
        "HARDWARE_ID",
        "BUILD_TIME",
        "SHA256",
        "KEYHASH",
        "ED25519",
        "KEY_MANIFEST",
    ):
        assert f" {name} " in out
    assert f"sha256 {image.image_hash.hex()} (matches the SHA256 TLV)" in out
    assert "payload: firmware RC-1080 (refcam-rc1080-v1) version 1.4.0" in out
    assert "signature NOT verified" in out


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x3d\xb8\xf3\x96" + b"\x00" * 40])
def test_firmware_inspect_of_malformed_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "junk.img"
    path.write_bytes(content)
    assert main(["firmware", "inspect", str(path)]) == 1
    _one_error_line(capsys)


def test_missing_files_are_one_line_errors(
    tmp_path: Path, keydir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["firmware", "inspect", str(tmp_path / "none.img")]) == 1
    assert _one_error_line(capsys).endswith("none.img does not exist")
    code = main(
        [
            "firmware",
            "build",
            "--keys",
            str(tmp_path / "nokeys"),
            "--version",
            "1.0.0",
            "--security-counter",
            "1",
            "-o",
            str(tmp_path / "x.img"),
        ]
    )
    assert code == 1
    assert "does not exist (run `refcam keys init`)" in _one_error_line(capsys)
    assert not (tmp_path / "x.img").exists()


def test_bad_version_is_one_line_error_and_writes_nothing(
    keydir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.img"
    code = main(
        [
            "firmware",
            "build",
            "--keys",
            str(keydir),
            "--version",
            "1.x",
            "--security-counter",
            "1",
            "-o",
            str(out),
        ]
    )
    assert code == 1
    assert (
        _one_error_line(capsys)
        == "refcam: error: version '1.x' is not MAJOR.MINOR.REVISION[+BUILD]"
    )
    assert list(tmp_path.iterdir()) == []


def test_ecdsa_build_with_encrypted_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PW_ENV, "pw")
    keys = tmp_path / "K"
    assert main(["keys", "init", "--dir", str(keys), "--passphrase-env", PW_ENV]) == 0
    out = tmp_path / "fw.img"
    build = [
        "firmware",
        "build",
        "--keys",
        str(keys),
        "--version",
        "2.0.0",
        "--security-counter",
        "2",
        "-o",
        str(out),
        "--algorithm",
        "ecdsa-p256",
    ]
    assert main(build) == 1
    assert "is encrypted; give its passphrase" in _one_error_line(capsys)
    monkeypatch.setenv(PW_ENV, "wrong")
    assert main([*build, "--passphrase-env", PW_ENV]) == 1
    assert "wrong passphrase for private key" in _one_error_line(capsys)
    monkeypatch.setenv(PW_ENV, "pw")
    assert main([*build, "--passphrase-env", PW_ENV]) == 0
    assert main(["firmware", "verify", str(out), "--keys", str(keys)]) == 0
    capsys.readouterr()
    assert main(["firmware", "inspect", str(out)]) == 0
    assert " ECDSA_SIG " in capsys.readouterr().out


def test_sign_bootloader_and_verify_it(
    keydir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bl.img"
    code = main(
        [
            "firmware",
            "sign-bootloader",
            "--keys",
            str(keydir),
            "--version",
            "1.0.0",
            "--security-counter",
            "1",
            "-o",
            str(out),
            "--module",
            "common.image",
        ]
    )
    assert code == 0
    capsys.readouterr()
    assert main(["firmware", "verify", str(out), "--keys", str(keydir), "--bootloader"]) == 0
    assert ", bootloader, digest " in capsys.readouterr().out
    assert json.loads(bytes(SignedImage.parse(out.read_bytes()).payload))["stage"] == "bootloader"
    # A bootloader image is not a slot image.
    assert main(["firmware", "verify", str(out), "--keys", str(keydir)]) == 1
    assert "no key manifest" in _one_error_line(capsys)


def test_rotate_signing_then_build_uses_the_new_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "K"
    assert main(["keys", "init", "--dir", str(keys)]) == 0
    old = spki_sha256(load_public_key(keys / "firmware-signing.pub.pem"))
    assert main(["keys", "rotate-signing", "--dir", str(keys)]) == 0
    out = capsys.readouterr().out
    assert "key manifest counter 1 -> 2" in out
    assert old.hex() in out
    fw = tmp_path / "fw.img"
    assert (
        main(
            [
                "firmware",
                "build",
                "--keys",
                str(keys),
                "--version",
                "3.0.0",
                "--security-counter",
                "3",
                "-o",
                str(fw),
            ]
        )
        == 0
    )
    assert main(["firmware", "verify", str(fw), "--keys", str(keys)]) == 0
    assert "key manifest counter 2" in capsys.readouterr().out
    assert SignedImage.parse(fw.read_bytes()).key_hash != old


def test_unwritable_output_is_one_line_error(
    keydir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no" / "such" / "dir" / "fw.img"
    code = main(
        ["firmware", "build", "--keys", str(keydir), "--version", "1.0.0",
         "--security-counter", "1", "-o", str(out)]
    )  # fmt: skip
    assert code == 1
    assert _one_error_line(capsys).startswith(f"refcam: error: cannot write {out}")


# -- issue 13 defect 9: bad build inputs are one-line errors, nothing is signed ---------


@pytest.mark.parametrize(
    ("extra", "contents", "message"),
    [
        (["--support-end", "2020-13-45"], None, "support end '2020-13-45' is not a date YYYY-MM-DD"),
        (["--support-end", "2031-1-1"], None, "is not a date YYYY-MM-DD"),
        (["--tuf-root", "{path}"], b"not json at all", "TUF root is not JSON"),
        (["--tuf-root", "{path}"], b'{"signed": {"_type": "targets"}}', "not TUF root metadata"),
        (["--vendor-tls-root", "{path}"], b"hello, I am not PEM\n", "vendor TLS root is not PEM certificates"),
    ],
)
def test_firmware_build_refuses_bad_manifest_inputs(
    keydir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    extra: list[str], contents: bytes | None, message: str,
) -> None:
    path = tmp_path / "input"
    if contents is not None:
        path.write_bytes(contents)
    args = [a.replace("{path}", str(path)) for a in extra]
    out = tmp_path / "x.img"
    code = main(["firmware", "build", "--keys", str(keydir), "--version", "3.0.0",
                 "--security-counter", "3", *args, "-o", str(out)])  # fmt: skip
    assert code == 1
    assert message in _one_error_line(capsys)
    assert not out.exists()
