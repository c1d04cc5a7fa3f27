"""The firmware contains what it runs.

The boot chain verifies a real provisioned device's slot; the verified payload
is written out and the firmware is started from it in a fresh interpreter
whose ``sys.path`` holds only that payload, the standard library and the
site-packages of third-party distributions: no repository checkout, no
editable install, no ``bootloader`` or ``refcam``. It must serve a login over
TLS. Taking one module out of the payload makes it fail, naming the module.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import ssl
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from bootloader.chain import boot
from bootloader.unit import open_device

from .conftest import free_port, label_password, stop_process

pytestmark = pytest.mark.slow

# Runs in the fresh interpreter. Its boot-side objects stand in for the flash
# and the attester only: the firmware gets the real handoff the chain produced.
BOOTSTRAP = r'''
import dataclasses, os, pickle, sys
sys.path[:] = [sys.argv[1], *sys.argv[2].split(os.pathsep)]
for name in ("bootloader", "refcam", "update_server", "conformance"):
    try:
        __import__(name)
    except ImportError:
        continue
    sys.exit(f"isolation broken: {name} is importable")
try:
    import common.handoff
    import device.main
except ImportError as exc:
    sys.exit(f"the firmware payload lacks a module it runs: {exc}")
for mod in ("common.handoff", "device.main"):
    origin = sys.modules[mod].__spec__.origin
    if not origin.startswith(sys.argv[1]):
        sys.exit(f"{mod} came from {origin}, not the payload")

class Services:  # the boot side's answers, as the real chain gave them; nothing to flash
    def __init__(self, handoff, answers):
        self._handoff = handoff
        self._answers = answers
    trial = False
    def fuses(self):
        return self._handoff.fuses
    def derive_key(self, label):
        return self._answers["keys"][label]
    def audit_anchor(self):
        return tuple(self._answers["audit_anchor"])
    def advance_audit_head(self, seq):  # held in memory: the test's unit is not booted again
        base, head = self._answers["audit_anchor"]
        self._answers["audit_anchor"] = (base, max(head, seq))
    def __getattr__(self, name):
        raise RuntimeError(f"boot service {name} is not available in the isolated boot test")

class Attester:
    def evidence(self, nonce, *, now):
        raise RuntimeError("no attester in the isolated boot test")

with open(sys.argv[3], "rb") as f:
    handoff, answers = pickle.load(f)
handoff = dataclasses.replace(handoff, services=Services(handoff, answers), attester=Attester())
sys.exit(device.main.run(handoff, sys.argv[4:]))
'''


def _third_party_paths() -> list[str]:
    paths = sysconfig.get_paths()
    ours = {p for p in (paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"])}
    stdlib_extra = [p for p in sys.path if p.endswith((".zip", "lib-dynload"))]
    return [*sorted(ours), *stdlib_extra]


def _prepare(tmp_path: Path, state: Path, drop: str | None = None) -> tuple[Path, Path]:
    outcome = boot(open_device(state), now=int(time.time()))
    archive = bytes(outcome.payload.archive)
    if drop is not None:  # the same payload without one module
        src = zipfile.ZipFile(io.BytesIO(archive))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            for info in src.infolist():
                if info.filename != drop:
                    zf.writestr(info, src.read(info))
        archive = out.getvalue()
    payload = tmp_path / "payload.zip"
    payload.write_bytes(archive)
    handoff = tmp_path / "handoff.pickle"
    services = outcome.handoff.services
    answers = {
        "keys": {label: services.derive_key(label) for label in ("audit-log", "protocol-secrets")},
        "audit_anchor": services.audit_anchor(),
    }
    plain = dataclasses.replace(outcome.handoff, services=None, attester=None)
    handoff.write_bytes(pickle.dumps((plain, answers)))
    return payload, handoff


def _launch(tmp_path: Path, payload: Path, handoff: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", BOOTSTRAP, str(payload), os.pathsep.join(_third_party_paths()),
         str(handoff), "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def test_the_verified_payload_alone_boots_and_serves_a_login(tmp_path: Path, provisioned: Path) -> None:
    payload, handoff = _prepare(tmp_path, provisioned)
    port = free_port()
    process = _launch(tmp_path, payload, handoff, port)
    try:
        context = ssl.create_default_context(
            cafile=str(provisioned / "data" / "identity" / "manufacturer-root.pem")
        )
        body = json.dumps({"username": "admin", "password": label_password(provisioned)}).encode()
        deadline = time.monotonic() + 60
        while True:
            request = urllib.request.Request(
                f"https://localhost:{port}/api/v1/session", data=body,
                headers={"Content-Type": "application/json"}, method="POST",
            )
            try:
                with urllib.request.urlopen(request, context=context, timeout=5) as response:
                    answer = json.loads(response.read())
                break
            except urllib.error.HTTPError:
                raise  # an answer, but not a login: the test fails on it
            except (urllib.error.URLError, ConnectionError) as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    stop_process(process)
                    out = process.stdout.read() if process.stdout else ""
                    pytest.fail(f"the isolated firmware did not serve a login ({exc}):\n{out}")
                time.sleep(0.2)
        assert answer["password_change_required"] is True
    finally:
        stop_process(process)


def test_a_payload_without_a_module_it_runs_fails_naming_it(tmp_path: Path, provisioned: Path) -> None:
    payload, handoff = _prepare(tmp_path, provisioned, drop="common/passwords.py")
    process = _launch(tmp_path, payload, handoff, free_port())
    out, _ = process.communicate(timeout=60)
    assert process.returncode != 0
    assert "the firmware payload lacks a module it runs: No module named 'common.passwords'" in out
