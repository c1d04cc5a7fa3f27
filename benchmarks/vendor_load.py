"""The vendor side under a fleet's update checks: requests/s per core of ``refcam update-server``
and of nginx serving the same repository with the configuration in ``docs/UPDATES.md``.

Everything is real: fresh vendor keys, a TUF repository with a signed 2.0.0 firmware
offered to every unit, ``refcam update-server run`` as a lab starts it, and Debian's
nginx with :func:`update_server.nginx.server_block` (the doc's block) in the
foreground on loopback. The load is ``benchmarks/locustfile.py`` (each user one
camera's update client: root, timestamp, snapshot, targets and model metadata,
the firmware download once with its SHA-256 checked) in Locust's distributed mode
on this machine (``--processes``: one master, N workers).

"Per core" is requests served per CPU-second the server used (its process and its
workers, from /proc), so the load generator sharing the machine does not count
against the server. The two servers get the same profile, users and duration,
one after the other, in the same run.

Run: .venv/bin/pip install -q -e '.[load]'
     .venv/bin/python benchmarks/vendor_load.py [--users 200] [--seconds 20] [--processes 2]
The last line is the ratio of the vendor server's requests per CPU-second to nginx's.
"""

from __future__ import annotations

import argparse
import csv
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _support import free_port, refcam

from update_server.nginx import server_block, standalone_config
from update_server.tls import ensure_server_certificate

HERE = Path(__file__).resolve().parent
TICKS = os.sysconf("SC_CLK_TCK")


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{what} did not listen:\n{log.read_text(errors='replace')[-3000:]}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its child processes so far (from /proc)."""
    def one(p: int) -> float:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)

    children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return one(pid) + sum(one(c) for c in children)


def load(url: str, ca: Path, args: argparse.Namespace, out: Path) -> tuple[int, int, float]:
    """Run the Locust profile against ``url``; (requests, failures, requests/s) from its CSV."""
    locust = shutil.which("locust", path=str(Path(sys.executable).parent)) or shutil.which("locust")
    if locust is None:
        raise SystemExit("locust is not installed: .venv/bin/pip install -q -e '.[load]'")
    env = {**os.environ, "REFCAM_CA": str(ca), "REFCAM_CHECK_INTERVAL": str(args.check_interval)}
    cmd = [locust, "-f", str(HERE / "locustfile.py"), "--headless", "--host", url, "-u", str(args.users),
           "-r", str(args.users), "-t", f"{args.seconds}s", "--csv", str(out), "--only-summary",
           "--loglevel", "WARNING"]
    if args.processes > 1:
        cmd += ["--processes", str(args.processes)]
    subprocess.run(cmd, env=env, check=False, stdout=subprocess.DEVNULL, stderr=(out.parent / "locust.log").open("ab"))
    with open(f"{out}_stats.csv", newline="") as handle:
        total = next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")
    return int(total["Request Count"]), int(total["Failure Count"]), float(total["Requests/s"])


def measure(name: str, url: str, pid: int, ca: Path, args: argparse.Namespace, root: Path) -> dict[str, float]:
    before = cpu_seconds(pid)
    requests, failures, per_second = load(url, ca, args, root / name)
    used = cpu_seconds(pid) - before
    if failures:
        raise SystemExit(f"{name}: {failures} of {requests} requests failed (see {root / name}_failures.csv)")
    return {"requests": requests, "rps": per_second, "cpu": used, "per_core": requests / used if used else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200, help="simulated cameras")
    parser.add_argument("--seconds", type=int, default=20, help="length of each load")
    parser.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)),
                        help="Locust worker processes (distributed mode on this machine)")
    parser.add_argument("--check-interval", type=float, default=0.2, help="seconds between a camera's checks")
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is missing: sh .ci/system-deps.sh installs nginx-light")
    root = Path(tempfile.mkdtemp(prefix="refcam-vendor-load-"))
    keys, repo = root / "keys", root / "repo"
    refcam("keys", "init", "--dir", str(keys))
    refcam("repo", "init", "--dir", str(repo), "--keys", str(keys))
    image = root / "fw-2.0.0.img"
    refcam("firmware", "build", "--keys", str(keys), "--version", "2.0.0", "--security-counter", "2",
           "--tuf-root", str(repo / "metadata" / "1.root.json"), "-o", str(image))
    refcam("repo", "publish", str(repo), str(image), "--keys", str(keys))
    ca = keys / "vendor" / "root-ca.pem"
    chain, key = ensure_server_certificate(keys, now=datetime.now(UTC))

    vendor_port, nginx_port = free_port(), free_port()
    vendor_log = root / "vendor.log"
    vendor = subprocess.Popen(
        [sys.executable, "-m", "refcam.cli", "update-server", "run", "--repo", str(repo), "--keys", str(keys),
         "--port", str(vendor_port), "--psirt-db", str(root / "psirt.db")],
        stdout=vendor_log.open("wb"), stderr=subprocess.STDOUT)
    prefix = root / "nginx"
    prefix.mkdir()
    user = pwd.getpwuid(os.geteuid()).pw_name if os.geteuid() == 0 else None
    conf = prefix / "nginx.conf"
    conf.write_text(standalone_config(
        server_block(listen=f"127.0.0.1:{nginx_port}", server_name="localhost", certificate=str(chain),
                     certificate_key=str(key), root=str(repo)),
        prefix=str(prefix), user=user))
    web = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(conf)], stderr=(prefix / "stderr.log").open("wb"))
    try:
        wait_listening(vendor_port, vendor, "refcam update-server", vendor_log)
        wait_listening(nginx_port, web, "nginx", prefix / "error.log")
        ours = measure("vendor", f"https://localhost:{vendor_port}", vendor.pid, ca, args, root)
        theirs = measure("nginx", f"https://localhost:{nginx_port}", web.pid, ca, args, root)
    finally:
        vendor.send_signal(signal.SIGTERM)
        web.send_signal(signal.SIGTERM)
        vendor.wait(30)
        web.wait(30)
    print(f"machine: {os.cpu_count()} cores; {args.users} cameras, a check every {args.check_interval} s, "
          f"{args.seconds} s each, Locust with {args.processes} worker processes; temp {root}")
    print(f"firmware target: {image.stat().st_size / 2**20:.1f} MiB, downloaded once per camera")
    for name, row in (("refcam update-server", ours), ("nginx 1 worker", theirs)):
        print(f"{name:22s} {row['requests']:7.0f} requests, {row['rps']:7.1f} req/s, server CPU {row['cpu']:5.1f} s, "
              f"{row['per_core']:7.1f} requests per CPU-second (per core), 0 failures")
    print(f"ratio (refcam update-server / nginx, requests per core): {ours['per_core'] / theirs['per_core']:.2f}")


if __name__ == "__main__":
    main()
