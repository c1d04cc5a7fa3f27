"""refcam.progress: a bar on a terminal, a few plain lines in a log."""

from __future__ import annotations

import http.server
import io
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from refcam.cli import main
from refcam.progress import Progress, render_bar, render_line


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_render_bar_and_line() -> None:
    assert render_bar("upload", 5, 20, "frames", width=10) == "upload [##........]  25% 5/20 frames"
    assert render_bar("upload", 30, 20, width=4) == "upload [####] 100% 30/20"  # capped bar
    assert render_bar("recording", 7, None, "frames") == "recording: 7 frames"
    assert render_line("download", 3 << 20, 12 << 20, "bytes") == "download: 25% (3.0 MiB of 12.0 MiB)"
    assert render_line("download", 512, None, "bytes") == "download: 512 B"


def test_plain_lines_at_each_tenth_when_not_a_terminal() -> None:
    out = io.StringIO()
    with Progress("recording", total=100, unit="frames", stream=out, tty=False) as progress:
        for _ in range(100):
            progress.advance()
    lines = out.getvalue().splitlines()
    assert lines[0] == "recording: 10% (10/100 frames)"
    assert lines[-2] == "recording: 100% (100/100 frames)"
    assert lines[-1] == "recording: done"
    assert len(lines) == 11 and "\r" not in out.getvalue()


def test_unknown_total_writes_a_line_every_few_seconds() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress("recording", stream=out, tty=False, clock=clock, unit="frames")
    for n in range(1, 40):
        clock.now = n * 0.5
        progress.update(n)
    progress.finish()
    lines = out.getvalue().splitlines()
    assert lines[0] == "recording: 1 frames"
    assert len(lines) == 5  # t = 0.5, 5.5, 10.5, 15.5, and the final line
    assert lines[-1] == "recording: 39 frames, done"


def test_terminal_bar_redraws_in_place_and_ends_with_a_newline() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress("upload", total=4, stream=out, tty=True, clock=clock)
    for n in range(1, 5):
        clock.now = n * 1.0
        progress.update(n)
    progress.note("verifying")
    progress.finish("installed")
    text = out.getvalue()
    assert text.count("\r\x1b[K") >= 5
    assert "upload: verifying\n" in text
    assert text.endswith("upload [############################] 100% 4/4 installed\n")


def test_an_error_inside_the_block_says_stopped() -> None:
    out = io.StringIO()
    try:
        with Progress("upload", total=10, stream=out, tty=False) as progress:
            progress.update(3)
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert out.getvalue().splitlines()[-1] == "upload: 30% (3/10), stopped"


def test_nothing_is_written_for_work_that_never_began() -> None:
    out = io.StringIO()
    Progress("recording", total=10, stream=out, tty=False).finish("failed")
    assert out.getvalue() == ""


def test_probe_reports_progress_per_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``refcam probe`` gets the factory from the CLI (conformance imports nothing of refcam).

    The target is a plain HTTP server on loopback: the preflight connects, no case is skipped for it.
    """
    class Quiet(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # the test reads stderr
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        code = main(["probe", f"http://127.0.0.1:{server.server_port}", "--report", str(tmp_path / "r"),
                     "--only", "CRED-01", "--only", "CRED-02"])  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert code in (0, 1)
    err = capsys.readouterr().err.splitlines()
    assert err == ["probe: 50% (1/2 cases)", "probe: 100% (2/2 cases)", "probe: done"]


def test_probe_of_an_unreachable_unit_reports_no_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "root.pem"
    root.write_bytes(_self_signed_pem())
    code = main(["probe", f"https://127.0.0.1:{_closed_port()}", "--ca", str(root), "--report", str(tmp_path / "r"),
                 "--only", "CRED-01"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("refcam: error: preflight: cannot connect")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


def _self_signed_pem() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test root")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)
