"""A unit that relays another unit's genuine evidence fails the probe's attestation case.

The relay holds unit A's TLS key (a unit whose firmware the attacker controls):
it serves A's TLS certificate and passes every request to A, except the
attestation request, which it answers with unit B's evidence for the probe's
nonce. B's evidence is genuine, fresh and chains to the manufacturer root, so
only the binding to the unit the probe talks to (BOOT-02 d) can catch it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from conformance.model import Verdict
from conformance.probe import ProbeOptions, run_probe

from .conftest import Firmware, RunningDevice, RunningVendor, free_port, refcam, start_device

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def relay(a: RunningDevice, b: RunningDevice, b_password: str) -> Iterator[str]:
    """Serve A's certificate on a new port; forward to A, but take attestation from B."""
    identity = a.state / "data" / "identity"
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(identity / "tls.pem", identity / "tls.key.pem")
    client_tls = ssl.create_default_context(cafile=str(a.root_pem))  # A and B share the manufacturer root
    port = free_port()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=client_tls)) as session:
            if request.method == "POST" and request.path == "/api/v1/attestation":
                async with session.post(
                    f"{b.url}/api/v1/session", json={"username": "admin", "password": b_password}
                ) as login:
                    token = (await login.json())["token"]
                target, headers = f"{b.url}{request.path_qs}", {"Authorization": f"Bearer {token}"}
            else:
                target = f"{a.url}{request.path_qs}"
                headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            headers["Content-Type"] = request.headers.get("Content-Type", "application/json")
            async with session.request(request.method, target, data=body, headers=headers) as answer:
                payload = await answer.read()
                kept = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "set-cookie")}
                return web.Response(status=answer.status, body=payload, headers=kept)

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_tls).start()
        started.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert started.wait(15), "the relay did not start"
    try:
        yield f"https://localhost:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()


def test_probe_fails_attestation_relayed_from_another_unit(
    tmp_path: Path, provisioned: Path, firmware: Firmware, vendor: RunningVendor
) -> None:
    other_state = tmp_path / "other"
    refcam("device", "provision", "--state", str(other_state), "--keys", str(firmware.keys),
           "--firmware", str(firmware.images["1.0.0"]))
    with contextlib.ExitStack() as running:
        a = start_device(provisioned, vendor_url=vendor.url)
        running.callback(a.stop)
        b = start_device(other_state, vendor_url=vendor.url)
        running.callback(b.stop)
        passwords: list[str] = []
        direct = run_probe(
            ProbeOptions(target=b.url, ca_file=str(b.root_pem), label_password=b.label_password, only=("BOOT-02",),
                         on_new_admin_password=passwords.append)
        )  # the genuine unit, asked directly, passes (and the probe set B's admin password)
        result = direct.result("BOOT-02")  # the others are NOT TESTED (--only)
        assert result.verdict is Verdict.PASS, [(u.unit, u.reason) for u in result.units]
        assert passwords, "the probe did not report the admin password it set on B"

        with relay(a, b, passwords[-1]) as url:
            relayed = run_probe(
                ProbeOptions(target=url, ca_file=str(a.root_pem), label_password=a.label_password, only=("BOOT-02",))
            )
    result = relayed.result("BOOT-02")
    units = {u.unit: u for u in result.units}
    assert result.verdict is Verdict.FAIL
    assert [units[x].verdict for x in "abc"] == [Verdict.PASS] * 3  # B's evidence is genuine and fresh...
    assert units["d"].verdict is Verdict.FAIL  # ...but it is not A's
    assert "but the probe talks to unit" in units["d"].reason and "(relayed evidence)" in units["d"].reason
