"""End-to-end TUF update cost vs a plain HTTPS download plus one SHA-256 pass.

A vendor repository publishes a 32 MiB (incompressible payload) firmware
image; ``refcam update-server run`` serves it over loopback TLS in its own
process, as a vendor server would. Timed in N interleaved rounds, each giving
one ratio (the machine's load drifts; adjacent runs see the same load):

* baseline: ``http.client`` over the same TLS policy downloading the target
  file and hashing it once with SHA-256;
* update: ``UpdateClient.install()`` on a freshly booted simulated camera
  with an empty TUF cache: TUF refresh (root, timestamp, snapshot, targets,
  model delegation) over one keep-alive connection, the target streamed
  through the device fetcher into the inactive slot and hashed in the same
  pass (TUF's SHA-256 and length, and the image hash the bootloader's check
  signs over), the bootloader-equivalent check of the slot (signature over
  that digest, key manifest, counters, payload manifest) and ``set_pending``;
* for reference, python-tuf's own ``download_target`` into a file (the
  ``refcam tuf-client`` path): refresh + download + hash.

Also printed: the TUF metadata refresh alone (a fresh camera's ``check()``,
timed in the same rounds) and what the update costs beyond it, and the bytes
and requests of a check when nothing changed (the cost of the automatic daily
check). Target: ratio <= 1.2.

Run: .venv/bin/python benchmarks/update.py [--mib 32] [--runs 21]
The last line is ``ratio: X.XX``, the median of the rounds' update/baseline ratios.
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import http.client
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bootloader.chain import boot
from bootloader.hardware import Board, FlashGeometry
from common import tls

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "device"))
import update_fixtures as uf

from tests.integration.conftest import start_vendor  # refcam update-server run, ready line awaited


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=32)
    parser.add_argument("--runs", type=int, default=21, help="interleaved rounds; the ratio is the median of their ratios")
    args = parser.parse_args()
    size = args.mib * 2**20
    uf.GEOMETRY = FlashGeometry(
        sector_size=4096, write_align=8, bootloader_size=64 * 1024, slot_size=size + 2**20, data_size=4096
    )
    uf.BOARD = Board(hardware_id=uf.HARDWARE_ID, model=uf.MODEL, vendor=uf.VENDOR, geometry=uf.GEOMETRY)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        vendor = uf.make_vendor(tmp)
        big_source = tmp / "big" / "device"
        big_source.mkdir(parents=True)
        for item in vendor.firmware_source.iterdir():
            (big_source / item.name).write_bytes(item.read_bytes())
        (big_source / "blob.bin").write_bytes(os.urandom(size))  # incompressible
        small = vendor.image("1.0.0", 1)
        vendor.firmware_source = big_source
        image = vendor.image("2.0.0", 2)
        vendor.publish(image, "rc-2.0.0.img")
        target = next((vendor.repo_dir / "targets" / uf.HARDWARE_ID).iterdir())
        camera = uf.make_camera(tmp, vendor, small)
        golden = copy.deepcopy(camera.device)
        context = tls.client_context(vendor.vendor_root_pem)
        print(f"image: {len(image)} bytes ({len(image) / 2**20:.1f} MiB)", flush=True)

        server = start_vendor(tmp / "vendor", vendor.keys_dir, repo=vendor.repo_dir)
        try:
            url = server.url
            host, port = url.removeprefix("https://").split(":")
            path = f"/targets/{uf.HARDWARE_ID}/{target.name}"

            def download_and_hash() -> None:
                conn = http.client.HTTPSConnection(host, int(port), context=context, timeout=30)
                conn.request("GET", path)
                response = conn.getresponse()
                digest = hashlib.sha256()
                while chunk := response.read1(256 * 1024):
                    digest.update(chunk)
                conn.close()
                assert response.status == 200

            def baseline() -> float:
                return timed(download_and_hash)

            def fresh_client() -> uf.UpdateClient:
                """A freshly booted camera (untimed) with an empty TUF cache."""
                outcome = boot(copy.deepcopy(golden).power_on(), now=uf.NOW)
                shutil.rmtree(outcome.handoff.data_dir / "update", ignore_errors=True)
                client = uf.update_client(outcome, vendor, url)
                # The camera of the previous measurement (its 66 MiB of flash) hangs in
                # reference cycles; left to the collector, a gen-0 pass frees it in the middle
                # of the next timed update, 17 ms of munmap charged to every other round.
                gc.collect()
                return client

            def update() -> float:
                client = fresh_client()
                seconds = timed(client.install)
                assert client.status.state == "pending-reboot", client.status
                return seconds

            def tuf_download_target(client: uf.UpdateClient) -> None:
                """python-tuf's download_target into a file: the refcam tuf-client path."""
                updater, result = client._check()
                assert result.candidate is not None
                info = updater.get_targetinfo(result.candidate.target_path)
                assert info is not None
                updater.download_target(info, filepath=str(client.download_dir / "image.bin"))

            def tuf_only() -> float:
                client = fresh_client()
                return timed(lambda: tuf_download_target(client))

            # Interleaved rounds: the load of a shared machine drifts within seconds, so each
            # round times the baseline and the update back to back and gives one ratio; the
            # median of the rounds' ratios is the result.
            def refresh_only() -> float:
                """The TUF part alone: a fresh camera's check (refresh, delegation walk, pick)."""
                client = fresh_client()
                return timed(client.check)

            rounds = [(baseline(), tuf_only(), update(), refresh_only()) for _ in range(args.runs)]
            t_base, t_tuf, t_update, t_refresh = (statistics.median(column) for column in zip(*rounds, strict=True))
            ratios = [u / b for b, _, u, _ in rounds]
            tuf_ratios = [t / b for b, t, _, _ in rounds]
            image_ratios = [(u - r) / b for b, _, u, r in rounds]

            outcome = boot(copy.deepcopy(golden).power_on(), now=uf.NOW)
            client = uf.update_client(outcome, vendor, url)
            client.check()
            before_bytes, before_requests = client.fetcher.bytes_received, client.fetcher.requests
            client.check()
            idle_bytes = client.fetcher.bytes_received - before_bytes
            idle_requests = client.fetcher.requests - before_requests
        finally:
            server.stop()

    print(f"check with nothing new: {idle_bytes} bytes in {idle_requests} requests")
    print(f"medians of {args.runs} interleaved rounds:")
    print(f"  baseline HTTPS download + SHA-256:        {t_base * 1000:.0f} ms ({size / t_base / 2**20:.0f} MiB/s)")
    print(f"  python-tuf download_target into a file:   {t_tuf * 1000:.0f} ms (ratio {statistics.median(tuf_ratios):.2f})")
    print(f"  update: refresh + stream into slot, hashed in the same pass + bootloader check + set_pending: "
          f"{t_update * 1000:.0f} ms")
    print(f"    of which the TUF metadata refresh alone (check() of a fresh camera): {t_refresh * 1000:.0f} ms; "
          f"the rest (stream into slot + bootloader check + set_pending) / baseline: "
          f"{statistics.median(image_ratios):.2f}")
    print("  per round, update / baseline: " + ", ".join(f"{r:.2f}" for r in ratios))
    print(f"ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
