"""Boot-control record format and the two-copy update rule (bootloader/bootctl.py)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootloader.bootctl import (
    RECORD_SIZE,
    BootControl,
    encode_record,
    next_record,
    parse_record,
    read_boot_control,
)
from common.errors import BootControlError

ERASED = b"\xff" * RECORD_SIZE


def test_record_round_trips() -> None:
    control = BootControl(seq=7, active="a", last_confirmed="a").with_pending("b", 3)
    assert parse_record(encode_record(control)) == control
    assert len(encode_record(control)) == RECORD_SIZE


def test_flipped_bit_in_a_record_is_detected() -> None:
    record = bytearray(encode_record(BootControl(seq=1, active="a")))
    record[6] ^= 0x01
    with pytest.raises(BootControlError, match="checksum does not match"):
        parse_record(bytes(record))


def test_erased_copy_is_reported_as_erased() -> None:
    with pytest.raises(BootControlError, match="copy is erased"):
        parse_record(ERASED)


def test_newest_valid_copy_wins_and_the_older_is_overwritten_next() -> None:
    old = encode_record(BootControl(seq=4, active="a"))
    new = encode_record(BootControl(seq=5, active="b", trial_state="confirmed"))
    view = read_boot_control((old, new))
    assert view.current.active == "b" and view.next_copy == 0
    view = read_boot_control((new, old))
    assert view.current.seq == 5 and view.next_copy == 1


def test_torn_update_leaves_the_other_copy_in_charge() -> None:
    good = encode_record(BootControl(seq=9, active="a"))
    torn = encode_record(BootControl(seq=10, active="b"))[:16] + ERASED[16:]
    view = read_boot_control((torn, good))
    assert view.current.seq == 9 and view.next_copy == 0
    assert view.problems and "copy 0" in view.problems[0]


def test_both_copies_invalid_raises_with_both_reasons() -> None:
    with pytest.raises(BootControlError, match=r"unreadable: copy 0: .*erased; copy 1: .*magic"):
        read_boot_control((ERASED, b"JUNK" + ERASED[4:]))


def test_next_record_increments_the_sequence() -> None:
    view = read_boot_control((encode_record(BootControl(seq=2, active="a")), ERASED))
    index, record = next_record(view, view.current.with_pending("b"))
    assert index == 1
    assert parse_record(record).seq == 3 and parse_record(record).trial_state == "pending"
    index, record = next_record(None, BootControl(seq=0, active="b"))
    assert index == 0 and parse_record(record).seq == 1


def test_trial_transitions() -> None:
    control = BootControl(seq=1, active="a", trial_state="confirmed", last_confirmed="a")
    pending = control.with_pending("b", 2)
    started = pending.trial_started()
    assert (started.trial_state, started.attempts_left) == ("trial-booted", 1)
    confirmed = started.confirmed("b")
    assert (confirmed.active, confirmed.pending, confirmed.trial_state) == ("b", None, "confirmed")
    reverted = started.reverted()
    assert (reverted.active, reverted.pending, reverted.trial_state) == ("a", None, "none")


def test_pending_state_without_slot_is_refused() -> None:
    with pytest.raises(BootControlError, match="needs a pending slot"):
        BootControl(seq=1, active="a", trial_state="pending")


@given(st.binary(min_size=0, max_size=2 * RECORD_SIZE))
def test_parser_never_crashes_on_junk(data: bytes) -> None:
    with contextlib.suppress(BootControlError):
        parse_record(data)
