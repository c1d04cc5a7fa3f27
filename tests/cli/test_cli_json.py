"""``--json`` on the inspection commands, and the label a flawed unit prints.

Scripts read ``device label``, ``device boot``, ``firmware inspect`` and
``psirt list`` as JSON instead of parsing the prose; the JSON says the same as
the prose.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.flaws import UnsafeFlaws
from common.passwords import hash_password
from device.config import ThrottleConfig
from device.credentials import CredentialStore, PolicyContext
from refcam.cli import main
from update_server.psirt import model
from update_server.psirt.store import PSIRTStore

pytestmark = pytest.mark.slow


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), (argv, err)
    return out


@pytest.fixture(scope="module")
def unit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("cli-json")
    keys, image, state = base / "K", base / "fw.img", base / "S"
    assert main(["keys", "init", "--dir", str(keys)]) == 0
    assert main(["firmware", "build", "--keys", str(keys), "--version", "1.2.3",
                 "--security-counter", "4", "-o", str(image)]) == 0  # fmt: skip
    assert main(["device", "provision", "--state", str(state), "--keys", str(keys),
                 "--firmware", str(image)]) == 0  # fmt: skip
    return image, state


def test_device_label_json_matches_the_printed_label(
    unit: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, state = unit
    capsys.readouterr()
    text = run(capsys, "device", "label", "--state", str(state))
    label = json.loads(run(capsys, "device", "label", "--state", str(state), "--json"))
    printed = re.search(r"initial password: (\S+)", text)
    assert printed is not None and printed.group(1) == label["initial_password"]
    assert f"serial: {label['serial']}" in text
    assert label["username"] == "admin" and label["must_change"] is True
    assert label["unsafe_flaw"] is None
    assert (label["vendor"], label["model"]) == ("refcam", "RC-1080")


def test_a_unit_run_with_shared_default_password_labels_admin_admin(
    tmp_path: Path, unit: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """What the flawed firmware did on its first start (device/credentials.py):
    admin/admin works, the unique label password does not; the label says so."""
    import shutil

    _, provisioned = unit
    state = tmp_path / "S"
    shutil.copytree(provisioned, state)
    before = json.loads(run(capsys, "device", "label", "--state", str(state), "--json"))
    store = CredentialStore.open(
        state / "data" / "runtime" / "users.sqlite3",
        initial_hash=hash_password(before["initial_password"]),
        policy="nist-800-63b",
        context=PolicyContext(username="", serial=before["serial"], model="RC-1080", vendor="refcam"),
        throttle=ThrottleConfig(),
        now=1_800_000_000.0,
        flaws=UnsafeFlaws.parse(["shared-default-password"], host="127.0.0.1"),
    )
    store.close()
    label = json.loads(run(capsys, "device", "label", "--state", str(state), "--json"))
    assert label["initial_password"] == "admin"
    assert label["unsafe_flaw"] == "shared-default-password"
    assert label["must_change"] is False
    text = run(capsys, "device", "label", "--state", str(state))
    assert "initial password: admin\n" in text and "UNSAFE" in text
    # A factory reset brings the unique password back.
    run(capsys, "device", "factory-reset", "--state", str(state))
    again = json.loads(run(capsys, "device", "label", "--state", str(state), "--json"))
    assert again["initial_password"] == before["initial_password"]


def test_device_boot_json(unit: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    _, state = unit
    capsys.readouterr()
    doc = json.loads(run(capsys, "device", "boot", "--state", str(state), "--json"))
    assert doc["booted_slot"] == "a"
    assert doc["firmware_version"] == "1.2.3"
    assert doc["security_counter"] == 4
    assert doc["trial"] is False
    assert [s["slot"] for s in doc["slots"]] == ["a", "b"]
    assert re.fullmatch(r"[0-9a-f]{64}", doc["measurement_register"])
    assert doc["summary"].startswith("booted slot a")
    assert doc["log"]


def test_firmware_inspect_json(unit: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    image, _ = unit
    capsys.readouterr()
    doc = json.loads(run(capsys, "firmware", "inspect", str(image), "--json"))
    assert doc["size"] == image.stat().st_size
    assert doc["signature_verified"] is False
    assert doc["version"] == "1.2.3" and doc["security_counter"] == 4
    assert doc["header"]["magic"] == 0x96F3B83D
    assert doc["hash_matches"] is True
    names = {t["name"] for t in doc["tlvs"]}
    assert "SHA256" in names
    text = run(capsys, "firmware", "inspect", str(image))
    assert doc["covered_sha256"] in text


def test_psirt_list_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "psirt.db"
    store = PSIRTStore.open(db)
    sub = model.parse_submission(
        {"title": "Hard-coded debug shell", "description": "d", "product": "RC-1080", "version": "1.0.0"}
    )
    store.create_report(sub, now=datetime(2026, 3, 1, tzinfo=UTC))
    store.close()
    capsys.readouterr()
    reports = json.loads(run(capsys, "psirt", "list", "--db", str(db), "--json"))
    assert len(reports) == 1
    text = run(capsys, "psirt", "list", "--db", str(db))
    assert text.split()[0] in json.dumps(reports[0])
