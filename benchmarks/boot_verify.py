"""Boot-time image verification cost: verify_firmware_image vs one SHA-256 pass.

Builds a 32 MiB random-payload slot image signed with a temporary key set,
then times (best of N runs) the full bootloader check -- strict parse, key
manifest verification, hash + signature verification, which also yields the
measurement -- against a single ``hashlib.sha256`` over the same bytes.
Target: ratio <= 1.2 (the measurement must not cost a second hash pass).

Run: .venv/bin/python benchmarks/boot_verify.py [--mib 32] [--runs 5]
The last line is ``ratio: X.XX``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bootloader.build import build_firmware_image
from bootloader.keys import init_keys, load_public_key, spki_sha256
from common.verify import TrustState, verify_firmware_image


def best_of(runs: int, func: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=32, help="payload size in MiB")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--algorithm", choices=("ed25519", "ecdsa-p256"), default="ed25519")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        keys = init_keys(Path(tmp) / "K", now=dt.datetime.now(dt.UTC))
        payload = os.urandom(args.mib * 2**20)
        image = build_firmware_image(
            keys=keys,
            payload=payload,
            version="1.0.0",
            security_counter=1,
            algorithm=args.algorithm,
        )
        trust = TrustState(
            rot_keys=((spki_sha256(load_public_key(keys.rot_pub(0))), False),),
            min_key_manifest_counter=1,
            min_security_counter=1,
            hardware_id="refcam-rc1080-v1",
        )
    del payload

    def verify() -> None:
        verify_firmware_image(image, trust=trust)

    def baseline() -> None:
        hashlib.sha256(image).digest()

    verify()  # warm up (imports, page cache)
    baseline()
    t_base = best_of(args.runs, baseline)
    t_verify = best_of(args.runs, verify)
    size = len(image) / 2**20
    print(f"image: {size:.1f} MiB, {args.algorithm}, best of {args.runs}")
    print(f"hashlib.sha256 baseline: {t_base * 1000:.1f} ms ({size / t_base:.0f} MiB/s)")
    print(f"verify_firmware_image (parse+verify+measure): {t_verify * 1000:.1f} ms")
    print(f"ratio: {t_verify / t_base:.2f}")


if __name__ == "__main__":
    main()
