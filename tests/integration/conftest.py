"""Whole devices on loopback: keys, signed images, provisioned state, `refcam device run`.

Devices run as subprocesses exactly as a user starts them (``refcam device
run``), so these tests cover the boot chain, the firmware loaded from the
verified image, TLS and the real command line.
"""

from __future__ import annotations

import os
import queue
import re
import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bootloader.provision import BOOTLOADER_SECURITY_COUNTER, BOOTLOADER_VERSION
from refcam.cli import main as refcam_main

READY = re.compile(r"refcam device serving (https://\S+)")
VENDOR_READY = re.compile(r"refcam update-server serving (https://\S+)")
START_TIMEOUT = 90.0  # seconds, boot + scrypt + TLS setup on a loaded 2-core machine


def refcam(*args: str) -> None:
    """Run a refcam command in-process; fail the test with its output if it fails."""
    code = refcam_main(list(args))
    assert code == 0, f"refcam {' '.join(args)} exited {code}"


def free_port() -> int:
    """A free port whose neighbour is free too (the plaintext-http flaw listens on port + 1)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        if port + 1 not in _handed_out and port not in _handed_out:
            _handed_out.update({port, port + 1})
            return port
    raise AssertionError("no free port pair")


_handed_out: set[int] = set()


@dataclass
class Firmware:
    keys: Path
    images: dict[str, Path]  # version -> image file
    reference_values: Path
    repo: Path  # the vendor's TUF repository; every image embeds its root


@pytest.fixture(scope="session")
def firmware(tmp_path_factory: pytest.TempPathFactory) -> Firmware:
    root = tmp_path_factory.mktemp("vendor")
    keys = root / "keys"
    refcam("keys", "init", "--dir", str(keys))
    repo = root / "repo"
    refcam("repo", "init", "--dir", str(repo), "--keys", str(keys))
    tuf_root = repo / "metadata" / "1.root.json"
    images = {}
    for version, counter in (("0.9.0", "0"), ("1.0.0", "1"), ("2.0.0", "2")):
        out = root / f"fw-{version}.img"
        refcam("firmware", "build", "--keys", str(keys), "--version", version, "--security-counter", counter,
               "--tuf-root", str(tuf_root), "-o", str(out))
        images[version] = out
    bootloader = root / "bootloader.img"
    refcam("firmware", "sign-bootloader", "--keys", str(keys), "--version", BOOTLOADER_VERSION,
           "--security-counter", str(BOOTLOADER_SECURITY_COUNTER), "-o", str(bootloader))
    reference = root / "reference-values.json"
    refcam("attest", "reference", "--bootloader", str(bootloader),
           *[arg for image in images.values() for arg in ("--firmware", str(image))], "-o", str(reference))
    return Firmware(keys=keys, images=images, reference_values=reference, repo=repo)


def stop_process(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class RunningDevice:
    state: Path
    url: str
    port: int
    root_pem: Path
    label_password: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)
    rtsp_port: int = 0  # RTSPS (an ephemeral port: 322 would collide between devices)

    def stop(self) -> None:
        stop_process(self.process)


def label_password(state: Path) -> str:
    text = (state / "label.txt").read_text()
    match = re.search(r"(?im)^\s*(?:initial )?password\s*[:=]\s*(\S+)", text)
    assert match, f"no password on the label:\n{text}"
    return match.group(1)


def _start(
    args: list[str], ready: re.Pattern[str], cwd: Path | None = None, *, nofile: int | None = None
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start a refcam server (with at most ``nofile`` file descriptors); return once it prints its ready line."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def limit_descriptors() -> None:  # in the child, before exec
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    proc = subprocess.Popen(
        [sys.executable, "-m", "refcam.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=env, cwd=cwd, preexec_fn=limit_descriptors if nofile is not None else None,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line.rstrip())
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"refcam {args[0]} did not start:\n" + "\n".join(output))
        if ready.search(line):
            return proc, output


def start_device(
    state: Path,
    *,
    flaws: Sequence[str] = (),
    extra: Sequence[str] = (),
    port: int | None = None,
    vendor_url: str | None = None,
    nofile: int | None = None,
) -> RunningDevice:
    port = port or free_port()
    rtsp_port = free_port()
    args = ["device", "run", "--state", str(state), "--port", str(port), "--rtsp-port", str(rtsp_port)]
    for flaw in flaws:
        args += ["--flaw", flaw]
    if vendor_url:
        args += ["--vendor-url", vendor_url, "--update-url", vendor_url]
    args += list(extra)
    proc, output = _start(args, READY, nofile=nofile)
    root = state / "root.pem"
    root.write_bytes((state / "data" / "identity" / "manufacturer-root.pem").read_bytes())
    return RunningDevice(
        state, f"https://localhost:{port}", port, root, label_password(state), proc, output, rtsp_port=rtsp_port
    )


@pytest.fixture
def provisioned(tmp_path: Path, firmware: Firmware) -> Iterator[Path]:
    state = tmp_path / "state"
    refcam("device", "provision", "--state", str(state), "--keys", str(firmware.keys),
           "--firmware", str(firmware.images["1.0.0"]))
    yield state


@dataclass
class RunningVendor:
    url: str
    root_pem: Path
    repo: Path
    process: subprocess.Popen[str]
    output: list[str]

    def stop(self) -> None:
        stop_process(self.process)


def start_vendor(
    directory: Path, keys: Path, *, flaws: Sequence[str] = (), repo: Path | None = None
) -> RunningVendor:
    """`refcam update-server run` (after `refcam repo init` unless ``repo`` is given):
    TUF repository, PSIRT, security.txt and CSAF on one origin."""
    directory.mkdir(parents=True, exist_ok=True)
    if repo is None:
        repo = directory / "repo"
        refcam("repo", "init", "--dir", str(repo), "--keys", str(keys))
    port = free_port()
    args = ["update-server", "run", "--repo", str(repo), "--keys", str(keys), "--port", str(port),
            "--psirt-db", str(directory / "psirt.db")]
    for flaw in flaws:
        args += ["--flaw", flaw]
    proc, output = _start(args, VENDOR_READY, cwd=directory)
    return RunningVendor(f"https://localhost:{port}", keys / "vendor" / "root-ca.pem", repo, proc, output)


@pytest.fixture(scope="session")
def vendor(tmp_path_factory: pytest.TempPathFactory, firmware: Firmware) -> Iterator[RunningVendor]:
    server = start_vendor(tmp_path_factory.mktemp("vendor-server"), firmware.keys, repo=firmware.repo)
    yield server
    server.stop()
