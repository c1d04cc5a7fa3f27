"""Staged rollouts (issue 14): the cohort rule in signed target metadata decides, per serial.

Pure parts (the keyed hash, the rule's parsing, the candidate filter) and the
device's real update client against a real TUF repository: a release at 0 %
is not offered, at 100 % it is, halted it is not; the status shows the
cohort; a rule moved by the network (metadata changed without the targets
key) is refused by TUF itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from update_fixtures import Camera, Vendor, make_camera, make_vendor, update_client, update_server

from device.update.errors import UntrustedMetadata
from device.update.policy import Candidate, select_candidate
from device.update.rollout import Rollout, cohort_point, parse_rollout
from update_server.errors import RepositoryInputError
from update_server.repo import facts_from_image

HW = "refcam-rc1080-v1"
SALT = "00112233445566778899aabbccddeeff"
SERIAL = "RCTEST000001"  # make_camera's unit


def test_cohort_point_is_a_keyed_hash_of_the_serial() -> None:
    point = cohort_point("RCABCDEFGHIJ", SALT)
    assert 0 <= point < 100
    assert point == cohort_point("RCABCDEFGHIJ", SALT)
    assert point != cohort_point("RCABCDEFGHIJ", "ff" * 16)  # another salt, another order
    points = [cohort_point(f"RC{i:010d}", SALT) for i in range(2000)]
    share = sum(p < 25 for p in points) / len(points)
    assert 0.20 < share < 0.30  # spread evenly


def test_widening_keeps_admitted_units_and_halt_admits_nobody() -> None:
    serials = [f"RC{i:010d}" for i in range(300)]
    at_10 = {s for s in serials if Rollout(SALT, 10).admits(s)}
    at_50 = {s for s in serials if Rollout(SALT, 50).admits(s)}
    assert at_10 < at_50 and len(at_50) < len(serials)
    assert all(Rollout(SALT, 100).admits(s) for s in serials)
    assert not any(Rollout(SALT, 0).admits(s) for s in serials)
    assert not any(Rollout(SALT, 100, halted=True).admits(s) for s in serials)


@pytest.mark.parametrize(
    "rule",
    [
        "x",
        {"salt": "short", "basis_points": 10},
        {"salt": SALT.upper(), "basis_points": 10},
        {"salt": SALT, "basis_points": 10001},
        {"salt": SALT, "basis_points": -1},
        {"salt": SALT, "basis_points": 5.5},
        {"salt": SALT, "basis_points": True},
        {"salt": SALT, "basis_points": 10, "halted": "no"},
    ],
)
def test_malformed_rules_are_untrusted(rule: object) -> None:
    with pytest.raises(UntrustedMetadata):
        parse_rollout({"rollout": rule}, "hw/x.img")


def test_no_rule_means_every_unit() -> None:
    assert parse_rollout({"version": "1.0.0"}, "hw/x.img") is None
    rule = parse_rollout({"rollout": {"salt": SALT, "basis_points": 1250}}, "hw/x.img")
    assert rule == Rollout(SALT, 12.5, False)


def _candidate(version: str, rollout: Rollout | None) -> Candidate:
    return Candidate(f"{HW}/{version}.img", version, 1, HW, 10, "00", (), rollout)


def test_select_candidate_skips_releases_the_unit_is_not_admitted_to() -> None:
    serial = next(f"RC{i:010d}" for i in range(1000) if cohort_point(f"RC{i:010d}", SALT) >= 50)
    offered = [_candidate("2.0.0", None), _candidate("3.0.0", Rollout(SALT, 50))]
    kwargs = {"hardware_id": HW, "current_version": "1.0.0", "fused_counter": 1, "max_image_size": 100}
    best = select_candidate(offered, serial=serial, **kwargs)  # type: ignore[arg-type]
    assert best is not None and best.version == "2.0.0"  # the staged 3.0.0 is not for it (yet)
    best = select_candidate([_candidate("3.0.0", Rollout(SALT, 100))], serial=serial, **kwargs)  # type: ignore[arg-type]
    assert best is not None and best.version == "3.0.0"


@pytest.fixture
def vendor(tmp_path: Path) -> Vendor:
    return make_vendor(tmp_path)


@pytest.fixture
def camera(tmp_path: Path, vendor: Vendor) -> Camera:
    return make_camera(tmp_path, vendor, vendor.image("1.0.0", 1))


def test_device_follows_the_signed_rule_0_then_100_then_halt(vendor: Vendor, camera: Camera) -> None:
    image = vendor.image("2.0.0", 2)
    repo = vendor.repo()
    repo.publish("rc-2.0.0.img", image, facts_from_image(image), rollout_percent=0)
    repo.commit()
    outcome = camera.boot()
    with update_server(vendor) as url:
        client = update_client(outcome, vendor, url)
        assert client.check().candidate is None
        view = client.status_document()["rollout"]
        assert view["release"] == "2.0.0" and view["staged"] and view["percent"] == 0
        assert view["admitted"] is False and view["installed"] is False
        assert view["cohort_point"] == round(cohort_point(SERIAL, _salt(vendor)), 4)

        repo = vendor.repo()
        repo.set_rollout("2.0.0", percent=100)
        repo.commit()
        result = client.check()
        assert result.candidate is not None and result.candidate.version == "2.0.0"
        assert client.status_document()["rollout"]["admitted"] is True

        repo = vendor.repo()
        _target, rule = repo.set_rollout("2.0.0", percent=100, halt=True)
        repo.commit()
        assert rule["halted"] is True
        assert client.check().candidate is None
        assert client.status_document()["rollout"]["halted"] is True


def _salt(vendor: Vendor) -> str:
    newest = max((vendor.repo_dir / "metadata").glob(f"*.models-{HW}.json"), key=lambda p: int(p.name.split(".")[0]))
    md = json.loads(newest.read_text())
    return str(md["signed"]["targets"][f"{HW}/rc-2.0.0.img"]["custom"]["rollout"]["salt"])


def test_widening_keeps_the_salt_and_bad_requests_are_refused(vendor: Vendor) -> None:
    image = vendor.image("2.0.0", 2)
    repo = vendor.repo()
    repo.publish("rc-2.0.0.img", image, facts_from_image(image), rollout_percent=10)
    repo.commit()
    salt = _salt(vendor)
    repo = vendor.repo()
    _target, rule = repo.set_rollout("2.0.0", percent=50)
    repo.commit()
    assert rule == {"salt": salt, "basis_points": 5000, "halted": False}
    with pytest.raises(RepositoryInputError, match="no published firmware has version 9.9.9"):
        vendor.repo().set_rollout("9.9.9", percent=10)
    with pytest.raises(RepositoryInputError, match="between 0 and 100"):
        vendor.repo().set_rollout("2.0.0", percent=101)


def test_a_rule_changed_on_the_wire_is_refused_by_tuf(vendor: Vendor, camera: Camera, tmp_path: Path) -> None:
    """The network cannot move a unit into a cohort: the rule is inside signed metadata."""
    image = vendor.image("2.0.0", 2)
    repo = vendor.repo()
    repo.publish("rc-2.0.0.img", image, facts_from_image(image), rollout_percent=0)
    repo.commit()
    metadata = vendor.repo_dir / "metadata"
    for path in metadata.glob(f"*.models-{HW}.json"):
        doc = json.loads(path.read_text())
        doc["signed"]["targets"][f"{HW}/rc-2.0.0.img"]["custom"]["rollout"]["basis_points"] = 10000
        path.write_text(json.dumps(doc))
    outcome = camera.boot()
    with update_server(vendor) as url:
        client = update_client(outcome, vendor, url)
        with pytest.raises(UntrustedMetadata, match="signed by 0/1 keys"):
            client.check()
    assert client.status.available is None
