"""``refcam device update`` against running devices: upload and install with progress.

The command is run as a user runs it: in-process through ``refcam.cli.main``
(stderr not a terminal: plain progress lines), and as a subprocess whose
stderr is a pseudo-terminal (the bar, redrawn in place). It follows each
update through the reboot and says whether the camera kept it.
"""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from refcam.cli import main

from .conftest import Firmware, RunningDevice, refcam, start_device, start_vendor
from .test_update_end_to_end import NEW_PASSWORD, admin_token

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def attacker_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("attacker-keys")
    refcam("keys", "init", "--dir", str(root / "keys"))
    image = root / "evil.img"
    refcam("firmware", "build", "--keys", str(root / "keys"), "--version", "6.6.6", "--security-counter", "1",
           "-o", str(image))  # fmt: skip
    return image


@pytest.fixture
def device(tmp_path: Path, firmware: Firmware, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningDevice]:
    state = tmp_path / "state"
    refcam("device", "provision", "--state", str(state), "--keys", str(firmware.keys),
           "--firmware", str(firmware.images["1.0.0"]))  # fmt: skip
    running = start_device(state)
    try:
        admin_token(running)  # the first login: the admin password is NEW_PASSWORD from here on
        monkeypatch.setenv("CAM_PW", NEW_PASSWORD)
        yield running
    finally:
        running.stop()


def update(device: RunningDevice, *extra: str) -> list[str]:
    return ["device", "update", device.url, "--ca", str(device.root_pem), "--user", "admin",
            "--password-env", "CAM_PW", *extra]  # fmt: skip


def test_upload_plain_lines_then_confirmed(
    device: RunningDevice, firmware: Firmware, attacker_image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    # An attacker-signed image: refused before anything is written, one line, exit 1.
    assert main(update(device, "--image", str(attacker_image))) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1].startswith("refcam: error: the camera refused the update (image_rejected: ")
    assert "upload: refused" in err and "Traceback" not in err
    # The older, genuine image: anti-rollback.
    assert main(update(device, "--image", str(firmware.images["0.9.0"]))) == 1
    assert "security_counter_downgrade" in capsys.readouterr().err
    # The genuine 2.0.0: uploaded, rebooted into a trial, confirmed.
    assert main(update(device, "--image", str(firmware.images["2.0.0"]))) == 0
    out, err = capsys.readouterr()
    assert out == "updated: 2.0.0 in slot b is confirmed\n"
    lines = err.splitlines()
    assert "\r" not in err
    assert lines[0].startswith("upload: ") and "%" in lines[0]
    assert any(line.startswith("upload: 100% (") for line in lines), lines
    assert "upload: accepted" in lines
    assert lines[-1] == "reboot: 2.0.0 passed its trial"
    assert any(line.startswith("booted slot b") and "2.0.0" in line for line in device.output), device.output[-20:]


def test_flawed_client_accepts_but_the_bootloader_does_not_keep_it(
    tmp_path: Path, firmware: Firmware, attacker_image: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    state = tmp_path / "flawed"
    refcam("device", "provision", "--state", str(state), "--keys", str(firmware.keys),
           "--firmware", str(firmware.images["1.0.0"]))  # fmt: skip
    flawed = start_device(state, flaws=["unsigned-update-accepted"])
    try:
        admin_token(flawed)
        monkeypatch.setenv("CAM_PW", NEW_PASSWORD)
        capsys.readouterr()
        assert main(update(flawed, "--image", str(attacker_image))) == 1
        out, err = capsys.readouterr()
        assert out == ""
        assert "upload: accepted" in err
        last = err.splitlines()[-1]
        assert last.startswith("refcam: error: update to 6.6.6 not kept: the camera restarted on 1.0.0 (slot a); ")
        assert "the bootloader refused slot b: " in last and "not a fused root-of-trust key" in last
    finally:
        flawed.stop()


def test_upload_on_a_terminal_draws_a_bar(device: RunningDevice, firmware: Firmware) -> None:
    """stderr is a pseudo-terminal: the bar is redrawn in place (no --no-wait, the whole way)."""
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "refcam.cli", *update(device, "--image", str(firmware.images["2.0.0"]))],
            stdout=subprocess.PIPE, stderr=secondary, env={**os.environ, "CAM_PW": NEW_PASSWORD},
            timeout=180, check=False, cwd=ROOT,
        )  # fmt: skip
        os.close(secondary)
        secondary = -1
        chunks = []
        while True:
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not data:
                break
            chunks.append(data)
    finally:
        if secondary != -1:
            os.close(secondary)
        os.close(primary)
    err = b"".join(chunks).decode("utf-8", "replace")
    assert proc.returncode == 0, err
    assert proc.stdout.decode() == "updated: 2.0.0 in slot b is confirmed\n"
    assert "\r\x1b[K" in err
    assert "upload [############################] 100%" in err
    assert "accepted" in err and "reboot: 2.0.0 passed its trial" in err


def test_install_from_the_update_source_with_no_wait_then_waiting(
    tmp_path: Path, firmware: Firmware, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --image the camera installs the newest release from its TUF repository."""
    vendor = start_vendor(tmp_path / "vendor", firmware.keys)  # a fresh repository of the same keys
    try:
        refcam("repo", "publish", str(vendor.repo), str(firmware.images["2.0.0"]), "--keys", str(firmware.keys))
        state = tmp_path / "state"
        refcam("device", "provision", "--state", str(state), "--keys", str(firmware.keys),
               "--firmware", str(firmware.images["1.0.0"]))  # fmt: skip
        camera = start_device(state, vendor_url=vendor.url)
        try:
            admin_token(camera)
            monkeypatch.setenv("CAM_PW", NEW_PASSWORD)
            capsys.readouterr()
            assert main(update(camera)) == 0
            out, err = capsys.readouterr()
            assert out == "updated: 2.0.0 in slot b is confirmed\n"
            assert err.splitlines()[0] == "install: the camera checks its update source"
            assert err.splitlines()[-1] == "reboot: 2.0.0 passed its trial"
            # Nothing newer now: the camera's refusal, one line.
            assert main(update(camera, "--no-wait")) == 1
            assert capsys.readouterr().err.splitlines()[-1].startswith("refcam: error: the camera refused the update (")
        finally:
            camera.stop()
    finally:
        vendor.stop()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["http://localhost:1", "--ca", "x.pem", "--token-env", "T"], "is not https://"),
        (["https://localhost:1/api", "--ca", "x.pem", "--token-env", "T"], "must be https://HOST:PORT"),
        (["https://localhost:1", "--ca", "x.pem", "--user", "admin"], "--user needs --password-env"),
        (["https://localhost:1", "--ca", "x.pem", "--token-env", "NO_SUCH_VAR_15"], "NO_SUCH_VAR_15"),
        (["https://localhost:1", "--ca", "x.pem", "--token-env", "T", "--wait", "0"], "--wait 0 must be positive"),
    ],
)
def test_bad_options_are_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("T", "token")
    monkeypatch.delenv("NO_SUCH_VAR_15", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.pem").write_text("not a certificate\n")
    assert main(["device", "update", *argv]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and message in err, err
