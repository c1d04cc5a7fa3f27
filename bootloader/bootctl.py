"""Boot-control state: which slot boots, and the state of a trial (pure format).

The boot-control partition has two sectors, each holding one copy of a
48-byte record. An update writes the copy with the *older* sequence number
(erase its sector, write the new record with ``seq + 1``), so a power cut
in the middle (a torn erase or a torn write) leaves the other copy intact:
readers take the valid copy with the highest sequence number.

Trial semantics (MCUboot's test/confirm): ``set_pending`` marks the other
slot ``pending`` with ``attempts_left`` boots; each boot of a pending trial
spends one attempt and moves to ``trial-booted``; ``confirm`` makes it the
``active`` slot in state ``confirmed``. A trial that is ``trial-booted`` with
no attempts left was not confirmed: the bootloader reverts to ``active``.

Example::

    record = encode_record(BootControl(seq=1, active="a"))
    view = read_boot_control((record, b"\\xff" * 48))
    assert view.current.active == "a" and view.next_copy == 1
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, replace
from typing import Literal

from common.errors import BootControlError
from common.handoff import Slot

TrialState = Literal["none", "pending", "trial-booted", "confirmed"]

MAGIC = b"RCBC"
FORMAT_VERSION = 1
DEFAULT_TRIAL_ATTEMPTS = 1  # MCUboot test swap: one boot to confirm, then revert

# Record layout, little endian:
_BODY_FMT = (
    "<"
    "4s"  # magic b"RCBC"
    "B"  # format version (1)
    "Q"  # sequence number: the copy with the higher one is current
    "B"  # active slot: 0 = a, 1 = b (the last confirmed slot, boots normally)
    "B"  # pending slot: 0 = a, 1 = b, 0xFF = none
    "B"  # trial state: 0 none, 1 pending, 2 trial-booted, 3 confirmed
    "B"  # boot attempts left for the pending trial
    "B"  # last confirmed slot: 0 = a, 1 = b, 0xFF = none
    "6x"  # reserved, zero: pads the body to 24 bytes
)
BODY_SIZE = 24
DIGEST_SIZE = 32  # SHA-256 over the body
RECORD_SIZE = BODY_SIZE + DIGEST_SIZE
assert struct.calcsize(_BODY_FMT) == BODY_SIZE
assert RECORD_SIZE % 8 == 0  # a whole number of flash program units

_SLOT_CODE: dict[Slot, int] = {"a": 0, "b": 1}
_CODE_SLOT: dict[int, Slot] = {0: "a", 1: "b"}
_NONE = 0xFF
_STATE_CODE: dict[TrialState, int] = {"none": 0, "pending": 1, "trial-booted": 2, "confirmed": 3}
_CODE_STATE: dict[int, TrialState] = {v: k for k, v in _STATE_CODE.items()}


@dataclass(frozen=True)
class BootControl:
    seq: int
    active: Slot
    pending: Slot | None = None
    trial_state: TrialState = "none"
    attempts_left: int = 0
    last_confirmed: Slot | None = None

    def __post_init__(self) -> None:
        if self.trial_state in ("pending", "trial-booted") and self.pending is None:
            raise BootControlError(f"boot-control state {self.trial_state!r} needs a pending slot")
        if not 0 <= self.attempts_left <= 0xFF:
            raise BootControlError(f"boot attempts {self.attempts_left} out of range 0..255")
        if not 0 <= self.seq < 2**64:
            raise BootControlError(f"boot-control sequence {self.seq} out of range")

    def with_pending(self, slot: Slot, attempts: int = DEFAULT_TRIAL_ATTEMPTS) -> BootControl:
        """``boot_set_pending``: boot ``slot`` as a trial at the next boot."""
        return replace(self, pending=slot, trial_state="pending", attempts_left=attempts)

    def trial_started(self) -> BootControl:
        """The bootloader spends one attempt and jumps to the trial image."""
        assert self.pending is not None and self.attempts_left > 0
        return replace(self, trial_state="trial-booted", attempts_left=self.attempts_left - 1)

    def confirmed(self, slot: Slot) -> BootControl:
        """``boot_set_confirmed``: ``slot`` becomes the active, confirmed slot."""
        return BootControl(seq=self.seq, active=slot, trial_state="confirmed", last_confirmed=slot)

    def reverted(self) -> BootControl:
        """The trial is abandoned; ``active`` keeps booting."""
        return replace(self, pending=None, trial_state="none", attempts_left=0)


def encode_record(control: BootControl) -> bytes:
    body = struct.pack(
        _BODY_FMT,
        MAGIC,
        FORMAT_VERSION,
        control.seq,
        _SLOT_CODE[control.active],
        _NONE if control.pending is None else _SLOT_CODE[control.pending],
        _STATE_CODE[control.trial_state],
        control.attempts_left,
        _NONE if control.last_confirmed is None else _SLOT_CODE[control.last_confirmed],
    )
    return body + hashlib.sha256(body).digest()


def parse_record(data: bytes) -> BootControl:
    """Parse one copy strictly; raises :class:`BootControlError` saying what is wrong."""
    if len(data) < RECORD_SIZE:
        raise BootControlError(f"boot-control record is {len(data)} bytes, expected {RECORD_SIZE}")
    body, digest = data[:BODY_SIZE], data[BODY_SIZE:RECORD_SIZE]
    if body == b"\xff" * BODY_SIZE:
        raise BootControlError("boot-control copy is erased")
    magic, version, seq, active, pending, state, attempts, last = struct.unpack(_BODY_FMT, body)
    if magic != MAGIC:
        raise BootControlError(f"boot-control magic is {magic!r}, expected {MAGIC!r}")
    if hashlib.sha256(body).digest() != digest:
        raise BootControlError("boot-control record checksum does not match (torn or corrupt)")
    if version != FORMAT_VERSION:
        raise BootControlError(f"boot-control format {version}, expected {FORMAT_VERSION}")
    if body[-6:] != bytes(6):
        raise BootControlError("boot-control reserved bytes are not zero")
    if active not in _CODE_SLOT:
        raise BootControlError(f"boot-control active slot code {active} is not a slot")
    if pending != _NONE and pending not in _CODE_SLOT:
        raise BootControlError(f"boot-control pending slot code {pending} is not a slot")
    if last != _NONE and last not in _CODE_SLOT:
        raise BootControlError(f"boot-control last confirmed slot code {last} is not a slot")
    if state not in _CODE_STATE:
        raise BootControlError(f"boot-control trial state code {state} is unknown")
    return BootControl(
        seq=seq,
        active=_CODE_SLOT[active],
        pending=None if pending == _NONE else _CODE_SLOT[pending],
        trial_state=_CODE_STATE[state],
        attempts_left=attempts,
        last_confirmed=None if last == _NONE else _CODE_SLOT[last],
    )


@dataclass(frozen=True)
class BootControlView:
    current: BootControl  # the valid copy with the highest sequence number
    next_copy: int  # which copy (0 or 1) the next update overwrites
    problems: tuple[str, ...]  # why a copy was ignored, e.g. a torn update


def read_boot_control(copies: tuple[bytes, bytes]) -> BootControlView:
    """Resolve the two copies; raises :class:`BootControlError` when neither is valid."""
    parsed: list[BootControl | None] = []
    problems: list[str] = []
    for index, data in enumerate(copies):
        try:
            parsed.append(parse_record(data))
        except BootControlError as exc:
            parsed.append(None)
            problems.append(f"copy {index}: {exc}")
    valid = [(rec.seq, index, rec) for index, rec in enumerate(parsed) if rec is not None]
    if not valid:
        raise BootControlError("boot-control unreadable: " + "; ".join(problems))
    _seq, index, record = max(valid)
    return BootControlView(current=record, next_copy=1 - index, problems=tuple(problems))


def next_record(view: BootControlView | None, update: BootControl) -> tuple[int, bytes]:
    """The copy index to overwrite and the encoded record for ``update`` (seq assigned here)."""
    if view is None:  # both copies unreadable: start over in copy 0
        return 0, encode_record(replace(update, seq=1))
    return view.next_copy, encode_record(replace(update, seq=view.current.seq + 1))
