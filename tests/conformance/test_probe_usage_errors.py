"""Options the probe cannot use, and targets it cannot reach: one line, exit 2, no report.

None of these need a camera: options are checked before anything is sent, and
``https://localhost:1`` has nothing listening.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conformance.declaration import parse_declaration
from conformance.errors import DeclarationError
from refcam.cli import main


@pytest.fixture(scope="module")
def root_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "probe test root")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path_factory.mktemp("root") / "root.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["probe", *args])
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def test_an_unreachable_target_is_one_line_and_exit_2(
    tmp_path: Path, root_pem: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report"
    code, lines = _run(capsys, "https://localhost:1", "--ca", str(root_pem), "--report", str(report))
    assert code == 2
    assert len(lines) == 1 and "cannot connect to localhost:1" in lines[0], lines
    assert not report.exists(), "no report of FAILs for a unit that was never reached"


def test_a_closed_loopback_port_is_one_line(tmp_path: Path, root_pem: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _run(capsys, f"https://127.0.0.1:{_closed_port()}", "--ca", str(root_pem),
                       "--label-password", "x", "--report", str(tmp_path / "r"))
    assert code == 2 and len(lines) == 1 and "preflight" in lines[0]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--only", "NOPE-01"], "unknown case id(s) NOPE-01"),
        (["--reference", "{not-json}"], "--reference"),
        (["--vendor-ca", "{not-pem}"], "--vendor-ca"),
        (["--image", "{missing}"], "--image"),
        (["--older-image", "{missing}"], "--older-image"),
        (["--declaration", "{not-json}"], "--declaration"),
        (["--declaration", "{bad-declaration}"], "is a required property"),
    ],
)
def test_unusable_options_are_one_line_and_exit_2(
    extra: list[str], expected: str, tmp_path: Path, root_pem: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    not_json = tmp_path / "reference.json"
    not_json.write_text("this is not JSON")
    not_pem = tmp_path / "vendor.pem"
    not_pem.write_text("-----BEGIN NOTHING-----\n")
    bad = tmp_path / "declaration.json"
    bad.write_text(json.dumps({"declaration": "refcam-device-declaration/1"}))
    subs = {"{not-json}": str(not_json), "{not-pem}": str(not_pem), "{missing}": str(tmp_path / "no.img"),
            "{bad-declaration}": str(bad)}
    args = [subs.get(a, a) for a in extra]
    code, lines = _run(capsys, f"https://127.0.0.1:{_closed_port()}", "--ca", str(root_pem), *args,
                       "--report", str(tmp_path / "r"))
    assert code == 2
    assert len(lines) == 1 and expected in lines[0], lines
    assert "Traceback" not in lines[0]


def test_a_non_pem_ca_is_one_line_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(b"\x00\x01 not a certificate")
    code, lines = _run(capsys, "https://localhost:1", "--ca", str(ca), "--report", str(tmp_path / "r"))
    assert code == 2 and len(lines) == 1 and "--ca" in lines[0] and "PEM" in lines[0]


def test_an_https_target_without_ca_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = _run(capsys, "https://localhost:1", "--report", str(tmp_path / "r"))
    assert code == 2 and len(lines) == 1 and "--ca" in lines[0]


def test_a_declaration_follows_the_schema_and_names_a_present_interface(tmp_path: Path) -> None:
    example = Path(__file__).parent / "ipycam-declaration.json"
    parse_declaration(example.read_text())
    with pytest.raises(DeclarationError, match="management.interface"):
        doc = json.loads(example.read_text())
        doc["management"]["interface"] = "refcam-api"
        parse_declaration(json.dumps(doc))
