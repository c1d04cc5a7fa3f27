"""Factory provisioning of a simulated camera.

``provision_state_dir`` is what ``refcam device provision`` runs. It first
verifies everything it was given (the key directory, the firmware image
against the root-of-trust keys that will be fused), then builds the device
in a temporary sibling directory and renames it into place, so a failure
never leaves a half-provisioned state directory:

1. fuses: a fresh 32-byte unique device secret (``secrets``), the SHA-256 of
   rot-0 and rot-1 into root-of-trust slots 0 and 1, the anti-rollback
   counters of the bootloader and the initial firmware, and (unless
   ``lifecycle="development"``) lifecycle secured + debug disabled;
2. flash: the bootloader image (signed by rot-0) in its partition, the
   firmware in slot a, boot-control "slot a confirmed";
3. data/identity: ``device.json``, the TLS / DICE DeviceID / stream-signing
   identity issued by the manufacturer's device CA
   (:func:`bootloader.pki.provision_identity`), and the hash of the unique
   initial password, which is printed only on the label (``label.txt``).

Example::

    result = provision_state_dir(Path("cam1"), keys_dir=Path("K"),
                                 firmware_image=Path("fw.img").read_bytes(),
                                 now=datetime.now(UTC))
    print(result.serial, result.label_path)
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from bootloader import pki
from bootloader.bootctl import BootControl
from bootloader.build import DEFAULT_BOOTLOADER_MODULES, build_bootloader_image
from bootloader.dice import derive_sealing_key
from bootloader.firmware import FirmwarePayload
from bootloader.hardware import (
    UDS_BYTES,
    Board,
    Flash,
    FlashGeometry,
    OTPFuses,
)
from bootloader.keys import (
    load_certificate,
    load_private_key,
    load_public_key,
    open_keys,
    spki_sha256,
)
from bootloader.slots import (
    advance_fuses,
    read_control,
    read_image,
    trust_state,
    verify_slot_image,
    write_control,
    write_partition,
)
from bootloader.unit import BOARD_FILE, DEVICE_JSON, FLASH_FILE, OTP_FILE, Device
from common.errors import (
    BootError,
    BootloaderError,
    KeyStoreError,
    ProvisioningError,
)
from common.handoff import Lifecycle
from common.sealedsecret import SEALED_SECRET_LABEL, seal_secret
from common.verify import (
    TrustState,
    VerifiedFirmware,
    verify_bootloader_image,
    verify_firmware_image,
)

VENDOR = "refcam"
MODEL = "RC-1080"
HARDWARE_ID = "refcam-rc1080-v1"
BOOTLOADER_VERSION = "1.0.0"
BOOTLOADER_SECURITY_COUNTER = 1
LABEL_FILE = "label.txt"
INITIAL_PASSWORD_HASH = "initial-password.hash"  # noqa: S105 - a file name, not a secret
INITIAL_PASSWORD_SEALED = "initial-password.sealed"  # noqa: S105 - sealed under the UDS (common.sealedsecret)
SERIAL_PREFIX = "RC"
SERIAL_RANDOM_CHARS = 10  # base32 characters: 50 bits from the CSPRNG


def new_serial() -> str:
    """``RC`` + 10 random base32 characters, e.g. ``RC7KQ2M4XZPA``."""
    raw = base64.b32encode(secrets.token_bytes(8)).decode("ascii")
    return SERIAL_PREFIX + raw[:SERIAL_RANDOM_CHARS]


@dataclass(frozen=True)
class ProvisionKeys:
    """What the factory needs from the vendor key directory."""

    rot_hashes: tuple[bytes, bytes]  # SHA-256 of the DER SPKI of rot-0 and rot-1
    bootloader_image: bytes  # signed by rot-0
    device_ca_key: ec.EllipticCurvePrivateKey
    device_ca_cert: x509.Certificate
    root_cert: x509.Certificate


@dataclass(frozen=True)
class ProvisionResult:
    state_dir: Path
    serial: str
    initial_password: str  # only for the label; the device keeps its hash
    firmware_version: str
    security_counter: int
    label_path: Path


# The bootloader stage's code, hashed into the bootloader image payload.
# One list: `refcam firmware sign-bootloader` and provisioning build the same bootloader,
# so the vendor's reference values match what devices measure.
BOOTLOADER_MODULES = DEFAULT_BOOTLOADER_MODULES


def load_provision_keys(keys_dir: Path, *, passphrase: bytes | None = None) -> ProvisionKeys:
    """Read the rot key hashes and the device CA; build the bootloader image signed by rot-0."""
    keyset = open_keys(keys_dir)
    rot_hashes = (
        spki_sha256(load_public_key(keyset.rot_pub(0))),
        spki_sha256(load_public_key(keyset.rot_pub(1))),
    )
    bootloader_image = build_bootloader_image(
        keys=keyset,
        version=BOOTLOADER_VERSION,
        security_counter=BOOTLOADER_SECURITY_COUNTER,
        passphrase=passphrase,
        modules=BOOTLOADER_MODULES,
        rot_slot=0,
        hardware_id=HARDWARE_ID,
    )
    device_ca_key = load_private_key(keyset.device_ca_key, passphrase)
    if not isinstance(device_ca_key, ec.EllipticCurvePrivateKey):
        raise KeyStoreError(f"{keyset.device_ca_key} is not an ECDSA key")
    return ProvisionKeys(
        rot_hashes=rot_hashes,
        bootloader_image=bootloader_image,
        device_ca_key=device_ca_key,
        device_ca_cert=load_certificate(keyset.device_ca),
        root_cert=load_certificate(keyset.manufacturer_root_ca),
    )


def check_firmware(
    image: bytes, *, rot_hashes: tuple[bytes, ...], board: Board
) -> tuple[VerifiedFirmware, FirmwarePayload]:
    """Verify the factory firmware exactly as the new device's bootloader will."""
    trust = TrustState(
        rot_keys=tuple((h, False) for h in rot_hashes),
        min_key_manifest_counter=0,
        min_security_counter=0,
        hardware_id=board.hardware_id,
    )
    if len(image) > board.geometry.slot_size:
        raise ProvisioningError(
            f"firmware image is {len(image)} bytes, a slot holds {board.geometry.slot_size}"
        )
    try:
        verified = verify_firmware_image(image, trust=trust)
        payload = FirmwarePayload.parse(verified.payload)
    except BootError as exc:
        raise ProvisioningError(f"firmware image refused: {exc}") from exc
    if payload.manifest.hardware_id != board.hardware_id or payload.manifest.model != board.model:
        raise ProvisioningError(
            f"firmware is built for {payload.manifest.model} ({payload.manifest.hardware_id}), "
            f"this device is {board.model} ({board.hardware_id})"
        )
    return verified, payload


def provision_device(
    device: Device,
    *,
    keys: ProvisionKeys,
    firmware_image: bytes,
    serial: str,
    initial_password_hash: str,
    lifecycle: Lifecycle = "secured",
    now: dt.datetime,
    uds: bytes | None = None,
    label_fold_hash: str | None = None,
    label_password: str | None = None,
) -> VerifiedFirmware:
    """Program blank hardware and write the identity under ``device.state_dir/data``.

    ``label_password``, when given, is also sealed for ``admin`` under the unit's
    ``protocol-secrets`` key (:mod:`common.sealedsecret`), so the firmware can answer
    ONVIF and RTSP digest logins made with the label password (and refuse them until
    it is changed) without the plaintext ever being on flash.
    """
    verified, _payload = check_firmware(
        firmware_image, rot_hashes=keys.rot_hashes, board=device.board
    )
    uds = uds if uds is not None else secrets.token_bytes(UDS_BYTES)
    fuses = device.fuses
    fuses.program_uds(uds)
    for slot, key_hash in enumerate(keys.rot_hashes):
        fuses.program_rot_key(slot, key_hash)

    flash = device.flash
    write_partition(flash, "bootloader", keys.bootloader_image)
    write_partition(flash, "a", firmware_image)
    # Both boot-control copies (seq 1 and 2, the same state): one flipped bit in either
    # must leave a valid copy that keeps slot a confirmed, not "no boot-control at all".
    factory_control = BootControl(seq=0, active="a", trial_state="confirmed", last_confirmed="a")
    write_control(flash, None, factory_control)
    first, _problem = read_control(flash)
    write_control(flash, first, factory_control)
    # Sanity: the device verifies its own factory image.
    bootloader_bytes = read_image(flash, "bootloader")
    assert bootloader_bytes is not None
    bootloader = verify_bootloader_image(
        bootloader_bytes,
        rot_keys=fuses.read().trusted_rot_keys(),
        min_security_counter=0,
        hardware_id=device.board.hardware_id,
    )
    fuses.advance_counter("bootloader", bootloader.security_counter)
    advance_fuses(fuses, verified)
    status, _ = verify_slot_image(flash, "a", trust_state(fuses.read(), device.board))
    if status.state != "valid":
        raise ProvisioningError(f"slot a does not verify after programming: {status.reason}")
    if lifecycle == "secured":
        fuses.set_lifecycle_secured()
        fuses.disable_debug()

    identity_dir = device.identity_dir
    identity_dir.mkdir(parents=True, exist_ok=True)
    (identity_dir / DEVICE_JSON).write_text(
        json.dumps(
            {
                "serial": serial,
                "model": device.board.model,
                "hardware_id": device.board.hardware_id,
                "vendor": device.board.vendor,
            },
            indent=1,
            sort_keys=True,
        )
        + "\n",
        encoding="utf-8",
    )
    pki.provision_identity(
        identity_dir,
        serial=serial,
        uds=uds,
        bootloader_measurement=bootloader.digest,
        device_ca_key=keys.device_ca_key,
        device_ca_cert=keys.device_ca_cert,
        root_cert=keys.root_cert,
        now=now,
    )
    hash_path = identity_dir / INITIAL_PASSWORD_HASH
    # line 1: the label password's hash; line 2: the hash of its fold, so the firmware
    # can refuse simple variants of the label as a new password (NIST SP 800-63B 3.1.1.2)
    lines = [initial_password_hash] + ([label_fold_hash] if label_fold_hash else [])
    hash_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.chmod(hash_path, 0o600)
    if label_password is not None:
        sealed_path = identity_dir / INITIAL_PASSWORD_SEALED
        key = derive_sealing_key(uds, SEALED_SECRET_LABEL)
        sealed_path.write_bytes(seal_secret(key, "admin", label_password))
        os.chmod(sealed_path, 0o600)
    return verified


def _make_private(root: Path) -> None:
    """Every file of a new device 0600 and every directory 0700: fuses, flash, keys and
    the label password are the device's alone (issue 13 defect 6)."""
    os.chmod(root, 0o700)
    for path in root.rglob("*"):
        if not path.is_symlink():
            os.chmod(path, 0o700 if path.is_dir() else 0o600)


def label_text(*, serial: str, model: str, vendor: str, password: str) -> str:
    return (
        f"{vendor} {model}\nserial: {serial}\ninitial password: {password}\nchange at first login\n"
    )


def provision_state_dir(
    state_dir: Path,
    *,
    keys_dir: Path,
    firmware_image: bytes,
    now: dt.datetime,
    serial: str | None = None,
    lifecycle: Lifecycle = "secured",
    geometry: FlashGeometry | None = None,
    passphrase: bytes | None = None,
) -> ProvisionResult:
    """Provision a file-backed device in ``state_dir`` (which must be absent or empty)."""
    from common.passwords import generate_initial_password, hash_password, label_fold

    if state_dir.exists() and (not state_dir.is_dir() or any(state_dir.iterdir())):
        raise ProvisioningError(
            f"state directory {state_dir} is not empty; refusing to overwrite a device"
        )
    board = Board(
        hardware_id=HARDWARE_ID, model=MODEL, vendor=VENDOR, geometry=geometry or FlashGeometry()
    )
    keys = load_provision_keys(keys_dir, passphrase=passphrase)
    verified, _payload = check_firmware(firmware_image, rot_hashes=keys.rot_hashes, board=board)
    serial = serial if serial is not None else new_serial()
    if not pki.SERIAL_RE.fullmatch(serial):
        raise ProvisioningError(
            f"serial {serial!r} must be 1..59 letters, digits or '-', starting with a letter or digit"
        )
    password = generate_initial_password()

    parent = state_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{state_dir.name}.provisioning-{secrets.token_hex(4)}"
    staging.mkdir(mode=0o700)
    try:
        (staging / BOARD_FILE).write_text(board.to_json() + "\n", encoding="utf-8")
        device = Device(
            state_dir=staging,
            board=board,
            fuses=OTPFuses.create_file(staging / OTP_FILE),
            flash=Flash.create_file(staging / FLASH_FILE, board.geometry),
        )
        provision_device(
            device,
            keys=keys,
            firmware_image=firmware_image,
            serial=serial,
            initial_password_hash=hash_password(password),
            label_fold_hash=hash_password(label_fold(password)),
            label_password=password,
            lifecycle=lifecycle,
            now=now,
        )
        (staging / "data" / "runtime").mkdir(parents=True, exist_ok=True)
        label = staging / LABEL_FILE
        label.write_text(
            label_text(serial=serial, model=board.model, vendor=board.vendor, password=password),
            encoding="utf-8",
        )
        os.chmod(label, 0o600)
        _make_private(staging)
        if state_dir.exists():
            state_dir.rmdir()  # empty, checked above
        os.replace(staging, state_dir)
    except (BootloaderError, OSError) as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, BootloaderError):
            raise
        raise ProvisioningError(f"cannot write the device state to {state_dir}: {exc}") from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ProvisionResult(
        state_dir=state_dir,
        serial=serial,
        initial_password=password,
        firmware_version=verified.version,
        security_counter=verified.security_counter,
        label_path=state_dir / LABEL_FILE,
    )
