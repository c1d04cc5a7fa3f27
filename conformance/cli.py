"""``refcam probe``: run the conformance catalogue against a camera over the network."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from .adapters import ADAPTERS
from .declaration import parse_declaration
from .errors import ProbeError, UsageError
from .i18n import LANGUAGES, check_language, check_zone, msg, translate
from .probe import ProbeOptions, run_probe
from .report import Speech, render_table, write_reports


def _credentials(value: str) -> tuple[str, str]:
    user, sep, password = value.partition(":")
    if not sep or not user:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD")
    return user, password


def _ports(value: str) -> tuple[int, ...]:
    try:
        ports = tuple(int(p) for p in value.split(",") if p)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected a comma-separated list of ports") from exc
    if not all(0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError("ports must be 1..65535")
    return ports


def register(groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    p = groups[""].add_parser("probe", help="black-box conformance probe against a camera")
    p.add_argument("url", help="https://HOST:PORT of the camera's management interface")
    p.add_argument("--ca", help="PEM root(s) the camera's TLS chain must validate to (required for https)")
    p.add_argument("--declaration", type=Path, metavar="FILE",
                   help="the supplier's device declaration (JSON, conformance/schemas/declaration.schema.json)")
    creds = p.add_mutually_exclusive_group()
    creds.add_argument("--label-password", help="the unit's initial (label) password; admin user 'admin'")
    creds.add_argument("--admin", type=_credentials, metavar="USER:PASS", help="an admin account")
    p.add_argument("--admin-password-env", metavar="VAR", help="read the admin password from VAR (user 'admin')")
    p.add_argument("--vendor", help="https://HOST:PORT of the vendor server (security.txt, CSAF, SLA)")
    p.add_argument("--vendor-ca", help="PEM root for the vendor server (default: --ca)")
    p.add_argument("--peer", help="a second unit, to compare TLS keys")
    p.add_argument("--reference", type=Path, help="the vendor's reference values for attestation")
    p.add_argument("--image", type=Path, help="a vendor-signed image of this model, for the bit-flip case")
    p.add_argument("--older-image", type=Path, help="a validly signed older image for the anti-rollback case")
    p.add_argument("--signing-key", type=Path,
                   help="the vendor's Ed25519 firmware signing key (PEM): re-signs --older-image with the running "
                   "security counter and --image with a lower one (UPD-08)")
    p.add_argument("--plaintext-ports", type=_ports, default=(80, 8080, 8000), help="ports to check for plaintext HTTP")
    p.add_argument("--allow-destructive", action="store_true", help="run cases that may change the device")
    p.add_argument("--rtsps-port", type=int, default=322, help="the camera's RTSPS port (default 322)")
    p.add_argument("--rtsp-plaintext-ports", type=_ports, default=(), help="more ports to check for plaintext RTSP")
    p.add_argument("--rtsp-path", action="append", default=[], help="an RTSP stream path (repeatable; first: H.264)")
    p.add_argument("--adapter", choices=ADAPTERS, default=None,
                   help="how the probe logs in, without a declaration: refcam-api (default) or onvif "
                   "(WS-Security UsernameToken on /onvif/device_service)")
    p.add_argument("--only", action="append", default=[], metavar="CASE", help="run only this case (repeatable)")
    p.add_argument("--report", required=True, type=Path, help="directory for report.json, junit.xml, report.html")
    p.add_argument("--lang", default="en", metavar="|".join(LANGUAGES),
                   help="language of the terminal table and the HTML, JSON and JUnit reports (default en)")
    p.add_argument("--tz", default="UTC", metavar="ZONE",
                   help="IANA time zone the reports show times in, e.g. Asia/Seoul (default UTC; stored in UTC)")
    p.set_defaults(handler=_probe)


def _probe(args: argparse.Namespace) -> int:
    speech = Speech(check_language(args.lang), check_zone(args.tz))  # usage errors before any request
    admin = args.admin
    if args.admin_password_env:
        if args.admin_password_env not in os.environ:
            raise ProbeError(f"environment variable {args.admin_password_env} is not set")
        admin = ("admin", os.environ[args.admin_password_env])
    declaration = None
    if args.declaration is not None:
        try:
            text = args.declaration.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"--declaration {args.declaration}: cannot read it ({exc})") from exc
        declaration = parse_declaration(text, source=f"--declaration {args.declaration}")
    options = ProbeOptions(
        target=args.url,
        ca_file=args.ca,
        label_password=args.label_password,
        admin=admin,
        vendor=args.vendor,
        vendor_ca_file=args.vendor_ca,
        peer=args.peer,
        reference_values=args.reference,
        image=args.image,
        older_image=args.older_image,
        signing_key=args.signing_key,
        plaintext_ports=args.plaintext_ports,
        allow_destructive=args.allow_destructive,
        only=tuple(args.only),
        rtsps_port=args.rtsps_port,
        rtsp_plaintext_ports=args.rtsp_plaintext_ports,
        rtsp_paths=tuple(args.rtsp_path) or ("/h264", "/mjpeg"),
        declaration=declaration,
        adapter=args.adapter,
    )
    def keep_admin_password(password: str) -> None:
        args.report.mkdir(parents=True, exist_ok=True)
        path = args.report / "admin-password.txt"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")
        print(f"probe: completed the first login; the new admin password is in {path}")

    options.on_new_admin_password = keep_admin_password
    # The CLI that mounts this command may hand in a progress factory
    # (refcam.progress.Progress: a bar on a terminal, plain lines in a log).
    make_progress = getattr(args, "progress", None)
    progress: Any = None

    def on_case(done: int, total: int, case_id: str) -> None:
        nonlocal progress
        if make_progress is None:
            return
        if progress is None:
            progress = make_progress("probe", total=total, unit="cases")
        progress.update(done)

    try:
        report = run_probe(options, on_case=on_case)
    finally:
        if progress is not None:
            progress.finish()
    paths = write_reports(report, args.report, speech)
    print(render_table(report, speech))
    print("\n" + translate(msg(
        "reports: {html} (HTML), {json} (JSON), {junit} (JUnit); "
        "evidence bundle: {har} (HAR 1.2), {manifest} (SHA-256 manifest)",
        html=paths["html"], json=paths["json"], junit=paths["junit"], har=paths["har"], manifest=paths["manifest"],
    ), speech.language))
    return 1 if report.failed else 0
