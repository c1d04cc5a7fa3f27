"""What the update client keeps: its state as the API reports it, the clock
floor that expired metadata cannot get under, and the checkpoint of a download
into a slot (so a cut transfer resumes where the flash says it stopped).

Example::

    floor = ClockFloor(runtime_dir / "update-clock.json", build_time=manifest.build_time)
    floor.raise_to(now)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from common.atomicfile import write_atomic
from common.handoff import Slot

from .policy import Candidate

log = logging.getLogger(__name__)


State = Literal[
    "idle", "checking", "available", "downloading", "installing", "pending-reboot", "error"
]




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
    ``SAVE_EVERY`` bytes but at most once per ``SAVE_INTERVAL`` seconds, and when a
    transfer fails), so it never claims more
    than the slot has; a stale, lower value only re-downloads a little. The
    URL is content-addressed (hash-prefixed target names), and anything else
    that writes the slot clears the record first. Whatever is resumed, the
    whole slot is checked against the signed length and hashes at the end.
    """

    SAVE_EVERY = 4 * 2**20  # bytes
    SAVE_INTERVAL = 1.0  # seconds of monotonic time between saves

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


@dataclass
class UpdateStatus:
    state: State = "idle"
    available: Candidate | None = None
    last_check: float | None = None  # seconds since the epoch
    last_error: tuple[str, str] | None = None  # (error class code, message)
    progress: tuple[int, int] | None = None  # (bytes, total)
    installed_slot: Slot | None = None
    advisories: tuple[dict[str, str], ...] = ()  # advisories affecting the running firmware
    rollout: dict[str, Any] | None = None  # the newest release's staged rollout, as this unit sees it


