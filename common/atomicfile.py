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
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` whole or not at all; raises ``OSError``."""
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


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
