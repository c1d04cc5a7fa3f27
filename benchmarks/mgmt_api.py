"""Management API throughput: authenticated GET /api/v1/status vs a bare aiohttp TLS hello-world.

Both servers run in this process with the *same* TLS context
(``common.tls.server_context``, Mozilla intermediate). The load generator runs
in a separate process: an aiohttp client with N concurrent keep-alive
connections sending a fixed number of requests. The device side pays for the
middlewares (errors, access control with a session lookup in SQLite, security
headers) and the JSON body; the baseline pays only for TLS and HTTP.

Also printed: the login cost (scrypt parameters, milliseconds per hash).
The last line is ``ratio: X.XX`` = device requests/s / baseline requests/s.

    .venv/bin/python benchmarks/mgmt_api.py [--connections 8] [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import multiprocessing
import os
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from bootloader import pki
from bootloader.keys import make_ca_certificate
from common import tls
from common.handoff import (
    BootHandoff,
    DeviceIdentity,
    FirmwareManifest,
    FuseSummary,
    MeasurementEvent,
    SlotStatus,
)
from device.config import DeviceConfig
from device.server import create_app
from refcam import passwords

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "device"))
from device_fixtures import NoFlashServices  # the test suite's no-flash BootServices

INITIAL = "k7QmZ-2xR9p-Abcde-Fgh23"
NEW = "violet tractor measures the quiet harbour"


class _Attester:
    def __init__(self) -> None:
        self._key = ed25519.Ed25519PrivateKey.generate()

    def evidence(self, nonce: bytes, *, now: int) -> bytes:
        return self._key.sign(hashlib.sha256(nonce + now.to_bytes(8, "big")).digest())


def make_state(state: Path) -> tuple[BootHandoff, Path]:
    now = dt.datetime.now(dt.UTC)
    identity = state / "data" / "identity"
    identity.mkdir(parents=True)
    root_key, ca_key, tls_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    root = make_ca_certificate(key=root_key, common_name="bench root", now=now,
                               lifetime=dt.timedelta(days=30), path_length=1)
    ca = make_ca_certificate(key=ca_key, common_name="bench device CA", now=now,
                             lifetime=dt.timedelta(days=30), path_length=0,
                             issuer_key=root_key, issuer_cert=root)
    leaf = pki.issue_tls_certificate(serial="RCBENCH0001", public_key=tls_key.public_key(),
                                     device_ca_key=ca_key, device_ca_cert=ca, now=now, days=30)
    pem = serialization.Encoding.PEM
    (identity / "tls.pem").write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_path = identity / "tls.key.pem"
    key_path.write_bytes(tls_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    (identity / "manufacturer-root.pem").write_bytes(root.public_bytes(pem))
    (identity / "initial-password.hash").write_text(passwords.hash_password(INITIAL))
    fuses = FuseSummary(1, 1, 1, "secured", True, (("00" * 32, False),))
    handoff = BootHandoff(
        state_dir=state,
        identity=DeviceIdentity("RCBENCH0001", "RC-1080", "refcam-rc1080-v1", "refcam"),
        firmware=FirmwareManifest("1.0.0", "refcam-rc1080-v1", "RC-1080", int(time.time()), "2031-12-31"),
        booted_slot="a", security_counter=1, trial=False,
        slots=(SlotStatus("a", "valid", "1.0.0", 1), SlotStatus("b", "empty")),
        fuses=fuses,
        measurements=(MeasurementEvent("firmware", "00" * 32, "1.0.0", "00" * 32, 1),),
        measurement_register="00" * 32, notices=(), attester=_Attester(),
        services=NoFlashServices(fuses),
    )
    return handoff, identity / "manufacturer-root.pem"


LOAD_TIMEOUT = 300.0  # seconds a measurement may take before the benchmark gives up


def load_generator(port: int, path: str, token: str | None, root: str, connections: int,
                   requests: int, out: Any) -> None:
    """Child process: ``requests`` GETs over ``connections`` keep-alive TLS connections."""

    async def main() -> float:
        ctx = ssl.create_default_context(cafile=root)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        remaining = requests

        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ctx, limit=connections, force_close=False)
        ) as session:
            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    async with session.get(f"https://localhost:{port}{path}", headers=headers) as r:
                        await r.read()
                        if r.status != 200:
                            raise RuntimeError(f"{path} answered {r.status}")

            # warm up: open every connection once
            async def once() -> None:
                async with session.get(f"https://localhost:{port}{path}", headers=headers) as r:
                    await r.read()

            await asyncio.gather(*(once() for _ in range(connections)))
            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            return requests / (time.perf_counter() - start)

    try:
        out.put(asyncio.run(main()))
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


async def measure(port: int, path: str, token: str | None, root: Path, args: argparse.Namespace) -> float:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=load_generator,
                       args=(port, path, token, str(root), args.connections, args.requests, queue))
    proc.start()
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(None, lambda: queue.get(timeout=LOAD_TIMEOUT))
    await loop.run_in_executor(None, proc.join)
    if not isinstance(result, float):
        raise SystemExit(f"load generator failed on {path}: {result}")
    return result


async def serve(app: web.Application, context: ssl.SSLContext) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        handoff, root = make_state(Path(tmp) / "state")
        config = DeviceConfig(runtime_dir=handoff.data_dir / "runtime", identity_dir=handoff.data_dir / "identity")
        context = tls.server_context(config.tls_chain_file, config.tls_key_file)
        device_runner, device_port = await serve(create_app(config, handoff=handoff, extensions=[]), context)
        bare = web.Application()
        bare.router.add_get("/", hello)
        bare_runner, bare_port = await serve(bare, context)
        try:
            client_ctx = ssl.create_default_context(cafile=str(root))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_ctx)) as s:
                base = f"https://localhost:{device_port}/api/v1"
                async with s.post(f"{base}/session", json={"username": "admin", "password": INITIAL}) as r:
                    token = (await r.json())["token"]
                async with s.post(f"{base}/session/password", headers={"Authorization": f"Bearer {token}"},
                                  json={"current_password": INITIAL, "new_password": NEW}) as r:
                    assert r.status == 204, await r.text()
            device_rates, bare_rates = [], []
            for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
                bare_rates.append(await measure(bare_port, "/", None, root, args))
                device_rates.append(await measure(device_port, "/api/v1/status", token, root, args))
        finally:
            await device_runner.cleanup()
            await bare_runner.cleanup()

    hashes = []
    for _ in range(3):
        start = time.perf_counter()
        passwords.hash_password("benchmark password")
        hashes.append((time.perf_counter() - start) * 1000)
    device_rps, bare_rps = statistics.median(device_rates), statistics.median(bare_rates)
    print(f"load: {args.connections} keep-alive TLS connections, {args.requests} requests, "
          f"median of {args.rounds} rounds")
    print(f"baseline aiohttp TLS hello-world: {bare_rps:.0f} requests/s")
    print(f"authenticated GET /api/v1/status: {device_rps:.0f} requests/s")
    print(f"login cost: scrypt N=2**{passwords.SCRYPT_LOG2_N}, r={passwords.SCRYPT_R}, "
          f"p={passwords.SCRYPT_P}: {statistics.median(hashes):.0f} ms per hash")
    print(f"ratio: {device_rps / bare_rps:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the server side")
    args = parser.parse_args()
    if args.profile:
        import cProfile

        cProfile.runctx("asyncio.run(run(args))", globals(), {"args": args, "run": run}, args.profile)
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
