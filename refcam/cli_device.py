"""``refcam device provision | boot | flash | fuses``: the factory and the bench.

- ``provision`` programs a new simulated camera in a state directory (see
  :mod:`bootloader.provision`) and prints the serial and the label path.
- ``boot`` runs ROM and bootloader (not the firmware runtime) and prints the
  boot log, ending with ``booted slot a, firmware 1.0.0 (security counter 1)``.
- ``flash`` writes raw bytes into a slot with no verification at all: what an
  attacker with physical access (or a trainer) can do. The next boot decides.
- ``fuses`` prints the OTP fuse summary.

Example::

    refcam device provision --state cam1 --keys K --firmware fw-1.0.0.img
    refcam device boot --state cam1
    refcam device flash --state cam1 --slot b tampered.img
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

from bootloader.chain import boot
from bootloader.hardware import FlashGeometry
from bootloader.provision import provision_state_dir
from bootloader.slots import write_partition
from bootloader.unit import open_device
from common.errors import FlashError, HardwareError, ProvisioningError
from refcam.cli_files import read_input
from refcam.i18n import _


def _passphrase(var: str | None) -> bytes | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if value is None:
        raise ProvisioningError(
            _("--passphrase-env names {var}, but that environment variable is not set").format(var=var)
        )
    return value.encode("utf-8")


def cmd_provision(args: argparse.Namespace) -> int:
    geometry = (
        FlashGeometry() if args.slot_size is None else FlashGeometry(slot_size=args.slot_size)
    )
    result = provision_state_dir(
        args.state,
        keys_dir=args.keys,
        firmware_image=read_input(args.firmware, "firmware file"),
        now=dt.datetime.now(dt.UTC),
        serial=args.serial,
        lifecycle=args.lifecycle,
        geometry=geometry,
        passphrase=_passphrase(args.passphrase_env),
    )
    print(_("provisioned {serial} in {state_dir}").format(serial=result.serial, state_dir=result.state_dir))
    print(
        _("firmware {firmware_version} (security counter {security_counter}) in slot a").format(firmware_version=result.firmware_version, security_counter=result.security_counter)
    )
    print(_("label (initial password): {label_path}").format(label_path=result.label_path))
    return 0


def cmd_boot(args: argparse.Namespace) -> int:
    device = open_device(args.state)
    outcome = boot(device, now=int(time.time()))
    if args.json:
        h = outcome.handoff
        doc = {
            "booted_slot": h.booted_slot,
            "trial": h.trial,
            "firmware_version": outcome.firmware.version,
            "security_counter": outcome.firmware.security_counter,
            "slots": [dataclasses.asdict(s) for s in h.slots],
            "measurement_register": h.measurement_register,
            "measurements": [dataclasses.asdict(m) for m in h.measurements],
            "notices": list(h.notices),
            "log": list(outcome.log_lines),
            "summary": outcome.summary,
        }
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
        return 0
    for line in outcome.log_lines:
        print(line)
    print(outcome.summary)
    return 0


def cmd_flash(args: argparse.Namespace) -> int:
    data = read_input(args.file, "image file")
    device = open_device(args.state)
    try:
        write_partition(device.flash, args.slot, data)
    except FlashError as exc:
        raise HardwareError(_("cannot flash slot {slot}: {exc}").format(slot=args.slot, exc=exc)) from exc
    print(_("wrote {len} bytes to slot {slot} (not verified; the next boot decides)").format(len=len(data), slot=args.slot))
    return 0


def cmd_fuses(args: argparse.Namespace) -> int:
    state = open_device(args.state).fuses.read()
    print(_("lifecycle: {lifecycle}").format(lifecycle=state.lifecycle))
    print(_("debug: {value}").format(value='disabled' if state.debug_disabled else 'enabled'))
    for index, (key, revoked) in enumerate(zip(state.rot_keys, state.rot_revoked, strict=True)):
        if key is None:
            print(_("root-of-trust slot {index}: empty").format(index=index))
        else:
            print(_("root-of-trust slot {index}: {hex}{value}").format(index=index, hex=key.hex(), value=' (revoked)' if revoked else ''))
    print(_("firmware counter: {firmware_counter}").format(firmware_counter=state.firmware_counter))
    print(_("bootloader counter: {bootloader_counter}").format(bootloader_counter=state.bootloader_counter))
    print(_("key-manifest counter: {key_manifest_counter}").format(key_manifest_counter=state.key_manifest_counter))
    print(_("unique device secret: {value}").format(value='programmed' if state.uds is not None else 'blank'))
    return 0


def cmd_declaration(args: argparse.Namespace) -> int:
    """Write refcam's own device declaration (``conformance/schemas/declaration.schema.json``)."""
    from conformance.declaration import DECLARATION_TYPE, parse_declaration
    from refcam.cli_device_runtime import read_label

    label = read_label(args.state)
    shared = label["unsafe_flaw"] == "shared-default-password"
    doc = {
        "declaration": DECLARATION_TYPE,
        "product": {"vendor": label["vendor"], "model": label["model"]},
        "interfaces": {"refcam-api": True, "onvif": True, "rtsp": True, "web-ui": True},
        "management": {"interface": "refcam-api", "auth": "bearer", "admin_user": label["username"],
                       "protected_route": "/api/v1/status", "info_route": "/api/v1/info"},
        "roles": ["admin", "operator", "viewer"],
        "update": {"mechanisms": ["upload", "tuf-repository"], "anti_rollback": True,
                   "repository_url": args.vendor_url},
        "attestation": True,
        # the support end is in the signed firmware and published by the unit (/api/v1/info)
        "support_period": {"end": None},
        "password_policy": {
            "initial": "shared-default" if shared else "unique-per-unit",
            "name": "nist-800-63b",
            "min_length": 15,
            "forced_change": not shared,
        },
        "vendor_resources": {
            "base_url": args.vendor_url,
            "security_txt": "/.well-known/security.txt",
            "advisories": f"{args.vendor_url}/.well-known/csaf/provider-metadata.json" if args.vendor_url else None,
            "sla": f"{args.vendor_url}/api/v1/sla" if args.vendor_url else None,
            "tuf_repository": args.vendor_url,
        },
    }
    text = json.dumps(doc, indent=2) + "\n"
    parse_declaration(text, source="refcam's own declaration")  # it must follow its own schema
    if args.output is None:
        print(text, end="")
    else:
        args.output.write_text(text, encoding="utf-8")
        print(_("wrote the device declaration to {output}").format(output=args.output))
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(_("{text!r} is not an integer").format(text=text)) from exc
    if value <= 0:
        raise argparse.ArgumentTypeError(_("{value} must be positive").format(value=value))
    return value


def register(groups: dict[str, Any]) -> None:
    device = groups["device"]

    p = device.add_parser("provision", help=_("program a new simulated camera in a state directory"))
    p.add_argument(
        "--state", type=Path, required=True, help=_("device state directory (new or empty)")
    )
    p.add_argument(
        "--keys", type=Path, required=True, help=_("vendor key directory (refcam keys init)")
    )
    p.add_argument("--firmware", type=Path, required=True, help=_("signed firmware image for slot a"))
    p.add_argument("--serial", help=_("serial number (default: RC + 10 random base32 characters)"))
    p.add_argument("--lifecycle", choices=("secured", "development"), default="secured")
    p.add_argument("--slot-size", type=_positive_int, help=_("bytes per slot (multiple of 4096)"))
    p.add_argument("--passphrase-env", metavar="VAR", help=_("env var holding the key passphrase"))
    p.set_defaults(handler=cmd_provision)

    p = device.add_parser("boot", help=_("run ROM and bootloader, print the boot log"))
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--json", action="store_true", help=_("print the outcome as a JSON object"))
    p.set_defaults(handler=cmd_boot)

    p = device.add_parser("flash", help=_("write raw bytes into a slot (physical access, no checks)"))
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--slot", choices=("a", "b"), required=True)
    p.add_argument("file", type=Path)
    p.set_defaults(handler=cmd_flash)

    p = device.add_parser("fuses", help=_("print the OTP fuse summary"))
    p.add_argument("--state", type=Path, required=True)
    p.set_defaults(handler=cmd_fuses)

    p = device.add_parser("declaration", help=_("write this unit's device declaration for the probe (JSON)"))
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--vendor-url", help=_("https://HOST:PORT of the vendor server the unit updates from"))
    p.add_argument("-o", "--output", type=Path, help=_("file to write (default: standard output)"))
    p.set_defaults(handler=cmd_declaration)
