"""The firmware payload zip and the in-memory loader (bootloader/firmware.py)."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

import pytest

from bootloader.firmware import (
    FirmwarePayload,
    build_payload,
    start_firmware,
    unload_firmware,
)
from common.errors import FirmwarePayloadError

MAIN = '''
from common.marker import PAYLOAD_MARKER
from . import helper
from importlib import resources

def run(handoff, argv):
    page = (resources.files(__package__) / "static" / "page.txt").read_text()
    return helper.answer(argv) + len(page)
'''
HELPER = "def answer(argv):\n    return int(argv[0])\n"


def _package(tmp_path: Path, main: str = MAIN) -> Path:
    ground = tmp_path / "common"  # the payload's own ground package (not the one on disk)
    ground.mkdir(parents=True)
    (ground / "__init__.py").write_text("")
    (ground / "marker.py").write_text("PAYLOAD_MARKER = 1\n")
    pkg = tmp_path / "device"
    (pkg / "static").mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""test firmware"""\n')
    (pkg / "main.py").write_text(main)
    (pkg / "helper.py").write_text(HELPER)
    (pkg / "static" / "page.txt").write_text("abc")
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "junk.pyc").write_bytes(b"junk")
    return pkg


def _build(pkg: Path, **overrides: object) -> bytes:
    fields: dict[str, object] = dict(
        version="1.0.0",
        hardware_id="refcam-rc1080-v1",
        model="RC-1080",
        build_time=1_790_000_000,
        support_end="2031-12-31",
        tuf_root=b'{"signed": {}}',
        vendor_tls_root=b"-----BEGIN CERTIFICATE-----\n",
        source_dir=pkg,
        ground_dir=pkg.parent / "common",
    )
    fields.update(overrides)
    return build_payload(**fields)  # type: ignore[arg-type]


def _rezip(data: bytes, edit) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    entries = {i.filename: src.read(i) for i in src.infolist()}
    edit(entries)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, content in entries.items():
            zf.writestr(name, content)
    return out.getvalue()


def test_payload_build_is_reproducible_and_skips_bytecode(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    first, second = _build(pkg), _build(pkg)
    assert first == second
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names[0] == "manifest.json"
    assert "device/__pycache__/junk.pyc" not in names
    payload = FirmwarePayload.parse(first)
    assert payload.manifest.version == "1.0.0"
    assert payload.manifest.tuf_root == b'{"signed": {}}'
    assert set(payload.files) == {
        "device/__init__.py", "device/main.py", "device/helper.py", "device/static/page.txt",
        "common/__init__.py", "common/marker.py",
    }


def test_the_default_payload_packs_the_device_and_the_ground_package() -> None:
    payload = FirmwarePayload.parse(
        build_payload(version="1.0.0", hardware_id="refcam-rc1080-v1", model="RC-1080",
                      build_time=1_790_000_000, support_end="2031-12-31")
    )
    assert {"device/main.py", "common/errors.py", "common/passwords.py"} <= set(payload.files)


def test_firmware_runs_from_memory_with_relative_imports_and_resources(tmp_path: Path) -> None:
    payload = FirmwarePayload.parse(_build(_package(tmp_path)))
    try:
        assert start_firmware(payload, handoff=None, argv=["39"]) == 42  # type: ignore[arg-type]
        loaded = [m for m in sys.modules if m.startswith("refcam_fw_")]
        assert loaded and all(not m.startswith("device") for m in loaded)
        # ``from common.marker import ...`` in the payload resolved to the payload's ground copy
        assert any(m.endswith("_common.marker") for m in loaded)
        assert "common.marker" not in sys.modules
        origin = sys.modules[loaded[0]].__spec__.origin
        assert origin.startswith("<firmware 1.0.0>/device/")
    finally:
        unload_firmware()
    assert not [m for m in sys.modules if m.startswith("refcam_fw_")]


def test_reboot_loads_the_new_payload_not_the_cached_one(tmp_path: Path) -> None:
    one = FirmwarePayload.parse(_build(_package(tmp_path / "1")))
    two = FirmwarePayload.parse(
        _build(_package(tmp_path / "2", main="def run(handoff, argv):\n    return 7\n"), version="2.0.0")
    )
    try:
        assert start_firmware(one, None, ["1"]) == 4  # type: ignore[arg-type]
        assert start_firmware(two, None, []) == 7  # type: ignore[arg-type]
    finally:
        unload_firmware()


def test_payload_file_changed_after_packing_is_refused(tmp_path: Path) -> None:
    data = _build(_package(tmp_path))

    def edit(entries: dict[str, bytes]) -> None:
        entries["device/helper.py"] = b"def answer(argv):\n    return 0\n"

    with pytest.raises(FirmwarePayloadError, match="'device/helper.py' does not match its manifest hash"):
        FirmwarePayload.parse(_rezip(data, edit))


def test_payload_entry_outside_the_package_is_refused(tmp_path: Path) -> None:
    data = _build(_package(tmp_path))

    def edit(entries: dict[str, bytes]) -> None:
        manifest = json.loads(entries["manifest.json"])
        manifest["files"]["evil/x.py"] = "00"
        entries["manifest.json"] = json.dumps(manifest).encode()
        entries["evil/x.py"] = b""

    with pytest.raises(FirmwarePayloadError, match="outside 'device/' and 'common/'"):
        FirmwarePayload.parse(_rezip(data, edit))


def test_unlisted_payload_entry_is_refused(tmp_path: Path) -> None:
    data = _build(_package(tmp_path))

    def edit(entries: dict[str, bytes]) -> None:
        entries["device/extra.py"] = b"x = 1\n"

    with pytest.raises(FirmwarePayloadError, match="do not match the manifest"):
        FirmwarePayload.parse(_rezip(data, edit))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a valid zip"),
        (b"PK\x05\x06" + b"\x00" * 18, "no manifest.json"),
    ],
)
def test_malformed_payload_gives_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(FirmwarePayloadError, match=message):
        FirmwarePayload.parse(data)


def test_manifest_with_wrong_types_is_refused(tmp_path: Path) -> None:
    data = _build(_package(tmp_path))

    def edit(entries: dict[str, bytes]) -> None:
        manifest = json.loads(entries["manifest.json"])
        manifest["build_time"] = "yesterday"
        entries["manifest.json"] = json.dumps(manifest).encode()

    with pytest.raises(FirmwarePayloadError, match="'build_time' must be a non-negative integer"):
        FirmwarePayload.parse(_rezip(data, edit))


def test_firmware_that_fails_to_import_is_a_payload_error(tmp_path: Path) -> None:
    payload = FirmwarePayload.parse(_build(_package(tmp_path, main="import nonexistent_mod_xyz\n")))
    with pytest.raises(FirmwarePayloadError, match="failed to load: ModuleNotFoundError"):
        start_firmware(payload, None, [])  # type: ignore[arg-type]
    assert not [m for m in sys.modules if m.startswith("refcam_fw_")]


@pytest.mark.parametrize("module", ["bootloader.chain", "refcam.cli", "update_server.repo"])
def test_a_payload_module_importing_code_outside_the_payload_fails_naming_it(
    tmp_path: Path, module: str
) -> None:
    payload = FirmwarePayload.parse(
        _build(_package(tmp_path, main=f"def run(handoff, argv):\n    import {module}\n    return 0\n"))
    )
    with pytest.raises(ImportError, match=rf"imports '{module}', which is not in the signed payload"):
        start_firmware(payload, None, [])  # type: ignore[arg-type]
    unload_firmware()


def test_a_payload_missing_a_ground_module_fails_to_load_naming_it(tmp_path: Path) -> None:
    pkg = _package(tmp_path)
    (pkg.parent / "common" / "marker.py").unlink()
    payload = FirmwarePayload.parse(_build(pkg))
    with pytest.raises(FirmwarePayloadError, match=r"No module named 'common.marker'"):
        start_firmware(payload, None, [])  # type: ignore[arg-type]


def test_a_boot_error_crosses_the_hand_off_as_the_firmwares_class_with_its_fields(tmp_path: Path) -> None:
    import dataclasses

    from common.errors import PowerCut
    from common.handoff import BootHandoff

    class Services:
        def confirm(self) -> None:
            raise PowerCut(7, "fuse burn")

    main = (
        "from common.errors import PowerCut\n"
        "def run(handoff, argv):\n"
        "    try:\n"
        "        handoff.services.confirm()\n"
        "    except PowerCut as exc:\n"
        "        assert exc.operation == 7, exc.operation\n"
        "        raise\n"
        "    return 0\n"
    )
    pkg = _package(tmp_path, main=main)
    (pkg.parent / "common" / "errors.py").write_bytes((Path(__file__).parents[2] / "common" / "errors.py").read_bytes())
    payload = FirmwarePayload.parse(_build(pkg))
    fields = {f.name: None for f in dataclasses.fields(BootHandoff)}
    handoff = BootHandoff(**{**fields, "services": Services(), "attester": None})  # type: ignore[arg-type]
    with pytest.raises(PowerCut) as caught:  # back on the boot side as the boot side's class
        start_firmware(payload, handoff, [])
    unload_firmware()
    assert caught.value.operation == 7
    assert str(caught.value) == "power cut at flash operation 7: fuse burn"


def test_the_install_time_parse_leaves_entry_hashes_to_the_boot_and_to_every_read(tmp_path: Path) -> None:
    data = _build(_package(tmp_path))

    def edit(entries: dict[str, bytes]) -> None:
        entries["device/helper.py"] = b"def answer(argv):\n    return 0\n"

    edited = _rezip(data, edit)
    payload = FirmwarePayload.parse(edited, hash_entries=False)  # names and listing only
    with pytest.raises(FirmwarePayloadError, match="'device/helper.py' does not match its manifest hash"):
        payload.files["device/helper.py"]
    with pytest.raises(FirmwarePayloadError, match="'device/helper.py' does not match its manifest hash"):
        FirmwarePayload.parse(edited)  # what the bootloader runs before starting it


def test_a_stored_entry_whose_local_header_names_another_file_is_refused(tmp_path: Path) -> None:
    data = _rezip(_build(_package(tmp_path)), lambda entries: None)  # every entry stored
    zf = zipfile.ZipFile(io.BytesIO(data))
    info = zf.getinfo("device/helper.py")
    at = info.header_offset + 30
    assert data[at : at + len(info.filename)] == b"device/helper.py"
    forged = data[:at] + b"device/helpex.py" + data[at + len(info.filename) :]
    with pytest.raises(FirmwarePayloadError, match="'device/helper.py' has another name in its local header"):
        FirmwarePayload.parse(forged)
