"""A camera follows key rotation of its model's delegated role, and refuses the old key.

The camera (firmware 1.0.0, root v1 embedded) checks against the vendor's
update server and so trusts the repository as it was; the vendor then rotates
the key of ``models-<hw>`` (or the targets key that role was signed with). The
camera's ``ngclient.Updater`` must walk to the new targets version, accept the
delegated role signed by the new key and install the next release; metadata
for the role signed by the rotated-out key, served with valid snapshot and
timestamp (the online keys stolen too), must be refused with nothing installed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]
from tuf.api.metadata import Metadata, MetaFile, TargetFile, Targets  # type: ignore[attr-defined]
from update_fixtures import (
    NOW_DT,
    Camera,
    Vendor,
    fetcher_for,
    make_camera,
    make_vendor,
    snapshot_repo,
    update_client,
    update_server,
)

from common.image import ImageFacts
from device.update.errors import UntrustedMetadata
from device.update.tufclient import build_updater
from update_server.repo import load_private_key, target_custom

HW = "refcam-rc1080-v1"
ROLE = f"models-{HW}"


@pytest.fixture
def vendor(tmp_path: Path) -> Vendor:
    return make_vendor(tmp_path)


@pytest.fixture
def camera(tmp_path: Path, vendor: Vendor) -> Camera:
    return make_camera(tmp_path, vendor, vendor.image("1.0.0", 1))


def assert_nothing_installed(camera: Camera) -> None:
    handoff = camera.boot().handoff
    assert (handoff.booted_slot, handoff.firmware.version, handoff.trial) == ("a", "1.0.0", False)
    assert handoff.slots[1].state == "empty"
    assert handoff.fuses.firmware_counter == 1


def rotate(vendor: Vendor, role: str, *, now: dt.datetime = NOW_DT) -> str:
    """Rotate ``role``'s key; returns the key file (relative to K) that it retired."""
    repo = vendor.repo(now=now)
    retired = repo.keyring.key_files[repo.role_keys(role).keyids[0]]
    repo.rotate(role)
    repo.commit()
    return retired


def latest(repo_dir: Path, role: str) -> int:
    return max(int(p.name.split(".", 1)[0]) for p in (repo_dir / "metadata").glob(f"*.{role}.json"))


def rogue_model_release(vendor: Vendor, dest: Path, *, model_key: str) -> Path:
    """A copy of the repository offering a vendor-signed 9.0.0 in a new ``models-<hw>``
    version signed by ``model_key``, with snapshot and timestamp signed by the real
    (stolen) online keys. The image itself would pass secure boot: only TUF stops it."""
    evil = snapshot_repo(vendor, dest)
    metadata = evil / "metadata"
    image = vendor.image("9.0.0", 9)
    target = TargetFile.from_data(f"{HW}/rc-9.0.0.img", image, ["sha256"])
    target.unrecognized_fields["custom"] = target_custom(ImageFacts(HW, "9.0.0", 9))
    (evil / "targets" / HW / f"{target.hashes['sha256']}.rc-9.0.0.img").write_bytes(image)

    def resign(md: Metadata[Any], key_file: str) -> bytes:
        md.signatures.clear()
        md.sign(CryptoSigner(load_private_key(vendor.keys_dir / key_file, None)))
        return md.to_bytes()

    model = Metadata.from_file(str(metadata / f"{latest(evil, ROLE)}.{ROLE}.json"))
    assert isinstance(model.signed, Targets)
    model.signed.version += 1
    model.signed.targets[target.path] = target
    (metadata / f"{model.signed.version}.{ROLE}.json").write_bytes(resign(model, model_key))
    snapshot = Metadata.from_file(str(metadata / f"{latest(evil, 'snapshot')}.snapshot.json"))
    snapshot.signed.version += 1
    snapshot.signed.meta[f"{ROLE}.json"] = MetaFile(model.signed.version)
    snap_bytes = resign(snapshot, "tuf/snapshot.key.pem")
    (metadata / f"{snapshot.signed.version}.snapshot.json").write_bytes(snap_bytes)
    timestamp = Metadata.from_file(str(metadata / "timestamp.json"))
    timestamp.signed.version += 1
    timestamp.signed.snapshot_meta = MetaFile(snapshot.signed.version)
    (metadata / "timestamp.json").write_bytes(resign(timestamp, "tuf/timestamp.key.pem"))
    return evil


def offered_by(vendor: Vendor, repo_dir: Path, tmp: Path) -> TargetFile | None:
    """What a fresh client (root v1) finds for 9.0.0 in ``repo_dir``: the control."""
    with update_server(vendor, repo_dir=repo_dir) as url:
        updater = build_updater(
            metadata_dir=tmp / "md",
            metadata_base_url=f"{url}/metadata/",
            target_base_url=None,
            target_dir=None,
            bootstrap_root=vendor.initial_root,
            fetcher=fetcher_for(vendor),
        )
        updater.refresh()
        info: TargetFile | None = updater.get_targetinfo(f"{HW}/rc-9.0.0.img")
        return info


# --------------------------------------------------------------------------- following


@pytest.mark.parametrize("role", [ROLE, "targets"])
def test_device_follows_model_delegation_key_rotation_and_installs_the_next_release(
    vendor: Vendor, camera: Camera, role: str
) -> None:
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")
    outcome = camera.boot()
    with update_server(vendor) as url:
        check = update_client(outcome, vendor, url).check()  # trusts targets v2, models v1
        assert check.candidate is not None and check.candidate.version == "2.0.0"
    rotate(vendor, role)
    vendor.publish(vendor.image("3.0.0", 3), "rc-3.0.0.img")  # signed with the new key only
    with update_server(vendor) as url:
        client = update_client(outcome, vendor, url)
        installed = client.install()
    assert installed.version == "3.0.0"
    trusted_top = Metadata.from_file(str(client.metadata_dir / "targets.json")).signed
    trusted_model = Metadata.from_file(str(client.metadata_dir / f"{ROLE}.json"))
    assert isinstance(trusted_top, Targets)
    assert trusted_top.version == 3 and trusted_model.signed.version == 3
    assert set(trusted_model.signatures) == set(trusted_top.get_delegated_role(ROLE).keyids)
    trial = camera.boot().handoff
    assert (trial.booted_slot, trial.firmware.version, trial.trial) == ("b", "3.0.0", True)


# --------------------------------------------------------------------------- the retired key


@pytest.mark.parametrize(
    ("rotated", "second_rotation"),
    [
        (ROLE, True),  # a per-model key A, rotated to B: A is the stolen key
        ("targets", False),  # the model was signed with the targets key, rotated with it
    ],
)
def test_model_metadata_signed_by_a_rotated_out_key_is_refused(
    vendor: Vendor, camera: Camera, tmp_path: Path, rotated: str, second_rotation: bool
) -> None:
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")
    if second_rotation:
        rotate(vendor, rotated)  # targets key -> per-model key A
    retired = rotate(vendor, rotated, now=NOW_DT + dt.timedelta(seconds=1))
    outcome = camera.boot()
    with update_server(vendor) as url:
        assert update_client(outcome, vendor, url).check().candidate is not None  # 2.0.0, new keys

    # control: the same rogue release signed by the key now in force would be offered
    current = vendor.repo().role_keys(ROLE).keyids[0]
    control = rogue_model_release(
        vendor, tmp_path / "control", model_key=vendor.repo().keyring.key_files[current]
    )
    offered = offered_by(vendor, control, tmp_path / "control-client")
    assert offered is not None and offered.custom["version"] == "9.0.0"

    evil = rogue_model_release(vendor, tmp_path / "evil", model_key=retired)
    with update_server(vendor, repo_dir=evil) as url:
        client = update_client(outcome, vendor, url)
        with pytest.raises(
            UntrustedMetadata, match=rf"UnsignedMetadataError\): {ROLE} was signed by 0/1 keys"
        ):
            client.install()
    assert client.status.last_error is not None and client.status.last_error[0] == "untrusted_metadata"
    assert_nothing_installed(camera)
