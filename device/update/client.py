"""The device's update client: python-tuf's ``Updater`` plus the install flow.

One construction, :func:`build_updater`, is shared by the running firmware
and by ``refcam tuf-client`` (the TUF conformance command). Its trust anchor
is ``bootstrap_root``: for the device, the root embedded in the booted,
secure-boot-verified firmware (``handoff.firmware.tuf_root``).

The flow of :class:`UpdateClient` (EN 303 645 5.3, TUF 5.3-5.7):

1. ``check()``: refresh the TUF metadata (root rotation, timestamp,
   snapshot, targets, the ``models-<hw>`` delegation), list the targets
   under ``<hardware_id>/`` and pick the highest version
   (:func:`select_candidate`, pure). A candidate for another model, or with
   a security counter below the fused counter, is refused
   (:class:`WrongHardwareId`, :class:`SecurityCounterDowngrade`).
2. ``install()``: download it (resumable, length and hashes checked by
   python-tuf), check the image itself again (:func:`check_image`), write it
   to the inactive slot and verify it exactly as the bootloader will
   (``services.write_image`` reads it back and verifies it), mark it pending
   (``services.set_pending``) and ask for a reboot. The new firmware confirms
   itself when healthy (``services.confirm()``); an unconfirmed trial reverts.

Time: python-tuf 7 checks expiry against ``TrustedMetadataSet.reference_time``
(set from the system clock when the ``Updater`` is built; there is no public
option). :func:`build_updater` replaces it with ``reference_time``, which
the device computes as ``max(clock, floor)`` (:func:`effective_time`): the
floor is the firmware build time or the last time metadata verified, so
turning the clock back cannot revive expired metadata (freeze attack).

Example::

    updater = build_updater(metadata_dir=d, metadata_base_url=url + "/metadata/",
                            target_base_url=url + "/targets/", target_dir=t,
                            bootstrap_root=handoff.firmware.tuf_root, fetcher=fetcher)
    updater.refresh()
"""

from __future__ import annotations

import json
import logging
import random
import struct
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from tuf.api import exceptions
from tuf.api.metadata import Metadata, TargetFile, Targets  # type: ignore[attr-defined]
from tuf.ngclient import Updater, UpdaterConfig  # type: ignore[attr-defined]

from common.atomicfile import write_atomic
from common.errors import BootError, FlashError, ImageFormatError, PowerCut
from common.flaws import UnsafeFlaws
from common.handoff import BootHandoff, Slot, SlotImageWriter
from common.image import (
    HEADER_FMT,
    IMAGE_MAGIC,
    TLV_FMT,
    TLV_HARDWARE_ID,
    TLV_INFO_FMT,
    TLV_INFO_SIZE,
    TLV_PROT_INFO_MAGIC,
    TLV_SEC_CNT,
    TLV_SIZE,
    ImageVersion,
    SignedImage,
)
from common.verify import TrustState, verify_firmware_image

from .errors import (
    ExpiredMetadata,
    ImageRejected,
    ImageTooLarge,
    NoUpdate,
    SecurityCounterDowngrade,
    TrialNotConfirmed,
    UntrustedMetadata,
    UpdateBusy,
    UpdateError,
    UpdateTransportError,
    WrongHardwareId,
)
from .fetcher import FetcherConfig, HTTPSFetcher

log = logging.getLogger(__name__)

State = Literal[
    "idle", "checking", "available", "downloading", "installing", "pending-reboot", "error"
]


@dataclass(frozen=True)
class UpdateClientConfig:
    repository_url: str  # https://host:port; metadata under /metadata/, targets under /targets/
    check_interval: float = 24 * 3600.0  # seconds between automatic checks; 0 = off
    check_jitter: float = 0.1  # fraction of the interval, spreads a fleet's checks
    max_image_size: int = 64 * 2**20  # bytes, largest image accepted (TUF or upload)
    max_metadata_size: int = 2 * 2**20  # bytes, largest targets/snapshot metadata
    fetcher: FetcherConfig = field(default_factory=FetcherConfig)

    @property
    def metadata_base_url(self) -> str:
        return self.repository_url.rstrip("/") + "/metadata/"

    @property
    def target_base_url(self) -> str:
        return self.repository_url.rstrip("/") + "/targets/"


@dataclass(frozen=True)
class Candidate:
    """A firmware target the repository offers this device."""

    target_path: str
    version: str
    security_counter: int
    hardware_id: str
    length: int
    sha256: str
    advisories: tuple[str, ...] = ()  # CSAF advisory ids this release fixes


@dataclass(frozen=True)
class ImageFacts:
    hardware_id: str
    version: str
    security_counter: int


@dataclass(frozen=True)
class CheckResult:
    current_version: str
    candidate: Candidate | None  # None: up to date


# --------------------------------------------------------------------------- pure parts


def parse_version(version: str) -> ImageVersion:
    """``major.minor.revision[+build]`` (MCUboot, ``common.image``), comparable."""
    try:
        return ImageVersion.parse(version)
    except ImageFormatError as exc:
        raise UntrustedMetadata(str(exc)) from None


def effective_time(now: datetime, floor: datetime | None) -> datetime:
    """The time used for expiry checks: never earlier than the trusted floor."""
    return now if floor is None or now >= floor else floor


def next_check_delay(interval: float, jitter: float, rng: random.Random) -> float:
    """Seconds until the next automatic check: ``interval`` +/- ``jitter`` * interval."""
    if interval <= 0:
        raise ValueError("automatic checks are off")
    return interval * (1 + rng.uniform(-jitter, jitter))


def candidate_from_target(target: TargetFile) -> Candidate:
    custom = target.custom
    if not isinstance(custom, dict):
        raise UntrustedMetadata(f"target {target.path} has no custom firmware fields")
    try:
        version = str(custom["version"])
        counter = custom["security_counter"]
        hardware_id = str(custom["hardware_id"])
    except KeyError as exc:
        raise UntrustedMetadata(f"target {target.path} lacks custom field {exc.args[0]!r}") from None
    if not isinstance(counter, int) or isinstance(counter, bool) or counter < 0:
        raise UntrustedMetadata(f"target {target.path} has a bad security_counter {counter!r}")
    parse_version(version)
    advisories = custom.get("advisories", [])
    if not isinstance(advisories, list) or not all(isinstance(a, str) for a in advisories):
        raise UntrustedMetadata(f"target {target.path} has a malformed advisories list")
    return Candidate(
        target_path=target.path,
        version=version,
        security_counter=counter,
        hardware_id=hardware_id,
        length=target.length,
        sha256=str(target.hashes.get("sha256", "")),
        advisories=tuple(advisories),
    )


def is_firmware_target(target: TargetFile) -> bool:
    """Firmware images, not the SBOMs published beside them (``custom.kind``)."""
    custom = target.custom
    return not isinstance(custom, dict) or custom.get("kind", "firmware") == "firmware"


def advisories_affecting(offered: Iterable[Candidate], running: str) -> list[dict[str, str]]:
    """Advisories fixed by a newer release affect the running firmware (CSAF known_affected)."""
    current = parse_version(running)
    found: dict[str, str] = {}
    for candidate in sorted(offered, key=lambda c: parse_version(c.version)):
        if parse_version(candidate.version) > current:
            for advisory in candidate.advisories:
                found.setdefault(advisory, candidate.version)  # the first release that fixes it
    return [{"id": a, "status": "affected", "fixed_in": v} for a, v in sorted(found.items())]


def select_candidate(
    offered: Iterable[Candidate],
    *,
    hardware_id: str,
    current_version: str,
    fused_counter: int,
    max_image_size: int,
) -> Candidate | None:
    """The newest acceptable image for this device, None if up to date; raises a refusal."""
    mine = [c for c in offered if c.target_path.startswith(f"{hardware_id}/")]
    if not mine:
        return None
    best = max(mine, key=lambda c: parse_version(c.version))
    if parse_version(best.version) <= parse_version(current_version):
        return None
    if best.hardware_id != hardware_id:
        raise WrongHardwareId(
            f"target {best.target_path} is for hardware {best.hardware_id!r}, this device is "
            f"{hardware_id!r}"
        )
    if best.security_counter < fused_counter:
        raise SecurityCounterDowngrade(
            f"image {best.version} has security counter {best.security_counter}, below the fused "
            f"minimum {fused_counter}"
        )
    if best.length > max_image_size:
        raise ImageTooLarge(
            f"image {best.target_path} is {best.length} bytes, at most {max_image_size} accepted"
        )
    return best


def image_facts(data: bytes) -> ImageFacts:
    """Hardware id, version and counter of a signed image (strict format check only;
    hash and signature are verified by ``services.verify_slot`` as the bootloader does)."""
    try:
        image = SignedImage.parse(data)
    except ImageFormatError as exc:
        raise ImageRejected(f"not a valid firmware image: {exc}") from exc
    return ImageFacts(
        hardware_id=image.hardware_id,
        version=str(image.version),
        security_counter=image.security_counter,
    )


def unsafe_image_facts(data: bytes) -> ImageFacts:
    """UNSAFE (flaw ``unsigned-update-accepted``): header and protected TLVs only.

    A flawed client that trusts whatever the image says about itself, signed
    or not. Still bounds-checked: junk gives ImageRejected, never a crash.
    """
    try:
        return image_facts(data)
    except ImageRejected:
        pass
    try:
        magic, _load, hdr_size, prot_size, img_size, _flags, major, minor, rev, _build, _pad = (
            struct.unpack_from(HEADER_FMT, data)
        )
        if magic != IMAGE_MAGIC or prot_size < TLV_INFO_SIZE:
            raise ValueError("no MCUboot header or no protected TLV area")
        start = hdr_size + img_size
        info_magic, total = struct.unpack_from(TLV_INFO_FMT, data, start)
        if info_magic != TLV_PROT_INFO_MAGIC or total != prot_size or start + total > len(data):
            raise ValueError("bad protected TLV area")
        values: dict[int, bytes] = {}
        offset = start + TLV_INFO_SIZE
        while offset + TLV_SIZE <= start + total:
            kind, length = struct.unpack_from(TLV_FMT, data, offset)
            values[kind] = data[offset + TLV_SIZE : offset + TLV_SIZE + length]
            offset += TLV_SIZE + length
        counter = struct.unpack("<I", values[TLV_SEC_CNT])[0]
        hardware_id = values[TLV_HARDWARE_ID].decode("ascii")
    except (struct.error, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise ImageRejected(f"not a firmware image: {exc}") from exc
    return ImageFacts(hardware_id=hardware_id, version=f"{major}.{minor}.{rev}", security_counter=counter)


def check_image(facts: ImageFacts, *, hardware_id: str, fused_counter: int) -> None:
    """Refuse an image for another model or below the fused counter (before any write)."""
    if facts.hardware_id != hardware_id:
        raise WrongHardwareId(
            f"image is built for hardware {facts.hardware_id!r}, this device is {hardware_id!r}"
        )
    if facts.security_counter < fused_counter:
        raise SecurityCounterDowngrade(
            f"image {facts.version} has security counter {facts.security_counter}, below the fused "
            f"minimum {fused_counter}"
        )


def translate(exc: Exception) -> UpdateError:
    """python-tuf / transport exceptions as update errors (what was found, what expected)."""
    if isinstance(exc, UpdateError):
        return exc
    if isinstance(exc, exceptions.ExpiredMetadataError):
        return ExpiredMetadata(f"TUF metadata expired: {exc}")
    if isinstance(exc, exceptions.DownloadLengthMismatchError):
        return UntrustedMetadata(f"repository sent too much data: {exc}")
    if isinstance(exc, exceptions.RepositoryError):
        return UntrustedMetadata(f"TUF verification failed ({type(exc).__name__}): {exc}")
    if isinstance(exc, exceptions.DownloadError):
        cause = exc.__cause__
        detail = f"{exc}: {cause}" if cause is not None else str(exc)
        return UpdateTransportError(f"download failed: {detail}")
    return UpdateTransportError(f"update I/O failed: {exc}")


# --------------------------------------------------------------------------- Updater


def tuf_config(*, max_metadata_size: int = 2 * 2**20) -> UpdaterConfig:
    return UpdaterConfig(
        snapshot_max_length=max_metadata_size,
        targets_max_length=max_metadata_size,
        app_user_agent="refcam-update/1",
    )


def build_updater(
    *,
    metadata_dir: Path,
    metadata_base_url: str,
    target_base_url: str | None,
    target_dir: Path | None,
    bootstrap_root: bytes,
    fetcher: HTTPSFetcher,
    config: UpdaterConfig | None = None,
    reference_time: datetime | None = None,
) -> Updater:
    """The one ``Updater`` construction (device and ``refcam tuf-client``).

    Raises :class:`UntrustedMetadata` if ``bootstrap_root`` is not valid root metadata.
    """
    metadata_dir.mkdir(parents=True, exist_ok=True)
    if target_dir is not None:
        target_dir.mkdir(parents=True, exist_ok=True)
    try:
        updater = Updater(
            str(metadata_dir),
            metadata_base_url,
            str(target_dir) if target_dir is not None else None,
            target_base_url,
            fetcher,
            config or tuf_config(),
            bootstrap=bootstrap_root,
        )
    except (exceptions.RepositoryError, ValueError) as exc:
        raise UntrustedMetadata(f"trusted root metadata is not valid: {exc}") from exc
    except OSError as exc:
        raise UpdateTransportError(f"cannot use metadata directory {metadata_dir}: {exc}") from exc
    if reference_time is not None:
        # python-tuf 7 has no public option for the reference time; every expiry
        # check (TUF 5.3.10, 5.4.4, 5.5.6, 5.6.7) reads this attribute.
        trusted = updater._trusted_set
        if not hasattr(trusted, "reference_time"):
            raise UpdateError("this python-tuf has no TrustedMetadataSet.reference_time")
        trusted.reference_time = reference_time
    return updater


def list_offered(updater: Updater, metadata_dir: Path, hardware_id: str) -> list[Candidate]:
    """Every target under ``<hardware_id>/`` in verified metadata, as candidates.

    The walk is python-tuf's (``get_targetinfo`` loads and verifies the
    delegated role); the verified role files it persisted are then read to
    enumerate the names, and each name is looked up again through the walk.
    """
    updater.get_targetinfo(f"{hardware_id}/.refcam-probe")
    top = _read_targets(metadata_dir, Targets.type)
    roles: list[str] = []
    if top is not None and top.delegations is not None:
        roles = [name for name, _ in top.delegations.get_roles_for_target(f"{hardware_id}/x")]
    names: set[str] = set()
    for role in [Targets.type, *roles]:
        targets = _read_targets(metadata_dir, role)
        if targets is not None:
            names.update(p for p in targets.targets if p.startswith(f"{hardware_id}/"))
    offered = []
    for name in sorted(names):
        info = updater.get_targetinfo(name)
        if info is not None and is_firmware_target(info):
            offered.append(candidate_from_target(info))
    return offered


def _read_targets(metadata_dir: Path, role: str) -> Targets | None:
    path = metadata_dir / f"{quote(role, '')}.json"
    if not path.exists():
        return None
    signed = Metadata.from_bytes(path.read_bytes()).signed
    return signed if isinstance(signed, Targets) else None


def metadata_summary(metadata_dir: Path) -> dict[str, dict[str, Any]]:
    """Versions and expiries of the locally trusted metadata (for the status API)."""
    out: dict[str, dict[str, Any]] = {}
    for role in ("root", "timestamp", "snapshot", "targets"):
        path = metadata_dir / f"{role}.json"
        try:
            signed = Metadata.from_bytes(path.read_bytes()).signed
        except (OSError, ValueError, exceptions.RepositoryError):
            continue
        out[role] = {"version": signed.version, "expires": signed.expires.isoformat()}
    return out


# --------------------------------------------------------------------------- clock floor


class ClockFloor:
    """The lowest time the device will believe, kept in a small file."""

    def __init__(self, path: Path, *, build_time: int) -> None:
        self.path = path
        self.build_time = datetime.fromtimestamp(build_time, UTC)

    def read(self) -> datetime:
        try:
            stored = datetime.fromtimestamp(float(json.loads(self.path.read_text())["floor"]), UTC)
        except (OSError, ValueError, KeyError, TypeError):
            stored = self.build_time
        return max(stored, self.build_time)

    def raise_to(self, when: datetime) -> None:
        if when <= self.read():
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps({"floor": when.timestamp()}).encode())


class SlotDownload:
    """Where an interrupted download into the inactive slot may resume (a small file).

    Written only after the flash holds the bytes it counts (every
    ``SAVE_EVERY`` bytes and when a transfer fails), so it never claims more
    than the slot has; a stale, lower value only re-downloads a little. The
    URL is content-addressed (hash-prefixed target names), and anything else
    that writes the slot clears the record first. Whatever is resumed, the
    whole slot is checked against the signed length and hashes at the end.
    """

    SAVE_EVERY = 4 * 2**20  # bytes

    def __init__(self, path: Path) -> None:
        self.path = path

    def resume_point(self, url: str, slot: Slot, length: int) -> int:
        try:
            doc = json.loads(self.path.read_text())
            offset = doc["durable"]
            same = doc["url"] == url and doc["slot"] == slot
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        if not same or not isinstance(offset, int) or not 0 <= offset <= length:
            return 0
        return offset

    def save(self, url: str, slot: Slot, durable: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps({"url": url, "slot": slot, "durable": durable}).encode())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the flow


@dataclass
class UpdateStatus:
    state: State = "idle"
    available: Candidate | None = None
    last_check: float | None = None  # seconds since the epoch
    last_error: tuple[str, str] | None = None  # (error class code, message)
    progress: tuple[int, int] | None = None  # (bytes, total)
    installed_slot: Slot | None = None
    advisories: tuple[dict[str, str], ...] = ()  # advisories affecting the running firmware


class UpdateClient:
    """The device side of issue 4: check, download, verify, install, reboot.

    Synchronous (python-tuf is); the web routes run it in a worker thread.
    One operation at a time: a second one gets :class:`UpdateBusy`.
    """

    def __init__(
        self,
        handoff: BootHandoff,
        config: UpdateClientConfig,
        *,
        fetcher: HTTPSFetcher,
        clock: Callable[[], float],
        on_reboot: Callable[[], None] = lambda: None,
        repository_url: Callable[[], str] | None = None,
        flaws: UnsafeFlaws | None = None,
    ) -> None:
        self.handoff = handoff
        self.flaws = flaws or UnsafeFlaws()
        self.config = config
        # The update source in force: an admin may change it at run time (settings).
        self.repository_url = repository_url or (lambda: config.repository_url)
        self.fetcher = fetcher
        self.clock = clock
        self.on_reboot = on_reboot
        self.root_dir = handoff.data_dir / "update"
        self.metadata_dir = self.root_dir / "metadata"
        self.download_dir = self.root_dir / "download"
        self.floor = ClockFloor(self.root_dir / "clock-floor.json", build_time=handoff.firmware.build_time)
        self.slot_download = SlotDownload(self.root_dir / "slot-download.json")
        self.status = UpdateStatus()
        self._lock = threading.Lock()
        fetcher.progress = self._progress

    # -------------------------------------------------------------- helpers

    def _progress(self, done: int, total: int) -> None:
        self.status.progress = (done, total)

    def _reference_time(self) -> datetime:
        now = datetime.fromtimestamp(self.clock(), UTC)
        return effective_time(now, self.floor.read())

    def _updater(self, reference: datetime) -> Updater:
        root = self.handoff.firmware.tuf_root
        if root is None:
            raise UntrustedMetadata("this firmware carries no trusted TUF root; updates over TUF are off")
        source = replace(self.config, repository_url=self.repository_url())
        return build_updater(
            metadata_dir=self.metadata_dir,
            metadata_base_url=source.metadata_base_url,
            target_base_url=source.target_base_url,
            target_dir=self.download_dir,
            bootstrap_root=root,
            fetcher=self.fetcher,
            config=tuf_config(max_metadata_size=self.config.max_metadata_size),
            reference_time=reference,
        )

    def _run(self, state: State, action: Callable[[], Any]) -> Any:
        if not self._lock.acquire(blocking=False):
            raise UpdateBusy(f"an update operation is running (state {self.status.state})")
        try:
            self.status.state = state
            self.status.last_error = None
            result = action()
        except UpdateError as exc:
            self.status.state = "error"
            self.status.last_error = (exc.code, exc.message)
            raise
        except PowerCut:  # the simulated device lost power: not an update error
            self.status.state = "error"
            raise
        except Exception as exc:  # python-tuf, OSError: typed at this boundary
            error = translate(exc)
            self.status.state = "error"
            self.status.last_error = (error.code, error.message)
            raise error from exc
        finally:
            self._lock.release()
        return result

    # -------------------------------------------------------------- operations

    def _check(self) -> tuple[Updater, CheckResult]:
        reference = self._reference_time()
        updater = self._updater(reference)
        try:
            updater.refresh()
            offered = list_offered(updater, self.metadata_dir, self.handoff.identity.hardware_id)
        except UpdateError:
            raise
        except Exception as exc:
            raise translate(exc) from exc
        self.floor.raise_to(reference)  # metadata verified at this time: never go below it
        candidate = select_candidate(
            offered,
            hardware_id=self.handoff.identity.hardware_id,
            current_version=self.handoff.firmware.version,
            fused_counter=self.handoff.services.fuses().firmware_counter,
            max_image_size=self.config.max_image_size,
        )
        self.status.last_check = self.clock()
        self.status.advisories = tuple(advisories_affecting(offered, self.handoff.firmware.version))
        self.status.available = candidate
        self.status.state = "available" if candidate else "idle"
        return updater, CheckResult(self.handoff.firmware.version, candidate)

    def check(self) -> CheckResult:
        """Refresh metadata and report the newest acceptable image (or None)."""

        def action() -> CheckResult:
            return self._check()[1]

        result: CheckResult = self._run("checking", action)
        return result

    def install(self) -> Candidate:
        """Check, download into the inactive slot, verify, mark pending; then ask for a reboot."""

        def action() -> Candidate:
            updater, result = self._check()
            if result.candidate is None:
                raise NoUpdate(f"firmware {result.current_version} is the newest for this device")
            candidate = result.candidate
            info = updater.get_targetinfo(candidate.target_path)
            if info is None:
                raise UntrustedMetadata(f"target {candidate.target_path} vanished from metadata")
            self._refuse_during_trial()
            slot = self.handoff.services.inactive_slot()
            self.status.state = "downloading"
            data = self._download_to_slot(info, slot)
            self._install_bytes(data, expected=candidate, written_to=slot)
            return candidate

        result: Candidate = self._run("checking", action)
        return result

    def _target_url(self, info: TargetFile) -> str:
        """The URL python-tuf's ``download_target`` would use (TUF 5.7.3: hash-prefixed
        names under consistent snapshots)."""
        root = Metadata.from_bytes((self.metadata_dir / "root.json").read_bytes()).signed
        path = info.path
        if getattr(root, "consistent_snapshot", False):
            dirname, sep, basename = path.rpartition("/")
            path = f"{dirname}{sep}{next(iter(info.hashes.values()))}.{basename}"
        base = replace(self.config, repository_url=self.repository_url()).target_base_url
        return base + path

    def _download_to_slot(self, info: TargetFile, slot: Slot) -> bytes:
        """Stream the target into ``slot`` (resuming a cut download), then verify its length
        and hashes with python-tuf over what is on flash; returns those bytes.

        A target that does not match its signed length and hashes is erased: a
        refused download leaves the slot empty and is never resumed.
        """
        url = self._target_url(info)
        services = self.handoff.services
        record = self.slot_download
        offset = record.resume_point(url, slot, info.length)

        @contextmanager
        def into_slot(start: int) -> Iterator[SlotImageWriter]:
            saved = start

            def checkpoint(durable: int) -> None:  # called once the sector is on flash
                nonlocal saved
                if durable - saved >= SlotDownload.SAVE_EVERY:
                    record.save(url, slot, durable)
                    saved = durable

            writer = services.open_slot_writer(
                slot, offset=start, total=info.length, on_durable=checkpoint
            )
            try:
                yield writer
            except exceptions.DownloadError:
                record.save(url, slot, writer.durable)  # a cut transfer resumes from here
                raise
            # (a power cut runs no code at all: the last checkpoint stands)
            writer.finish()

        try:
            self.fetcher.download_into(url, info.length, offset=offset, open_sink=into_slot)
            data = services.read_slot(slot, info.length)
            info.verify_length_and_hashes(data)
        except (exceptions.DownloadLengthMismatchError, exceptions.LengthOrHashMismatchError) as exc:
            record.clear()
            services.erase_slot(slot)
            raise translate(exc) from exc
        except FlashError as exc:  # the signed length is more than this board's slot holds
            record.clear()
            services.erase_slot(slot)
            raise ImageTooLarge(f"target {info.path} ({info.length} bytes) does not fit slot {slot}: {exc}") from exc
        except BootError as exc:
            raise UpdateError(f"cannot write slot {slot}: {exc}") from exc
        record.clear()
        return data

    def _refuse_during_trial(self) -> None:
        if self.handoff.services.trial:
            # the inactive slot holds the last confirmed image: our only fallback
            raise TrialNotConfirmed(
                "the running firmware is an unconfirmed trial; it must confirm itself "
                "before another image may replace the fallback slot"
            )

    def install_upload(self, data: bytes) -> ImageFacts:
        """Install a signed image given directly (no TUF); same image checks."""

        def action() -> ImageFacts:
            return self._install_bytes(data, expected=None)

        result: ImageFacts = self._run("installing", action)
        return result

    def _install_bytes(
        self, data: bytes, *, expected: Candidate | None, written_to: Slot | None = None
    ) -> ImageFacts:
        """Check ``data`` and install it; ``written_to``: the slot already holds exactly it."""
        if len(data) > self.config.max_image_size:
            raise ImageTooLarge(
                f"image is {len(data)} bytes, at most {self.config.max_image_size} accepted"
            )
        self.status.state = "installing"
        # Flaw profiles weaken exactly these checks (and the write below).
        skip_signature = "unsigned-update-accepted" in self.flaws
        skip_rollback = "rollback-accepted" in self.flaws
        services = self.handoff.services
        slot = services.inactive_slot()
        try:
            facts = unsafe_image_facts(data) if skip_signature else image_facts(data)
            check_image(
                facts,
                hardware_id=self.handoff.identity.hardware_id,
                fused_counter=0 if skip_rollback else services.fuses().firmware_counter,
            )
            if expected is not None and (
                facts.version != expected.version
                or facts.security_counter != expected.security_counter
            ):
                raise ImageRejected(
                    f"image is version {facts.version} counter {facts.security_counter}, TUF "
                    f"metadata announced {expected.version} counter {expected.security_counter}"
                )
            if not skip_rollback and parse_version(facts.version) <= parse_version(
                self.handoff.firmware.version
            ):
                raise ImageRejected(
                    f"image version {facts.version} is not newer than the running "
                    f"{self.handoff.firmware.version}"
                )
        except UpdateError:
            if written_to is not None:
                services.erase_slot(written_to)  # refused: the slot is left empty
            raise
        self._refuse_during_trial()
        self.slot_download.clear()  # the slot gets other bytes
        try:
            if skip_rollback and not skip_signature:
                # The flawed client still checks the signature, just not the counters.
                verify_firmware_image(data, trust=self._trust_ignoring_counters())
            if skip_signature or skip_rollback:
                log.warning("UNSAFE flaw profile: writing slot %s without the bootloader's checks", slot)
                services.unsafe_write_unverified(slot, data)
            else:
                if written_to != slot:
                    services.write_image(slot, data, progress=self._progress)
                # set_pending reads the slot back and verifies it exactly as the bootloader
                # will (BootServices contract) before it marks the trial.
                services.set_pending(slot)
        except BootError as exc:
            services.erase_slot(slot)  # a refused image leaves the slot empty
            raise ImageRejected(f"slot {slot} does not verify: {exc}") from exc
        log.info("image %s written to slot %s and verified; trial boot pending", facts.version, slot)
        self.status.installed_slot = slot
        self.status.state = "pending-reboot"
        self.on_reboot()
        return facts

    def _trust_ignoring_counters(self) -> TrustState:
        """UNSAFE (flaw rollback-accepted): the fused keys, but no anti-rollback minimum."""
        fuses = self.handoff.services.fuses()
        return TrustState(
            rot_keys=tuple((bytes.fromhex(key), revoked) for key, revoked in fuses.rot_keys),
            min_key_manifest_counter=0,
            min_security_counter=0,
            hardware_id=self.handoff.identity.hardware_id,
        )

    def status_document(self) -> dict[str, Any]:
        """The ``GET /api/v1/update/status`` body."""
        h = self.handoff
        st = self.status
        return {
            "state": st.state,
            "repository_url": self.repository_url(),
            "running": {
                "version": h.firmware.version,
                "slot": h.booted_slot,
                "trial": h.services.trial,  # live: false once confirmed
                "security_counter": h.security_counter,
            },
            "slots": [
                {
                    "slot": s.slot,
                    "state": s.state,
                    "version": s.version,
                    "security_counter": s.security_counter,
                }
                for s in h.slots
            ],
            "fused_counter": h.services.fuses().firmware_counter,
            # from the signed TUF metadata of newer releases, as of the last check
            "advisories": list(st.advisories),
            "available": None
            if st.available is None
            else {
                "target": st.available.target_path,
                "version": st.available.version,
                "security_counter": st.available.security_counter,
                "length": st.available.length,
            },
            "progress": None if st.progress is None else {"bytes": st.progress[0], "total": st.progress[1]},
            "last_check": st.last_check,
            "last_error": None
            if st.last_error is None
            else {"error": st.last_error[0], "message": st.last_error[1]},
            "metadata": metadata_summary(self.metadata_dir),
            # EN 303 645 5.3-4A: automatic checks, configurable (0 turns them off)
            "automatic_checks": {
                "enabled": self.config.check_interval > 0,
                "interval_s": self.config.check_interval,
            },
            "clock_floor": self.floor.read().isoformat(),
        }

