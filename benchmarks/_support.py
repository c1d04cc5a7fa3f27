"""What several benchmarks share: the refcam CLI in-process and a free loopback port."""

from __future__ import annotations

import socket

from refcam.cli import main as refcam_main


def refcam(*args: str) -> None:
    """Run one ``refcam`` command; stop the benchmark if it fails."""
    code = refcam_main(list(args))
    if code != 0:
        raise SystemExit(f"refcam {' '.join(args)} exited {code}")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
