"""Reading inputs and writing outputs for the boot-side commands (one clear error, no half files)."""

from __future__ import annotations

import os
from pathlib import Path

from bootloader.errors import BootloaderError


def read_input(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise BootloaderError(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise BootloaderError(f"cannot read {what} {path}: {exc.strerror}") from exc


def write_output(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a failure never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BootloaderError(f"cannot write {path}: {exc.strerror}") from exc
