"""The bootloader image names every module of ours that the bootloader stage runs."""

from __future__ import annotations

import json
import subprocess
import sys

from bootloader.build import BOOTLOADER_ENTRY, DEFAULT_BOOTLOADER_MODULES, bootloader_stage_modules


def test_every_module_the_bootloader_stage_loads_is_in_the_measured_set() -> None:
    code = (
        f"import sys, json, {BOOTLOADER_ENTRY}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('bootloader', 'common'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(json.loads(out.stdout))
    assert loaded, "the bootloader stage loaded none of our modules?"
    assert loaded <= set(DEFAULT_BOOTLOADER_MODULES), sorted(loaded - set(DEFAULT_BOOTLOADER_MODULES))


def test_the_measured_set_holds_the_shared_ground_modules_the_stage_imports() -> None:
    modules = bootloader_stage_modules()
    assert BOOTLOADER_ENTRY in modules
    assert {"common.image", "common.verify", "common.keymanifest", "common.errors"} <= set(modules)
    assert not [m for m in modules if m.split(".")[0] not in ("bootloader", "common")]
