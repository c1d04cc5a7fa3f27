"""ONVIF throughput: GetDeviceInformation with a WS-Security UsernameToken vs a bare aiohttp TLS hello-world.

Both servers run in this process with the same TLS context. The load
generator (a separate process) keeps N TLS connections alive and sends a
fixed number of SOAP 1.2 requests, each with its own UsernameToken
(PasswordDigest, a new nonce, Created from this run), built before the clock
starts: the generator shares the two cores with the device and its XML
building is not what is measured. The device side pays for the hardened
parse, the replay check, ``CredentialStore.authenticate_proof_fast`` (the
throttle consulted in memory; the full path with its transactions for any
account or address with a failure recorded) and the lxml answer.
Target: ratio >= 0.5. The last line is ``ratio: X.XX``.

    .venv/bin/python benchmarks/onvif.py [--connections 8] [--requests 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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
from lxml import etree
from lxml.builder import ElementMaker

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
from common.passwords import hash_password
from device.config import DeviceConfig
from device.onvif import add_onvif_routes
from device.server import create_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "device"))
from device_fixtures import NoFlashServices  # the test suite's no-flash BootServices

INITIAL = "k7QmZ-2xR9p-Abcde-Fgh23"
NEW = "violet tractor measures the quiet harbour"
LOAD_TIMEOUT = 300.0  # seconds a measurement may take before the benchmark gives up

NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
}
DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"


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
    (identity / "initial-password.hash").write_text(hash_password(INITIAL))
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


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="hello")


async def serve(app: web.Application, context: ssl.SSLContext) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def request_body(user: str, password: str) -> bytes:
    env, wsse, wsu, tds = (ElementMaker(namespace=NS[k], nsmap=NS) for k in ("env", "wsse", "wsu", "tds"))
    nonce = os.urandom(16)
    created = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
    token = wsse.Security(wsse.UsernameToken(
        wsse.Username(user), wsse.Password(digest, Type=DIGEST),
        wsse.Nonce(base64.b64encode(nonce).decode()), wsu.Created(created),
    ))
    return bytes(etree.tostring(env.Envelope(env.Header(token), env.Body(tds.GetDeviceInformation()))))


def load_generator(port: int, onvif: bool, root: str, connections: int, requests: int, out: Any) -> None:
    async def main() -> float:
        ctx = ssl.create_default_context(cafile=root)
        remaining = requests
        headers = {"Content-Type": "application/soap+xml; charset=utf-8"}

        # Every request carries its own UsernameToken (fresh nonce, Created of this run), built
        # before the clock starts: the load generator shares the two cores with the device, and
        # its XML building is not what is measured.
        bodies = [request_body("admin", NEW) for _ in range(requests + connections)] if onvif else []

        async def one(session: aiohttp.ClientSession) -> None:
            if onvif:
                async with session.post(f"https://localhost:{port}/onvif/device_service",
                                        data=bodies.pop(), headers=headers) as r:
                    body = await r.read()
            else:
                async with session.get(f"https://localhost:{port}/") as r:
                    body = await r.read()
            if r.status != 200:
                raise RuntimeError(f"answered {r.status}: {body[-400:]!r}")

        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=connections)) as session:
            async def worker() -> None:
                nonlocal remaining
                while remaining > 0:
                    remaining -= 1
                    await one(session)

            await asyncio.gather(*(one(session) for _ in range(connections)))  # warm up every connection
            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(connections)))
            return requests / (time.perf_counter() - start)

    try:
        out.put(asyncio.run(main()))
    except Exception as exc:
        out.put(f"{type(exc).__name__}: {exc}")


async def measure(port: int, onvif: bool, root: Path, args: argparse.Namespace) -> float:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=load_generator, args=(port, onvif, str(root), args.connections, args.requests, queue))
    proc.start()
    loop = asyncio.get_running_loop()
    result = await loop.run_in_executor(None, lambda: queue.get(timeout=LOAD_TIMEOUT))
    await loop.run_in_executor(None, proc.join)
    if not isinstance(result, float):
        raise SystemExit(f"load generator failed: {result}")
    return result


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        handoff, root = make_state(Path(tmp) / "state")
        config = DeviceConfig(runtime_dir=handoff.data_dir / "runtime", identity_dir=handoff.data_dir / "identity")
        context = tls.server_context(config.tls_chain_file, config.tls_key_file)
        app = create_app(config, handoff=handoff, extensions=[add_onvif_routes])
        device_runner, device_port = await serve(app, context)
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
                    assert r.status == 204, await r.text()  # seals the new password for the digest logins
            device_rates, bare_rates = [], []
            for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
                bare_rates.append(await measure(bare_port, False, root, args))
                device_rates.append(await measure(device_port, True, root, args))
        finally:
            await device_runner.cleanup()
            await bare_runner.cleanup()
    device_rps, bare_rps = statistics.median(device_rates), statistics.median(bare_rates)
    print(f"load: {args.connections} keep-alive TLS connections, {args.requests} requests, median of {args.rounds} rounds")
    print(f"baseline aiohttp TLS hello-world: {bare_rps:.0f} requests/s")
    print(f"ONVIF GetDeviceInformation with UsernameToken: {device_rps:.0f} requests/s")
    print(f"ratio: {device_rps / bare_rps:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
