"""Key rotation and revocation for the per-model delegated roles (``models-<hw>``).

A delegated role's keys are listed in the top-level targets metadata (TUF 4.5
DELEGATIONS), not in root: rotating ``models-<hw>`` is a new targets version
naming the new key, a new role version signed by it, and new snapshot and
timestamp versions. Root never changes.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.signer import CryptoSigner  # type: ignore[attr-defined]
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import (  # type: ignore[attr-defined]
    Metadata,
    Root,
    Snapshot,
    Targets,
    Timestamp,
)
from update_fixtures import NOW_DT, Vendor

from bootloader.keys import init_keys
from common.image import ImageFacts
from refcam import cli
from update_server.errors import RepositoryInputError, SigningError
from update_server.repo import TUFRepository, load_private_key, write_key_pair

HW = "refcam-rc1080-v1"
OTHER_HW = "refcam-rc4k-v2"
ROLE = f"models-{HW}"
LATER = NOW_DT + dt.timedelta(seconds=1)  # a second rotation needs a new key file name


def tree(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


def load(vendor: Vendor, name: str) -> Metadata[Any]:
    return Metadata.from_file(str(vendor.repo_dir / "metadata" / name))


def top_targets(vendor: Vendor, version: int) -> Targets:
    signed = load(vendor, f"{version}.targets.json").signed
    assert isinstance(signed, Targets)
    return signed


def delegation_keyids(targets: Targets, role: str = ROLE) -> list[str]:
    return list(targets.get_delegated_role(role).keyids)


def published(vendor: Vendor) -> Vendor:
    vendor.publish(vendor.image("2.0.0", 2), "rc-2.0.0.img")  # targets v2, models v1
    return vendor


def rotate(vendor: Vendor, role: str = ROLE, *, now: dt.datetime = NOW_DT, keyid: str | None = None) -> str:
    repo = vendor.repo(now=now)
    key = repo.rotate(role, replace_keyid=keyid)
    repo.commit()
    return str(key.keyid)


# --------------------------------------------------------------------------- rotation


def test_model_rotation_lists_only_the_new_key_in_a_new_targets_version(vendor: Vendor) -> None:
    published(vendor)
    targets_keyid = vendor.repo().root().roles["targets"].keyids[0]
    assert delegation_keyids(top_targets(vendor, 2)) == [targets_keyid]  # at first: the targets key
    new = rotate(vendor)
    top = top_targets(vendor, 3)
    assert delegation_keyids(top) == [new]
    assert top.delegations is not None and set(top.delegations.keys) == {new}
    # targets v3 is signed by the (unchanged) targets key from root; root is untouched
    root = load(vendor, "1.root.json").signed
    assert isinstance(root, Root)
    targets_md = load(vendor, "3.targets.json")
    root.verify_delegate("targets", targets_md.signed_bytes, targets_md.signatures)
    assert not (vendor.repo_dir / "metadata" / "2.root.json").exists()
    # the model role: new version, same targets, signed by the new key only
    model = load(vendor, f"2.{ROLE}.json")
    assert set(model.signatures) == {new}
    assert isinstance(model.signed, Targets) and set(model.signed.targets) == {f"{HW}/rc-2.0.0.img"}
    # snapshot and timestamp follow, so a client walks to both new versions
    snapshot = load(vendor, "3.snapshot.json").signed
    assert isinstance(snapshot, Snapshot)
    assert snapshot.meta["targets.json"].version == 3 and snapshot.meta[f"{ROLE}.json"].version == 2
    timestamp = load(vendor, "timestamp.json").signed
    assert isinstance(timestamp, Timestamp) and timestamp.snapshot_meta.version == 3


def test_model_role_verifies_with_the_new_key_and_not_with_the_old(vendor: Vendor) -> None:
    published(vendor)
    rotate(vendor)  # targets key -> per-model key A
    key_a = delegation_keyids(top_targets(vendor, 3))[0]
    key_b = rotate(vendor, now=LATER)  # A -> B
    top = top_targets(vendor, 4)
    assert delegation_keyids(top) == [key_b]
    current = load(vendor, f"3.{ROLE}.json")
    top.verify_delegate(ROLE, current.signed_bytes, current.signatures)
    # the previous version, signed by A, no longer verifies under the new delegation
    previous = load(vendor, f"2.{ROLE}.json")
    assert set(previous.signatures) == {key_a}
    with pytest.raises(UnsignedMetadataError, match=rf"{ROLE} was signed by 0/1 keys"):
        top.verify_delegate(ROLE, previous.signed_bytes, previous.signatures)
    # nor does the current content re-signed by A (a stolen, rotated-out key)
    rel_a = vendor.repo().keyring.key_files[key_a]
    forged = load(vendor, f"3.{ROLE}.json")
    forged.signed.version += 1
    forged.signatures.clear()
    forged.sign(CryptoSigner(load_private_key(vendor.keys_dir / rel_a, None)))
    with pytest.raises(UnsignedMetadataError, match=rf"{ROLE} was signed by 0/1 keys"):
        top.verify_delegate(ROLE, forged.signed_bytes, forged.signatures)


def test_new_model_key_is_stored_like_the_other_offline_keys(vendor: Vendor) -> None:
    published(vendor)
    new = rotate(vendor)
    config = json.loads((vendor.repo_dir / "repo.json").read_text())
    rel = config["key_files"][new]
    assert rel == f"tuf/{ROLE}-{NOW_DT:%Y%m%dT%H%M%SZ}.key.pem"
    key_file = vendor.keys_dir / rel
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert key_file.with_name(key_file.name.replace(".key.pem", ".pub.pem")).exists()
    for data in tree(vendor.repo_dir).values():  # never in REPO
        assert b"PRIVATE KEY" not in data


def test_rotating_one_model_leaves_other_models_untouched(vendor: Vendor) -> None:
    published(vendor)
    vendor.publish(vendor.image("2.0.0", 2, hardware_id=OTHER_HW), "rc4k-2.0.0.img")  # targets v3
    targets_keyid = vendor.repo().root().roles["targets"].keyids[0]
    new = rotate(vendor)
    top = top_targets(vendor, 4)
    assert delegation_keyids(top) == [new]
    assert delegation_keyids(top, f"models-{OTHER_HW}") == [targets_keyid]
    assert top.delegations is not None and set(top.delegations.keys) == {new, targets_keyid}
    assert not (vendor.repo_dir / "metadata" / f"2.models-{OTHER_HW}.json").exists()
    snapshot = load(vendor, "4.snapshot.json").signed
    assert isinstance(snapshot, Snapshot) and snapshot.meta[f"models-{OTHER_HW}.json"].version == 1


def test_publish_after_rotation_needs_the_new_model_key(vendor: Vendor) -> None:
    published(vendor)
    new = rotate(vendor)
    vendor.publish(vendor.image("3.0.0", 3), "rc-3.0.0.img")  # key loaded from K by repo.json
    model = load(vendor, f"3.{ROLE}.json")
    assert set(model.signatures) == {new}
    # the model key is offline: without it, publishing stops before anything is written
    rel = vendor.repo().keyring.key_files[new]
    (vendor.keys_dir / rel).rename(vendor.keys_dir / "elsewhere.pem")
    before = tree(vendor.repo_dir)
    with pytest.raises(SigningError, match=rf"{ROLE} v4 has 0 of 1 required signatures; missing key files: {rel}"):
        vendor.publish(vendor.image("4.0.0", 4), "rc-4.0.0.img")
    assert tree(vendor.repo_dir) == before


def test_model_rotation_needs_the_offline_targets_key(vendor: Vendor) -> None:
    published(vendor)
    (vendor.keys_dir / "tuf" / "targets.key.pem").unlink()
    before = tree(vendor.repo_dir)
    with pytest.raises(SigningError, match="targets v3 has 0 of 1 required signatures"):
        vendor.repo().rotate(ROLE)
    assert tree(vendor.repo_dir) == before


def test_targets_key_rotation_moves_model_delegations_to_the_new_targets_key(vendor: Vendor) -> None:
    published(vendor)
    old_targets = vendor.repo().root().roles["targets"].keyids[0]
    new_targets = rotate(vendor, "targets")
    root = load(vendor, "2.root.json").signed
    assert isinstance(root, Root) and root.roles["targets"].keyids == [new_targets]
    top = top_targets(vendor, 3)
    assert delegation_keyids(top) == [new_targets]  # the retired key signs nothing any more
    assert top.delegations is not None and old_targets not in top.delegations.keys
    model = load(vendor, f"2.{ROLE}.json")
    assert set(model.signatures) == {new_targets}
    top.verify_delegate(ROLE, model.signed_bytes, model.signatures)


def test_model_with_its_own_key_keeps_it_when_the_targets_key_rotates(vendor: Vendor) -> None:
    published(vendor)
    model_key = rotate(vendor)  # targets v3, models v2
    rotate(vendor, "targets", now=LATER)  # targets v4
    assert delegation_keyids(top_targets(vendor, 4)) == [model_key]
    assert not (vendor.repo_dir / "metadata" / f"3.{ROLE}.json").exists()


def test_rotate_keyid_must_name_one_key_of_the_model_role(vendor: Vendor) -> None:
    published(vendor)
    before = tree(vendor.repo_dir)
    with pytest.raises(RepositoryInputError, match=rf"key 'deadbeef00' does not name exactly one {ROLE} key"):
        vendor.repo().rotate(ROLE, replace_keyid="deadbeef00")
    assert tree(vendor.repo_dir) == before


# --------------------------------------------------------------------------- revocation


def test_revoking_the_only_model_key_is_refused(vendor: Vendor) -> None:
    published(vendor)
    keyid = delegation_keyids(top_targets(vendor, 2))[0]
    before = tree(vendor.repo_dir)
    with pytest.raises(
        RepositoryInputError,
        match=(
            rf"^revoking {keyid[:12]} would leave {ROLE} with 0 key\(s\), below its threshold 1; "
            rf"use 'refcam repo rotate {ROLE} REPO' to replace the key$"
        ),
    ):
        vendor.repo().revoke_key(ROLE, keyid[:10])
    assert tree(vendor.repo_dir) == before


def add_model_key(vendor: Vendor, rel: str) -> str:
    """A second key for the model role (there is no CLI for this; the API can)."""
    repo = vendor.repo()
    private = ed25519.Ed25519PrivateKey.generate()
    key = repo.keyring.add(rel, private)
    write_key_pair(vendor.keys_dir / rel, private, None)
    with repo.edit_targets() as targets:
        targets.add_key(key, ROLE)
    with repo.edit_targets(ROLE):
        pass
    repo.do_snapshot()
    repo.do_timestamp()
    repo.commit()
    return str(key.keyid)


def test_revoking_one_of_two_model_keys_resigns_with_the_remaining_key(vendor: Vendor) -> None:
    published(vendor)
    first = delegation_keyids(top_targets(vendor, 2))[0]
    second = add_model_key(vendor, f"tuf/{ROLE}-second.key.pem")  # targets v3, models v2
    assert set(load(vendor, f"2.{ROLE}.json").signatures) == {first, second}
    repo = vendor.repo()
    repo.revoke_key(ROLE, first)
    repo.commit()
    top = top_targets(vendor, 4)
    assert delegation_keyids(top) == [second]
    model = load(vendor, f"3.{ROLE}.json")
    assert set(model.signatures) == {second}  # nothing signed by the revoked key is served
    top.verify_delegate(ROLE, model.signed_bytes, model.signatures)
    assert load(vendor, "timestamp.json").signed.snapshot_meta.version == 4


def test_revoking_a_targets_key_a_model_still_depends_on_is_refused(vendor: Vendor) -> None:
    published(vendor)  # models-<hw> is signed with targets key T1 only
    repo = vendor.repo()
    t1 = repo.root().roles["targets"].keyids[0]
    private = ed25519.Ed25519PrivateKey.generate()
    t2 = repo.keyring.add("tuf/targets-2.key.pem", private)
    write_key_pair(vendor.keys_dir / "tuf" / "targets-2.key.pem", private, None)
    with repo.edit_root() as root:
        root.add_key(t2, "targets")
    repo.do_snapshot()
    repo.do_timestamp(force=True)
    repo.commit()
    before = tree(vendor.repo_dir)
    with pytest.raises(
        RepositoryInputError,
        match=rf"revoking {t1[:12]} from targets would leave {ROLE} with 0 key\(s\), below its threshold 1",
    ):
        vendor.repo().revoke_key("targets", t1)
    assert tree(vendor.repo_dir) == before
    # once the model has its own key, T1 can go
    model_key = rotate(vendor)
    repo = vendor.repo()
    repo.revoke_key("targets", t1)
    repo.commit()
    root_v3 = load(vendor, "3.root.json").signed
    assert isinstance(root_v3, Root) and root_v3.roles["targets"].keyids == [t2.keyid]
    latest = max(int(p.name.split(".")[0]) for p in (vendor.repo_dir / "metadata").glob("*.targets.json"))
    assert delegation_keyids(top_targets(vendor, latest)) == [model_key]


@pytest.mark.parametrize("operation", ["rotate", "revoke"])
def test_unknown_role_is_refused_naming_the_known_roles(vendor: Vendor, operation: str) -> None:
    def attempt(role: str) -> None:
        repo = vendor.repo()
        if operation == "rotate":
            repo.rotate(role)
        else:
            repo.revoke_key(role, "0123456789")

    with pytest.raises(RepositoryInputError, match=r"\(none yet: 'refcam repo publish' creates models-<hw>\)$"):
        attempt(ROLE)  # nothing published: no delegation yet
    published(vendor)
    before = tree(vendor.repo_dir)
    with pytest.raises(
        RepositoryInputError,
        match=(
            r"^role 'models-nope' is unknown; expected root, targets, snapshot, timestamp or a role "
            rf"delegated by targets \({ROLE}\)$"
        ),
    ):
        attempt("models-nope")
    assert tree(vendor.repo_dir) == before


def test_status_lists_delegated_roles_with_keys_and_expiry(vendor: Vendor) -> None:
    published(vendor)
    new = rotate(vendor)
    status = {s.role: s for s in vendor.repo().status()}
    model = status[ROLE]
    assert (model.version, model.keyids, model.threshold) == (2, (new,), 1)
    assert (model.delegated_by, model.paths) == ("targets", (f"{HW}/*",))
    assert model.expires == NOW_DT + dt.timedelta(days=90)
    assert status["targets"].delegated_by == "root"


# --------------------------------------------------------------------------- CLI


def test_cli_rotate_status_and_revoke_of_a_model_role(
    vendor: Vendor, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    repo_dir = str(vendor.repo_dir)
    image = tmp_path / "rc-2.0.0.img"
    image.write_bytes(vendor.image("2.0.0", 2))
    assert cli.main(["repo", "publish", repo_dir, str(image)]) == 0
    capsys.readouterr()
    assert cli.main(["repo", "rotate", ROLE, repo_dir]) == 0
    out = capsys.readouterr().out
    top = TUFRepository.open_dir(vendor.repo_dir, now=NOW_DT).targets()
    new = delegation_keyids(top)[0]
    rel = json.loads((vendor.repo_dir / "repo.json").read_text())["key_files"][new]
    assert out == f"{ROLE}: new key {new[:16]} ({rel}); targets v3, {ROLE} v2\n"
    assert (vendor.keys_dir / rel).exists()

    assert cli.main(["repo", "status", repo_dir]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(ROLE))
    expires = load(vendor, f"2.{ROLE}.json").signed.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert line.split() == [
        ROLE, "v2", "expires", expires, "threshold", "1", "keys", f"{new[:8]}", f"({rel})",
        "delegated", "by", "targets", "for", f"{HW}/*",
    ]  # fmt: skip

    before = tree(vendor.repo_dir)
    failures = [
        (["repo", "revoke-key", repo_dir, "--role", ROLE, "--keyid", new[:10]], "below its threshold 1"),
        (["repo", "rotate", "models-nope", repo_dir], "role 'models-nope' is unknown"),
        (["repo", "revoke-key", repo_dir, "--role", "models-nope", "--keyid", new[:10]], "is unknown"),
        (["repo", "rotate", ROLE, repo_dir, "--keyid", "abc"], f"does not name exactly one {ROLE} key"),
    ]
    for argv, message in failures:
        assert cli.main(argv) == 1, argv
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("refcam: error: ") and message in err and err.count("\n") == 1
    assert tree(vendor.repo_dir) == before


def test_cli_revoke_of_one_of_two_model_keys(vendor: Vendor, capsys: pytest.CaptureFixture[str]) -> None:
    published(vendor)
    first = delegation_keyids(top_targets(vendor, 2))[0]
    add_model_key(vendor, f"tuf/{ROLE}-second.key.pem")
    capsys.readouterr()
    argv = ["repo", "revoke-key", str(vendor.repo_dir), "--role", ROLE, "--keyid", first[:12]]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == f"{ROLE}: key {first[:12]} revoked; targets v4, {ROLE} v3\n"
    assert first not in delegation_keyids(top_targets(vendor, 4))


def test_cli_model_rotation_with_encrypted_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    keys_dir = tmp_path / "K"
    init_keys(keys_dir, now=NOW_DT - dt.timedelta(days=1), passphrase=b"correct horse")
    repo_dir = tmp_path / "R"
    monkeypatch.setenv("KP", "correct horse")
    assert cli.main(["repo", "init", "--dir", str(repo_dir), "--keys", str(keys_dir), "--passphrase-env", "KP"]) == 0
    repo = TUFRepository.open_dir(repo_dir, now=NOW_DT, passphrase=b"correct horse")
    repo.publish("rc-2.0.0.img", b"firmware 2", ImageFacts(HW, "2.0.0", 2))
    repo.commit()
    monkeypatch.delenv("KP")
    assert cli.main(["repo", "rotate", ROLE, str(repo_dir)]) == 1
    assert "environment variable KP (the key passphrase) is not set" in capsys.readouterr().err
    monkeypatch.setenv("KP", "correct horse")
    assert cli.main(["repo", "rotate", ROLE, str(repo_dir)]) == 0
    new_file = next((keys_dir / "tuf").glob(f"{ROLE}-*.key.pem"))
    assert b"ENCRYPTED PRIVATE KEY" in new_file.read_bytes()
    # the new key is loaded with the same passphrase when the next release is published
    repo = TUFRepository.open_dir(repo_dir, now=NOW_DT, passphrase=b"correct horse")
    repo.publish("rc-3.0.0.img", b"firmware 3", ImageFacts(HW, "3.0.0", 3))
    repo.commit()
    model = Metadata.from_file(str(repo_dir / "metadata" / f"3.{ROLE}.json"))
    assert set(model.signatures) == set(repo.targets().get_delegated_role(ROLE).keyids)
