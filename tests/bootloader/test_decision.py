"""The bootloader's slot decision as a pure function (bootloader/decision.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bootloader.bootctl import BootControl, TrialState
from bootloader.decision import SLOTS, decide_boot, version_key
from common.errors import NoBootableSlot
from common.handoff import Slot, SlotStatus

V1A = SlotStatus("a", "valid", "1.0.0", 1)
V2B = SlotStatus("b", "valid", "2.0.0", 2)
BAD_B = SlotStatus("b", "invalid", reason="image hash mismatch")
EMPTY_B = SlotStatus("b", "empty")
CONFIRMED_A = BootControl(seq=1, active="a", trial_state="confirmed", last_confirmed="a")


def test_confirmed_active_slot_boots_without_writing_and_completes_fuses() -> None:
    decision = decide_boot(CONFIRMED_A, {"a": V1A, "b": EMPTY_B})
    assert (decision.slot, decision.trial, decision.control_update) == ("a", False, None)
    assert decision.advance_fuses and decision.notices == ()


def test_pending_trial_boots_and_spends_one_attempt() -> None:
    decision = decide_boot(CONFIRMED_A.with_pending("b", 2), {"a": V1A, "b": V2B})
    assert (decision.slot, decision.trial, decision.advance_fuses) == ("b", True, False)
    assert decision.control_update is not None
    assert decision.control_update.trial_state == "trial-booted"
    assert decision.control_update.attempts_left == 1


def test_unconfirmed_trial_with_no_attempts_reverts() -> None:
    control = CONFIRMED_A.with_pending("b", 1).trial_started()
    decision = decide_boot(control, {"a": V1A, "b": V2B})
    assert (decision.slot, decision.trial) == ("a", False)
    assert decision.control_update is not None and decision.control_update.pending is None
    assert decision.notices == (
        "trial of slot b, firmware 2.0.0 (security counter 2), was not confirmed: reverting to slot a",
    )


def test_invalid_trial_image_is_abandoned_with_a_notice() -> None:
    decision = decide_boot(CONFIRMED_A.with_pending("b"), {"a": V1A, "b": BAD_B})
    assert decision.slot == "a" and not decision.trial
    assert decision.notices[0] == "slot b rejected: image hash mismatch"
    assert "trial of slot b abandoned" in decision.notices[1]
    assert decision.control_update is not None and decision.control_update.trial_state == "none"


def test_invalid_active_slot_falls_back_without_advancing_fuses() -> None:
    control = BootControl(seq=3, active="b", trial_state="confirmed", last_confirmed="b")
    decision = decide_boot(control, {"a": V1A, "b": BAD_B})
    assert decision.slot == "a" and not decision.advance_fuses
    assert decision.notices[-1].startswith("active slot b does not verify: falling back to slot a")


def test_unreadable_boot_control_boots_the_newest_valid_slot() -> None:
    decision = decide_boot(None, {"a": V1A, "b": V2B}, control_problem="both erased")
    assert decision.slot == "b" and not decision.trial and not decision.advance_fuses
    assert decision.control_update == BootControl(seq=0, active="b", last_confirmed="b")
    assert "boot-control unreadable (both erased)" in decision.notices[0]


def test_no_valid_slot_raises_with_reasons() -> None:
    with pytest.raises(NoBootableSlot) as info:
        decide_boot(CONFIRMED_A, {"a": SlotStatus("a", "invalid", reason="bad signature"), "b": EMPTY_B})
    assert info.value.reasons == {"a": "bad signature", "b": "empty"}
    assert str(info.value) == "recovery: no bootable slot (slot a: bad signature; slot b: empty)"


def test_version_key_orders_numerically() -> None:
    assert version_key("1.10.0") > version_key("1.9.9")
    assert version_key(None) < version_key("0.0.1")


slots_st: st.SearchStrategy[Slot] = st.sampled_from(SLOTS)
status_st = st.sampled_from(["empty", "valid", "invalid"])
STATES: tuple[TrialState, ...] = ("none", "pending", "trial-booted", "confirmed")


@st.composite
def controls(draw: st.DrawFn) -> BootControl | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None
    state = draw(st.sampled_from(STATES))
    pending = draw(slots_st) if state in ("pending", "trial-booted") else draw(st.none() | slots_st)
    return BootControl(
        seq=draw(st.integers(0, 10)),
        active=draw(slots_st),
        pending=pending,
        trial_state=state,
        attempts_left=draw(st.integers(0, 3)),
    )


@given(control=controls(), state_a=status_st, state_b=status_st)
def test_decision_only_boots_valid_slots_and_only_advances_for_the_confirmed_active(
    control: BootControl | None, state_a: str, state_b: str
) -> None:
    def status(slot: Slot, state: str, counter: int) -> SlotStatus:
        if state == "valid":
            return SlotStatus(slot, "valid", f"{counter}.0.0", counter)
        return SlotStatus(slot, "invalid", reason="bad") if state == "invalid" else SlotStatus(slot, "empty")

    slots: dict[Slot, SlotStatus] = {"a": status("a", state_a, 1), "b": status("b", state_b, 2)}
    try:
        decision = decide_boot(control, slots)
    except NoBootableSlot as exc:
        assert state_a != "valid" and state_b != "valid"
        assert set(exc.reasons) == {"a", "b"}
        return
    assert slots[decision.slot].state == "valid"
    if decision.trial:
        assert control is not None and control.pending == decision.slot and control.attempts_left > 0
        assert decision.control_update is not None and decision.control_update.attempts_left == control.attempts_left - 1
    if decision.advance_fuses:
        assert control is not None and control.trial_state == "confirmed"
        assert decision.slot == control.active and not decision.trial
