"""Which slot boots: the bootloader's decision as a pure function.

Input: the boot-control record (or ``None`` when both copies are unreadable)
and the verification status of both slots (each verified exactly as it
would be booted: signature, key manifest, hardware id, fused counters).
Output: a :class:`BootDecision`: the slot, whether it is a trial, the
boot-control update to persist *before* jumping to it, whether the fused
counters must be brought up to the booted image (it is the confirmed active
image), and notices for the audit log. Raises :class:`NoBootableSlot`
(recovery) when no slot verifies.

Rules (MCUboot test/confirm semantics):

1. A ``pending`` or ``trial-booted`` trial with attempts left boots as a
   trial; one attempt is spent and persisted first.
2. A trial with no attempts left was not confirmed: revert to ``active``.
   A trial whose image does not verify is abandoned the same way.
3. Otherwise ``active`` boots; if it does not verify, the other slot does.
4. Both copies of boot-control unreadable: no trial; the newest valid slot
   (by security counter, then version) boots and boot-control is rewritten.

Example::

    decision = decide_boot(control, {"a": status_a, "b": status_b})
    if decision.control_update is not None:
        write_boot_control(decision.control_update)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from bootloader.bootctl import BootControl
from common.errors import NoBootableSlot
from common.handoff import Slot, SlotStatus

SLOTS: tuple[Slot, Slot] = ("a", "b")


def other_slot(slot: Slot) -> Slot:
    return "b" if slot == "a" else "a"


@dataclass(frozen=True)
class BootDecision:
    slot: Slot
    trial: bool  # booted as a trial the firmware must confirm
    control_update: BootControl | None  # persist before jumping (the writer assigns seq)
    advance_fuses: bool  # the confirmed active image boots: bring fused counters up to it
    notices: tuple[str, ...]


def version_key(version: str | None) -> tuple[int, ...]:
    """``"1.10.2"`` -> ``(1, 10, 2)``; non-numeric parts sort lowest."""
    if version is None:
        return ()
    parts: list[int] = []
    for part in version.split("+", 1)[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else -1)
    return tuple(parts)


def _describe(status: SlotStatus) -> str:
    return f"firmware {status.version} (security counter {status.security_counter})"


def decide_boot(
    control: BootControl | None,
    slots: Mapping[Slot, SlotStatus],
    *,
    control_problem: str | None = None,
    superseded: Collection[Slot] = (),
) -> BootDecision:
    """``superseded``: slots refused only for a security counter below the fuses (an
    old image left behind by an update): not worth a notice unless it was meant to boot."""
    notices = [
        f"slot {slot} rejected: {slots[slot].reason}"
        for slot in SLOTS
        if slots[slot].state == "invalid" and slot not in superseded
    ]
    valid = [slots[slot] for slot in SLOTS if slots[slot].state == "valid"]
    if not valid:
        raise NoBootableSlot({slot: slots[slot].reason or slots[slot].state for slot in SLOTS})

    if control is None:  # rule 4
        best = max(valid, key=lambda s: (s.security_counter or 0, version_key(s.version)))
        notices.append(
            f"boot-control unreadable ({control_problem or 'both copies invalid'}): "
            f"booting the newest valid slot {best.slot}, {_describe(best)}"
        )
        fresh = BootControl(seq=0, active=best.slot, last_confirmed=best.slot)
        return BootDecision(best.slot, False, fresh, False, tuple(notices))

    update: BootControl | None = None
    if control.trial_state in ("pending", "trial-booted") and control.pending is not None:
        trial_slot = control.pending
        if trial_slot == control.active:
            notices.append(
                f"boot-control names slot {trial_slot} both active and pending: trial ignored"
            )
            control = update = control.reverted()
        elif slots[trial_slot].state != "valid":  # rule 2
            notices.append(
                f"trial of slot {trial_slot} abandoned, its image does not verify: "
                f"staying on slot {control.active}"
            )
            control = update = control.reverted()
        elif control.attempts_left == 0:  # rule 2
            notices.append(
                f"trial of slot {trial_slot}, {_describe(slots[trial_slot])}, was not confirmed: "
                f"reverting to slot {control.active}"
            )
            control = update = control.reverted()
        else:  # rule 1
            return BootDecision(trial_slot, True, control.trial_started(), False, tuple(notices))

    primary = control.active  # rule 3
    if slots[primary].state == "valid":
        confirmed = control.trial_state == "confirmed"
        return BootDecision(primary, False, update, confirmed, tuple(notices))
    fallback = other_slot(primary)
    notices.append(
        f"active slot {primary} does not verify: falling back to slot {fallback}, "
        f"{_describe(slots[fallback])}"
    )
    return BootDecision(fallback, False, update, False, tuple(notices))
