"""``refcam keys ...`` and ``refcam firmware ...``: key directories and signed images.

Commands::

    refcam keys init --dir K [--passphrase-env VAR]
    refcam firmware build --keys K --version 1.2.0 --security-counter 3 -o fw.img
    refcam firmware verify fw.img --keys K [--hardware-id ID]
    refcam firmware inspect fw.img
    refcam firmware sign-bootloader --keys K --version 1.0.0 --security-counter 1 -o bl.img

Handlers are thin: they read files and the environment, call the pure cores
(:mod:`bootloader.keys`, :mod:`common.image`, :mod:`bootloader.build`)
and print. Errors are RefcamError subclasses, which ``refcam.cli`` prints as
one line with exit status 1. Private key material is never printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from bootloader.build import build_bootloader_image, build_firmware_image
from bootloader.firmware import FirmwarePayload, build_payload, check_manifest_inputs
from bootloader.keys import (
    KeySet,
    init_keys,
    load_public_key,
    open_keys,
    rotate_signing_key,
    spki_sha256,
)
from common.errors import BootError, BootloaderError, KeyStoreError
from common.image import TLV, TLV_NAMES, SignedImage, iter_tlvs
from common.keymanifest import KeyManifest
from common.verify import (
    DEFAULT_HARDWARE_ID,
    TrustState,
    verify_bootloader_image,
    verify_firmware_image,
)
from refcam.cli_files import read_input, write_output
from refcam.i18n import _
from update_server.sbom import build_sbom

DEFAULT_MODEL = "RC-1080"
SBOM_PAYLOAD_NAME = "device/sbom.cdx.json"  # served by the device at GET /api/v1/sbom
SUPPORT_PERIOD = dt.timedelta(days=5 * 365 + 1)  # default published support period


def _passphrase(args: argparse.Namespace) -> bytes | None:
    name = getattr(args, "passphrase_env", None)
    if name is None:
        return None
    value = os.environ.get(name)
    if value is None:
        raise KeyStoreError(_("environment variable {name} (--passphrase-env) is not set").format(name=name))
    if not value:
        raise KeyStoreError(_("environment variable {name} (--passphrase-env) is empty").format(name=name))
    return value.encode()






# --- keys -------------------------------------------------------------------


def _cmd_keys_init(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    keys = init_keys(directory, now=dt.datetime.now(dt.UTC), passphrase=_passphrase(args))
    inventory = json.loads(keys.inventory.read_text())
    if inventory["encrypted"]:
        print(_("created key set in {directory} (encrypted)").format(directory=directory))
    else:
        print(_("created key set in {directory}").format(directory=directory))
    for name, entry in sorted(inventory["keys"].items()):
        print(_("  {name:<24} {algorithm:<16} spki-sha256 {spki_sha256}").format(name=name, algorithm=entry['algorithm'], spki_sha256=entry['spki_sha256']))
        print(f"  {'':<24} {entry['private']} (0600), {entry['public']}")
    for name, entry in sorted(inventory["certificates"].items()):
        print(_("  {name:<24} {subject}, until {value}").format(name=name, subject=entry['subject'], value=entry['not_valid_after'][:10]))
        print(f"  {'':<24} {entry['certificate']}, {entry['private']} (0600)")
    print(_("  key-manifest             counter {counter}, {path}").format(counter=inventory['key_manifest']['counter'], path=inventory['key_manifest']['path']))  # fmt: skip
    return 0


def _cmd_keys_rotate(args: argparse.Namespace) -> int:
    keys = open_keys(Path(args.dir))
    result = rotate_signing_key(keys, passphrase=_passphrase(args), now=dt.datetime.now(dt.UTC))
    print(
        _("new firmware-signing key {hex}; key manifest counter {old_counter} -> {new_counter}; previous key kept as {name}").format(hex=result.new_key_hash.hex(), old_counter=result.old_counter, new_counter=result.new_counter, name=result.archived_key.name)
    )
    print(
        _("burn the key-manifest counter to {new_counter} on devices to revoke {hex}").format(new_counter=result.new_counter, hex=result.old_key_hash.hex())
    )
    return 0


# --- firmware ---------------------------------------------------------------


def _cmd_build(args: argparse.Namespace) -> int:
    keys = open_keys(Path(args.keys))
    build_time = int(args.build_time) if args.build_time is not None else int(time.time())
    support_end = (
        args.support_end
        or (dt.datetime.fromtimestamp(build_time, dt.UTC) + SUPPORT_PERIOD).date().isoformat()
    )
    tuf_root = read_input(Path(args.tuf_root), "TUF root") if args.tuf_root else None
    tls_path = Path(args.vendor_tls_root) if args.vendor_tls_root else keys.vendor_root_ca
    vendor_tls_root = read_input(tls_path, "vendor TLS root")
    check_manifest_inputs(support_end=support_end, tuf_root=tuf_root, vendor_tls_root=vendor_tls_root)
    source_dir = Path(args.source) if args.source else None
    if source_dir is not None and not (source_dir / "main.py").is_file():
        raise BootloaderError(_("--source {source_dir} is not a firmware package directory (no main.py)").format(source_dir=source_dir))
    fields: dict[str, Any] = dict(
        version=args.version,
        hardware_id=args.hardware_id,
        model=args.model,
        build_time=build_time,
        support_end=support_end,
        tuf_root=tuf_root,
        vendor_tls_root=vendor_tls_root,
        source_dir=source_dir,
    )
    # The SBOM describes the payload's files; it then travels inside the payload
    # (so the device can serve it) and beside the image (to publish as a TUF target).
    sbom = build_sbom(
        build_payload(**fields), version=args.version, hardware_id=args.hardware_id, model=args.model
    )
    payload = build_payload(**fields, extra_files={SBOM_PAYLOAD_NAME: sbom.encode()})
    image = build_firmware_image(
        keys=keys,
        payload=payload,
        version=args.version,
        security_counter=args.security_counter,
        hardware_id=args.hardware_id,
        algorithm=args.algorithm,
        passphrase=_passphrase(args),
        build_time=build_time,
    )
    out = Path(args.output)
    write_output(out, image)
    parsed = SignedImage.parse(image)
    # The SBOM published beside the image names the image digest the bootloader measures
    # (the packed copy cannot hold the digest of the image that contains it).
    published = build_sbom(
        payload, version=args.version, hardware_id=args.hardware_id, model=args.model,
        image_digest=parsed.image_hash.hex(),
    )  # fmt: skip
    sbom_out = out.with_suffix(".cdx.json")
    write_output(sbom_out, published.encode())
    print(
        _("wrote {out}: version {version}, security counter {security_counter}, hardware {hardware_id}, {len} bytes, signed {algorithm} by {hex}, image hash {hex2}").format(out=out, version=parsed.version, security_counter=parsed.security_counter, hardware_id=parsed.hardware_id, len=len(image), algorithm=args.algorithm, hex=parsed.key_hash.hex(), hex2=parsed.image_hash.hex())
    )
    return 0


def _trust_from_keys(keys: KeySet, hardware_id: str) -> TrustState:
    rot_keys: list[tuple[bytes, bool]] = []
    slot = 0
    while keys.rot_pub(slot).is_file():
        rot_keys.append((spki_sha256(load_public_key(keys.rot_pub(slot))), False))
        slot += 1
    if not rot_keys:
        raise KeyStoreError(_("key directory {directory} has no rot-0.pub.pem").format(directory=keys.directory))
    return TrustState(
        rot_keys=tuple(rot_keys),
        min_key_manifest_counter=0,
        min_security_counter=0,
        hardware_id=hardware_id,
    )


def _cmd_verify(args: argparse.Namespace) -> int:
    data = read_input(Path(args.file), "image")
    keys = KeySet(Path(args.keys))
    hardware_id = args.hardware_id or SignedImage.parse(data).hardware_id
    trust = _trust_from_keys(keys, hardware_id)
    if args.bootloader:
        verified = verify_bootloader_image(
            data, rot_keys=trust.rot_keys, min_security_counter=0, hardware_id=hardware_id
        )
        kind = "bootloader"
    else:
        verified = verify_firmware_image(data, trust=trust)
        kind = f"key manifest counter {verified.key_manifest_counter}"
    print(
        _("{file}: OK: version {version}, security counter {security_counter}, hardware {hardware_id}, signer {hex}, {kind}, digest {hex2}").format(file=args.file, version=verified.version, security_counter=verified.security_counter, hardware_id=verified.hardware_id, hex=verified.signer_key_hash.hex(), kind=kind, hex2=verified.digest.hex())
    )
    return 0


def _tlv_summary(tlv: TLV, image: SignedImage) -> str:
    value = tlv.value
    if tlv.name == "SEC_CNT":
        return str(image.security_counter)
    if tlv.name == "HARDWARE_ID":
        return image.hardware_id
    if tlv.name == "BUILD_TIME" and image.build_time is not None:
        when = dt.datetime.fromtimestamp(image.build_time, dt.UTC).isoformat()
        return f"{image.build_time} ({when})"
    if tlv.name == "PUBKEY":
        return f"DER SPKI, sha256 {image.key_hash.hex()}"
    if tlv.name == "KEY_MANIFEST":
        try:
            manifest = KeyManifest.parse(value)
        except BootError as exc:
            return f"malformed: {exc}"
        keys = ", ".join(k.key_hash.hex()[:16] for k in manifest.keys)
        return (
            f"counter {manifest.counter}, issuer {manifest.issuer_hash.hex()}, keys [{keys}] "
            "(signature not checked)"
        )
    if len(value) <= 72:
        return value.hex()
    return f"{value[:32].hex()}..."


def _payload_summary(image: SignedImage) -> list[str]:
    try:
        payload = FirmwarePayload.parse(image.payload)
    except BootError:
        pass  # not a firmware zip; maybe a bootloader manifest
    else:
        m = payload.manifest
        when = dt.datetime.fromtimestamp(m.build_time, dt.UTC).isoformat()
        return [
            f"payload: firmware {m.model} ({m.hardware_id}) version {m.version}, "
            f"built {when}, support until {m.support_end}",
            f"payload: {len(payload.files)} files, TUF root "
            f"{'present' if m.tuf_root else 'absent'}, vendor TLS root "
            f"{'present' if m.vendor_tls_root else 'absent'}, sha256 {payload.digest}",
        ]
    try:
        doc: Any = json.loads(bytes(image.payload))
    except ValueError:
        doc = None
    if isinstance(doc, dict) and doc.get("stage") == "bootloader":
        modules = doc.get("modules")
        count = len(modules) if isinstance(modules, dict) else 0
        return [f"payload: bootloader stage version {doc.get('version')}, {count} modules hashed"]
    return ["payload: not a refcam firmware or bootloader payload"]


def _cmd_inspect(args: argparse.Namespace) -> int:
    data = read_input(Path(args.file), "image")
    image = SignedImage.parse(data)
    h = image.header
    lines = [
        f"image {args.file}: {len(data)} bytes (structure valid; signature NOT verified)",
        f"header: magic 0x{h.magic:08x}, load_addr 0x{h.load_addr:x}, hdr_size {h.hdr_size}, "
        f"protect_tlv_size {h.protect_tlv_size}, img_size {h.img_size}, flags 0x{h.flags:x}, "
        f"version {h.version}",
    ]
    for area, tlv in iter_tlvs(image):
        name = TLV_NAMES.get(tlv.type, "?")
        lines.append(
            f"tlv {area:<11} 0x{tlv.type:04x} {name:<12} len {len(tlv.value):>4} "
            f"@{tlv.offset}: {_tlv_summary(tlv, image)}"
        )
    covered = hashlib.sha256(image.covered).hexdigest()
    match = "matches" if bytes.fromhex(covered) == image.image_hash else "DOES NOT match"
    lines.append(f"covered bytes: {image.covered_size}, sha256 {covered} ({match} the SHA256 TLV)")
    lines.extend(_payload_summary(image))
    if args.json:
        doc = {
            "file": str(args.file),
            "size": len(data),
            "signature_verified": False,  # inspect checks structure only
            "header": {
                "magic": h.magic,
                "load_addr": h.load_addr,
                "hdr_size": h.hdr_size,
                "protect_tlv_size": h.protect_tlv_size,
                "img_size": h.img_size,
                "flags": h.flags,
                "version": str(h.version),
            },
            "version": str(image.version),
            "security_counter": image.security_counter,
            "hardware_id": image.hardware_id,
            "tlvs": [
                {
                    "area": area,
                    "type": tlv.type,
                    "name": TLV_NAMES.get(tlv.type),
                    "length": len(tlv.value),
                    "offset": tlv.offset,
                    "summary": _tlv_summary(tlv, image),
                }
                for area, tlv in iter_tlvs(image)
            ],
            "covered_size": image.covered_size,
            "covered_sha256": covered,
            "hash_matches": match == "matches",
            "payload": _payload_summary(image),
        }
        print(json.dumps(doc, indent=2, sort_keys=True))
        return 0
    print("\n".join(lines))
    return 0


def _cmd_sign_bootloader(args: argparse.Namespace) -> int:
    keys = open_keys(Path(args.keys))
    kwargs: dict[str, Any] = {}
    if args.module:
        kwargs["modules"] = tuple(args.module)
    image = build_bootloader_image(
        keys=keys,
        version=args.version,
        security_counter=args.security_counter,
        passphrase=_passphrase(args),
        rot_slot=args.rot_slot,
        hardware_id=args.hardware_id,
        **kwargs,
    )
    out = Path(args.output)
    write_output(out, image)
    parsed = SignedImage.parse(image)
    print(
        _("wrote {out}: bootloader version {version}, security counter {security_counter}, signed by rot-{rot_slot} {hex}").format(out=out, version=parsed.version, security_counter=parsed.security_counter, rot_slot=args.rot_slot, hex=parsed.key_hash.hex())
    )
    return 0


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(_("{text!r} is not an integer").format(text=text)) from None
    if not 0 <= value <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(_("{value} is not in 0..4294967295").format(value=value))
    return value


def register(groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    keys = groups["keys"]
    p = keys.add_parser("init", help=_("create a complete vendor key set in a new directory"))
    p.add_argument("--dir", required=True, help=_("key directory to create"))
    p.add_argument("--passphrase-env", metavar="VAR", help=_("encrypt private keys with $VAR"))
    p.set_defaults(handler=_cmd_keys_init)

    p = keys.add_parser(
        "rotate-signing",
        help=_("new firmware-signing key and a key manifest with the next counter"),
    )
    p.add_argument("--dir", required=True, help=_("existing key directory"))
    p.add_argument("--passphrase-env", metavar="VAR", help=_("passphrase of the private keys"))
    p.set_defaults(handler=_cmd_keys_rotate)

    fw = groups["firmware"]
    p = fw.add_parser("build", help=_("pack the device package and sign it as a slot image"))
    p.add_argument("--keys", required=True, help=_("key directory"))
    p.add_argument("--version", required=True, help=_("MAJOR.MINOR.REVISION[+BUILD]"))
    p.add_argument("--security-counter", required=True, type=_non_negative)
    p.add_argument("-o", "--output", required=True, help=_("image file to write"))
    p.add_argument("--hardware-id", default=DEFAULT_HARDWARE_ID)
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--algorithm", choices=("ed25519", "ecdsa-p256"), default="ed25519")
    p.add_argument("--passphrase-env", metavar="VAR", help=_("passphrase of the private keys"))
    p.add_argument("--tuf-root", help=_("trusted TUF root.json to embed"))
    p.add_argument(
        "--vendor-tls-root", help=_("vendor TLS root PEM to embed (default: KEYS/vendor/root-ca.pem)")
    )
    p.add_argument("--build-time", type=_non_negative, help=_("seconds since the epoch (default now)"))
    p.add_argument("--support-end", help=_("ISO date (default: build time + 5 years)"))
    p.add_argument(
        "--source",
        metavar="DIR",
        help=_("the firmware package directory to pack (default: refcam's own device package)"),
    )
    p.set_defaults(handler=_cmd_build)

    p = fw.add_parser("verify", help=_("verify a slot image against a key directory's RoT keys"))
    p.add_argument("file")
    p.add_argument("--keys", required=True, help=_("key directory (its rot-*.pub.pem are trusted)"))
    p.add_argument("--hardware-id", help=_("expected hardware id (default: the image's)"))
    p.add_argument(
        "--bootloader", action="store_true", help=_("FILE is a bootloader image signed by a RoT key")
    )
    p.set_defaults(handler=_cmd_verify)

    p = fw.add_parser("inspect", help=_("print the header, TLVs and payload summary of an image"))
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help=_("print the inspection as a JSON object"))
    p.set_defaults(handler=_cmd_inspect)

    p = fw.add_parser("sign-bootloader", help=_("build the bootloader image, signed by a RoT key"))
    p.add_argument("--keys", required=True, help=_("key directory"))
    p.add_argument("--version", required=True)
    p.add_argument("--security-counter", required=True, type=_non_negative)
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--rot-slot", type=int, choices=(0, 1), default=0)
    p.add_argument("--hardware-id", default=DEFAULT_HARDWARE_ID)
    p.add_argument("--module", action="append", help=_("bootloader stage module to hash (repeatable)"))
    p.add_argument("--passphrase-env", metavar="VAR", help=_("passphrase of the private keys"))
    p.set_defaults(handler=_cmd_sign_bootloader)
