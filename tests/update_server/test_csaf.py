"""CSAF 2.0 advisories and provider metadata against the official OASIS schema (row 32)."""

from __future__ import annotations

import copy
import csv
import io
import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from update_server import csaf
from update_server.psirt import model
from update_server.psirt.cvss import score_vector
from update_server.psirt.errors import CSAFError, PSIRTInputError
from update_server.psirt.policy import load_policy
from update_server.psirt.store import PSIRTStore
from update_server.psirt.web import create_vendor_psirt_app

T0 = datetime(2026, 3, 1, tzinfo=UTC)
BASE = "https://vendor.example"
PUBLISHER = csaf.Publisher.default(BASE)
PRODUCT = csaf.ProductInfo.default()
V31 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
V40 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"


def fixed_report(
    vector: str = V31,
    *,
    exploited: bool = False,
    report_id: str = "R-2026-0001",
    v3: str | None = None,
    cwe: model.CWE | None = None,
) -> model.Report:
    sub = model.parse_submission(
        {
            "title": "Auth bypass in RTSP",
            "description": "d",
            "product": "RC-1080",
            "version": "1.0.0",
        }
    )
    r = model.new_report(report_id=report_id, submission=sub, now=T0)
    r = model.acknowledge(r, now=T0 + timedelta(hours=1))
    if exploited:
        r = model.mark_exploited(r, now=T0 + timedelta(hours=2))
    score_v3 = score_vector(v3) if v3 else None
    r = model.triage(r, score_vector(vector), now=T0 + timedelta(hours=3), score_v3=score_v3, cwe=cwe)
    r = model.start_fix(r, now=T0 + timedelta(hours=3))
    return model.mark_fixed(
        r, model.FirmwareRelease.parse("refcam-rc1080-v1:1.0.1"), now=T0 + timedelta(days=3)
    )


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("schema validation tried to use the network")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_advisory_is_valid_against_the_official_schema(no_network: None) -> None:
    doc = csaf.build_advisory(
        fixed_report(), publisher=PUBLISHER, product=PRODUCT, now=T0 + timedelta(days=4)
    )
    csaf.validate_advisory(doc)  # raises on any schema error
    document = doc["document"]
    assert document["category"] == "csaf_security_advisory"
    assert document["csaf_version"] == "2.0"
    assert document["tracking"]["id"] == "REFCAM-SA-2026-0001"
    assert document["tracking"]["initial_release_date"] == "2026-03-05T00:00:00.000Z"
    [vuln] = doc["vulnerabilities"]
    assert vuln["scores"][0]["cvss_v3"]["baseScore"] == 9.8
    assert vuln["scores"][0]["cvss_v3"]["baseSeverity"] == "CRITICAL"
    assert vuln["scores"][0]["cvss_v3"]["vectorString"] == V31
    fixed_pid = vuln["product_status"]["fixed"]
    assert vuln["remediations"][0]["category"] == "vendor_fix"
    assert "1.0.1" in vuln["remediations"][0]["details"]
    assert set(vuln["remediations"][0]["product_ids"]) == set(
        vuln["product_status"]["known_affected"]
    )
    assert fixed_pid == ["CSAFPID-refcam-rc1080-v1-1.0.1"]


def test_cvss4_goes_into_a_note_its_v3_score_into_scores_and_exploitation_into_threats() -> None:
    doc = csaf.build_advisory(
        fixed_report(V40, exploited=True, v3=V31),
        publisher=PUBLISHER,
        product=PRODUCT,
        now=T0 + timedelta(days=4),
    )
    [vuln] = doc["vulnerabilities"]
    # Every affected product has a score (CSAF 6.2.3): the v3.1 vector triaged beside the v4.0 one.
    assert vuln["scores"] == [{"cvss_v3": vuln["scores"][0]["cvss_v3"], "products": vuln["product_status"]["known_affected"]}]
    assert vuln["scores"][0]["cvss_v3"]["vectorString"] == V31
    assert any(V40 in note["text"] for note in vuln["notes"])
    assert vuln["threats"][0]["category"] == "exploit_status"


def test_cvss4_only_report_is_refused_for_csaf_2_0() -> None:
    with pytest.raises(CSAFError, match="scored with CVSS 4.0 only; .* triage it again with --cvss-v3 VECTOR"):
        csaf.build_advisory(fixed_report(V40), publisher=PUBLISHER, product=PRODUCT, now=T0 + timedelta(days=4))


def test_separate_v3_score_is_only_for_a_v4_report() -> None:
    with pytest.raises(PSIRTInputError, match="only for a report scored with CVSS v4.0"):
        fixed_report(V31, v3=V31)
    with pytest.raises(PSIRTInputError, match="must be a v3.x vector"):
        fixed_report(V40, v3=V40)


def test_cwe_is_recorded_in_the_advisory_and_keys_are_sorted() -> None:
    cwe = model.CWE.parse("CWE-287", "Improper Authentication")
    doc = csaf.build_advisory(fixed_report(cwe=cwe), publisher=PUBLISHER, product=PRODUCT, now=T0 + timedelta(days=4))
    assert doc["vulnerabilities"][0]["cwe"] == {"id": "CWE-287", "name": "Improper Authentication"}
    assert json.dumps(doc) == json.dumps(doc, sort_keys=True)  # CSAF 6.2.13
    with pytest.raises(PSIRTInputError, match="CWE id 'CWE287' is malformed"):
        model.CWE.parse("CWE287", "x")


def test_republishing_adds_a_revision() -> None:
    first = csaf.build_advisory(
        fixed_report(), publisher=PUBLISHER, product=PRODUCT, now=T0 + timedelta(days=4)
    )
    second = csaf.build_advisory(
        fixed_report(),
        publisher=PUBLISHER,
        product=PRODUCT,
        now=T0 + timedelta(days=9),
        previous=first,
    )
    tracking = second["document"]["tracking"]
    assert tracking["version"] == "2"
    assert [r["number"] for r in tracking["revision_history"]] == ["1", "2"]
    assert tracking["initial_release_date"] == first["document"]["tracking"]["initial_release_date"]


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["document"].pop("publisher"), "at document"),
        (lambda d: d["document"].__setitem__("csaf_version", "2.1"), "csaf_version"),
        (
            lambda d: d["vulnerabilities"][0]["scores"][0]["cvss_v3"].__setitem__(
                "baseSeverity", "HUGE"
            ),
            "cvss_v3",
        ),
        (lambda d: d["document"]["tracking"].__setitem__("status", "published"), "status"),
        (
            lambda d: d["product_tree"]["branches"][0].__setitem__("category", "maker"),
            "product_tree/branches/0",
        ),
        (
            lambda d: d["vulnerabilities"][0]["product_status"].__setitem__("known_affected", []),
            "known_affected",
        ),
    ],
)
def test_schema_catches_broken_documents(mutate: Any, where: str) -> None:
    doc = csaf.build_advisory(
        fixed_report(), publisher=PUBLISHER, product=PRODUCT, now=T0 + timedelta(days=4)
    )
    bad = copy.deepcopy(doc)
    mutate(bad)
    with pytest.raises(CSAFError, match="fails the OASIS CSAF 2.0 schema") as info:
        csaf.validate_advisory(bad)
    assert where in str(info.value)


def test_unfixed_report_gets_no_advisory() -> None:
    sub = model.parse_submission(
        {"title": "t", "description": "d", "product": "p", "version": "1.0.0"}
    )
    r = model.new_report(report_id="R-2026-0003", submission=sub, now=T0)
    with pytest.raises(CSAFError, match="is received; only a fixed report gets an advisory"):
        csaf.build_advisory(r, publisher=PUBLISHER, product=PRODUCT, now=T0)


def test_provider_metadata_is_valid(no_network: None) -> None:
    doc = csaf.provider_metadata(base_url=BASE, publisher=PUBLISHER, last_updated=T0)
    csaf.validate_provider_metadata(doc)
    assert doc["canonical_url"] == f"{BASE}/.well-known/csaf/provider-metadata.json"
    assert doc["role"] == "csaf_provider"
    assert doc["distributions"] == [{"directory_url": f"{BASE}/.well-known/csaf/white/"}]
    bad = {**doc, "role": "csaf_superhero"}
    with pytest.raises(CSAFError, match="provider metadata fails"):
        csaf.validate_provider_metadata(bad)


def test_index_and_changes_follow_csaf_7_1_12_and_7_1_13() -> None:
    a = csaf.build_advisory(
        fixed_report(), publisher=PUBLISHER, product=PRODUCT, now=T0 + timedelta(days=4)
    )
    b = csaf.build_advisory(
        fixed_report(report_id="R-2026-0002"),
        publisher=PUBLISHER,
        product=PRODUCT,
        now=T0 + timedelta(days=6),
    )
    assert csaf.index_txt([b, a]) == (
        "2026/refcam-sa-2026-0001.json\n2026/refcam-sa-2026-0002.json\n"
    )
    rows = list(csv.reader(io.StringIO(csaf.changes_csv([a, b]))))
    assert rows == [
        ["2026/refcam-sa-2026-0002.json", "2026-03-07T00:00:00.000Z"],
        ["2026/refcam-sa-2026-0001.json", "2026-03-05T00:00:00.000Z"],
    ]
    assert csaf.advisory_filename("Example_Company-2019-YH3234") == (
        "example_company-2019-yh3234.json"
    )


@pytest.mark.parametrize(
    ("hardware_id", "version", "expected"),
    [
        ("refcam-rc1080-v1", "1.0.0", [("REFCAM-SA-2026-0001", "affected", "1.0.1")]),
        ("refcam-rc1080-v1", "0.9.3", [("REFCAM-SA-2026-0001", "affected", "1.0.1")]),
        ("refcam-rc1080-v1", "1.0.1", [("REFCAM-SA-2026-0001", "fixed", "1.0.1")]),
        ("refcam-rc1080-v1", "1.10.0", [("REFCAM-SA-2026-0001", "fixed", "1.0.1")]),
        ("refcam-rc2000-v1", "1.0.0", []),
    ],
)
def test_advisories_affecting_a_device(
    hardware_id: str, version: str, expected: list[tuple[str, str, str]]
) -> None:
    doc = csaf.build_advisory(
        fixed_report(), publisher=PUBLISHER, product=PRODUCT, now=T0 + timedelta(days=4)
    )
    assert csaf.advisories_affecting(hardware_id, version, [doc]) == expected


def test_release_custom_metadata_lists_fixed_advisories() -> None:
    assert csaf.release_custom_metadata(["B", "A", "A"]) == {"advisories": ["A", "B"]}


async def test_provider_directory_is_served(aiohttp_client: Any, tmp_path: Path) -> None:
    store = PSIRTStore.open(tmp_path / "psirt.db")
    report, _ = store.create_report(fixed_report().submission, now=T0)
    rid = report.report_id
    release = model.FirmwareRelease.parse("refcam-rc1080-v1:1.0.1")
    store.update(
        rid,
        lambda r: model.mark_fixed(
            model.start_fix(
                model.triage(model.acknowledge(r, now=T0), score_vector(V31), now=T0), now=T0
            ),
            release,
            now=T0,
        ),
    )
    doc = csaf.build_advisory(store.get(rid), publisher=PUBLISHER, product=PRODUCT, now=T0)
    store.update(
        rid,
        lambda r: model.publish_advisory(r, "REFCAM-SA-2026-0001", now=T0),
        advisory=("REFCAM-SA-2026-0001", doc),
    )
    app = create_vendor_psirt_app(
        store=store, policy=load_policy(), clock=lambda: T0, psirt_token="t" * 32, base_url=BASE
    )
    client = await aiohttp_client(app)
    meta = await (await client.get("/.well-known/csaf/provider-metadata.json")).json()
    csaf.validate_provider_metadata(meta)
    assert meta["last_updated"] == "2026-03-01T00:00:00.000Z"
    index = await (await client.get("/.well-known/csaf/white/index.txt")).text()
    assert index == "2026/refcam-sa-2026-0001.json\n"
    served = await (await client.get(f"/.well-known/csaf/white/{index.strip()}")).json()
    csaf.validate_advisory(served)
    assert served == doc
    assert (await client.get("/.well-known/csaf/white/2026/nope.json")).status == 404
    changes = await (await client.get("/.well-known/csaf/white/changes.csv")).text()
    assert changes.startswith('"2026/refcam-sa-2026-0001.json",')
    # CSAF 7.1.14 (requirement 14): a directory listing of each folder.
    root = await client.get("/.well-known/csaf/white/")
    assert root.status == 200 and root.content_type == "text/html"
    page = await root.text()
    for name in ("index.txt", "changes.csv", "2026/"):
        assert f'<a href="{name}">{name}</a>' in page
    year = await (await client.get("/.well-known/csaf/white/2026/")).text()
    assert '<a href="refcam-sa-2026-0001.json">refcam-sa-2026-0001.json</a>' in year and '"../"' in year
    bare = await client.get("/.well-known/csaf/white", allow_redirects=False)
    assert bare.status == 301 and bare.headers["Location"] == "/.well-known/csaf/white/"
    assert (await client.get("/.well-known/csaf/white/1999/")).status == 404
    # The app records the publisher it announces, for `refcam psirt publish`.
    assert store.publisher() == PUBLISHER
    store.close()
