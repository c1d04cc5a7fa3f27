"""Shared check of issue 13 defect 6: state and secrets 0600, directories 0700."""

from __future__ import annotations

import stat
from pathlib import Path


def loose_modes(root: Path) -> list[str]:
    """Paths under ``root`` (and ``root``) readable or writable by group or others."""
    found = []
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        if mode & 0o077 or (path.is_file() and mode != want):
            found.append(f"{path.relative_to(root.parent)}: {oct(mode)}")
    return found
