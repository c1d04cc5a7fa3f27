"""Open a SQLite database the way every refcam store does.

One writer per database, in WAL mode, shared across threads behind the
store's own lock, in autocommit mode (each store opens its own transactions
with ``BEGIN IMMEDIATE``), created with its schema if new. The folder is
made ``0700`` and the database files ``0600``: they hold password hashes,
sessions and the audit log, which no other user of the host may read.

Example::

    db = open_database(path, schema=_SCHEMA, synchronous="FULL")
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Literal

_WAL_SUFFIXES = ("", "-wal", "-shm")


def open_database(
    path: Path,
    *,
    schema: str,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    foreign_keys: bool = False,
) -> sqlite3.Connection:
    """The database at ``path``, created with ``schema`` if needed.

    Raises ``sqlite3.Error`` or ``OSError``; each store wraps them in its own
    storage error, naming the database.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    old_umask = os.umask(0o077)  # the -wal and -shm files SQLite makes later are 0600 too
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            if foreign_keys:
                db.execute("PRAGMA foreign_keys=ON")
            db.executescript(schema)
        except BaseException:
            db.close()
            raise
    finally:
        os.umask(old_umask)
    for suffix in _WAL_SUFFIXES:
        with contextlib.suppress(FileNotFoundError):  # -wal/-shm exist only while open
            os.chmod(f"{path}{suffix}", 0o600)
    return db
