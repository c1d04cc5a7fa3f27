"""``refcam attest nonce | evidence | verify | reference``: remote attestation at the bench.

- ``nonce`` prints a fresh random nonce (hex) for one attestation round.
- ``evidence`` boots a simulated camera (ROM and bootloader, as ``refcam
  device boot`` does) and writes the evidence its attester signs for a nonce.
- ``verify`` checks evidence against the manufacturer root, the nonce and the
  vendor's reference values, and prints one verdict per measured stage; on
  failure it prints one line and exits 1. ``--expect-serial`` and/or
  ``--expect-cert`` (the unit's TLS chain as the client saw it, or its
  DeviceID certificate) bind the evidence to the unit you meant to attest:
  without them genuine evidence of any unit answering the nonce verifies.
- ``reference`` writes the reference values (``refcam-reference-values/1``)
  for a bootloader image and the released firmware images.

Example::

    refcam attest reference --bootloader bl.img --firmware fw-1.0.0.img -o values.json
    NONCE=$(refcam attest nonce)
    refcam attest evidence --state cam1 --nonce $NONCE -o evidence.jws
    refcam attest verify evidence.jws --ca K/manufacturer/root-ca.pem \\
        --reference values.json --nonce $NONCE --expect-serial RC1-0001
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509

from bootloader.attestation import MAX_NONCE, MIN_NONCE, check_nonce, verify_evidence
from bootloader.measured import reference_values_from_images
from common.errors import AttestationError
from refcam.cli_files import read_input, write_output
from refcam.i18n import _

NONCE_SIZE = 32  # bytes






def _nonce(text: str) -> bytes:
    try:
        nonce = bytes.fromhex(text)
    except ValueError as e:
        raise AttestationError(_("--nonce {text!r} is not hex").format(text=text)) from e
    check_nonce(nonce)
    return nonce


def _root(path: Path) -> x509.Certificate:
    data = read_input(path, "CA certificate")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise AttestationError(_("CA certificate {path} is not a PEM certificate").format(path=path)) from e
    if len(certs) != 1:
        raise AttestationError(_("CA file {path} holds {len} certificates, expected 1").format(path=path, len=len(certs)))
    return certs[0]


def _certificates(path: Path) -> list[x509.Certificate]:
    data = read_input(path, "expected certificate")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as e:
        raise AttestationError(_("expected certificate {path} is not PEM certificates").format(path=path)) from e
    return certs


def _reference(path: Path) -> dict[str, Any]:
    data = read_input(path, "reference values")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise AttestationError(_("reference values {path} are not UTF-8 JSON").format(path=path)) from e
    if not isinstance(document, dict):
        raise AttestationError(_("reference values {path} are not a JSON object").format(path=path))
    return document


def cmd_nonce(args: argparse.Namespace) -> int:
    print(secrets.token_hex(args.bytes))
    return 0


def cmd_evidence(args: argparse.Namespace) -> int:
    from bootloader.chain import boot
    from bootloader.unit import open_device

    nonce = _nonce(args.nonce)
    now = int(time.time())
    outcome = boot(open_device(args.state), now=now)
    evidence = outcome.handoff.attester.evidence(nonce, now=now)
    if args.output is None:
        sys.stdout.write(evidence.decode("ascii") + "\n")
    else:
        write_output(args.output, evidence + b"\n")
        print(_("wrote evidence from {serial} to {output}").format(serial=outcome.handoff.identity.serial, output=args.output))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    evidence = read_input(args.evidence, "evidence file")
    root = _root(args.ca)
    references = _reference(args.reference)
    now = int(time.time()) if args.now is None else args.now
    result = verify_evidence(
        evidence,
        root_cert=root,
        nonce=_nonce(args.nonce),
        reference_values=references,
        now=now,
        max_age=args.max_age,
        expect_serial=args.expect_serial,
        expect_certificate=_certificates(args.expect_cert) if args.expect_cert else None,
    )
    print(
        _("evidence from {serial} verified: chain to {rfc4514_string}, fresh nonce, register {value}..").format(serial=result.serial, rfc4514_string=root.subject.rfc4514_string(), value=result.register[:16])
    )
    for v in result.verdicts:
        print(
            _("  {stage:<12} {version:<12} counter {security_counter:<4} {value}..  {verdict}").format(stage=v.stage, version=v.version, security_counter=v.security_counter, value=v.digest[:16], verdict=v.verdict)
        )
    return 0


def cmd_reference(args: argparse.Namespace) -> int:
    bootloader = read_input(args.bootloader, "bootloader image")
    firmware = [read_input(path, "firmware image") for path in args.firmware]
    document = reference_values_from_images(bootloader, firmware)
    write_output(args.output, (json.dumps(document, indent=2) + "\n").encode("utf-8"))
    stages = document["stages"]
    print(
        _("wrote reference values for {len} bootloader and {len2} firmware image(s) to {output}").format(len=len(stages['bootloader']), len2=len(stages['firmware']), output=args.output)
    )
    return 0


def _nonce_bytes(text: str) -> int:
    value = int(text)
    if not MIN_NONCE <= value <= MAX_NONCE:
        raise argparse.ArgumentTypeError(_("must be {MIN_NONCE} to {MAX_NONCE}").format(MIN_NONCE=MIN_NONCE, MAX_NONCE=MAX_NONCE))
    return value


def register(groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    attest = groups["attest"]

    p = attest.add_parser("nonce", help=_("print a fresh random nonce (hex)"))
    p.add_argument("--bytes", type=_nonce_bytes, default=NONCE_SIZE, help=_("nonce size in bytes"))
    p.set_defaults(handler=cmd_nonce)

    p = attest.add_parser("evidence", help=_("boot a simulated camera and write its evidence"))
    p.add_argument("--state", type=Path, required=True, help=_("device state directory"))
    p.add_argument("--nonce", required=True, help=_("the verifier's nonce (hex, 16..64 bytes)"))
    p.add_argument("-o", "--output", type=Path, help=_("evidence file (default: stdout)"))
    p.set_defaults(handler=cmd_evidence)

    p = attest.add_parser("verify", help=_("verify attestation evidence"))
    p.add_argument("evidence", type=Path, help=_("evidence file (JWS compact serialization)"))
    p.add_argument("--ca", type=Path, required=True, help=_("manufacturer root CA (PEM)"))
    p.add_argument("--reference", type=Path, required=True, help=_("reference values (JSON)"))
    p.add_argument("--nonce", required=True, help=_("the nonce sent to the device (hex)"))
    p.add_argument("--max-age", type=int, default=300, help=_("maximum evidence age (seconds)"))
    p.add_argument("--expect-serial", metavar="SERIAL", help=_("the serial of the unit you asked"))
    p.add_argument(
        "--expect-cert",
        type=Path,
        metavar="PEM",
        help=_("a certificate of the unit you asked: its TLS chain (leaf first) or DeviceID certificate"),
    )
    p.add_argument(
        "--now", type=int, help=_("verify as of this time (seconds since the epoch; default: now)")
    )
    p.set_defaults(handler=cmd_verify)

    p = attest.add_parser("reference", help=_("write reference values for released images"))
    p.add_argument("--bootloader", type=Path, required=True, help=_("signed bootloader image"))
    p.add_argument(
        "--firmware",
        type=Path,
        action="append",
        required=True,
        help=_("signed firmware image (repeat for every released version)"),
    )
    p.add_argument("-o", "--output", type=Path, required=True, help=_("output file (JSON)"))
    p.set_defaults(handler=cmd_reference)
