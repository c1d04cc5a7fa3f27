"""`make demo`: refcam end to end on embedded defaults, printing every command.

Everything lives under ./demo-out (recreated on each run): generated keys,
firmware images, the device state directory, reports. Only loopback is used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"
BIN = Path(sys.executable).parent
REFCAM = str(BIN / "refcam")


def banner(title: str) -> None:
    print(f"\n=== {title} " + "=" * max(0, 70 - len(title)), flush=True)


def run(*args: str, expect: int = 0, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    shown = " ".join(a if " " not in a else repr(a) for a in args)
    print(f"$ {shown.replace(str(OUT) + '/', '')}", flush=True)
    proc = subprocess.run(
        [REFCAM if args[0] == "refcam" else args[0], *args[1:]],
        cwd=OUT,
        capture_output=True,
        text=True,
        check=False,
    )
    if not quiet:
        for line in (proc.stdout + proc.stderr).rstrip().splitlines():
            print(f"  {line}")
    if proc.returncode != expect:
        print(f"demo: expected exit {expect}, got {proc.returncode}", file=sys.stderr)
        sys.exit(1)
    return proc


def flip_byte(src: Path, dst: Path, offset: int) -> None:
    data = bytearray(src.read_bytes())
    data[offset] ^= 0x01
    dst.write_bytes(bytes(data))


def stage_boot_chain() -> None:
    banner("1. keys, signed firmware, secure boot")
    run("refcam", "keys", "init", "--dir", "keys")
    run("refcam", "firmware", "build", "--keys", "keys", "--version", "1.0.0",
        "--security-counter", "1", "-o", "fw-1.0.0.img")
    run("refcam", "firmware", "build", "--keys", "keys", "--version", "2.0.0",
        "--security-counter", "2", "-o", "fw-2.0.0.img")
    run("refcam", "firmware", "verify", "fw-1.0.0.img", "--keys", "keys")
    run("refcam", "firmware", "inspect", "fw-2.0.0.img")
    run("refcam", "device", "provision", "--state", "state", "--keys", "keys",
        "--firmware", "fw-1.0.0.img")
    run("refcam", "device", "boot", "--state", "state")

    banner("2. tampered firmware is refused")
    size = (OUT / "fw-2.0.0.img").stat().st_size
    flip_byte(OUT / "fw-2.0.0.img", OUT / "fw-2.0.0-tampered.img", size // 2)
    run("refcam", "firmware", "verify", "fw-2.0.0-tampered.img", "--keys", "keys", expect=1)
    run("refcam", "device", "flash", "--state", "state", "--slot", "b", "fw-2.0.0-tampered.img")
    run("refcam", "device", "boot", "--state", "state")


def main() -> int:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    stage_boot_chain()
    banner("done")
    print(f"everything the demo made is in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
