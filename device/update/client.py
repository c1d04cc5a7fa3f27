"""The device's update flow (EN 303 645 5.3, TUF 5.3-5.7): :class:`UpdateClient`.

1. ``check()``: refresh the TUF metadata (root rotation, timestamp, snapshot,
   targets, the ``models-<hw>`` delegation) and pick a candidate
   (:mod:`.policy`).
2. ``install()``: stream it straight into the inactive slot (resumable;
   length and hashes checked by python-tuf over the bytes on flash), check the
   image's own fields again, verify it exactly as the bootloader will and mark
   it pending (``services.set_pending``), then ask for a reboot. The new
   firmware confirms itself when healthy (``services.confirm()``); an
   unconfirmed trial reverts.

The pure decisions are in :mod:`.policy`, python-tuf glue in
:mod:`.tufclient`, what is kept between operations in :mod:`.state`.

Example::

    client = UpdateClient(handoff, config, runtime_dir=d, clock=time.time)
    result = client.check(); client.install()
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tuf.api import exceptions
from tuf.api.metadata import Root, TargetFile  # type: ignore[attr-defined]
from tuf.ngclient import Updater  # type: ignore[attr-defined]

from common.errors import (
    BootError,
    FlashError,
    HardwareIdMismatch,
    PowerCut,
    SecurityCounterRollback,
)
from common.flaws import UnsafeFlaws
from common.handoff import BootHandoff, Slot, SlotImageWriter, StreamedDigests
from common.image import ImageFacts
from common.verify import TrustState, verify_firmware_image

from .errors import (
    ImageRejected,
    ImageTooLarge,
    NoUpdate,
    SecurityCounterDowngrade,
    TrialNotConfirmed,
    UntrustedMetadata,
    UpdateBusy,
    UpdateError,
    WrongHardwareId,
)
from .fetcher import HTTPSFetcher
from .policy import (
    Candidate,
    CheckResult,
    UpdateClientConfig,
    advisories_affecting,
    check_image,
    effective_time,
    parse_version,
    read_image_facts,
    select_candidate,
)
from .rollout import cohort_point
from .state import ClockFloor, SlotDownload, State, UpdateStatus
from .tufclient import (
    build_updater,
    list_offered,
    metadata_summary,
    translate,
    tuf_config,
    verified,
)

log = logging.getLogger(__name__)


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
            self.fetcher.close()  # keep-alive within one operation, no socket left between them
            self._lock.release()
        return result

    # -------------------------------------------------------------- operations

    def _check(self) -> tuple[Updater, CheckResult]:
        reference = self._reference_time()
        updater = self._updater(reference)
        try:
            updater.refresh()
            offered = list_offered(updater, self.handoff.identity.hardware_id)
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
            serial=self.handoff.identity.serial,
        )
        self.status.rollout = rollout_view(offered, serial=self.handoff.identity.serial,
                                           current_version=self.handoff.firmware.version)
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
            data = self._download_to_slot(updater, info, slot)
            if data is None:  # checked in one pass as it was written
                self._install_streamed(slot, expected=candidate)
            else:
                self._install_bytes(data, expected=candidate, written_to=slot)
            return candidate

        result: Candidate = self._run("checking", action)
        return result

    def _target_url(self, updater: Updater, info: TargetFile) -> str:
        """The URL python-tuf's ``download_target`` would use (TUF 5.7.3: hash-prefixed
        names under consistent snapshots), from the root verified in this refresh."""
        root = verified(updater, Root.type)
        path = info.path
        if getattr(root, "consistent_snapshot", False):
            dirname, sep, basename = path.rpartition("/")
            path = f"{dirname}{sep}{next(iter(info.hashes.values()))}.{basename}"
        base = replace(self.config, repository_url=self.repository_url()).target_base_url
        return base + path

    def _download_to_slot(self, updater: Updater, info: TargetFile, slot: Slot) -> bytes | None:
        """Stream the target into ``slot`` (resuming a cut download) and check its length and
        hashes against the signed target.

        One pass: a download that started at byte 0 is hashed by the slot writer as
        it is programmed (the TUF hash, and the image hash the bootloader's check
        needs); then None is returned. A resumed download saw only its tail,
        so the slot is read back and python-tuf checks what is on flash; those
        bytes are returned. The flaw profiles that write unverified bytes take
        that path too. A target that does not match its signed length and hashes
        is erased: a refused download leaves the slot empty and is never resumed.
        """
        url = self._target_url(updater, info)
        services = self.handoff.services
        record = self.slot_download
        offset = record.resume_point(url, slot, info.length)
        writers: list[SlotImageWriter] = []

        @contextmanager
        def into_slot(start: int) -> Iterator[SlotImageWriter]:
            saved, saved_at = start, time.monotonic()

            def checkpoint(durable: int) -> None:  # called once the sector is on flash
                # Each save is a durable file write (two fsyncs): at most one per
                # SAVE_INTERVAL, so a cut costs a second of transfer, a fast one no fsync.
                nonlocal saved, saved_at
                if durable - saved >= SlotDownload.SAVE_EVERY:
                    now = time.monotonic()
                    if now - saved_at >= SlotDownload.SAVE_INTERVAL:
                        record.save(url, slot, durable)
                        saved, saved_at = durable, now

            writer = services.open_slot_writer(
                slot, offset=start, total=info.length, on_durable=checkpoint
            )
            writers.append(writer)
            try:
                yield writer
            except exceptions.DownloadError:
                record.save(url, slot, writer.durable)  # a cut transfer resumes from here
                raise
            # (a power cut runs no code at all: the last checkpoint stands)
            writer.finish()

        one_pass = not ({"unsigned-update-accepted", "rollback-accepted"} & set(self.flaws))
        try:
            self.fetcher.download_into(url, info.length, offset=offset, open_sink=into_slot)
            digests = writers[-1].digests if writers else None
            if one_pass and digests is not None and set(info.hashes) == {"sha256"}:
                _check_target_digests(info, digests)
                record.clear()
                return None
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
            facts = read_image_facts(data, unsafe_trust_header=skip_signature)
            check_image(
                facts,
                hardware_id=self.handoff.identity.hardware_id,
                fused_counter=0 if skip_rollback else services.fuses().firmware_counter,
            )
            if skip_rollback:
                if expected is not None and facts.version != expected.version:
                    raise ImageRejected(
                        f"image is version {facts.version}, TUF metadata announced {expected.version}"
                    )
            else:
                self._check_announced(facts, expected)
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

    def _install_streamed(self, slot: Slot, *, expected: Candidate) -> None:
        """Install what the download just wrote to ``slot``: the boot side verifies it exactly
        as the bootloader will, over the bytes on flash, signing over the image hash its
        writer computed as it programmed them (``BootServices.verify_slot``)."""
        self.status.state = "installing"
        services = self.handoff.services
        try:
            status = services.verify_slot(slot)
            facts = ImageFacts(
                self.handoff.identity.hardware_id, status.version or "", status.security_counter or 0
            )
            self._check_announced(facts, expected)
        except HardwareIdMismatch as exc:
            services.erase_slot(slot)
            raise WrongHardwareId(str(exc)) from exc
        except SecurityCounterRollback as exc:
            services.erase_slot(slot)
            raise SecurityCounterDowngrade(str(exc)) from exc
        except BootError as exc:
            services.erase_slot(slot)  # a refused image leaves the slot empty
            raise ImageRejected(f"slot {slot} does not verify: {exc}") from exc
        except UpdateError:
            services.erase_slot(slot)
            raise
        self._refuse_during_trial()
        try:
            services.set_pending(slot)  # verified above, and nothing has written the slot since
        except BootError as exc:
            services.erase_slot(slot)
            raise ImageRejected(f"slot {slot} does not verify: {exc}") from exc
        log.info("image %s written to slot %s and verified; trial boot pending", facts.version, slot)
        self.status.installed_slot = slot
        self.status.state = "pending-reboot"
        self.on_reboot()

    def _check_announced(self, facts: ImageFacts, expected: Candidate | None) -> None:
        """The image is what TUF announced, and newer than what runs."""
        if expected is not None and (
            facts.version != expected.version or facts.security_counter != expected.security_counter
        ):
            raise ImageRejected(
                f"image is version {facts.version} counter {facts.security_counter}, TUF "
                f"metadata announced {expected.version} counter {expected.security_counter}"
            )
        if "rollback-same-counter" in self.flaws:
            # UNSAFE flaw profile: anti-rollback judged on the security counter alone (check_image),
            # so an older version that shares the running counter is installed
            log.warning("UNSAFE flaw profile rollback-same-counter: version %s not compared", facts.version)
            return
        if parse_version(facts.version) <= parse_version(self.handoff.firmware.version):
            raise ImageRejected(
                f"image version {facts.version} is not newer than the running "
                f"{self.handoff.firmware.version}"
            )

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
            # the newest release's staged rollout (signed rule) and this unit's cohort
            "rollout": st.rollout,
        }


def rollout_view(offered: list[Candidate], *, serial: str, current_version: str) -> dict[str, Any] | None:
    """The staged rollout of the newest release offered for this model, as this unit sees it."""
    if not offered:
        return None
    newest = max(offered, key=lambda c: parse_version(c.version))
    if newest.rollout is None:
        return {"release": newest.version, "staged": False, "admitted": True}
    view: dict[str, Any] = {"release": newest.version, "staged": True, **newest.rollout.describe(serial)}
    view["installed"] = parse_version(current_version) >= parse_version(newest.version)
    view["cohort_point"] = round(cohort_point(serial, newest.rollout.salt), 4)
    return view


def _check_target_digests(info: TargetFile, digests: StreamedDigests) -> None:
    """TUF 5.7.3 over the digests computed as the target was written (python-tuf's
    ``verify_length_and_hashes`` without a second pass over the bytes)."""
    if digests.length != info.length:
        raise exceptions.LengthOrHashMismatchError(
            f"target {info.path} is {digests.length} bytes, the metadata says {info.length}"
        )
    expected = info.hashes["sha256"]
    if not hmac.compare_digest(digests.sha256.hex(), expected):
        raise exceptions.LengthOrHashMismatchError(
            f"target {info.path} has sha256 {digests.sha256.hex()}, the metadata says {expected}"
        )
