"""All-or-nothing file writes: after a crash or a power cut, the old file or the new one.

One way for every small state file refcam keeps (fuses, identity certificates,
settings, tokens, update checkpoints, command outputs): a uniquely named
temporary file in the same directory, written and fsynced, renamed over the
target with ``os.replace``, then the directory fsynced so the rename itself
is durable. The mode is set on the temporary file, so a secret is never
readable by others, not even for a moment.

Example::

    write_atomic(state / "settings.json", json.dumps(doc).encode())
    write_atomic(keys / "operator-token", token, mode=0o600)
    db = sqlite3.connect(private_sqlite_file(runtime / "users.sqlite3"))

Modes: files 0600 and directories 0700 unless a caller asks otherwise.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PRIVATE_FILE = 0o600  # every secret or state file: the owner only
PRIVATE_DIR = 0o700


def write_atomic(path: Path, data: bytes, *, mode: int = PRIVATE_FILE) -> None:
    """Replace ``path`` with ``data`` whole or not at all; raises ``OSError``.

    ``mode`` defaults to 0600: refcam's files are device or vendor state; pass
    0o644 only for a file meant to be read by other local users."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # not subject to the umask
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def private_dir(path: Path) -> Path:
    """``mkdir -p`` with 0700 for every directory it creates, and 0700 on ``path`` itself."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        directory.mkdir(mode=PRIVATE_DIR, exist_ok=True)
        os.chmod(directory, PRIVATE_DIR)  # mkdir's mode is subject to the umask
    if path.stat().st_mode & 0o077:
        os.chmod(path, PRIVATE_DIR)
    return path


def private_sqlite_file(path: Path) -> Path:
    """Make the SQLite database at ``path`` (and its parent directory) private before it is
    opened: the file is created 0600 (an existing one, and its -wal/-shm, are set to 0600).
    SQLite creates -wal and -shm with the database file's permissions."""
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.chmod(side, PRIVATE_FILE)
    return path


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
