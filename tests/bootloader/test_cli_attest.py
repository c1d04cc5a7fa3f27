"""``refcam attest ...`` (refcam/cli_attest.py)."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from bootloader.pki import issue_device_id_certificate, issue_tls_certificate
from common.image import sign_image
from refcam.cli import main
from tests.bootloader.test_attestation import FW, NONCE, NOW, REFERENCE, T0, boot
from tests.bootloader.test_pki import ManufacturerCA, manufacturer_ca


@pytest.fixture(scope="module")
def ca() -> ManufacturerCA:
    return manufacturer_ca()


@pytest.fixture
def files(ca: ManufacturerCA, tmp_path: Path) -> dict[str, Path]:
    evidence = tmp_path / "evidence.jws"
    evidence.write_bytes(boot(ca).attester.evidence(NONCE, now=T0) + b"\n")
    root = tmp_path / "root.pem"
    root.write_bytes(ca.root_pem)
    reference = tmp_path / "values.json"
    reference.write_text(json.dumps(REFERENCE))
    return {"evidence": evidence, "ca": root, "reference": reference}


def _verify_args(files: dict[str, Path], nonce: str = NONCE.hex(), now: int = T0 + 5) -> list[str]:
    return [
        "attest",
        "verify",
        str(files["evidence"]),
        "--ca",
        str(files["ca"]),
        "--reference",
        str(files["reference"]),
        "--nonce",
        nonce,
        "--now",
        str(now),
    ]


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_verify_prints_a_verdict_per_stage(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_verify_args(files)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("evidence from RC1-0001 verified: chain to CN=refcam Manufacturer")
    assert out[1].split()[0] == "bootloader" and out[1].endswith("reference value")
    assert out[2].split()[0] == "firmware" and FW.hex()[:16] in out[2]
    assert out[2].endswith("reference value")


def test_verify_with_a_wrong_nonce_exits_1_with_one_line(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_verify_args(files, nonce="00" * 32)) == 1
    assert _one_error_line(capsys) == (
        "refcam: error: evidence nonce does not match the nonce sent\n"
    )


def test_verify_of_stale_evidence_fails(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_verify_args(files, now=T0 + 3600)) == 1
    assert "evidence is stale: issued 3600 s ago" in _one_error_line(capsys)


def test_tampered_firmware_fails_verification(
    ca: ManufacturerCA, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files["evidence"].write_bytes(boot(ca, b"\x66" * 32).attester.evidence(NONCE, now=T0))
    assert main(_verify_args(files)) == 1
    assert "stage firmware digest 6666666666666666.. is not a reference value" in (
        _one_error_line(capsys)
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("nonce", "xyz"), "--nonce 'xyz' is not hex"),
        (("nonce", "00" * 8), "nonce is 8 bytes, expected 16 to 64"),
        (("evidence", "missing.jws"), "evidence file .*missing.jws does not exist"),
        (("reference", "bad.json"), "reference values .*bad.json are not UTF-8 JSON"),
        (("ca", "bad.pem"), "CA certificate .*bad.pem is not a PEM certificate"),
    ],
)
def test_verify_bad_input_is_one_line(
    files: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, str],
    message: str,
) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "bad.pem").write_text("nope")
    key, value = change
    args = _verify_args(files)
    if key == "nonce":
        args[args.index("--nonce") + 1] = value
    else:
        files = {**files, key: tmp_path / value}
        args = _verify_args(files)
    assert main(args) == 1
    err = _one_error_line(capsys)
    assert err.startswith("refcam: error: ")
    assert re.search(message, err), err


def test_verify_against_another_root_fails(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files["ca"].write_bytes(manufacturer_ca().root_pem)
    assert main(_verify_args(files)) == 1
    assert "certificate chain does not lead to the manufacturer root" in _one_error_line(capsys)


def _image(version: str, counter: int) -> bytes:
    return sign_image(
        version.encode(),
        version=version,
        security_counter=counter,
        hardware_id="refcam-rc1080-v1",
        signing_key=ed25519.Ed25519PrivateKey.generate(),
    )


def test_reference_writes_the_values_of_every_image(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bl.img").write_bytes(_image("1.0.0", 1))
    (tmp_path / "fw1.img").write_bytes(_image("2.0.0", 2))
    (tmp_path / "fw2.img").write_bytes(_image("2.1.0", 3))
    out = tmp_path / "values.json"
    assert (
        main(
            [
                "attest",
                "reference",
                "--bootloader",
                str(tmp_path / "bl.img"),
                "--firmware",
                str(tmp_path / "fw1.img"),
                "--firmware",
                str(tmp_path / "fw2.img"),
                "-o",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    assert doc["type"] == "refcam-reference-values/1"
    assert [e["version"] for e in doc["stages"]["firmware"]] == ["2.0.0", "2.1.0"]
    assert "1 bootloader and 2 firmware image(s)" in capsys.readouterr().out


def test_reference_of_a_non_image_fails_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bl.img").write_bytes(b"junk")
    (tmp_path / "fw.img").write_bytes(_image("2.0.0", 2))
    out = tmp_path / "values.json"
    assert (
        main(
            [
                "attest",
                "reference",
                "--bootloader",
                str(tmp_path / "bl.img"),
                "--firmware",
                str(tmp_path / "fw.img"),
                "-o",
                str(out),
            ]
        )
        == 1
    )
    _one_error_line(capsys)
    assert not out.exists()


def test_nonce_is_fresh_random_hex(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["attest", "nonce"]) == 0
    assert main(["attest", "nonce", "--bytes", "16"]) == 0
    first, second = capsys.readouterr().out.split()
    assert len(bytes.fromhex(first)) == 32 and len(bytes.fromhex(second)) == 16


def test_provisioned_device_attests_end_to_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """REQUIREMENTS rows 27/28 with the real tools: keys init, firmware build,
    sign-bootloader, device provision, attest evidence / reference / verify."""
    from bootloader.keys import init_keys
    from bootloader.provision import BOOTLOADER_MODULES, BOOTLOADER_VERSION

    k, cam = tmp_path / "K", tmp_path / "cam"
    init_keys(k, now=dt.datetime.now(dt.UTC))
    for version, counter in (("1.0.0", 1), ("1.1.0", 2)):
        assert (
            main(
                [
                    "firmware",
                    "build",
                    "--keys",
                    str(k),
                    "--version",
                    version,
                    "--security-counter",
                    str(counter),
                    "-o",
                    str(tmp_path / f"fw-{version}.img"),
                ]
            )
            == 0
        )
    modules = [arg for m in BOOTLOADER_MODULES for arg in ("--module", m)]
    assert (
        main(
            [
                "firmware",
                "sign-bootloader",
                "--keys",
                str(k),
                "--version",
                BOOTLOADER_VERSION,
                "--security-counter",
                "1",
                "-o",
                str(tmp_path / "bl.img"),
                *modules,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "device",
                "provision",
                "--state",
                str(cam),
                "--keys",
                str(k),
                "--firmware",
                str(tmp_path / "fw-1.0.0.img"),
            ]
        )
        == 0
    )
    nonce = "ab" * 32
    assert (
        main(
            [
                "attest",
                "evidence",
                "--state",
                str(cam),
                "--nonce",
                nonce,
                "-o",
                str(tmp_path / "ev.jws"),
            ]
        )
        == 0
    )
    for name, images in (("all", ["1.0.0", "1.1.0"]), ("newer", ["1.1.0"])):
        fw_args = [a for v in images for a in ("--firmware", str(tmp_path / f"fw-{v}.img"))]
        assert (
            main(
                [
                    "attest",
                    "reference",
                    "--bootloader",
                    str(tmp_path / "bl.img"),
                    *fw_args,
                    "-o",
                    str(tmp_path / f"{name}.json"),
                ]
            )
            == 0
        )
    capsys.readouterr()
    verify = [
        "attest",
        "verify",
        str(tmp_path / "ev.jws"),
        "--ca",
        str(k / "manufacturer" / "root-ca.pem"),
        "--nonce",
        nonce,
        "--reference",
    ]
    assert main([*verify, str(tmp_path / "all.json")]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert out.count("reference value") == 2
    # Firmware 1.0.0 is not among the reference values of a vendor that only lists 1.1.0.
    assert main([*verify, str(tmp_path / "newer.json")]) == 1
    assert "stage firmware digest" in _one_error_line(capsys)


# -- binding evidence to the unit: a relay that forwards another unit's genuine evidence --------


def _tls_chain(ca: ManufacturerCA, serial: str, path: Path) -> Path:
    leaf = issue_tls_certificate(
        serial=serial,
        public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        device_ca_key=ca.device_ca_key,
        device_ca_cert=ca.device_ca,
        now=NOW,
    )
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, ca.device_ca)))
    return path


def test_evidence_of_another_unit_is_refused_with_expect_serial(
    ca: ManufacturerCA, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files["evidence"].write_bytes(boot(ca, serial="RC1-0002").attester.evidence(NONCE, now=T0))
    assert main([*_verify_args(files), "--expect-serial", "RC1-0002"]) == 0
    capsys.readouterr()
    assert main([*_verify_args(files), "--expect-serial", "RC1-0001"]) == 1
    assert _one_error_line(capsys) == (
        "refcam: error: evidence is from unit 'RC1-0002', not from the expected unit 'RC1-0001'\n"
    )


def test_evidence_of_another_unit_is_refused_with_the_units_tls_certificate(
    ca: ManufacturerCA, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the probe does: the unit it talks TLS to must be the unit whose evidence it gets."""
    mine = _tls_chain(ca, "RC1-0001", tmp_path / "tls-1.pem")
    assert main([*_verify_args(files), "--expect-cert", str(mine)]) == 0  # files hold RC1-0001's evidence
    capsys.readouterr()
    files["evidence"].write_bytes(boot(ca, serial="RC1-0002").attester.evidence(NONCE, now=T0))
    assert main([*_verify_args(files), "--expect-cert", str(mine)]) == 1
    assert "evidence is from unit 'RC1-0002', but the expected certificate is of unit 'RC1-0001' (relayed evidence?)" in (
        _one_error_line(capsys)
    )
    foreign = _tls_chain(manufacturer_ca(), "RC1-0002", tmp_path / "tls-foreign.pem")  # another manufacturer
    assert main([*_verify_args(files), "--expect-cert", str(foreign)]) == 1
    assert "the expected unit's certificate is not valid" in _one_error_line(capsys)


def test_expect_cert_with_a_deviceid_certificate_binds_by_key(
    ca: ManufacturerCA, files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    genuine = boot(ca)
    deviceid = tmp_path / "deviceid.pem"
    deviceid.write_bytes(genuine.device_id_cert.public_bytes(serialization.Encoding.PEM))
    assert main([*_verify_args(files), "--expect-cert", str(deviceid)]) == 0
    capsys.readouterr()
    other = issue_device_id_certificate(
        serial="RC1-0001", device_id_public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        device_ca_key=ca.device_ca_key, device_ca_cert=ca.device_ca, now=NOW,
    )  # fmt: skip
    deviceid.write_bytes(other.public_bytes(serialization.Encoding.PEM))
    assert main([*_verify_args(files), "--expect-cert", str(deviceid)]) == 1
    assert "whose DeviceID key is not the key of the expected certificate" in _one_error_line(capsys)


@pytest.mark.parametrize(
    ("stages", "message"),
    [
        ({}, "refcam: error: reference values document lists no stage: it would match nothing\n"),
        (
            {"firmware": REFERENCE["stages"]["firmware"]},
            "refcam: error: reference values have no entry for the measured stage(s) bootloader: "
            "every stage the evidence reports needs one (they cover firmware)\n",
        ),
    ],
    ids=["empty", "partial"],
)
def test_empty_or_partial_reference_values_are_refused_with_one_line(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str], stages: dict[str, object], message: str
) -> None:
    files["reference"].write_text(json.dumps({**REFERENCE, "stages": stages}))
    assert main(_verify_args(files)) == 1
    assert _one_error_line(capsys) == message
