"""What the update client decides, without I/O: its configuration, the candidate
a repository offers, and the checks on it (EN 303 645 5.3, TUF 5.3-5.7).

:func:`select_candidate` picks the highest version under ``<hardware_id>/``;
a candidate for another model or below the fused security counter is refused
(:class:`WrongHardwareId`, :class:`SecurityCounterDowngrade`);
:func:`check_image` checks an image's own fields again before any write.
:func:`effective_time` is the clock the metadata is judged by: ``max(clock,
floor)``, so turning the clock back cannot revive expired metadata.

Example::

    candidate = select_candidate(offered, current_version="1.0.0",
                                 hardware_id=hw, fused_counter=1, max_image_size=64 << 20)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from tuf.api.metadata import TargetFile  # type: ignore[attr-defined]

from common.errors import ImageFormatError
from common.image import (
    ImageFacts,
    ImageVersion,
    image_facts,
    unsafe_image_facts,
)

from .errors import (
    ImageRejected,
    ImageTooLarge,
    SecurityCounterDowngrade,
    UntrustedMetadata,
    WrongHardwareId,
)
from .fetcher import FetcherConfig
from .rollout import Rollout, parse_rollout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpdateClientConfig:
    repository_url: str  # https://host:port; metadata under /metadata/, targets under /targets/
    check_interval: float = 24 * 3600.0  # seconds between automatic checks; 0 = off
    check_jitter: float = 0.1  # fraction of the interval, spreads a fleet's checks
    auto_install: bool = False  # an automatic check that finds an admitted release installs it
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
    rollout: Rollout | None = None  # staged rollout rule from the signed target (None: everyone)


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
        rollout=parse_rollout(custom, target.path),
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
    serial: str | None = None,
) -> Candidate | None:
    """The newest acceptable image for this device, None if up to date; raises a refusal.

    With ``serial``, a release under a staged rollout is considered only when its signed
    rule admits this unit (:mod:`.rollout`)."""
    mine = [c for c in offered if c.target_path.startswith(f"{hardware_id}/")]
    if serial is not None:
        mine = [c for c in mine if c.rollout is None or c.rollout.admits(serial)]
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


def read_image_facts(data: bytes, *, unsafe_trust_header: bool = False) -> ImageFacts:
    """Hardware id, version and counter of an image (strict format check only; hash and
    signature are verified by ``services.set_pending`` as the bootloader does).

    ``unsafe_trust_header`` (flaw ``unsigned-update-accepted``) reads the header and
    protected TLVs of anything shaped like an image.
    """
    try:
        return image_facts(data)
    except ImageFormatError as exc:
        if not unsafe_trust_header:
            raise ImageRejected(f"not a valid firmware image: {exc}") from exc
    try:
        return unsafe_image_facts(data)
    except ImageFormatError as exc:
        raise ImageRejected(f"not a firmware image: {exc}") from exc


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


