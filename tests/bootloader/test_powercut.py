"""Power cuts at every hardware operation of an update (MCUboot simulator style).

The cycle is: boot v1, write v2 to slot b, set it pending, boot (trial),
confirm. It is run once to count its flash/fuse operations, then once per
operation index N with the power cut at N (the operation does not happen),
and again with torn operations (a prefix lands). After each cut the device
must boot a verified image (v1 or v2), the fused counter must never
decrease nor exceed the counter of a confirmed image, and the device must
still be able to finish the update.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bootloader.chain import boot
from bootloader.hardware import PowerCutInjector
from bootloader.provision import ProvisionKeys
from bootloader.slots import read_control
from bootloader.unit import Device
from common.errors import PowerCut
from tests.bootloader.conftest import NOW, Factory


def update_cycle(device: Device, image_v2: bytes) -> None:
    services = boot(device, now=NOW).handoff.services
    services.write_image("b", image_v2)
    services.set_pending("b")
    trial = boot(device, now=NOW)  # the reboot into the trial
    assert trial.handoff.trial
    trial.handoff.services.confirm()


def count_operations(factory: Factory, image_v2: bytes) -> int:
    counter = PowerCutInjector()
    update_cycle(factory.device().power_on(injector=counter), image_v2)
    return counter.operations


def assert_counter_backed_by_a_confirmed_image(device: Device) -> None:
    fused = device.fuses.read().firmware_counter
    assert fused in (1, 2)
    if fused == 2:  # only a confirmed v2 may have moved the fuses
        view, _ = read_control(device.flash)
        assert view is not None
        assert (view.current.active, view.current.trial_state) == ("b", "confirmed")


def recover_and_finish(device: Device, image_v2: bytes) -> None:
    """Boot after the cut, check invariants, then complete the update."""
    fused_before = device.fuses.read().firmware_counter
    outcome = boot(device, now=NOW)
    version = outcome.firmware.version
    assert version in ("1.0.0", "2.0.0")
    assert outcome.payload.manifest.version == version  # a verified, loadable payload
    fused = device.fuses.read().firmware_counter
    assert fused >= fused_before
    assert_counter_backed_by_a_confirmed_image(device)
    handoff = outcome.handoff
    if handoff.trial:
        handoff.services.confirm()
    elif version == "1.0.0":
        handoff.services.write_image("b", image_v2)
        handoff.services.set_pending("b")
        boot(device, now=NOW).handoff.services.confirm()
    final = boot(device.power_on(), now=NOW)
    assert final.summary == "booted slot b, firmware 2.0.0 (security counter 2)"
    assert device.fuses.read().firmware_counter == 2


@pytest.mark.parametrize("torn", [False, True], ids=["cut", "torn"])
def test_power_cut_at_every_operation_of_an_update_leaves_a_bootable_device(
    factory: Factory, image_v2: bytes, torn: bool
) -> None:
    total = count_operations(factory, image_v2)
    assert total >= 10  # erases and writes of slot b, two boot-control updates, the fuse burn
    for n in range(1, total + 1):
        device = factory.device().power_on(injector=PowerCutInjector(at_operation=n, torn=torn))
        with pytest.raises(PowerCut):
            update_cycle(device, image_v2)
        device = device.power_on()  # power back on, no injector
        assert_counter_backed_by_a_confirmed_image(device)
        recover_and_finish(device, image_v2)


def test_cut_between_confirm_and_fuse_burn_is_completed_at_next_boot(
    factory: Factory, image_v2: bytes
) -> None:
    total = count_operations(factory, image_v2)  # the last operation is the fuse burn
    device = factory.device().power_on(injector=PowerCutInjector(at_operation=total))
    with pytest.raises(PowerCut):
        update_cycle(device, image_v2)
    device = device.power_on()
    assert device.fuses.read().firmware_counter == 1
    view, _ = read_control(device.flash)
    assert view is not None and view.current.trial_state == "confirmed"
    outcome = boot(device, now=NOW)
    assert outcome.summary == "booted slot b, firmware 2.0.0 (security counter 2)"
    assert "bootloader: fused firmware counter advanced 1 -> 2" in outcome.log_lines
    assert device.fuses.read().firmware_counter == 2


def test_power_cut_during_a_trial_boot_write_keeps_v1_or_runs_the_trial(
    factory: Factory, image_v2: bytes
) -> None:
    device = factory.device()
    services = boot(device, now=NOW).handoff.services
    services.write_image("b", image_v2)
    services.set_pending("b")
    for torn in (False, True):
        cut = device.power_on(injector=PowerCutInjector(at_operation=1, torn=torn))
        with pytest.raises(PowerCut):
            boot(cut, now=NOW)  # the attempt counter write is cut
        # The old record is intact: the trial is still pending, nothing was lost.
        view, _ = read_control(device.flash)
        assert view is not None and view.current.trial_state == "pending"
    assert boot(device.power_on(), now=NOW).handoff.trial


# -- issue 13 defect 7: both boot-control copies, and power cuts during provisioning ----


def flip_control_bit(device: Device, copy: int) -> None:
    """One flipped bit in a boot-control copy (a NOR cell going bad, or an attacker)."""
    from bootloader.bootctl import RECORD_SIZE

    sector = device.flash.geometry.sector_size
    record = bytearray(device.flash.read("boot-control", copy * sector, RECORD_SIZE))
    record[9] ^= 0x01  # inside the sequence number: the checksum no longer matches
    device.flash.erase("boot-control", copy)
    device.flash.write("boot-control", copy * sector, bytes(record))


def test_provisioning_writes_both_boot_control_copies(factory: Factory) -> None:
    from bootloader.bootctl import RECORD_SIZE, parse_record

    device = factory.device()
    sector = device.flash.geometry.sector_size
    copies = [parse_record(device.flash.read("boot-control", i * sector, RECORD_SIZE)) for i in (0, 1)]
    assert [(c.active, c.trial_state) for c in copies] == [("a", "confirmed"), ("a", "confirmed")]


@pytest.mark.parametrize("copy", [0, 1])
def test_one_flipped_copy_after_provisioning_keeps_trial_semantics(
    factory: Factory, image_v2: bytes, copy: int
) -> None:
    device = factory.device()
    flip_control_bit(device, copy)
    first = boot(device, now=NOW)
    assert first.handoff.booted_slot == "a" and not first.handoff.trial
    assert first.handoff.notices[0].startswith("boot-control fell back to copy")
    services = first.handoff.services
    services.write_image("b", image_v2)
    services.set_pending("b")
    trial = boot(device, now=NOW)
    assert trial.handoff.booted_slot == "b" and trial.handoff.trial  # a real trial, not a permanent image
    assert trial.handoff.notices == ()  # repaired at the first boot
    reverted = boot(device, now=NOW)  # v2 never confirmed: back to a
    assert reverted.handoff.booted_slot == "a" and not reverted.handoff.trial
    assert device.fuses.read().firmware_counter == 1


def test_a_corrupt_newer_copy_is_a_boot_notice(factory: Factory, image_v2: bytes) -> None:
    device = factory.device()
    services = boot(device, now=NOW).handoff.services
    services.write_image("b", image_v2)
    services.set_pending("b")
    view, _ = read_control(device.flash)
    assert view is not None and view.current.trial_state == "pending"
    newer = 1 - view.next_copy
    flip_control_bit(device, newer)
    outcome = boot(device, now=NOW)
    assert outcome.handoff.booted_slot == "a" and not outcome.handoff.trial
    notice = outcome.handoff.notices[0]
    assert notice.startswith(f"boot-control fell back to copy {view.next_copy}") and f"copy {newer}:" in notice


def count_provisioning_operations(make: Callable[[PowerCutInjector | None], None]) -> int:
    counter = PowerCutInjector()
    make(counter)
    return counter.operations


def test_power_cut_at_every_provisioning_operation(
    tmp_path: Path, provision_keys: ProvisionKeys, image_v1: bytes, password_hash: str
) -> None:
    """After a cut anywhere in provisioning's hardware operations the unit boots verified
    slot a as a confirmed image (no trial) or refuses with a typed error; a cut during or
    after the boot-control writes always leaves a bootable unit."""
    from bootloader.provision import provision_device
    from common.errors import BootloaderError
    from tests.bootloader.conftest import BOARD, NOW_DT

    uds = bytes(range(32))  # the same unit every time, so the identity written once matches
    devices: list[Device] = []

    def make(injector: PowerCutInjector | None) -> None:
        device = Device.in_memory(tmp_path, board=BOARD, injector=injector)
        devices.append(device)
        provision_device(
            device, keys=provision_keys, firmware_image=image_v1, serial="RCTEST000002",
            initial_password_hash=password_hash, now=NOW_DT, uds=uds,
        )  # fmt: skip

    total = count_provisioning_operations(make)  # also writes the identity files
    outcomes: list[str] = []
    for n in range(1, total + 1):
        for torn in (False, True):
            with pytest.raises(PowerCut):
                make(PowerCutInjector(at_operation=n, torn=torn))
            device = devices[-1].power_on()
            try:
                outcome = boot(device, now=NOW)
            except BootloaderError:
                outcomes.append("refused")
                continue
            outcomes.append("booted")
            assert outcome.handoff.booted_slot == "a" and not outcome.handoff.trial
            assert outcome.firmware.version == "1.0.0"
            view, _ = read_control(device.flash)
            assert view is not None and view.current.active == "a" and view.current.pending is None
            assert view.current.trial_state in ("confirmed", "none")  # "none": rebuilt, no trial
    assert "booted" in outcomes and outcomes[-4:] == ["booted"] * 4  # cuts in the last writes
