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

import pytest

from bootloader.chain import boot
from bootloader.hardware import PowerCutInjector
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
