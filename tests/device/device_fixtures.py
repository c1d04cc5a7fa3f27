"""Fixtures for the firmware runtime: real PKI, a hand-built BootHandoff, a TLS server on loopback.

The handoff is built from freshly generated material (manufacturer root,
device CA, the device's P-256 TLS key and leaf from ``bootloader.pki``, a DICE
DeviceID/Alias chain from ``bootloader.dice``); no key is ever written into the
repository. The clock is injected (:class:`FakeClock`), so lockout and expiry
tests advance time instead of sleeping.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from bootloader import dice, pki
from bootloader.hardware import SecureCounters
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
from common.listener import GuardedSite, runner_options
from common.passwords import hash_password, label_fold
from common.sealedsecret import SEALED_SECRET_LABEL, seal_secret
from device.appkeys import CONNECTIONS_KEY
from device.config import DeviceConfig, SessionConfig, ThrottleConfig
from device.server import create_app

# Real time: the TLS certificates must be valid for the real clock of the TLS client.
NOW = float(int(time.time()))
NOW_DT = dt.datetime.fromtimestamp(NOW, dt.UTC)
SERIAL = "RCTEST000001"
INITIAL_PASSWORD = "k7QmZ-2xR9p-Abcde-Fgh23"
NEW_PASSWORD = "violet tractor measures the quiet harbour"
NOTICE = "slot b: image signature does not verify (tamper?)"


class FakeClock:
    """An injected clock: ``clock()`` is seconds since the epoch; ``advance`` moves it."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass(frozen=True)
class PKI:
    root_pem: bytes
    device_ca_pem: bytes
    device_ca_key: ec.EllipticCurvePrivateKey
    device_ca_cert: Any
    tls_key_pem: bytes
    chain_pem: bytes  # leaf (365 days) + device CA
    chain90_pem: bytes  # leaf (90 days, for Mozilla "modern") + device CA
    stream_key_pem: bytes  # Ed25519 stream-signing key
    stream_pem: bytes  # its certificate + device CA
    stream_p256_key_pem: bytes  # ECDSA P-256 stream-signing key (ONVIF Media Signing of H.264)
    stream_p256_pem: bytes  # its certificate + device CA


def _pem(cert: Any) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="session")
def device_pki() -> PKI:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = make_ca_certificate(
        key=root_key, common_name="refcam test manufacturer root", now=NOW_DT - dt.timedelta(days=30),
        lifetime=dt.timedelta(days=3650), path_length=1,
    )
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_ca_certificate(
        key=ca_key, common_name="refcam test device CA", now=NOW_DT - dt.timedelta(days=30),
        lifetime=dt.timedelta(days=1825), path_length=0, issuer_key=root_key, issuer_cert=root,
    )
    tls_key = ec.generate_private_key(ec.SECP256R1())
    leaves = [
        pki.issue_tls_certificate(
            serial=SERIAL, public_key=tls_key.public_key(), device_ca_key=ca_key,
            device_ca_cert=ca, now=NOW_DT - dt.timedelta(days=1), days=days,
        )
        for days in (365, 90)
    ]
    stream_key = ed25519.Ed25519PrivateKey.generate()
    stream_cert = pki.issue_stream_certificate(
        serial=SERIAL, public_key=stream_key.public_key(), device_ca_key=ca_key,
        device_ca_cert=ca, now=NOW_DT - dt.timedelta(days=1),
    )
    stream_p256_key = ec.generate_private_key(ec.SECP256R1())
    stream_p256_cert = pki.issue_stream_certificate(
        serial=SERIAL, public_key=stream_p256_key.public_key(), device_ca_key=ca_key,
        device_ca_cert=ca, now=NOW_DT - dt.timedelta(days=1),
    )
    return PKI(
        stream_p256_key_pem=stream_p256_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        stream_p256_pem=_pem(stream_p256_cert) + _pem(ca),
        stream_key_pem=stream_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        stream_pem=_pem(stream_cert) + _pem(ca),
        root_pem=_pem(root),
        device_ca_pem=_pem(ca),
        device_ca_key=ca_key,
        device_ca_cert=ca,
        tls_key_pem=tls_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        chain_pem=_pem(leaves[0]) + _pem(ca),
        chain90_pem=_pem(leaves[1]) + _pem(ca),
    )


@pytest.fixture(scope="session")
def initial_hash() -> str:
    """The provisioned ``initial-password.hash`` content: the label's hash, then its fold's."""
    return hash_password(INITIAL_PASSWORD) + "\n" + hash_password(label_fold(INITIAL_PASSWORD))


class NoFlashServices:
    """BootServices for tests that never update: every flash operation is refused."""

    trial = False

    def __init__(self, fuses: FuseSummary | None = None, *, state_dir: Path | None = None) -> None:
        """``state_dir`` holds the test device's UDS and secure counters (kept across restarts)."""
        self._fuses = fuses
        self._state_dir = state_dir
        self._counters = SecureCounters.in_memory() if state_dir is None else SecureCounters.open_file(state_dir / "rpmb.bin")
        self._uds = os.urandom(32)
        if state_dir is not None:
            uds_file = state_dir / "test-uds.bin"
            if not uds_file.exists():
                uds_file.write_bytes(self._uds)
            self._uds = uds_file.read_bytes()

    def derive_key(self, label: str) -> bytes:
        return dice.derive_sealing_key(self._uds, label)

    def audit_anchor(self) -> tuple[int, int]:
        return self._counters.read("audit_base"), self._counters.read("audit_head")

    def advance_audit_head(self, seq: int) -> None:
        self._counters.advance("audit_head", seq)

    def fuses(self) -> FuseSummary:
        assert self._fuses is not None
        return self._fuses

    def unsafe_write_unverified(self, slot: str, image: bytes) -> None:
        raise PermissionError("the device tests have no flash")

    def inactive_slot(self) -> str:
        return "b"

    def write_image(self, slot: str, image: bytes, *, progress: Any = None) -> None:
        raise PermissionError("the device tests have no flash")

    def verify_slot(self, slot: str) -> SlotStatus:
        raise PermissionError("the device tests have no flash")

    def open_slot_writer(self, slot: str, **_: Any) -> Any:
        raise PermissionError("the device tests have no flash")

    def read_slot(self, slot: str, length: int) -> bytes:
        raise PermissionError("the device tests have no flash")

    def erase_slot(self, slot: str) -> None:
        raise PermissionError("the device tests have no flash")

    def set_pending(self, slot: str) -> None:
        raise PermissionError("the device tests have no flash")

    def confirm(self) -> None:
        raise PermissionError("the device tests have no flash")


@dataclass
class RecordingAttester:
    """Wraps a real DICE Alias key: signs SHA-256(nonce || now) so tests can check the binding."""

    alias_key: ed25519.Ed25519PrivateKey
    calls: list[tuple[bytes, int]] = field(default_factory=list)

    def evidence(self, nonce: bytes, *, now: int) -> bytes:
        self.calls.append((nonce, now))
        message = hashlib.sha256(nonce + now.to_bytes(8, "big")).digest()
        return self.alias_key.sign(message)


def make_handoff(state_dir: Path, device_pki: PKI, initial_hash: str, *, tls90: bool = False) -> BootHandoff:
    fuses = FuseSummary(
        firmware_counter=3, bootloader_counter=1, key_manifest_counter=1,
        lifecycle="secured", debug_disabled=True, rot_keys=(("ab" * 32, False), ("cd" * 32, False)),
    )
    identity_dir = state_dir / "data" / "identity"
    identity_dir.mkdir(parents=True, exist_ok=True)
    (identity_dir / "tls.key.pem").write_bytes(device_pki.tls_key_pem)
    os.chmod(identity_dir / "tls.key.pem", 0o600)
    (identity_dir / "tls.pem").write_bytes(device_pki.chain90_pem if tls90 else device_pki.chain_pem)
    (identity_dir / "manufacturer-root.pem").write_bytes(device_pki.root_pem)
    (identity_dir / "initial-password.hash").write_text(initial_hash + "\n")
    (identity_dir / "stream.key.pem").write_bytes(device_pki.stream_key_pem)
    os.chmod(identity_dir / "stream.key.pem", 0o600)
    (identity_dir / "stream.pem").write_bytes(device_pki.stream_pem)
    (identity_dir / "stream-p256.key.pem").write_bytes(device_pki.stream_p256_key_pem)
    os.chmod(identity_dir / "stream-p256.key.pem", 0o600)
    (identity_dir / "stream-p256.pem").write_bytes(device_pki.stream_p256_pem)
    uds = os.urandom(32)
    bl_digest = hashlib.sha256(b"test bootloader").digest()
    fw_digest = hashlib.sha256(b"test firmware").digest()
    alias_key = dice.derive_alias(uds, bl_digest, fw_digest)
    events = (
        MeasurementEvent("bootloader", bl_digest.hex(), "1.0.0", "00" * 32, 1),
        MeasurementEvent("firmware", fw_digest.hex(), "1.2.0", "11" * 32, 3),
    )
    services = NoFlashServices(fuses, state_dir=state_dir)
    sealed = identity_dir / "initial-password.sealed"  # as provisioning seals the label password
    sealed.write_bytes(seal_secret(services.derive_key(SEALED_SECRET_LABEL), "admin", INITIAL_PASSWORD))
    os.chmod(sealed, 0o600)
    return BootHandoff(
        state_dir=state_dir,
        identity=DeviceIdentity(serial=SERIAL, model="RC-1080", hardware_id="refcam-rc1080-v1", vendor="refcam"),
        firmware=FirmwareManifest(
            version="1.2.0", hardware_id="refcam-rc1080-v1", model="RC-1080",
            build_time=int(NOW) - 86_400, support_end="2031-12-31",
            vendor_tls_root=device_pki.root_pem,  # any CA: the tests never reach an update server
        ),
        booted_slot="a",
        security_counter=3,
        trial=False,
        slots=(
            SlotStatus("a", "valid", "1.2.0", 3),
            SlotStatus("b", "invalid", reason="image signature does not verify"),
        ),
        fuses=fuses,
        measurements=events,
        measurement_register="5a" * 32,
        notices=(NOTICE,),
        attester=RecordingAttester(alias_key),
        services=services,  # type: ignore[arg-type]
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def handoff(tmp_path: Path, device_pki: PKI, initial_hash: str) -> BootHandoff:
    return make_handoff(tmp_path / "state", device_pki, initial_hash)


def config_for(handoff: BootHandoff, **changes: Any) -> DeviceConfig:
    config = DeviceConfig(
        runtime_dir=handoff.data_dir / "runtime",
        identity_dir=handoff.data_dir / "identity",
        throttle=ThrottleConfig(),
        sessions=SessionConfig(),
    )
    return replace(config, **changes)


@dataclass
class RunningDevice:
    """The management app served over real TLS on 127.0.0.1, with a client that trusts the root."""

    app: web.Application
    port: int
    clock: FakeClock
    handoff: BootHandoff
    client_ssl: ssl.SSLContext
    runner: web.AppRunner
    sessions: list[aiohttp.ClientSession] = field(default_factory=list)
    stopped: bool = False

    async def stop(self) -> None:
        """Power the firmware off: close clients, the listener and the databases."""
        for session in self.sessions:
            await session.close()
        if not self.stopped:
            self.stopped = True
            await self.runner.cleanup()

    @property
    def base(self) -> str:
        return f"https://localhost:{self.port}"

    def url(self, path: str) -> str:
        return self.base + path

    def client(self, **kwargs: Any) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(ssl=self.client_ssl)
        session = aiohttp.ClientSession(connector=connector, **kwargs)
        self.sessions.append(session)
        return session

    async def login(self, username: str = "admin", password: str = INITIAL_PASSWORD) -> dict[str, Any]:
        async with self.client() as s, s.post(
            self.url("/api/v1/session"), json={"username": username, "password": password}
        ) as r:
            assert r.status == 200, await r.text()
            body: dict[str, Any] = await r.json()
            return body

    async def admin_token(self) -> str:
        """Log in with the label password, do the forced change, return a full admin token."""
        first = await self.login()
        async with self.client() as s, s.post(
            self.url("/api/v1/session/password"),
            json={"current_password": INITIAL_PASSWORD, "new_password": NEW_PASSWORD},
            headers={"Authorization": f"Bearer {first['token']}"},
        ) as r:
            assert r.status == 204, await r.text()
        return str(first["token"])


StartDevice = Callable[..., Any]


@pytest.fixture
async def start_device(
    clock: FakeClock, handoff: BootHandoff, device_pki: PKI, tmp_path: Path
) -> AsyncIterator[StartDevice]:
    devices: list[RunningDevice] = []
    root = tmp_path / "root.pem"
    root.write_bytes(device_pki.root_pem)

    async def start(
        *, profile: tls.TLSProfile = "intermediate", extensions: Any = (), **config_changes: Any
    ) -> RunningDevice:
        config = config_for(handoff, tls_profile=profile, **config_changes)
        app = create_app(config, handoff=handoff, clock=clock, extensions=list(extensions))
        runner = web.AppRunner(app, **runner_options(config.connections))
        await runner.setup()
        ctx = tls.server_context(config.tls_chain_file, config.tls_key_file, profile=profile)
        site = GuardedSite(runner, "127.0.0.1", 0, guard=app[CONNECTIONS_KEY], ssl_context=ctx)
        await site.start()
        port = site.bound_port
        device = RunningDevice(app, port, clock, handoff, tls.client_context(root), runner)
        devices.append(device)
        return device

    yield start
    for device in devices:
        await device.stop()


@pytest.fixture
async def device(start_device: StartDevice) -> RunningDevice:
    result: RunningDevice = await start_device()
    return result



OMS_REFERENCE = Path(__file__).resolve().parents[1] / "third_party" / "media-signing-framework" / "lib"


@pytest.fixture(scope="session")
def oms_tool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ONVIF's reference Media Signing signer and validator (tests/third_party), built with gcc.

    tests/device/interop/oms_tool.c drives it; `.ci/system-deps.sh` installs gcc and libssl-dev.
    """
    out = tmp_path_factory.mktemp("oms") / "oms_tool"
    sources = [
        Path(__file__).parent / "interop" / "oms_tool.c",
        *sorted((OMS_REFERENCE / "src").glob("*.c")),
        OMS_REFERENCE / "plugins" / "unthreaded-signing" / "plugin.c",
    ]
    result = subprocess.run(
        ["gcc", "-O1", "-w", "-o", str(out), *map(str, sources), f"-I{OMS_REFERENCE / 'src'}", "-lcrypto"],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    return out
