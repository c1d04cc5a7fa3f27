"""The vendor TUF repository: layout, roles, publishing, re-signing, key rotation."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from tuf.api.metadata import Metadata, Root, Targets, Timestamp
from update_fixtures import NOW_DT, Vendor

from bootloader.keys import init_keys
from common.image import sign_image
from refcam import cli
from update_server.errors import RepositoryInputError, SigningError
from update_server.repo import TUFRepository, facts_from_image

HW = "refcam-rc1080-v1"


def tree(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def load(vendor: Vendor, name: str) -> Metadata:
    return Metadata.from_file(str(vendor.repo_dir / "metadata" / name))


def test_init_makes_root_2_of_3_consistent_snapshots_and_documented_expiries(vendor: Vendor) -> None:
    files = sorted(p.name for p in (vendor.repo_dir / "metadata").iterdir())
    assert files == ["1.root.json", "1.snapshot.json", "1.targets.json", "root.json", "timestamp.json"]
    root = load(vendor, "1.root.json").signed
    assert isinstance(root, Root)
    assert root.consistent_snapshot is True
    assert root.roles["root"].threshold == 2 and len(root.roles["root"].keyids) == 3
    for role in ("targets", "snapshot", "timestamp"):
        assert root.roles[role].threshold == 1 and len(root.roles[role].keyids) == 1
    # each online/offline role has its own key, none shared with root
    all_ids = [k for r in root.roles.values() for k in r.keyids]
    assert len(set(all_ids)) == len(all_ids) == 6
    expiries = {
        "1.root.json": dt.timedelta(days=365),
        "1.targets.json": dt.timedelta(days=90),
        "1.snapshot.json": dt.timedelta(days=7),
        "timestamp.json": dt.timedelta(days=1),
    }
    for name, lifetime in expiries.items():
        assert load(vendor, name).signed.expires == NOW_DT + lifetime


def test_repository_never_holds_private_keys(vendor: Vendor) -> None:
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")
    for data in tree(vendor.repo_dir).values():
        assert b"PRIVATE KEY" not in data
    config = json.loads((vendor.repo_dir / "repo.json").read_text())
    assert config["keys_dir"] == str(vendor.keys_dir.resolve())
    assert all(v.startswith("tuf/") for v in config["key_files"].values())


def test_init_refuses_to_overwrite_an_existing_repository(vendor: Vendor) -> None:
    before = tree(vendor.repo_dir)
    with pytest.raises(RepositoryInputError, match="already holds a repository"):
        TUFRepository.initialise(vendor.repo_dir, vendor.keys_dir, now=NOW_DT)
    assert tree(vendor.repo_dir) == before


def test_publish_adds_hash_prefixed_target_to_the_model_delegation(vendor: Vendor) -> None:
    image = vendor.image("2.0.0", 2)
    vendor.publish(image, "rc-2.0.0.img")
    top = load(vendor, "2.targets.json").signed
    assert isinstance(top, Targets) and top.delegations is not None
    assert top.delegations.roles is not None
    role = top.delegations.roles["models-" + HW]
    assert role.paths == [f"{HW}/*"] and role.terminating
    model = load(vendor, f"1.models-{HW}.json").signed
    assert isinstance(model, Targets)
    target = model.targets[f"{HW}/rc-2.0.0.img"]
    assert target.custom == {
        "kind": "firmware",
        "hardware_id": HW,
        "version": "2.0.0",
        "security_counter": 2,
        "sbom": None,
        "advisories": [],
    }
    digest = target.hashes["sha256"]
    assert (vendor.repo_dir / "targets" / HW / f"{digest}.rc-2.0.0.img").read_bytes() == image
    # snapshot lists both targets roles, timestamp pins the snapshot by length and hash
    snapshot = load(vendor, "2.snapshot.json").signed
    assert set(snapshot.meta) == {"targets.json", f"models-{HW}.json"}
    timestamp = load(vendor, "timestamp.json").signed
    assert isinstance(timestamp, Timestamp)
    snap_bytes = (vendor.repo_dir / "metadata" / "2.snapshot.json").read_bytes()
    assert timestamp.snapshot_meta.version == 2
    assert timestamp.snapshot_meta.length == len(snap_bytes)
    timestamp.snapshot_meta.verify_length_and_hashes(snap_bytes)


def test_publish_of_a_non_image_is_one_line_error_and_repo_unchanged(
    vendor: Vendor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "junk.img"
    bad.write_bytes(b"\x3d\xb8\xf3\x96" + b"\0" * 200)
    before = tree(vendor.repo_dir)
    assert cli.main(["repo", "publish", str(vendor.repo_dir), str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("refcam: error: not a refcam firmware image:") and err.count("\n") == 1
    assert tree(vendor.repo_dir) == before


def test_publish_of_an_image_signed_by_an_unknown_key_is_refused(vendor: Vendor) -> None:
    good = vendor.image("2.0.0", 2)
    rogue = sign_image(
        bytes(facts_payload(good)),
        version="2.0.0",
        security_counter=2,
        hardware_id=HW,
        signing_key=ed25519.Ed25519PrivateKey.generate(),
    )
    keys = (vendor.keys_dir / "firmware-signing.pub.pem",)
    facts_from_image(good, signing_keys=keys)  # the real one passes
    with pytest.raises(RepositoryInputError, match="image signature does not verify"):
        facts_from_image(rogue, signing_keys=keys)


def facts_payload(image: bytes) -> memoryview:
    from common.image import SignedImage

    return SignedImage.parse(image).payload


def test_same_version_or_file_name_cannot_be_published_twice(vendor: Vendor) -> None:
    image = vendor.image("2.0.0", 2)
    vendor.publish(image, "rc-2.0.0.img")
    before = tree(vendor.repo_dir)
    with pytest.raises(RepositoryInputError, match="already published"):
        vendor.publish(image, "rc-2.0.0.img")
    with pytest.raises(RepositoryInputError, match="version 2.0.0 .* already published"):
        vendor.publish(image, "other-name.img")
    assert tree(vendor.repo_dir) == before


def test_refresh_resigns_online_roles_only_near_expiry(vendor: Vendor) -> None:
    result = vendor.repo(now=NOW_DT + dt.timedelta(hours=1)).refresh()
    assert result.resigned == ()
    repo = vendor.repo(now=NOW_DT + dt.timedelta(hours=13))  # timestamp within 12 h of expiry
    result = repo.refresh()
    repo.commit()
    assert result.resigned == ("timestamp",) and result.timestamp_version == 2
    repo = vendor.repo(now=NOW_DT + dt.timedelta(days=4, hours=1))  # snapshot within 3 days
    result = repo.refresh()
    repo.commit()
    assert result.resigned == ("snapshot", "timestamp")
    timestamp = load(vendor, "timestamp.json").signed
    assert timestamp.expires == NOW_DT + dt.timedelta(days=5, hours=1)
    forced = vendor.repo(now=NOW_DT + dt.timedelta(days=4, hours=2)).refresh(force=True)
    assert forced.resigned == ("snapshot", "timestamp")


def test_refresh_needs_only_the_online_keys(vendor: Vendor, tmp_path: Path) -> None:
    online_only = tmp_path / "online-K"
    shutil.copytree(vendor.keys_dir, online_only)
    for name in ("root-1", "root-2", "root-3", "targets"):
        (online_only / "tuf" / f"{name}.key.pem").unlink()
    repo = TUFRepository.open_dir(
        vendor.repo_dir, now=NOW_DT + dt.timedelta(days=5), keys_dir=online_only
    )
    assert repo.refresh().resigned == ("snapshot", "timestamp")
    repo.commit()
    # ...but publishing needs the offline targets key
    repo = TUFRepository.open_dir(vendor.repo_dir, now=NOW_DT, keys_dir=online_only)
    before = tree(vendor.repo_dir)
    image = vendor.image("2.0.0", 2)
    with pytest.raises(SigningError, match=r"targets v2 has 0 of 1 required signatures"):
        repo.publish("rc-2.0.0.img", image, facts_from_image(image))
    assert tree(vendor.repo_dir) == before


def test_root_rotation_is_signed_by_old_and_new_root_keys(vendor: Vendor) -> None:
    repo = vendor.repo()
    old_root = repo.root()
    new_key = repo.rotate("root")
    repo.commit()
    v2 = load(vendor, "2.root.json")
    assert isinstance(v2.signed, Root)
    assert new_key.keyid in v2.signed.roles["root"].keyids
    assert old_root.roles["root"].keyids[0] not in v2.signed.roles["root"].keyids
    result = v2.signed.get_root_verification_result(old_root, v2.signed_bytes, v2.signatures)
    assert result.verified  # threshold of the old root AND of the new root
    key_file = vendor.keys_dir / repo.keyring.key_files[new_key.keyid]  # in K, never in REPO
    assert key_file.parent == vendor.keys_dir / "tuf" and key_file.stat().st_mode & 0o777 == 0o600


def test_timestamp_key_rotation_resigns_timestamp_with_the_new_key(vendor: Vendor) -> None:
    repo = vendor.repo()
    new_key = repo.rotate("timestamp")
    repo.commit()
    timestamp = load(vendor, "timestamp.json")
    assert set(timestamp.signatures) == {new_key.keyid}
    root = load(vendor, "2.root.json").signed
    assert isinstance(root, Root)
    root.verify_delegate("timestamp", timestamp.signed_bytes, timestamp.signatures)


def test_revoking_a_key_below_the_threshold_is_refused(vendor: Vendor) -> None:
    repo = vendor.repo()
    ts_key = repo.root().roles["timestamp"].keyids[0]
    with pytest.raises(RepositoryInputError, match="below its threshold 1"):
        repo.revoke_key("timestamp", ts_key[:12])
    root_keys = repo.root().roles["root"].keyids
    repo.revoke_key("root", root_keys[0])
    repo.commit()
    assert len(load(vendor, "2.root.json").signed.roles["root"].keyids) == 2
    with pytest.raises(RepositoryInputError, match="would leave root with 1 key"):
        vendor.repo().revoke_key("root", root_keys[1])


def test_cli_init_publish_status_refresh(tmp_path: Path, vendor: Vendor, capsys: pytest.CaptureFixture[str]) -> None:
    repo_dir = tmp_path / "R2"
    assert cli.main(["repo", "init", "--dir", str(repo_dir), "--keys", str(vendor.keys_dir)]) == 0
    image = tmp_path / "rc-2.0.0.img"
    image.write_bytes(vendor.image("2.0.0", 2))
    assert cli.main(["repo", "publish", str(repo_dir), str(image)]) == 0
    assert cli.main(["repo", "refresh", str(repo_dir), "--force"]) == 0
    assert cli.main(["repo", "status", str(repo_dir)]) == 0
    out = capsys.readouterr().out
    assert f"published {HW}/rc-2.0.0.img (version 2.0.0, security counter 2" in out
    assert "re-signed snapshot, timestamp" in out
    assert f"models-{HW}" in out


def test_cli_with_encrypted_keys_rotates_and_revokes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keys_dir = tmp_path / "K"
    init_keys(keys_dir, now=NOW_DT - dt.timedelta(days=1), passphrase=b"correct horse")
    repo_dir = tmp_path / "R"
    init = ["repo", "init", "--dir", str(repo_dir), "--keys", str(keys_dir), "--passphrase-env", "KP"]
    assert cli.main(init) == 1  # variable not set
    assert "environment variable KP" in capsys.readouterr().err
    monkeypatch.setenv("KP", "wrong")
    assert cli.main(init) == 1
    assert "wrong passphrase" in capsys.readouterr().err
    assert not (repo_dir / "repo.json").exists()
    monkeypatch.setenv("KP", "correct horse")
    assert cli.main(init) == 0
    # later commands find the variable's name in repo.json
    assert cli.main(["repo", "rotate", "timestamp", str(repo_dir)]) == 0
    root = TUFRepository.open_dir(repo_dir, now=NOW_DT).root()
    old_root_key = root.roles["root"].keyids[2]
    assert cli.main(["repo", "revoke-key", str(repo_dir), "--role", "root", "--keyid", old_root_key[:10]]) == 0
    assert cli.main(["repo", "revoke-key", str(repo_dir), "--role", "root", "--keyid", "abc"]) == 1
    out, err = capsys.readouterr()
    assert "timestamp: new key" in out and "root v3" in out
    assert "does not name exactly one root key" in err
    new_key = next((keys_dir / "tuf").glob("timestamp-*.key.pem")).read_bytes()
    assert b"ENCRYPTED PRIVATE KEY" in new_key


def test_release_sbom_is_a_signed_target_and_advisories_are_in_the_custom_fields(vendor: Vendor) -> None:
    image = vendor.image("2.0.0", 2)
    sbom = b'{"bomFormat": "CycloneDX"}'
    repo = vendor.repo(now=NOW_DT)
    repo.publish("rc-2.0.0.img", image, facts_from_image(image), sbom=sbom,
                 advisories=["REFCAM-SA-2026-0001"])
    repo.commit()
    model = load(vendor, f"1.models-{HW}.json").signed
    assert isinstance(model, Targets)
    firmware = model.targets[f"{HW}/rc-2.0.0.img"]
    assert firmware.custom["sbom"] == f"{HW}/rc-2.0.0.cdx.json"
    assert firmware.custom["advisories"] == ["REFCAM-SA-2026-0001"]
    sbom_target = model.targets[f"{HW}/rc-2.0.0.cdx.json"]
    assert sbom_target.custom == {"kind": "sbom", "describes": f"{HW}/rc-2.0.0.img"}
    served = vendor.repo_dir / "targets" / HW / f"{sbom_target.hashes['sha256']}.rc-2.0.0.cdx.json"
    assert served.read_bytes() == sbom


def test_malformed_advisory_id_is_refused_and_nothing_is_written(vendor: Vendor) -> None:
    image = vendor.image("2.0.0", 2)
    before = tree(vendor.repo_dir)
    repo = vendor.repo(now=NOW_DT)
    with pytest.raises(RepositoryInputError, match="advisory id"):
        repo.publish("rc-2.0.0.img", image, facts_from_image(image), advisories=["<script>"])
    assert tree(vendor.repo_dir) == before
