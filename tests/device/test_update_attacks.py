"""The device update flow end to end, and the attacks it must survive.

A simulated camera (``bootloader.chain``) boots firmware 1.0.0 whose manifest
embeds the repository's root v1 and the vendor TLS root; the vendor's update
server runs on loopback TLS. Every attack test asserts the refusal's exact
type and that nothing was installed: slot b still empty and the camera still
boots 1.0.0 from slot a, with no trial pending.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, TargetFile
from update_fixtures import (
    NOW,
    NOW_DT,
    Camera,
    Vendor,
    make_camera,
    make_vendor,
    snapshot_repo,
    update_client,
    update_server,
)

from common.image import ImageFacts
from device.update.errors import (
    ExpiredMetadata,
    ImageRejected,
    ImageTooLarge,
    SecurityCounterDowngrade,
    TrialNotConfirmed,
    UntrustedMetadata,
    UpdateTransportError,
    WrongHardwareId,
)
from device.update.policy import candidate_from_target
from update_server.repo import TUFRepository, load_private_key

HW = "refcam-rc1080-v1"
DAY = 86_400


@pytest.fixture
def vendor(tmp_path: Path) -> Vendor:
    return make_vendor(tmp_path)


@pytest.fixture
def camera(tmp_path: Path, vendor: Vendor) -> Camera:
    return make_camera(tmp_path, vendor, vendor.image("1.0.0", 1))


def assert_nothing_installed(camera: Camera) -> None:
    outcome = camera.boot()
    handoff = outcome.handoff
    assert (handoff.booted_slot, handoff.firmware.version, handoff.trial) == ("a", "1.0.0", False)
    assert handoff.slots[1].state == "empty"
    assert handoff.fuses.firmware_counter == 1


def sign_with(vendor: Vendor, md: Metadata, role_file: str) -> bytes:
    """Re-sign ``md`` with a (compromised) key from the vendor's key directory."""
    md.signatures.clear()
    md.sign(CryptoSigner(load_private_key(vendor.keys_dir / "tuf" / role_file, None)))
    return md.to_bytes()


# --------------------------------------------------------------------------- happy path


def test_v1_to_v2_over_tuf_trial_boot_then_confirm_advances_the_counter(
    vendor: Vendor, camera: Camera
) -> None:
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")
    outcome = camera.boot()
    with update_server(vendor) as url:
        client = update_client(outcome, vendor, url)
        check = client.check()
        assert check.candidate is not None and check.candidate.version == "2.0.0"
        client.install()
    assert client.status.state == "pending-reboot" and client.status.installed_slot == "b"
    trial = camera.boot().handoff
    assert (trial.booted_slot, trial.firmware.version, trial.trial) == ("b", "2.0.0", True)
    assert trial.fuses.firmware_counter == 1  # not before confirmation
    trial.services.confirm()  # the new firmware's health check passed
    confirmed = camera.boot().handoff
    assert (confirmed.booted_slot, confirmed.trial, confirmed.fuses.firmware_counter) == ("b", False, 2)


def test_unconfirmed_trial_reverts_to_the_previous_image(vendor: Vendor, camera: Camera) -> None:
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")
    with update_server(vendor) as url:
        update_client(camera.boot(), vendor, url).install()
    assert camera.boot().handoff.trial  # v2 runs once as a trial, never confirms
    again = camera.boot().handoff
    assert (again.booted_slot, again.firmware.version) == ("a", "1.0.0")
    assert again.fuses.firmware_counter == 1


def test_nothing_newer_means_no_candidate_and_a_tiny_check(vendor: Vendor, camera: Camera) -> None:
    with update_server(vendor) as url:
        client = update_client(camera.boot(), vendor, url)
        assert client.check().candidate is None
        first = client.fetcher.bytes_received
        assert client.check().candidate is None
        # second check: only timestamp.json (+ versioned root probe 404) is fetched
        assert client.fetcher.bytes_received - first < 2000
    assert_nothing_installed(camera)


# --------------------------------------------------------------------------- metadata attacks


def test_timestamp_rollback_is_refused(vendor: Vendor, camera: Camera, tmp_path: Path) -> None:
    old = snapshot_repo(vendor, tmp_path / "old")  # timestamp v1
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")  # timestamp v2
    outcome = camera.boot()
    with update_server(vendor) as url:
        update_client(outcome, vendor, url).check()
    with update_server(vendor, repo_dir=old) as url:
        client = update_client(outcome, vendor, url)
        with pytest.raises(UntrustedMetadata, match="BadVersionNumberError.*timestamp version 1 must be >= 2"):
            client.install()
    assert client.status.last_error is not None and client.status.last_error[0] == "untrusted_metadata"
    assert_nothing_installed(camera)


def test_snapshot_rollback_with_a_compromised_timestamp_key_is_refused(
    vendor: Vendor, camera: Camera, tmp_path: Path
) -> None:
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")  # snapshot v2
    outcome = camera.boot()
    with update_server(vendor) as url:
        update_client(outcome, vendor, url).check()
    evil = snapshot_repo(vendor, tmp_path / "evil")
    ts = Metadata.from_file(str(evil / "metadata" / "timestamp.json"))
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile(1)  # point back at snapshot v1
    (evil / "metadata" / "timestamp.json").write_bytes(sign_with(vendor, ts, "timestamp.key.pem"))
    with (
        update_server(vendor, repo_dir=evil) as url,
        pytest.raises(UntrustedMetadata, match="snapshot version must be >= 2"),
    ):
        update_client(outcome, vendor, url).install()
    assert_nothing_installed(camera)


def test_targets_rollback_with_compromised_online_keys_is_refused(
    vendor: Vendor, camera: Camera, tmp_path: Path
) -> None:
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")  # targets v2
    outcome = camera.boot()
    with update_server(vendor) as url:
        update_client(outcome, vendor, url).check()
    evil = snapshot_repo(vendor, tmp_path / "evil")
    snap = Metadata.from_file(str(evil / "metadata" / "2.snapshot.json"))
    snap.signed.version = 3
    snap.signed.meta["targets.json"] = MetaFile(1)  # back to the targets without v2
    snap_bytes = sign_with(vendor, snap, "snapshot.key.pem")
    (evil / "metadata" / "3.snapshot.json").write_bytes(snap_bytes)
    ts = Metadata.from_file(str(evil / "metadata" / "timestamp.json"))
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile(3)
    (evil / "metadata" / "timestamp.json").write_bytes(sign_with(vendor, ts, "timestamp.key.pem"))
    with (
        update_server(vendor, repo_dir=evil) as url,
        pytest.raises(UntrustedMetadata, match="targets.json version 1, got 2|Expected targets.json version 2"),
    ):
        update_client(outcome, vendor, url).install()
    assert_nothing_installed(camera)


def test_freeze_attack_with_an_expired_timestamp_is_refused(vendor: Vendor, camera: Camera) -> None:
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")
    with update_server(vendor) as url:  # the mirror stopped at today's metadata
        client = update_client(camera.boot(), vendor, url, clock=NOW + 2 * DAY)
        with pytest.raises(ExpiredMetadata, match="timestamp.json is expired"):
            client.install()
    assert client.status.last_error == ("expired_metadata", "TUF metadata expired: timestamp.json is expired")
    assert_nothing_installed(camera)


def test_clock_set_back_before_the_firmware_build_time_does_not_revive_old_metadata(
    tmp_path: Path,
) -> None:
    """An RTC reset to 1970 must not make metadata that expired before the build look fresh."""
    vendor = make_vendor(tmp_path)
    # metadata signed 10 days before the firmware was built: expired at build time
    old = NOW_DT - dt.timedelta(days=10)
    shutil.rmtree(vendor.repo_dir)
    TUFRepository.initialise(vendor.repo_dir, vendor.keys_dir, now=old).commit()
    vendor.initial_root = (vendor.repo_dir / "metadata" / "1.root.json").read_bytes()
    camera = make_camera(tmp_path / "cam", vendor, vendor.image("1.0.0", 1))
    with update_server(vendor) as url:
        client = update_client(camera.boot(), vendor, url, clock=0)
        with pytest.raises(ExpiredMetadata):
            client.check()
    assert client.floor.read() == dt.datetime.fromtimestamp(NOW - DAY, dt.UTC)


def test_repository_signed_by_other_keys_is_refused(
    vendor: Vendor, camera: Camera, tmp_path: Path
) -> None:
    rogue = make_vendor(tmp_path / "rogue")  # a complete, valid repository with other keys
    rogue.publish(rogue.image("9.0.0", 9), "rc-9.0.0.img")
    # served by the real vendor's TLS identity: only TUF can tell it is rogue
    with (
        update_server(vendor, repo_dir=rogue.repo_dir) as url,
        pytest.raises(UntrustedMetadata, match="UnsignedMetadataError"),
    ):
        update_client(camera.boot(), vendor, url).install()
    assert_nothing_installed(camera)


# --------------------------------------------------------------------------- target attacks


def _target_path(repo: Path) -> Path:
    return next((repo / "targets" / HW).iterdir())


def test_arbitrary_target_bytes_are_refused(vendor: Vendor, camera: Camera, tmp_path: Path) -> None:
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")
    evil = snapshot_repo(vendor, tmp_path / "evil")
    target = _target_path(evil)
    data = bytearray(target.read_bytes())
    data[100] ^= 0xFF  # same length, other bytes
    target.write_bytes(bytes(data))
    outcome = camera.boot()
    with (
        update_server(vendor, repo_dir=evil) as url,
        pytest.raises(UntrustedMetadata, match="LengthOrHashMismatchError"),
    ):
        update_client(outcome, vendor, url).install()
    assert not (outcome.handoff.data_dir / "update" / "slot-download.json").exists()  # never resumed
    assert_nothing_installed(camera)


def test_endless_target_data_is_cut_at_the_signed_length(
    vendor: Vendor, camera: Camera, tmp_path: Path
) -> None:
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")
    evil = snapshot_repo(vendor, tmp_path / "evil")
    target = _target_path(evil)
    target.write_bytes(target.read_bytes() + b"\0" * 2**20)
    with (
        update_server(vendor, repo_dir=evil) as url,
        pytest.raises(UntrustedMetadata, match="too much data"),
    ):
        update_client(camera.boot(), vendor, url).install()
    assert_nothing_installed(camera)


def test_target_larger_than_the_slot_is_refused_and_leaves_nothing_to_resume(
    vendor: Vendor, camera: Camera
) -> None:
    vendor.publish(vendor.image("2.0.0", 2, padding=96 * 1024), "rc-2.0.0.img")  # the slot holds 64 KiB
    outcome = camera.boot()
    with update_server(vendor) as url, pytest.raises(ImageTooLarge, match="does not fit slot b"):
        update_client(outcome, vendor, url).install()
    assert not (outcome.handoff.data_dir / "update" / "slot-download.json").exists()  # never resumed
    assert_nothing_installed(camera)


def test_target_for_another_hardware_id_is_refused_before_download(
    vendor: Vendor, camera: Camera
) -> None:
    repo = vendor.repo()
    other = vendor.image("2.0.0", 2, hardware_id="refcam-rc4k-v2")
    target = repo.publish("rc-2.0.0.img", other, ImageFacts(HW, "2.0.0", 2))  # type: ignore[arg-type]
    # the vendor's metadata says "this model" but the custom field of a rogue entry may not
    with repo.edit_targets(f"models-{HW}") as model:
        model.targets[target.path].unrecognized_fields["custom"]["hardware_id"] = "refcam-rc4k-v2"
    repo.do_snapshot()
    repo.do_timestamp()
    repo.commit()
    with update_server(vendor) as url:
        client = update_client(camera.boot(), vendor, url)
        with pytest.raises(WrongHardwareId, match="is for hardware 'refcam-rc4k-v2'"):
            client.install()
    assert client.fetcher.requests < 8  # metadata only: the image was never downloaded
    assert_nothing_installed(camera)


def test_image_for_another_hardware_id_is_refused_even_if_metadata_says_otherwise(
    vendor: Vendor, camera: Camera
) -> None:
    repo = vendor.repo()
    other = vendor.image("2.0.0", 2, hardware_id="refcam-rc4k-v2")
    repo.publish("rc-2.0.0.img", other, ImageFacts(HW, "2.0.0", 2))  # type: ignore[arg-type]
    repo.commit()
    with (
        update_server(vendor) as url,
        pytest.raises(WrongHardwareId, match="image is (built )?for hardware 'refcam-rc4k-v2'"),
    ):
        update_client(camera.boot(), vendor, url).install()
    assert_nothing_installed(camera)


def test_security_counter_downgrade_is_refused(tmp_path: Path, vendor: Vendor) -> None:
    camera = make_camera(tmp_path / "c3", vendor, vendor.image("1.0.0", 3))  # fused counter 3
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")  # newer version, older counter
    with update_server(vendor) as url:
        client = update_client(camera.boot(), vendor, url)
        with pytest.raises(
            SecurityCounterDowngrade, match="security counter 2, below the fused minimum 3"
        ):
            client.install()
    after = camera.boot().handoff
    assert after.slots[1].state == "empty" and after.fuses.firmware_counter == 3


def test_uploaded_image_gets_the_same_checks(vendor: Vendor, camera: Camera) -> None:
    client = update_client(camera.boot(), vendor, "https://localhost:1")
    with pytest.raises(WrongHardwareId):
        client.install_upload(vendor.image("2.0.0", 2, hardware_id="refcam-rc4k-v2"))
    with pytest.raises(ImageRejected, match="not newer than the running 1.0.0"):
        client.install_upload(vendor.image("1.0.0", 1))
    with pytest.raises(ImageRejected, match="not a valid firmware image"):
        client.install_upload(b"\x3d\xb8\xf3\x96garbage")
    assert_nothing_installed(camera)
    facts = update_client(camera.boot(), vendor, "https://localhost:1").install_upload(
        vendor.image("2.0.0", 2)
    )
    assert facts.version == "2.0.0"
    assert camera.boot().handoff.firmware.version == "2.0.0"


def test_unreachable_repository_is_a_transport_error(vendor: Vendor, camera: Camera) -> None:
    client = update_client(camera.boot(), vendor, "https://localhost:1")
    with pytest.raises(UpdateTransportError, match="download failed"):
        client.check()
    assert_nothing_installed(camera)


# --------------------------------------------------------------------------- rotation, power


def test_device_follows_root_and_online_key_rotation(vendor: Vendor, camera: Camera) -> None:
    for role in ("root", "timestamp", "snapshot"):
        repo = vendor.repo()
        repo.rotate(role)
        repo.commit()
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")
    with update_server(vendor) as url:
        client = update_client(camera.boot(), vendor, url)
        client.install()
    assert client.status_document()["metadata"]["root"]["version"] == 4
    assert camera.boot().handoff.firmware.version == "2.0.0"


def test_an_unconfirmed_trial_cannot_overwrite_its_fallback(vendor: Vendor, camera: Camera) -> None:
    client = update_client(camera.boot(), vendor, "https://localhost:1")
    client.install_upload(vendor.image("2.0.0", 2))
    trial = camera.boot()
    assert trial.handoff.trial
    with pytest.raises(TrialNotConfirmed, match="unconfirmed trial"):
        update_client(trial, vendor, "https://localhost:1").install_upload(vendor.image("3.0.0", 3))
    after = camera.boot().handoff  # the trial was never confirmed: back to 1.0.0 in slot a
    assert (after.booted_slot, after.firmware.version) == ("a", "1.0.0")


@given(
    custom=st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["hardware_id", "version", "security_counter", "x"]),
            st.one_of(st.text(max_size=12), st.integers(-5, 2**40), st.booleans(), st.none()),
        ),
    )
)
@settings(max_examples=200, deadline=None)
def test_any_custom_field_is_a_candidate_or_an_untrusted_metadata_error(custom: object) -> None:
    target = TargetFile(10, {"sha256": "00" * 32}, f"{HW}/x.img", {"custom": custom})
    try:
        candidate = candidate_from_target(target)
    except UntrustedMetadata:
        return
    assert candidate.security_counter >= 0 and candidate.target_path == f"{HW}/x.img"
