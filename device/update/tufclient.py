"""python-tuf glue: one ``Updater`` construction for the firmware and for
``refcam tuf-client`` (the tuf-conformance command), the targets it offers,
and python-tuf's exceptions as update errors.

The trust anchor is ``bootstrap_root``: for the device, the root embedded in
the booted, secure-boot-verified firmware (``handoff.firmware.tuf_root``).
python-tuf 7 checks expiry against ``TrustedMetadataSet.reference_time`` (set
from the system clock when the ``Updater`` is built; there is no public
option): :func:`build_updater` replaces it with ``reference_time``.

Example::

    updater = build_updater(metadata_dir=d, metadata_base_url=url + "/metadata/",
                            target_base_url=url + "/targets/", target_dir=t,
                            bootstrap_root=handoff.firmware.tuf_root, fetcher=fetcher)
    updater.refresh()
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from tuf.api import exceptions
from tuf.api.metadata import Metadata, Targets  # type: ignore[attr-defined]
from tuf.ngclient import Updater, UpdaterConfig  # type: ignore[attr-defined]

from .errors import (
    ExpiredMetadata,
    UntrustedMetadata,
    UpdateError,
    UpdateTransportError,
)
from .fetcher import HTTPSFetcher
from .policy import Candidate, candidate_from_target, is_firmware_target

log = logging.getLogger(__name__)


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


def verified(updater: Updater, role: str) -> Any:
    """The ``Signed`` of ``role`` as python-tuf verified it in this refresh, or None.

    python-tuf 7 keeps the verified metadata in memory (``TrustedMetadataSet``)
    and has no public accessor for a delegated role's target list; reading it
    there, instead of parsing the files it persisted, uses exactly the bytes
    that were verified (no second parse, no window in which the file on disk
    could differ).
    """
    trusted = updater._trusted_set
    if not hasattr(trusted, "__getitem__"):
        raise UpdateError("this python-tuf has no TrustedMetadataSet lookup")
    try:
        return trusted[role]
    except KeyError:
        return None


def list_offered(updater: Updater, hardware_id: str) -> list[Candidate]:
    """Every target under ``<hardware_id>/`` in verified metadata, as candidates.

    The walk is python-tuf's (``get_targetinfo`` loads and verifies the
    delegated role); the verified roles it holds are then read to enumerate the
    names, and each name is looked up again through the walk.
    """
    updater.get_targetinfo(f"{hardware_id}/.refcam-probe")
    top = verified(updater, Targets.type)
    roles: list[str] = []
    if isinstance(top, Targets) and top.delegations is not None:
        roles = [name for name, _ in top.delegations.get_roles_for_target(f"{hardware_id}/x")]
    names: set[str] = set()
    for role in [Targets.type, *roles]:
        targets = verified(updater, role)
        if isinstance(targets, Targets):
            names.update(p for p in targets.targets if p.startswith(f"{hardware_id}/"))
    offered = []
    for name in sorted(names):
        info = updater.get_targetinfo(name)
        if info is not None and is_firmware_target(info):
            offered.append(candidate_from_target(info))
    return offered


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


