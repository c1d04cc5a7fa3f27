"""Fleet mode at scale: devices started, RSS per device, time until all listen, p99 of an
authenticated status read across the fleet, one staged rollout 10 % then 100 % to completion.

Everything is real: fresh vendor keys, a TUF repository, two signed firmware
images, ``refcam fleet provision`` (N units, each its own fuses, flash, DICE
identity and certificate), ``refcam update-server run`` and ``refcam fleet
run`` as subprocesses, as a lab would start them. The status read is ``GET
/api/v1/update/status`` as admin over TLS (verified against the fleet CA, by
IP address), after each unit's forced password change.

Targets on the 24 GiB lab machine (issue 14): 1,000 devices, <= 16 MiB RSS
each, all listening within 120 s, the full rollout done with 0 bricks.

Run: .venv/bin/python benchmarks/fleet.py [--count 1000] [--workers CORES] [--reads 200]
The last lines are the figures (``devices: ...``, ``rss per device: ...``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _support import free_port, refcam

from device.update.rollout import cohort_point
from refcam.fleet import read_status, summarize

NEW_PASSWORD = "correct horse battery staple 42"


def start(args: list[str], ready: str, log: Path, timeout: float) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "refcam.cli", *args], stdout=handle, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if re.search(ready, log.read_text(errors="replace")):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"{args[0]} {args[1]} did not get ready:\n{log.read_text(errors='replace')[-3000:]}")


def tree_rss_kib(pid: int) -> tuple[int, dict[int, int]]:
    """RSS of ``pid`` and of each of its child processes (KiB, from /proc)."""
    def rss(p: int) -> int:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return rss(pid), {c: rss(c) for c in children}


async def read_status_p99(units: list[dict[str, Any]], fleet_dir: Path, port: int, reads: int) -> list[float]:
    import aiohttp

    ctx = ssl.create_default_context(cafile=str(fleet_dir / "fleet-ca.pem"))
    sample = units[: reads or len(units)]
    timings: list[float] = []
    limit = asyncio.Semaphore(16)

    tokens: dict[str, str] = {}

    async def log_in(unit: dict[str, Any], session: aiohttp.ClientSession) -> None:
        """The forced first-login password change (slow hashes): before, not inside, the timing."""
        base = f"https://{unit['address']}:{port}"
        label = (fleet_dir / "units" / unit["name"] / "label.txt").read_text().split("initial password: ")[1].split()[0]
        async with limit:
            async with session.post(base + "/api/v1/session", json={"username": "admin", "password": label}) as r:
                token = (await r.json())["token"]
            async with session.post(base + "/api/v1/session/password", headers={"Authorization": f"Bearer {token}"},
                                    json={"current_password": label, "new_password": NEW_PASSWORD}) as r:
                assert r.status == 204, await r.text()
            tokens[unit["name"]] = token

    async def read(unit: dict[str, Any], session: aiohttp.ClientSession) -> None:
        base = f"https://{unit['address']}:{port}"
        for _ in range(3):
            started = time.perf_counter()
            async with session.get(base + "/api/v1/update/status",
                                   headers={"Authorization": f"Bearer {tokens[unit['name']]}"}) as r:
                await r.read()
                assert r.status == 200, r.status
            timings.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=64)) as session:
        await asyncio.gather(*(log_in(u, session) for u in sample))
        await asyncio.gather(*(read(u, session) for u in sample))  # every unit read concurrently
    return timings


def wait_until(predicate: Any, timeout: float, what: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(1.0)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--reads", type=int, default=200, help="units whose status is read (0: all)")
    parser.add_argument("--check-interval", type=float, default=20.0, help="update check interval (jittered)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="refcam-fleet-bench-"))
    keys, repo, fleet_dir = root / "keys", root / "repo", root / "F"
    refcam("keys", "init", "--dir", str(keys))
    refcam("repo", "init", "--dir", str(repo), "--keys", str(keys))
    images = {}
    for version, counter in (("1.0.0", "1"), ("2.0.0", "2")):
        images[version] = root / f"fw-{version}.img"
        refcam("firmware", "build", "--keys", str(keys), "--version", version, "--security-counter", counter,
               "--tuf-root", str(repo / "metadata" / "1.root.json"), "-o", str(images[version]))
    started = time.monotonic()
    refcam("fleet", "provision", "--count", str(args.count), "--keys", str(keys), "--firmware",
           str(images["1.0.0"]), "--dir", str(fleet_dir), "--workers", str(args.workers))
    provision_s = time.monotonic() - started
    vendor_port, port = free_port(), free_port()
    vendor = start(["update-server", "run", "--repo", str(repo), "--keys", str(keys), "--port", str(vendor_port),
                    "--psirt-db", str(root / "psirt.db")], r"refcam update-server serving", root / "vendor.log", 60)
    started = time.monotonic()
    fleet = start(["fleet", "run", "--dir", str(fleet_dir), "--workers", str(args.workers), "--port", str(port),
                   "--update-url", f"https://localhost:{vendor_port}", "--update-check-interval",
                   str(args.check_interval), "--update-auto-install", "on"],
                  r"fleet: \d+ of \d+ units listening", root / "fleet.log", 900)
    listen_s = time.monotonic() - started
    try:
        summary = summarize(read_status(fleet_dir))
        listening = summary["states"].get("listening", 0)
        time.sleep(3)
        main_kib, workers_kib = tree_rss_kib(fleet.pid)
        per_device_mib = sum(workers_kib.values()) / 1024 / max(1, listening)
        plan = json.loads((fleet_dir / "fleet.json").read_text())
        timings = asyncio.run(read_status_p99(plan["units"], fleet_dir, port, args.reads))
        timings.sort()
        p99 = timings[min(len(timings) - 1, int(len(timings) * 0.99))]

        refcam("repo", "publish", str(repo), str(images["2.0.0"]), "--keys", str(keys), "--rollout", "10")
        meta = max((repo / "metadata").glob("*.models-refcam-rc1080-v1.json"), key=lambda p: int(p.name.split(".")[0]))
        salt = json.loads(meta.read_text())["signed"]["targets"]["refcam-rc1080-v1/fw-2.0.0.img"]["custom"]["rollout"]["salt"]
        cohort = {u["name"] for u in plan["units"] if cohort_point(u["serial"], salt) < 10}

        def on(version: str, names: set[str]) -> bool:
            rows = {r["name"]: r for r in read_status(fleet_dir)}
            return all(rows[n]["firmware"] == version and rows[n]["state"] == "listening"
                       and not (rows[n].get("device") or {}).get("trial") for n in names)

        stage10_s = wait_until(lambda: on("2.0.0", cohort), 3600, "the 10 % stage")
        stayed = on("1.0.0", {u["name"] for u in plan["units"]} - cohort)
        refcam("repo", "rollout", str(repo), "--version", "2.0.0", "--percent", "100", "--keys", str(keys))
        stage100_s = wait_until(lambda: on("2.0.0", {u["name"] for u in plan["units"]}), 3600, "the 100 % stage")
        final = summarize(read_status(fleet_dir))
        bricks = args.count - final["versions"].get("2.0.0", 0)
    finally:
        fleet.send_signal(signal.SIGTERM)
        vendor.send_signal(signal.SIGTERM)
        fleet.wait(120)
        vendor.wait(30)
    print(f"machine: {os.cpu_count()} cores; workers {args.workers}; temp {root}")
    print(f"provision: {args.count} units in {provision_s:.1f} s")
    print(f"devices: {listening} of {args.count} listening, all within {listen_s:.1f} s of 'fleet run'")
    print(f"rss per device: {per_device_mib:.1f} MiB (workers {sum(workers_kib.values()) / 1024:.0f} MiB "
          f"in {len(workers_kib)} processes; supervisor {main_kib / 1024:.0f} MiB)")
    print(f"status read p99: {p99 * 1000:.1f} ms over {len(timings)} authenticated reads "
          f"(median {statistics.median(timings) * 1000:.1f} ms)")
    print(f"rollout 10 %: {len(cohort)} units on 2.0.0 after {stage10_s:.1f} s; others stayed on 1.0.0: {stayed}")
    print(f"rollout 100 %: all on 2.0.0 after {stage100_s:.1f} s; bricks {bricks}; "
          f"boot failures {final['boot_failures']}; crashes {final['crashes']}")
    if not args.keep:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
