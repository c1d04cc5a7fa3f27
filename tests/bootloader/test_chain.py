"""The boot chain on simulated hardware: ROM, bootloader, trial/confirm, fallbacks."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bootloader.attestation import verify_evidence
from bootloader.bootctl import RECORD_SIZE
from bootloader.build import build_bootloader_image
from bootloader.chain import boot
from bootloader.hardware import PowerCutInjector
from bootloader.keys import KeySet, load_certificate, load_private_key
from bootloader.measured import reference_values_from_images, replay
from bootloader.provision import BOOTLOADER_MODULES
from bootloader.slots import check_slot, read_control, read_image, trust_state, write_partition
from bootloader.unit import Device
from common.errors import (
    AttestationError,
    BootError,
    BootloaderRejected,
    ImageFormatError,
    ImageVerificationError,
    NoBootableSlot,
    SecurityCounterRollback,
    UnknownSigningKey,
)
from common.handoff import SlotStatus
from common.image import sign_image
from common.verify import bootloader_manifest
from tests.bootloader.conftest import NOW, Build


def flipped(image: bytes, offset: int | None = None) -> bytes:
    """The image with one bit flipped (in the payload by default)."""
    data = bytearray(image)
    data[offset if offset is not None else len(image) // 2] ^= 0x01
    return bytes(data)


def install_confirmed_v2(device: Device, image_v2: bytes) -> Device:
    """Run a full update to v2 in slot b and confirm it; returns the powered-on device."""
    services = boot(device, now=NOW).handoff.services
    services.write_image("b", image_v2)
    services.set_pending("b")
    device = device.power_on()
    boot(device, now=NOW).handoff.services.confirm()
    return device.power_on()


def test_provisioned_device_boots_slot_a_with_a_full_handoff(device: Device) -> None:
    outcome = boot(device, now=NOW)
    handoff = outcome.handoff
    assert outcome.summary == "booted slot a, firmware 1.0.0 (security counter 1)"
    assert (handoff.booted_slot, handoff.trial, handoff.security_counter) == ("a", False, 1)
    assert handoff.identity.serial == "RCTEST000001"
    assert handoff.firmware.version == "1.0.0" and handoff.firmware.hardware_id == "refcam-rc1080-v1"
    assert handoff.slots == (SlotStatus("a", "valid", "1.0.0", 1), SlotStatus("b", "empty"))
    assert handoff.fuses.firmware_counter == 1 and handoff.fuses.lifecycle == "secured"
    assert handoff.fuses.debug_disabled and len(handoff.fuses.rot_keys) == 2
    assert [e.stage for e in handoff.measurements] == ["bootloader", "firmware"]
    assert handoff.measurements[1].digest == outcome.firmware.digest.hex()
    assert replay(handoff.measurements).hex() == handoff.measurement_register
    assert handoff.notices == ()
    assert outcome.log_lines[-1].startswith("bootloader: booting slot a, firmware 1.0.0")


def test_alias_certificate_chains_to_the_deviceid_certificate(device: Device) -> None:
    attester = boot(device, now=NOW).handoff.attester
    alias, deviceid, device_ca = attester.chain  # type: ignore[attr-defined]
    alias.verify_directly_issued_by(deviceid)
    deviceid.verify_directly_issued_by(device_ca)


def test_normal_boot_writes_nothing_to_flash_or_fuses(device: Device) -> None:
    counter = PowerCutInjector()
    boot(device.power_on(injector=counter), now=NOW)
    assert counter.operations == 0


def test_update_trial_then_confirm_advances_the_counter_only_on_confirm(
    device: Device, image_v2: bytes
) -> None:
    services = boot(device, now=NOW).handoff.services
    assert services.inactive_slot() == "b"
    services.write_image("b", image_v2)
    services.set_pending("b")
    device = device.power_on()
    trial = boot(device, now=NOW)
    assert trial.summary == "booted slot b as a trial, firmware 2.0.0 (security counter 2)"
    assert trial.handoff.trial and device.fuses.read().firmware_counter == 1
    trial.handoff.services.confirm()
    assert device.fuses.read().firmware_counter == 2
    after = boot(device.power_on(), now=NOW)
    assert after.summary == "booted slot b, firmware 2.0.0 (security counter 2)"
    assert after.handoff.slots[0].state == "invalid"  # v1 is now below the fused counter
    assert after.handoff.notices == ()  # a superseded image is not a tamper event


def test_unconfirmed_trial_reverts_at_next_boot(device: Device, image_v2: bytes) -> None:
    services = boot(device, now=NOW).handoff.services
    services.write_image("b", image_v2)
    services.set_pending("b")
    assert boot(device.power_on(), now=NOW).handoff.trial
    reverted = boot(device.power_on(), now=NOW)
    assert reverted.summary == "booted slot a, firmware 1.0.0 (security counter 1)"
    assert reverted.handoff.notices == (
        "trial of slot b, firmware 2.0.0 (security counter 2), was not confirmed: reverting to slot a",
    )
    assert device.fuses.read().firmware_counter == 1
    again = boot(device.power_on(), now=NOW)  # the revert is persistent and silent
    assert again.handoff.booted_slot == "a" and again.handoff.notices == ()


def test_boot_attempts_are_counted_only_while_a_trial_is_pending(
    device: Device, image_v2: bytes
) -> None:
    def control() -> tuple[int, str, int]:
        view, _ = read_control(device.flash)
        assert view is not None
        return view.current.seq, view.current.trial_state, view.current.attempts_left

    boot(device, now=NOW)
    boot(device, now=NOW)
    assert control() == (2, "confirmed", 0)  # provisioning wrote both copies: seq 1 and 2
    services = boot(device, now=NOW).handoff.services
    services.write_image("b", image_v2)
    services.set_pending("b")
    assert control() == (3, "pending", 1)
    boot(device, now=NOW)
    assert control() == (4, "trial-booted", 0)


def test_tampered_v2_in_slot_b_stays_on_a_with_a_notice(device: Device, image_v2: bytes) -> None:
    services = boot(device, now=NOW).handoff.services
    services.write_image("b", image_v2)
    services.set_pending("b")
    write_partition(device.flash, "b", flipped(image_v2))  # physical attacker after set_pending
    outcome = boot(device.power_on(), now=NOW)
    assert outcome.handoff.booted_slot == "a" and not outcome.handoff.trial
    assert outcome.handoff.notices[0].startswith("slot b rejected: ")
    assert "hash" in outcome.handoff.notices[0]
    assert outcome.handoff.notices[1].startswith("trial of slot b abandoned")
    assert device.fuses.read().firmware_counter == 1


def test_corrupt_higher_version_falls_back_to_the_lower_valid_one(
    device: Device, build_image: Build
) -> None:
    v11 = build_image("1.1.0", 1)
    device = install_confirmed_v2(device, v11)
    write_partition(device.flash, "b", flipped(v11))
    outcome = boot(device, now=NOW)
    assert outcome.summary == "booted slot a, firmware 1.0.0 (security counter 1)"
    assert outcome.handoff.notices[-1].startswith("active slot b does not verify: falling back to slot a")


def test_unreadable_boot_control_boots_the_newest_valid_slot_and_repairs(
    device: Device, build_image: Build
) -> None:
    v11 = build_image("1.1.0", 1)
    write_partition(device.flash, "b", v11)
    sector = device.flash.geometry.sector_size
    for copy in (0, 1):  # both copies corrupted
        device.flash.erase("boot-control", copy)
        device.flash.write("boot-control", copy * sector, b"\x00" * RECORD_SIZE)
    outcome = boot(device, now=NOW)
    assert outcome.handoff.booted_slot == "b"
    assert outcome.handoff.notices[0].startswith("boot-control unreadable (boot-control unreadable: copy 0")
    view, _ = read_control(device.flash)
    assert view is not None and view.current.active == "b"


def test_older_security_counter_is_refused(device: Device, image_v1: bytes, image_v2: bytes) -> None:
    device = install_confirmed_v2(device, image_v2)
    services = boot(device, now=NOW).handoff.services
    with pytest.raises(SecurityCounterRollback, match="security counter 1 is below the fused minimum 2"):
        services.write_image("a", image_v1)
    with pytest.raises(SecurityCounterRollback):
        services.set_pending("a")
    assert boot(device.power_on(), now=NOW).handoff.booted_slot == "b"


def test_image_signed_by_an_unknown_key_is_refused(device: Device, build_image: Build) -> None:
    rogue = build_image("9.0.0", 9, key=ed25519.Ed25519PrivateKey.generate())
    services = boot(device, now=NOW).handoff.services
    with pytest.raises(UnknownSigningKey):
        services.write_image("b", rogue)
    with pytest.raises(UnknownSigningKey):
        services.set_pending("b")
    outcome = boot(device.power_on(), now=NOW)
    assert outcome.handoff.booted_slot == "a"
    assert outcome.handoff.slots[1].state == "invalid"
    assert outcome.handoff.notices[0].startswith("slot b rejected: ")


def test_revoked_root_of_trust_key_stops_the_boot(device: Device) -> None:
    device.fuses.revoke_rot_key(0)  # the bootloader is signed by rot-0
    with pytest.raises(BootloaderRejected, match="revoked"):
        boot(device, now=NOW)


def test_bootloader_whose_signature_fails_is_rejected_and_nothing_is_written(device: Device) -> None:
    image = read_image(device.flash, "bootloader")
    assert image is not None
    write_partition(device.flash, "bootloader", flipped(image, len(image) - 10))  # in the signature
    fuses_before = device.fuses.read()
    counter = PowerCutInjector()
    with pytest.raises(BootloaderRejected, match="ROM refused the bootloader"):
        boot(device.power_on(injector=counter), now=NOW)
    assert counter.operations == 0 and device.fuses.read() == fuses_before


def test_erased_bootloader_is_rejected(device: Device) -> None:
    for sector in range(device.flash.sectors("bootloader")):
        device.flash.erase("bootloader", sector)
    with pytest.raises(BootloaderRejected, match="bootloader partition is erased"):
        boot(device, now=NOW)


def test_both_slots_bad_enters_recovery_with_reasons(device: Device, image_v1: bytes) -> None:
    write_partition(device.flash, "a", flipped(image_v1))
    write_partition(device.flash, "b", b"not an image at all" + b"\x00" * 13)
    with pytest.raises(NoBootableSlot) as info:
        boot(device, now=NOW)
    assert set(info.value.reasons) == {"a", "b"}
    assert "hash" in info.value.reasons["a"]
    assert "image magic" in info.value.reasons["b"]
    assert str(info.value).startswith("recovery: no bootable slot (slot a: ")


def test_verified_payload_is_passed_on_not_reread_from_flash(device: Device, image_v1: bytes) -> None:
    outcome = boot(device, now=NOW)
    write_partition(device.flash, "a", flipped(image_v1))  # changed after verification
    assert outcome.payload.manifest.version == "1.0.0"
    assert outcome.payload.files["device/main.py"].startswith(b"def run")


def test_services_refuse_the_booted_slot_and_oversized_images(device: Device, image_v2: bytes) -> None:
    services = boot(device, now=NOW).handoff.services
    before = device.flash.read("a")
    with pytest.raises(BootError, match="cannot write slot a: it holds the running firmware"):
        services.write_image("a", image_v2)
    with pytest.raises(BootError, match="cannot boot as a trial slot a"):
        services.set_pending("a")
    with pytest.raises(ImageFormatError, match="slot b holds at most 8192"):
        services.write_image("b", image_v2 + b"\x00" * 8192)
    with pytest.raises(ImageFormatError, match="slot b is empty"):
        services.verify_slot("b")
    assert device.flash.read("a") == before


def test_write_image_reports_progress(device: Device, image_v2: bytes) -> None:
    seen: list[tuple[int, int]] = []
    services = boot(device, now=NOW).handoff.services
    services.write_image("b", image_v2, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (len(image_v2), len(image_v2))
    assert services.verify_slot("b") == SlotStatus("b", "valid", "2.0.0", 2)


def test_image_for_another_board_is_refused(device: Device, build_image: Build) -> None:
    other = build_image("2.0.0", 2, hardware_id="other-board-v1")
    write_partition(device.flash, "b", other)
    outcome = boot(device, now=NOW)
    assert outcome.handoff.slots[1].state == "invalid"
    assert "other-board-v1" in (outcome.handoff.slots[1].reason or "")


def test_bootloader_naming_other_code_than_what_runs_is_rejected(
    device: Device, keyset: KeySet
) -> None:
    rot0 = load_private_key(keyset.rot_key(0))
    assert isinstance(rot0, ed25519.Ed25519PrivateKey)
    manifest = bootloader_manifest(version="1.0.0", module_sources={"bootloader.chain": b"other code"})
    image = sign_image(
        manifest,
        version="1.0.0",
        security_counter=1,
        hardware_id="refcam-rc1080-v1",
        signing_key=rot0,
        key_format="full",
    )
    write_partition(device.flash, "bootloader", image)  # validly signed, but not this code
    with pytest.raises(BootloaderRejected, match=r"bootloader code on this host \(bootloader.chain\) differs"):
        boot(device, now=NOW)


def test_attestation_evidence_of_a_boot_verifies_against_reference_values(
    device: Device, keyset: KeySet, image_v1: bytes, build_image: Build
) -> None:
    bootloader_image = read_image(device.flash, "bootloader")
    assert bootloader_image is not None
    references = reference_values_from_images(bootloader_image, [image_v1])
    root = load_certificate(keyset.manufacturer_root_ca)
    evidence = boot(device, now=NOW).handoff.attester.evidence(b"n" * 16, now=NOW)
    result = verify_evidence(evidence, root_cert=root, nonce=b"n" * 16, reference_values=references, now=NOW)
    assert result.serial == "RCTEST000001"
    assert [(v.stage, v.verdict) for v in result.verdicts] == [
        ("bootloader", "reference value"),
        ("firmware", "reference value"),
    ]
    # Same signer, same counter, but not the published image: the firmware stage does not match.
    write_partition(device.flash, "a", build_image("1.0.0+7", 1))
    evidence = boot(device, now=NOW).handoff.attester.evidence(b"m" * 16, now=NOW)
    with pytest.raises(AttestationError, match="stage firmware digest .* is not a reference value"):
        verify_evidence(evidence, root_cert=root, nonce=b"m" * 16, reference_values=references, now=NOW)


def test_a_running_trial_cannot_overwrite_its_fallback(device: Device, image_v1: bytes, image_v2: bytes) -> None:
    services = boot(device, now=NOW).handoff.services
    services.write_image("b", image_v2)
    services.set_pending("b")
    trial = boot(device, now=NOW).handoff.services
    before = device.flash.read("a")
    with pytest.raises(BootError, match="runs as an unconfirmed trial .* confirm the trial first"):
        trial.write_image("a", image_v1)
    with pytest.raises(BootError, match="unconfirmed trial"):
        trial.set_pending("a")
    assert device.flash.read("a") == before
    trial.confirm()
    trial.write_image("a", image_v2)  # after confirming, the old slot is free


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_bit_flip_in_an_image_is_refused(device: Device, image_v2: bytes, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, len(image_v2) - 1), label="offset")
    bit = data.draw(st.integers(0, 7), label="bit")
    tampered = bytearray(image_v2)
    tampered[offset] ^= 1 << bit
    write_partition(device.flash, "b", bytes(tampered))
    trust = trust_state(device.fuses.read(), device.board)
    with pytest.raises(BootError):
        check_slot(device.flash, "b", trust)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(junk=st.binary(min_size=1, max_size=600))
def test_junk_in_a_slot_never_crashes_the_bootloader(device: Device, junk: bytes) -> None:
    magic = bytes.fromhex("3db8f396")  # the image magic, so parsing goes deeper
    write_partition(device.flash, "b", magic + junk)
    outcome = boot(device, now=NOW)
    assert outcome.handoff.booted_slot == "a"
    assert outcome.handoff.slots[1].state == "invalid"


def test_revoking_rot0_refuses_firmware_whose_key_manifest_it_signed(
    device: Device, keyset: KeySet
) -> None:
    rot1_bootloader = build_bootloader_image(
        keys=keyset, version="1.0.1", security_counter=1, rot_slot=1, modules=BOOTLOADER_MODULES
    )
    write_partition(device.flash, "bootloader", rot1_bootloader)  # bootloader re-signed by rot-1
    device.fuses.revoke_rot_key(0)
    with pytest.raises(NoBootableSlot) as info:
        boot(device, now=NOW)
    assert "revoked" in info.value.reasons["a"]
    assert info.value.reasons["b"] == "empty"


def test_set_pending_verifies_again_a_slot_written_after_its_verification(
    device: Device, image_v2: bytes
) -> None:
    """The verification set_pending may skip is only one no write has happened since."""
    services = boot(device, now=NOW).handoff.services
    services.write_image("b", image_v2)  # verified here
    tampered = bytearray(image_v2)
    tampered[len(tampered) // 2] ^= 0x01
    write_partition(device.flash, "b", bytes(tampered))  # written after the verification
    with pytest.raises(ImageVerificationError, match="hash mismatch"):
        services.set_pending("b")
    assert read_control(device.flash)[0].current.pending is None  # nothing marked
