"""``refcam fleet provision|run|status|labels``: many real cameras on one machine.

Examples::

    refcam fleet provision --count 20 --keys K --firmware fw.img --dir F
    refcam fleet run --dir F [--workers 2] [--port 8443] [--update-url https://localhost:9443]
    refcam fleet status --dir F [--json | --metrics]
    refcam fleet labels --dir F --out labels.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from refcam.fleet import (
    CA_FILE,
    FleetError,
    RunOptions,
    check_count,
    choose_port,
    labels_csv,
    load_plan,
    provision_fleet,
    read_status,
    run_fleet,
    summarize,
    summary_prometheus,
)
from refcam.i18n import _


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _workers(value: int | None) -> int:
    workers = _cores() if value is None else value
    if workers < 1:
        raise FleetError(_("--workers {workers}: at least one worker process").format(workers=workers))
    return workers


def cmd_provision(args: argparse.Namespace) -> int:
    check_count(args.count)  # before anything is read or written
    try:
        image = Path(args.firmware).read_bytes()
    except OSError as exc:
        raise FleetError(_("cannot read the firmware image {firmware}: {value}").format(firmware=args.firmware, value=exc.strerror or exc)) from exc
    workers = _workers(args.workers)

    def progress(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            print(_("provisioned {done}/{total}").format(done=done, total=total), flush=True)

    plan = provision_fleet(Path(args.dir), keys_dir=Path(args.keys), firmware_image=image, count=args.count,
                           workers=workers, now=dt.datetime.now(dt.UTC), progress=progress)
    print(
        _("fleet of {len} units (firmware {firmware_version}) in {dir}: {address} .. {address2}; trust {value}").format(len=len(plan.units), firmware_version=plan.firmware_version, dir=args.dir, address=plan.units[0].address, address2=plan.units[-1].address, value=Path(args.dir) / CA_FILE)
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    plan = load_plan(Path(args.dir))
    if args.port is not None and not 1 <= args.port <= 65535:
        raise FleetError(_("--port {port} is not a TCP port (1..65535)").format(port=args.port))
    port = choose_port(args.port, plan.units[0].address, lambda line: print(line, flush=True))
    options = RunOptions(
        workers=_workers(args.workers),
        port=port,
        update_url=args.update_url,
        update_check_interval=args.update_check_interval,
        update_auto_install=args.update_auto_install == "on",
        tls_profile=args.tls_profile,
        vendor_url=args.vendor_url,
    )
    # The firmware parses these options itself, per unit: refuse bad ones once, here, with the
    # same parser (this host's copy of the runtime), before any worker starts.
    from device.main import parse_args as firmware_parse_args

    firmware_parse_args(options.firmware_argv(plan.units[0]))
    return run_fleet(Path(args.dir), options, announce=lambda line: print(line, flush=True))


def _row_text(row: dict[str, Any]) -> str:
    device = row.get("device") or {}
    update = device.get("update_state") or "-"
    rollout = device.get("rollout") or {}
    if rollout.get("staged"):
        halted = " halted" if rollout.get("halted") else ""
        cohort = "in" if rollout.get("in_cohort") else "out"
        update += f" (rollout {rollout.get('release')} {rollout.get('percent'):g}%{halted}, cohort {cohort})"
    error = f"  {row['error']}" if row.get("error") else ""
    return f"{row['address']:<15} {row['serial']:<14} {row.get('firmware') or '-':<10} {row['state']:<12} {update}{error}"


def cmd_status(args: argparse.Namespace) -> int:
    rows = read_status(Path(args.dir))
    summary = summarize(rows)
    if args.json:
        print(json.dumps({"summary": summary, "units": rows}, indent=1, sort_keys=True))
        return 0
    if args.metrics:
        sys.stdout.write(summary_prometheus(summary).decode("utf-8"))
        return 0
    print(f"{'address':<15} {'serial':<14} {'firmware':<10} {'state':<12} update")
    for row in rows:
        print(_row_text(row))
    versions = ", ".join(f"{v}: {n}" for v, n in sorted(summary["versions"].items())) or "-"
    states = ", ".join(f"{s}: {n}" for s, n in sorted(summary["states"].items()))
    print(_("{units} units ({states}); firmware {versions}; boot failures {boot_failures}; logins refused {logins_refused}").format(units=summary['units'], states=states, versions=versions, boot_failures=summary['boot_failures'], logins_refused=summary['logins_refused']))
    return 0


def cmd_labels(args: argparse.Namespace) -> int:
    text = labels_csv(Path(args.dir))
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # initial passwords: owner only
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, out)
    except OSError as exc:
        raise FleetError(_("cannot write the label sheet {out}: {value}").format(out=out, value=exc.strerror or exc)) from exc
    print(_("wrote {value} labels to {out}").format(value=text.count(chr(10)) - 1, out=out))
    return 0


def register(groups: dict[str, Any]) -> None:
    fleet = groups["fleet"]
    p = fleet.add_parser("provision", help=_("provision N real units on loopback addresses 127.0.x.y"))
    p.add_argument("--count", required=True, type=int, help=_("number of units"))
    p.add_argument("--keys", required=True, type=Path, help=_("vendor key directory"))
    p.add_argument("--firmware", required=True, type=Path, help=_("signed factory firmware image"))
    p.add_argument("--dir", required=True, type=Path, help=_("fleet directory (absent or empty)"))
    p.add_argument("--workers", type=int, default=None, help=_("provisioning processes (default: core count)"))
    p.set_defaults(handler=cmd_provision)

    p = fleet.add_parser("run", help=_("boot and serve every unit, many per worker process"))
    p.add_argument("--dir", required=True, type=Path, help=_("fleet directory"))
    p.add_argument("--workers", type=int, default=None, help=_("worker processes (default: core count)"))
    p.add_argument("--port", type=int, default=None,
                   help=_("HTTPS port on every unit's address (default 443, or 8443 when 443 is not bindable)"))
    p.add_argument("--update-url", default=None, help=_("TUF repository https://host:port"))
    p.add_argument("--update-check-interval", type=float, default=None,
                   help=_("seconds between automatic update checks (jittered; 0 = off)"))
    p.add_argument("--update-auto-install", choices=("on", "off"), default="off",
                   help=_("on: a unit installs a release its signed rollout rule admits it to"))
    p.add_argument("--tls-profile", default=None, help=_("Mozilla TLS profile: intermediate or modern"))
    p.add_argument("--vendor-url", default=None, help=_("vendor PSIRT base URL for security.txt"))
    p.set_defaults(handler=cmd_run)

    p = fleet.add_parser("status", help=_("address, serial, firmware and update state of every unit"))
    p.add_argument("--dir", required=True, type=Path, help=_("fleet directory"))
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help=_("the units and the summary as JSON"))
    form.add_argument("--metrics", action="store_true", help=_("the fleet summary as Prometheus text"))
    p.set_defaults(handler=cmd_status)

    p = fleet.add_parser("labels", help=_("write the label sheet (CSV) a lab hands to its client"))
    p.add_argument("--dir", required=True, type=Path, help=_("fleet directory"))
    p.add_argument("--out", required=True, type=Path, help=_("CSV file to write (mode 0600)"))
    p.set_defaults(handler=cmd_labels)
