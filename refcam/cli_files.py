"""Reading inputs and writing outputs for the boot-side commands (one clear error, no half files)."""

from __future__ import annotations

from pathlib import Path

from common.atomicfile import write_atomic
from common.errors import BootloaderError
from refcam.i18n import _


def read_input(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise BootloaderError(_("{what} {path} does not exist").format(what=what, path=path)) from exc
    except OSError as exc:
        raise BootloaderError(_("cannot read {what} {path}: {strerror}").format(what=what, path=path, strerror=exc.strerror)) from exc


def write_output(path: Path, data: bytes) -> None:
    """Write all or nothing (``atomicfile.write_atomic``): a failure never leaves half a file."""
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise BootloaderError(_("cannot write {path}: {strerror}").format(path=path, strerror=exc.strerror)) from exc
