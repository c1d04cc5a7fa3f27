"""Reading inputs and writing outputs for the boot-side commands (one clear error, no half files)."""

from __future__ import annotations

from pathlib import Path

from common.atomicfile import write_atomic
from common.errors import BootloaderError


def read_input(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise BootloaderError(f"{what} {path} does not exist") from exc
    except OSError as exc:
        raise BootloaderError(f"cannot read {what} {path}: {exc.strerror}") from exc


def write_output(path: Path, data: bytes) -> None:
    """Write all or nothing (``atomicfile.write_atomic``): a failure never leaves half a file."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise BootloaderError(f"cannot write {path}: {exc.strerror}") from exc
