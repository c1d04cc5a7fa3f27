"""``refcam device run|ca|label|factory-reset|audit verify|renew-cert``: operate a provisioned camera.

``device run`` powers the camera on through the whole chain: the ROM and
bootloader verify a slot (``bootloader.chain.boot``), and the firmware runtime
is started from the *verified* payload (``bootloader.firmware.start_firmware``),
which serves the management API over TLS only. When the firmware asks for a
reboot (``EXIT_REBOOT``, after an update) the chain runs again.

Examples::

    refcam device run --state S --port 8443 [--tls-profile modern] [--redirect-port 8080]
    refcam device ca --state S > root.pem        # the manufacturer root to trust
    refcam device label --state S                 # serial, model, initial password
    refcam device factory-reset --state S         # users, sessions, settings wiped
    refcam device audit verify --state S          # the audit log's keyed chain and anchor
    refcam device renew-cert --state S --keys K   # new TLS leaf for the same key
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from common.errors import RefcamError
from refcam.i18n import _

IDENTITY = Path("data") / "identity"
RUNTIME = Path("data") / "runtime"


class DeviceRuntimeError(RefcamError):
    """A device runtime command cannot be done as asked."""


def _state(args: argparse.Namespace) -> Path:
    state = Path(args.state)
    if not (state / IDENTITY).is_dir():
        raise DeviceRuntimeError(
            _("{state} is not a provisioned device state directory (no {IDENTITY}); run 'refcam device provision' first").format(state=state, IDENTITY=IDENTITY)
        )
    return state


def _print_file(path: Path, what: str) -> int:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeviceRuntimeError(_("cannot read the {what} {path}: {exc}").format(what=what, path=path, exc=exc)) from exc
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


# Options the firmware's main.run parses; listed here for --help and passed through as argv.
RUNTIME_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--host", {"help": "address to listen on (default 127.0.0.1)"}),
    ("--port", {"help": "HTTPS port (default 8443; 0 picks a free one)"}),
    ("--tls-profile", {"help": "Mozilla TLS profile: intermediate (default) or modern"}),
    ("--password-policy", {"help": "nist-800-63b (default) or kr-terminal"}),
    ("--redirect-port", {"help": "also listen for plain HTTP here, answering only 308 to HTTPS"}),
    ("--stream-source", {"help": "synthetic:WxH@FPS (default synthetic:640x360@15), file:P, "
                                 "folder:D, device:N or none (alias --source)"}),
    ("--stream-mask", {"action": "append", "metavar": "X,Y,W,H[:black|:pixelate[=N]]",
                       "help": "privacy mask, applied before encoding (repeatable)"}),
    ("--stream-signing", {"help": "stream manifest signatures: ed25519 (default) or ecdsa-p256-sha256"}),
    ("--stream-frame-hash", {"help": "per-frame digest in the manifests: sha256 (default) or blake3"}),
    ("--stream-jpeg-quality", {"help": "JPEG quality 1..100 (default 80)"}),
    ("--stream-segment-frames", {"help": "frames per signed segment (default 30)"}),
    ("--update-url", {"help": "TUF repository https://host:port (enables the update client)"}),
    ("--update-check-interval", {"help": "seconds between automatic update checks; 0 = off"}),
    ("--update-auto-install", {"choices": ("on", "off"),
                               "help": "on: a check that finds a release this unit is admitted to installs it"}),
    ("--vendor-url", {"help": "vendor PSIRT base URL, published in /.well-known/security.txt"}),
    ("--flaw", {"action": "append", "metavar": "NAME",
                "help": "UNSAFE: switch on a flaw profile (repeatable; loopback only)"}),
    ("--rtsp-port", {"help": "RTSPS port, TLS only (default 322; -1 turns RTSP off)"}),
    ("--rtsp-digest", {"help": "RTSP Digest: sha256 (default) or sha256+md5 (compatibility: FFmpeg)"}),
    ("--rtsp-max-sessions", {"help": "RTSP sessions in total (default 32; 503 beyond)"}),
    ("--rtsp-max-sessions-per-client", {"help": "RTSP sessions per client address (default 4; 453 beyond)"}),
    ("--rtsp-session-timeout", {"help": "seconds an RTSP session lives without a request or RTCP (default 60)"}),
)


def runtime_argv(args: argparse.Namespace) -> list[str]:
    argv: list[str] = []
    for flag, _help in RUNTIME_OPTIONS:
        value = getattr(args, flag[2:].replace("-", "_"))
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                argv += [flag, str(item)]
    return argv


def cmd_run(args: argparse.Namespace) -> int:
    from bootloader.chain import boot
    from bootloader.firmware import start_firmware, unload_firmware
    from bootloader.unit import open_device
    from common.flaws import UnsafeFlaws
    from common.handoff import EXIT_REBOOT

    os.umask(0o077)  # whatever the firmware creates (databases, downloads) is the owner's only
    state = _state(args)
    # The bootloader's own flaw is known before the firmware runs; the loopback rule first.
    flaws = UnsafeFlaws.parse(args.flaw or [], host=args.host or "127.0.0.1")
    hash_only = "boot-skips-signature" in flaws
    if hash_only:
        print(_("bootloader: UNSAFE flaw boot-skips-signature: slot signatures are NOT checked"), flush=True)
    while True:
        device = open_device(state)
        outcome = boot(device, now=int(time.time()), unsafe_hash_only=hash_only)
        for line in outcome.log_lines:
            print(line, flush=True)
        print(outcome.summary, flush=True)
        try:
            code = start_firmware(outcome.payload, outcome.handoff, runtime_argv(args))
        finally:
            unload_firmware()
        if code != EXIT_REBOOT:
            return code
        print(_("firmware asked for a reboot; booting the chain again"), flush=True)


def cmd_ca(args: argparse.Namespace) -> int:
    return _print_file(_state(args) / IDENTITY / "manufacturer-root.pem", "manufacturer root")


def read_label(state: Path) -> dict[str, Any]:
    """The label as fields, with the password that works on this unit now.

    A unit that ran with the ``shared-default-password`` flaw answers admin/admin
    (``device.credentials``): its label says so, as the flawed product's would.
    """
    from device.credentials import UNSAFE_SHARED_PASSWORD, admin_answers_shared_default

    path = state / "label.txt"
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DeviceRuntimeError(_("cannot read the device label {path}: {exc}").format(path=path, exc=exc)) from exc
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    if not lines or "serial" not in fields or "initial password" not in fields:
        raise DeviceRuntimeError(_("{path} is not a device label (no serial or initial password)").format(path=path))
    vendor, _sep, model = lines[0].partition(" ")
    label: dict[str, Any] = {
        "vendor": vendor,
        "model": model,
        "serial": fields["serial"],
        "username": "admin",
        "initial_password": fields["initial password"],
        "must_change": True,
        "unsafe_flaw": None,
    }
    if admin_answers_shared_default(state / RUNTIME / "users.sqlite3"):
        label.update(
            initial_password=UNSAFE_SHARED_PASSWORD,
            must_change=False,
            unsafe_flaw="shared-default-password",
        )
    return label


def cmd_label(args: argparse.Namespace) -> int:
    label = read_label(_state(args))
    if args.json:
        print(json.dumps(label, indent=2, sort_keys=True))
        return 0
    print(f"{label['vendor']} {label['model']}")
    print(_("serial: {serial}").format(serial=label['serial']))
    print(_("user name: {username}").format(username=label['username']))
    print(_("initial password: {initial_password}").format(initial_password=label['initial_password']))
    if label["unsafe_flaw"]:
        print(_("UNSAFE ({unsafe_flaw}): every unit answers admin/admin; no change is forced").format(unsafe_flaw=label['unsafe_flaw']))
    else:
        print(_("change at first login"))
    return 0


def cmd_factory_reset(args: argparse.Namespace) -> int:
    """Wipe firmware-owned state: the label password and the forced change come back."""
    state = _state(args)
    runtime = state / RUNTIME
    if runtime.is_symlink():
        raise DeviceRuntimeError(_("{runtime} is a symbolic link; refusing to follow it").format(runtime=runtime))
    if runtime.exists():
        shutil.rmtree(runtime)
    # Re-anchor the audit log: the entries up to the secure head were discarded on purpose.
    # After the wipe, so a cut in between is a (safe) false alarm, never a hidden gap.
    from bootloader.hardware import SecureCounters
    from bootloader.unit import RPMB_FILE

    counters = SecureCounters.open_file(state / RPMB_FILE)
    head = counters.read("audit_head")
    counters.advance("audit_base", head)
    print(_("factory reset: {runtime} wiped; log in with the label password and change it").format(runtime=runtime))
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Verify the audit log at rest with the device key and the secure counters."""
    from bootloader import dice
    from bootloader.unit import open_device
    from device.audit import AuditLog, MemoryAuditAnchor
    from device.errors import AuditChainError

    state = _state(args)
    device = open_device(state)
    uds = device.fuses.read().uds
    if uds is None:
        raise DeviceRuntimeError(_("{state} has no UDS fused: it was never provisioned").format(state=state))
    base = device.counters.read("audit_base")
    head = device.counters.read("audit_head")
    path = state / RUNTIME / "audit.sqlite3"
    if not path.is_file():
        if head > base:
            raise DeviceRuntimeError(
                _("audit log {path} is missing, but the secure counter says it holds entries {value}..{head}").format(path=path, value=base + 1, head=head)
            )
        print(_("audit log: empty (no entries since seq {base})").format(base=base))
        return 0
    log = AuditLog.open(path, key=dice.derive_sealing_key(uds, "audit-log"), anchor=MemoryAuditAnchor(base, head))
    try:
        count = log.verify_chain()
        seq, _digest = log.head()
    except AuditChainError as exc:
        raise DeviceRuntimeError(_("audit log {path} is broken: {exc}").format(path=path, exc=exc)) from exc
    finally:
        log.close()
    print(_("audit log verified: {count} entries up to seq {seq}, secure head {head}").format(count=count, seq=seq, head=head))
    return 0


def _passphrase(var: str | None) -> bytes | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise DeviceRuntimeError(_("--passphrase-env names {var}, but that variable is not set or empty").format(var=var))
    return value.encode("utf-8")


def cmd_renew_cert(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.asymmetric import ec

    from bootloader.keys import load_certificate, load_private_key, open_keys
    from bootloader.pki import renew_tls_certificate

    state = _state(args)
    keys = open_keys(Path(args.keys))
    ca_key = load_private_key(keys.device_ca_key, _passphrase(args.passphrase_env))
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise DeviceRuntimeError(_("{device_ca_key} is not an ECDSA device CA key").format(device_ca_key=keys.device_ca_key))
    leaf = renew_tls_certificate(
        state / IDENTITY,
        device_ca_key=ca_key,
        device_ca_cert=load_certificate(keys.device_ca),
        now=dt.datetime.now(dt.UTC),
        days=args.days,
    )
    print(
        _("renewed TLS certificate: serial {serial_number:x}, valid until {isoformat}; restart 'refcam device run' to serve it").format(serial_number=leaf.serial_number, isoformat=leaf.not_valid_after_utc.isoformat())
    )
    return 0


def register(groups: dict[str, Any]) -> None:
    device = groups["device"]
    p = device.add_parser(
        "run",
        help=_("boot through the chain and serve the management API over TLS"),
        description=_("Boot the camera and start its firmware; the options other than --state are passed to the firmware, which parses them itself."),
    )
    p.add_argument("--state", required=True, type=Path, help=_("device state directory"))
    for flag, kwargs in RUNTIME_OPTIONS:
        aliases = ("--source",) if flag == "--stream-source" else ()
        p.add_argument(flag, *aliases, default=None, **kwargs)
    p.set_defaults(handler=cmd_run)

    p = device.add_parser("ca", help=_("print the manufacturer root certificate (PEM) to trust"))
    p.add_argument("--state", required=True, type=Path)
    p.set_defaults(handler=cmd_ca)

    p = device.add_parser("label", help=_("print the device label (serial, model, initial password)"))
    p.add_argument("--state", required=True, type=Path)
    p.add_argument("--json", action="store_true", help=_("print the label as a JSON object"))
    p.set_defaults(handler=cmd_label)

    p = device.add_parser("factory-reset", help=_("wipe users, sessions and settings"))
    p.add_argument("--state", required=True, type=Path)
    p.set_defaults(handler=cmd_factory_reset)

    p = device.add_parser("audit", help=_("check the audit log at rest"))
    audit = p.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    p = audit.add_parser("verify", help=_("verify the keyed chain against the secure counters"))
    p.add_argument("--state", required=True, type=Path, help=_("device state directory"))
    p.set_defaults(handler=cmd_audit_verify)

    p = device.add_parser("renew-cert", help=_("issue a new TLS leaf for the device's key"))
    p.add_argument("--state", required=True, type=Path)
    p.add_argument("--keys", required=True, type=Path, help=_("vendor key directory (device CA)"))
    p.add_argument("--days", type=int, default=365, help=_("validity in days (at most 366)"))
    p.add_argument("--passphrase-env", metavar="VAR", help=_("the device CA key's passphrase is in $VAR"))
    p.set_defaults(handler=cmd_renew_cert)
