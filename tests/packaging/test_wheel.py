"""The installed distribution holds every file the code reads, as an image or container install gets it.

An editable install (``make venv``) reads the source tree, so a file left out of
``[tool.setuptools.package-data]`` only shows where refcam is installed for real:
``deploy/Containerfile``'s ``pip install .`` once lost the web UI's favicon, and
the firmware packed from that install crashed at start. This builds the wheel
from the working tree and compares it with the files git tracks in the packages.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("common", "bootloader", "device", "update_server", "conformance", "refcam")


def test_the_wheel_holds_every_tracked_file_of_the_packages(tmp_path: Path) -> None:
    tracked = subprocess.run(["git", "ls-files", *PACKAGES], cwd=ROOT, capture_output=True, text=True, check=True)
    wanted = {name for name in tracked.stdout.splitlines() if (ROOT / name).is_file()}
    assert wanted, "git lists no package files"
    source = tmp_path / "src"
    # build from a copy of just the tracked files, so nothing untracked (build/, caches) leaks in
    for name in [*wanted, "pyproject.toml", "README.md"]:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_bytes((ROOT / name).read_bytes())
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "w"),
         str(source)],
        capture_output=True, text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "w").glob("refcam-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(wanted - inside)
    assert not missing, f"tracked files the wheel leaves out (add their pattern to package-data): {missing}"
