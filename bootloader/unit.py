"""One simulated camera on disk: its board, OTP fuses, flash and state directory,
and the identity provisioning wrote into its data partition.

Example::

    device = open_device(Path("state"))
    identity = load_identity(device)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from bootloader.hardware import (
    Board,
    Flash,
    OTPFuses,
    PowerCutInjector,
    SecureCounters,
)
from common.errors import (
    HardwareError,
    ProvisioningError,
)
from common.handoff import (
    DeviceIdentity,
)

OTP_FILE = "otp.bin"
FLASH_FILE = "flash.bin"
RPMB_FILE = "rpmb.bin"  # the secure (replay-protected) counters
BOARD_FILE = "hardware.json"  # the board: model, hardware id, flash geometry
IDENTITY_DIR = Path("data") / "identity"
DEVICE_JSON = "device.json"
DEVICEID_PEM = "deviceid.pem"
TLS_CHAIN_PEM = "tls.pem"

@dataclass(frozen=True)
class Device:
    """One simulated camera: fuses, flash, board description and state directory."""

    state_dir: Path
    board: Board
    fuses: OTPFuses
    flash: Flash
    # replay-protected monotonic counters (RPMB-like); the audit log anchors its head here
    counters: SecureCounters = field(default_factory=SecureCounters.in_memory)

    @classmethod
    def in_memory(
        cls,
        state_dir: Path,
        *,
        board: Board,
        injector: PowerCutInjector | None = None,
    ) -> Device:
        """Blank in-memory hardware whose data partition lives under ``state_dir/data``."""
        return cls(
            state_dir=state_dir,
            board=board,
            fuses=OTPFuses.in_memory(injector=injector),
            flash=Flash.in_memory(board.geometry, injector=injector),
        )

    def power_on(self, *, injector: PowerCutInjector | None = None) -> Device:
        """The same hardware after a power cycle, optionally with a new power-cut injector."""
        return Device(
            state_dir=self.state_dir,
            board=self.board,
            fuses=self.fuses.power_on(injector=injector),
            flash=self.flash.power_on(injector=injector),
            counters=self.counters,
        )

    @property
    def identity_dir(self) -> Path:
        return self.state_dir / IDENTITY_DIR


def open_device(state_dir: Path, *, injector: PowerCutInjector | None = None) -> Device:
    """The file-backed device provisioned in ``state_dir``."""
    board_path = state_dir / BOARD_FILE
    try:
        board = Board.from_json(board_path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ProvisioningError(
            f"{state_dir} is not a provisioned device (no {BOARD_FILE}); run 'refcam device provision'"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise HardwareError(f"cannot read {board_path}: {exc}") from exc
    return Device(
        state_dir=state_dir,
        board=board,
        fuses=OTPFuses.open_file(state_dir / OTP_FILE, injector=injector),
        flash=Flash.open_file(state_dir / FLASH_FILE, board.geometry, injector=injector),
        counters=SecureCounters.open_file(state_dir / RPMB_FILE),
    )




def load_identity(device: Device) -> DeviceIdentity:
    path = device.identity_dir / DEVICE_JSON
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return DeviceIdentity(
            serial=str(doc["serial"]),
            model=str(doc["model"]),
            hardware_id=str(doc["hardware_id"]),
            vendor=str(doc["vendor"]),
        )
    except FileNotFoundError as exc:
        raise ProvisioningError(
            f"device identity {path} is missing: the device is not provisioned"
        ) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ProvisioningError(f"device identity {path} is unreadable: {exc}") from exc


def load_deviceid_chain(device: Device) -> list[x509.Certificate]:
    """[DeviceID certificate, device CA certificate] written at provisioning."""
    identity_dir = device.identity_dir
    try:
        chain = x509.load_pem_x509_certificates((identity_dir / DEVICEID_PEM).read_bytes())
        if len(chain) == 1:  # the device CA is the issuer of the TLS leaf as well
            tls = x509.load_pem_x509_certificates((identity_dir / TLS_CHAIN_PEM).read_bytes())
            chain.extend(cert for cert in tls[1:] if cert.subject == chain[0].issuer)
    except FileNotFoundError as exc:
        raise ProvisioningError(f"DICE DeviceID certificate missing: {exc.filename}") from exc
    except (OSError, ValueError) as exc:
        raise ProvisioningError(f"DICE DeviceID certificate unreadable: {exc}") from exc
    return chain
