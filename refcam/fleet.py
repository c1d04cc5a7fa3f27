"""Fleet mode: many real cameras per process, each on its own loopback address.

A fleet directory holds N units provisioned exactly as ``refcam device
provision`` would (own fuses, flash, slots, DICE identity, TLS certificate,
serial, label password, audit log), the plan that assigns each an address
``127.0.x.y`` (``fleet.json``), and one PEM with the fleet's trust anchor
(``fleet-ca.pem``: every unit's certificate chains to it)::

    F/fleet.json           format, units: name, address, serial
    F/fleet-ca.pem         the manufacturer root all units chain to
    F/units/u00000/ ...    one device state directory per unit
    F/run/                 written by `fleet run`: per-worker status, summary.json, fleet.prom

``fleet run`` starts a few worker processes; each boots its slice of units
through the real chain (ROM -> bootloader -> verified firmware payload, once
per unit at start and again after each reboot) and serves them all on one
event loop (:func:`host_units`). Units running byte-identical payloads share
one loaded copy of the runtime (``bootloader.firmware.load_shared_firmware``).
A unit that fails to boot or to listen is reported in one line and left down;
one that crashes while serving restarts alone; one that reboots (an update
trial) boots its chain again alone.

Example::

    plan = provision_fleet(Path("F"), keys_dir=Path("K"), firmware_image=img, count=20,
                           workers=2, now=datetime.now(UTC))
    run_fleet(Path("F"), RunOptions(workers=2, port=8443))
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.errors import RefcamError
from refcam.i18n import _

FLEET_FORMAT = "refcam-fleet/1"
FLEET_FILE = "fleet.json"
CA_FILE = "fleet-ca.pem"
UNITS_DIR = "units"
RUN_DIR = "run"
SUMMARY_FILE = "summary.json"
PROM_FILE = "fleet.prom"
# 127.0.x.y with x in 1..255 and y in 1..254: 127.0.0.0/24 (127.0.0.1 and friends) is
# left to the host, .0 and .255 are never used.
ADDRESS_BLOCKS = 255
ADDRESSES_PER_BLOCK = 254
MAX_UNITS = ADDRESS_BLOCKS * ADDRESSES_PER_BLOCK
PREFERRED_PORT = 443
FALLBACK_PORT = 8443
STATUS_EVERY = 1.0  # seconds between a worker's status files
MAX_RESTARTS = 5  # crashes of one unit while serving before it is left down


class FleetError(RefcamError):
    """A fleet command cannot be done as asked."""

    exit_code = 2


def unit_address(index: int) -> str:
    """The loopback address of unit ``index`` (0-based): 127.0.1.1, 127.0.1.2, ..."""
    if not 0 <= index < MAX_UNITS:
        raise FleetError(_("unit {index} is outside the loopback address range (0..{value})").format(index=index, value=MAX_UNITS - 1))
    block, host = divmod(index, ADDRESSES_PER_BLOCK)
    return f"127.0.{block + 1}.{host + 1}"


def check_count(count: int) -> None:
    if count < 1:
        raise FleetError(_("--count {count}: a fleet has at least one unit").format(count=count))
    if count > MAX_UNITS:
        raise FleetError(
            _("--count {count} is larger than the loopback address range: at most {MAX_UNITS} units (127.0.1.1 .. 127.0.255.254)").format(count=count, MAX_UNITS=MAX_UNITS)
        )


@dataclass(frozen=True)
class Unit:
    name: str
    address: str
    serial: str

    def state_dir(self, fleet_dir: Path) -> Path:
        return fleet_dir / UNITS_DIR / self.name


@dataclass(frozen=True)
class FleetPlan:
    units: tuple[Unit, ...]
    firmware_version: str

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FLEET_FORMAT,
                "firmware_version": self.firmware_version,
                "units": [asdict(u) for u in self.units],
            },
            indent=1,
        ) + "\n"


def load_plan(fleet_dir: Path) -> FleetPlan:
    path = fleet_dir / FLEET_FILE
    try:
        doc = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise FleetError(_("{fleet_dir} is not a fleet directory (no {FLEET_FILE}); run 'refcam fleet provision'").format(fleet_dir=fleet_dir, FLEET_FILE=FLEET_FILE)) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise FleetError(_("cannot read the fleet plan {path}: {exc}").format(path=path, exc=exc)) from exc
    try:
        if doc["format"] != FLEET_FORMAT:
            raise ValueError(_("format {format!r}, expected {FLEET_FORMAT!r}").format(format=doc['format'], FLEET_FORMAT=FLEET_FORMAT))
        units = tuple(Unit(name=str(u["name"]), address=str(u["address"]), serial=str(u["serial"])) for u in doc["units"])
        return FleetPlan(units=units, firmware_version=str(doc["firmware_version"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise FleetError(_("the fleet plan {path} is malformed: {exc}").format(path=path, exc=exc)) from exc


# ------------------------------------------------------------------------------ provision


def _provision_one(
    state_dir: str, keys_dir: str, firmware_image: bytes, now: dt.datetime, address: str
) -> tuple[str, str]:
    """One unit, in a pool process: (serial, firmware version). Its TLS certificate names
    its fleet address, so clients reach and verify it by IP."""
    from bootloader.provision import provision_state_dir

    result = provision_state_dir(Path(state_dir), keys_dir=Path(keys_dir), firmware_image=firmware_image, now=now,
                                 addresses=(address,))
    return result.serial, result.firmware_version


def provision_fleet(
    fleet_dir: Path,
    *,
    keys_dir: Path,
    firmware_image: bytes,
    count: int,
    workers: int,
    now: dt.datetime,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> FleetPlan:
    """Provision ``count`` real units in parallel; all or nothing (a failure removes them)."""
    from bootloader.hardware import Board, FlashGeometry
    from bootloader.keys import open_keys
    from bootloader.provision import HARDWARE_ID, MODEL, VENDOR, check_firmware, load_provision_keys

    check_count(count)
    if fleet_dir.exists() and (not fleet_dir.is_dir() or any(fleet_dir.iterdir())):
        raise FleetError(_("fleet directory {fleet_dir} is not empty; refusing to overwrite a fleet").format(fleet_dir=fleet_dir))
    # Refuse bad keys or firmware once, before any process starts.
    keys = load_provision_keys(keys_dir)
    board = Board(hardware_id=HARDWARE_ID, model=MODEL, vendor=VENDOR, geometry=FlashGeometry())
    verified, _payload = check_firmware(firmware_image, rot_hashes=keys.rot_hashes, board=board)
    created = not fleet_dir.exists()
    staging = fleet_dir.resolve().parent / f".{fleet_dir.name}.provisioning-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o700, parents=True)
    try:
        (staging / UNITS_DIR).mkdir(mode=0o700)
        names = [f"u{i:05d}" for i in range(count)]
        results: list[tuple[str, str]] = []
        with ProcessPoolExecutor(max_workers=max(1, min(workers, count))) as pool:
            futures = [
                pool.submit(_provision_one, str(staging / UNITS_DIR / name), str(keys_dir), firmware_image, now,
                            unit_address(i))
                for i, name in enumerate(names)
            ]
            for done, future in enumerate(futures, 1):
                results.append(future.result())
                progress(done, count)
        units = tuple(
            Unit(name=name, address=unit_address(i), serial=serial)
            for i, (name, (serial, _version)) in enumerate(zip(names, results, strict=True))
        )
        plan = FleetPlan(units=units, firmware_version=verified.version)
        ca = open_keys(keys_dir).manufacturer_root_ca.read_bytes()
        (staging / CA_FILE).write_bytes(ca)
        (staging / FLEET_FILE).write_text(plan.to_json(), encoding="utf-8")
        if fleet_dir.exists():
            fleet_dir.rmdir()  # empty, checked above
        os.replace(staging, fleet_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and fleet_dir.exists() and not any(fleet_dir.iterdir()):
            fleet_dir.rmdir()
        raise
    return plan


# ------------------------------------------------------------------------------ labels


LABEL_COLUMNS = ("address", "serial", "vendor", "model", "username", "initial_password", "must_change")


def labels_csv(fleet_dir: Path) -> str:
    """The label sheet a lab hands to its client: one row per unit."""
    from refcam.cli_device_runtime import read_label

    plan = load_plan(fleet_dir)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LABEL_COLUMNS)
    for unit in plan.units:
        label = read_label(unit.state_dir(fleet_dir))
        writer.writerow([unit.address, label["serial"], label["vendor"], label["model"], label["username"],
                         label["initial_password"], "yes" if label["must_change"] else "no"])
    return out.getvalue()


# ------------------------------------------------------------------------------ run


@dataclass(frozen=True)
class RunOptions:
    workers: int
    port: int
    update_url: str | None = None
    update_check_interval: float | None = None
    update_auto_install: bool = False
    tls_profile: str | None = None
    vendor_url: str | None = None

    def firmware_argv(self, unit: Unit) -> list[str]:
        argv = ["--host", unit.address, "--port", str(self.port), "--source", "none"]
        if self.update_url is not None:
            argv += ["--update-url", self.update_url]
        if self.update_check_interval is not None:
            argv += ["--update-check-interval", str(self.update_check_interval)]
        if self.update_auto_install:
            argv += ["--update-auto-install", "on"]
        if self.tls_profile is not None:
            argv += ["--tls-profile", self.tls_profile]
        if self.vendor_url is not None:
            argv += ["--vendor-url", self.vendor_url]
        return argv


def choose_port(requested: int | None, address: str, announce: Callable[[str], None]) -> int:
    """The usual HTTPS port 443 when this process can bind it, else 8443 (said so)."""
    if requested is not None:
        return requested
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, PREFERRED_PORT))
        except PermissionError:
            announce(_("fleet: port {PREFERRED_PORT} needs privileges here; units listen on {FALLBACK_PORT}").format(PREFERRED_PORT=PREFERRED_PORT, FALLBACK_PORT=FALLBACK_PORT))
            return FALLBACK_PORT
        except OSError as exc:
            announce(_("fleet: cannot bind port {PREFERRED_PORT} ({strerror}); units listen on {FALLBACK_PORT}").format(PREFERRED_PORT=PREFERRED_PORT, strerror=exc.strerror, FALLBACK_PORT=FALLBACK_PORT))
            return FALLBACK_PORT
    return PREFERRED_PORT


@dataclass
class UnitState:
    """What a worker knows of one unit (written to its status file)."""

    name: str
    address: str
    serial: str
    state: str = "booting"  # booting, listening, rebooting, restarting, failed, stopped
    firmware: str | None = None
    slot: str | None = None
    boots: int = 0
    boot_failures: int = 0
    crashes: int = 0
    error: str | None = None
    listening_since: float | None = None
    device: dict[str, Any] = field(default_factory=dict)  # the firmware's own view (device.fleetview)


def _one_line(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - some str() fail (zipfile.Path's FileNotFoundError): the unit must still be reported
        text = ""
    return " ".join(text.split()) or type(exc).__name__


async def host_unit(
    fleet_dir: Path,
    unit: Unit,
    options: RunOptions,
    stop: asyncio.Event,
    state: UnitState,
    views: dict[str, Callable[[], dict[str, Any]]],
    announce: Callable[[str], None],
) -> None:
    """Boot one unit through the real chain and serve it until ``stop``; again after a reboot."""
    from bootloader.chain import boot
    from bootloader.firmware import bridged_handoff, load_shared_firmware, shared_firmware_module
    from bootloader.unit import open_device
    from common.handoff import EXIT_REBOOT

    state_dir = unit.state_dir(fleet_dir)
    while not stop.is_set():
        state.state = "booting"
        try:
            device = open_device(state_dir)
            outcome = await asyncio.to_thread(boot, device, now=int(time.time()))
            entry = load_shared_firmware(outcome.payload)
            fleetview = shared_firmware_module(outcome.payload, "fleetview")
            handoff = bridged_handoff(outcome.payload, outcome.handoff)
            args = entry.parse_args(options.firmware_argv(unit))
        except Exception as exc:  # noqa: BLE001 - a unit that does not boot is reported, the fleet runs on
            state.state, state.error = "failed", f"boot: {_one_line(exc)}"
            state.boot_failures += 1
            announce(_("fleet: {name} ({address}) did not boot: {one_line}").format(name=unit.name, address=unit.address, one_line=_one_line(exc)))
            return
        state.boots += 1
        state.firmware = outcome.firmware.version
        state.slot = outcome.handoff.booted_slot
        del outcome  # the verified bytes stay with the shared loader, once per release
        listening = False

        def on_listening(app: Any, _view: Any = fleetview) -> None:
            nonlocal listening
            listening = True
            state.state, state.error, state.listening_since = "listening", None, time.time()
            views[unit.name] = lambda: _view.snapshot(app)

        try:
            code = await entry.serve(handoff, args, announce=lambda _line: None, stop=stop, on_listening=on_listening)
        except Exception as exc:  # noqa: BLE001 - one unit's failure stays with that unit
            views.pop(unit.name, None)
            if not listening:  # port in use, bad TLS material: it will not get better by itself
                state.state, state.error = "failed", _one_line(exc)
                announce(_("fleet: {name} ({address}) cannot serve: {one_line}").format(name=unit.name, address=unit.address, one_line=_one_line(exc)))
                return
            state.crashes += 1
            state.error = _one_line(exc)
            if state.crashes > MAX_RESTARTS:
                state.state = "failed"
                announce(_("fleet: {name} ({address}) crashed {crashes} times; left down: {error}").format(name=unit.name, address=unit.address, crashes=state.crashes, error=state.error))
                return
            state.state = "restarting"
            announce(_("fleet: {name} ({address}) crashed ({error}); restarting it").format(name=unit.name, address=unit.address, error=state.error))
            await asyncio.sleep(min(2.0**state.crashes, 30.0))
            continue
        views.pop(unit.name, None)
        if code == EXIT_REBOOT:
            state.state = "rebooting"
            continue
        break
    state.state = "stopped"


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _status_doc(states: Sequence[UnitState], views: dict[str, Callable[[], dict[str, Any]]]) -> str:
    for st in states:
        view = views.get(st.name)
        if view is not None:
            try:
                st.device = view()
            except Exception as exc:  # noqa: BLE001 - a status read never stops the fleet
                st.device = {"error": _one_line(exc)}
    return json.dumps({"time": time.time(), "units": [asdict(s) for s in states]}) + "\n"


async def host_units(
    fleet_dir: Path,
    units: Sequence[Unit],
    options: RunOptions,
    status_file: Path,
    *,
    stop: asyncio.Event | None = None,
    announce: Callable[[str], None] = print,
) -> list[UnitState]:
    """Run ``units`` on this event loop until ``stop`` (SIGINT/SIGTERM when not given)."""
    loop = asyncio.get_running_loop()
    own = stop is None
    stop = asyncio.Event() if stop is None else stop
    if own:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    states = [UnitState(name=u.name, address=u.address, serial=u.serial) for u in units]
    views: dict[str, Callable[[], dict[str, Any]]] = {}
    tasks = [
        asyncio.create_task(host_unit(fleet_dir, u, options, stop, st, views, announce))
        for u, st in zip(units, states, strict=True)
    ]

    async def report() -> None:
        while True:
            _write_atomic(status_file, await asyncio.to_thread(_status_doc, states, views))
            await asyncio.sleep(STATUS_EVERY)

    reporter = asyncio.create_task(report())
    try:
        await stop.wait()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        _write_atomic(status_file, _status_doc(states, {}))
    return states


def _worker_main(fleet_dir: str, units: list[Unit], options: RunOptions, status_file: str) -> None:
    """A worker process: its slice of the fleet on one event loop."""
    import logging

    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    os.umask(0o077)

    def announce(line: str) -> None:
        print(line, flush=True)

    asyncio.run(host_units(Path(fleet_dir), units, options, Path(status_file), announce=announce))


def slices(units: Sequence[Unit], workers: int) -> list[list[Unit]]:
    """Round-robin: ``workers`` slices, none empty."""
    count = max(1, min(workers, len(units)))
    return [list(units[i::count]) for i in range(count)]


def read_status(fleet_dir: Path) -> list[dict[str, Any]]:
    """Every unit as the workers last reported it (units not reported: state unknown)."""
    plan = load_plan(fleet_dir)
    reported: dict[str, dict[str, Any]] = {}
    for path in sorted((fleet_dir / RUN_DIR).glob("worker-*.json")):
        try:
            doc = json.loads(path.read_text("utf-8"))
        except (OSError, ValueError):
            continue  # a worker being replaced; its units show as unknown
        for unit in doc.get("units", []):
            reported[unit["name"]] = unit
    rows = []
    for unit in plan.units:
        row = reported.get(unit.name) or {**asdict(unit), "state": "not running", "firmware": None, "device": {}}
        rows.append(row)
    return rows


def summarize(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The fleet summary: versions, update states, unit states, boot failures, logins refused."""
    rows = list(rows)
    versions: Counter[str] = Counter()
    update_states: Counter[str] = Counter()
    states: Counter[str] = Counter()
    boot_failures = logins_refused = crashes = 0
    for row in rows:
        states[row.get("state") or "unknown"] += 1
        if row.get("firmware") and row.get("state") not in ("failed", "not running"):  # what runs now
            versions[row["firmware"]] += 1
        device = row.get("device") or {}
        if device.get("update_state"):
            update_states[device["update_state"]] += 1
        boot_failures += int(row.get("boot_failures") or 0)
        crashes += int(row.get("crashes") or 0)
        logins_refused += int(device.get("logins_refused") or 0)
    return {
        "units": len(rows),
        "states": dict(states),
        "versions": dict(versions),
        "update_states": dict(update_states),
        "boot_failures": boot_failures,
        "crashes": crashes,
        "logins_refused": logins_refused,
    }


def summary_prometheus(summary: dict[str, Any]) -> bytes:
    """The fleet summary in the Prometheus text format (prometheus-client)."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    Gauge("refcam_fleet_units", "Units in the fleet plan", registry=registry).set(summary["units"])
    by_state = Gauge("refcam_fleet_units_by_state", "Units by hosting state", ["state"], registry=registry)
    for name, n in summary["states"].items():
        by_state.labels(state=name).set(n)
    by_version = Gauge("refcam_fleet_firmware_units", "Units by running firmware version", ["version"], registry=registry)
    for name, n in summary["versions"].items():
        by_version.labels(version=name).set(n)
    by_update = Gauge("refcam_fleet_update_state_units", "Units by update client state", ["state"], registry=registry)
    for name, n in summary["update_states"].items():
        by_update.labels(state=name).set(n)
    Gauge("refcam_fleet_boot_failures", "Boots that failed (unit left down)", registry=registry).set(summary["boot_failures"])
    Gauge("refcam_fleet_crashes", "Unit crashes while serving (restarted alone)", registry=registry).set(summary["crashes"])
    Gauge("refcam_fleet_logins_refused", "Logins refused across the fleet (audited)", registry=registry).set(
        summary["logins_refused"]
    )
    return bytes(generate_latest(registry))


def write_summary(fleet_dir: Path) -> dict[str, Any]:
    summary = summarize(read_status(fleet_dir))
    run_dir = fleet_dir / RUN_DIR
    _write_atomic(run_dir / SUMMARY_FILE, json.dumps(summary, indent=1, sort_keys=True) + "\n")
    _write_atomic(run_dir / PROM_FILE, summary_prometheus(summary).decode("utf-8"))
    return summary


def run_fleet(fleet_dir: Path, options: RunOptions, *, announce: Callable[[str], None] = print) -> int:
    """Host the fleet in ``options.workers`` processes until SIGINT/SIGTERM; 0 on a clean stop."""
    plan = load_plan(fleet_dir)
    run_dir = fleet_dir / RUN_DIR
    run_dir.mkdir(mode=0o700, exist_ok=True)
    for stale in run_dir.glob("worker-*.json"):
        stale.unlink()
    parts = slices(plan.units, options.workers)
    ctx = multiprocessing.get_context("spawn")
    procs: list[multiprocessing.process.BaseProcess] = []
    for i, part in enumerate(parts):
        proc: multiprocessing.process.BaseProcess = ctx.Process(
            target=_worker_main,
            args=(str(fleet_dir), part, options, str(run_dir / f"worker-{i}.json")),
            name=f"refcam-fleet-{i}",
        )
        proc.start()
        procs.append(proc)
    announce(
        _("fleet: {len} units in {len2} workers on port {port} ({address} .. {address2})").format(len=len(plan.units), len2=len(procs), port=options.port, address=plan.units[0].address, address2=plan.units[-1].address)
    )
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    all_listening = False
    restarts = [0] * len(procs)
    try:
        while not stopping:
            time.sleep(0.5)
            summary = write_summary(fleet_dir)
            if not all_listening and summary["states"].get("listening", 0) + summary["states"].get("failed", 0) >= len(plan.units):
                all_listening = True
                announce(
                    _("fleet: {get} of {len} units listening after {value:.1f} s").format(get=summary['states'].get('listening', 0), len=len(plan.units), value=time.monotonic() - started)
                )
            for i, proc in enumerate(procs):
                if not proc.is_alive() and not stopping:
                    restarts[i] += 1
                    if restarts[i] > MAX_RESTARTS:
                        continue
                    announce(_("fleet: worker {i} exited ({exitcode}); starting it again").format(i=i, exitcode=proc.exitcode))
                    again: multiprocessing.process.BaseProcess = ctx.Process(target=_worker_main, args=(str(fleet_dir), parts[i], options,
                                                                   str(run_dir / f"worker-{i}.json")), name=proc.name)
                    again.start()
                    procs[i] = again
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
        write_summary(fleet_dir)
    announce(_("fleet: stopped"))
    sys.stdout.flush()
    return 0
