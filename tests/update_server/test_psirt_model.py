"""The PSIRT report state machine and the intake body validator."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from update_server.psirt import model
from update_server.psirt.cvss import score_vector
from update_server.psirt.errors import (
    CVSSVectorError,
    PSIRTInputError,
    TransitionError,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
CRITICAL = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
RELEASE = model.FirmwareRelease.parse("refcam-rc1080-v1:1.0.1")


def body(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "title": "Command injection in NTP settings",
        "description": "POST /api/ntp with server=`id` runs the command.",
        "product": "RC-1080",
        "version": "1.0.0",
    }
    doc.update(overrides)
    return doc


def fresh() -> model.Report:
    return model.new_report(
        report_id="R-2026-0001", submission=model.parse_submission(body()), now=T0
    )


def h(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_full_workflow_records_every_step() -> None:
    r = model.acknowledge(fresh(), now=h(1))
    r = model.triage(r, score_vector(CRITICAL), now=h(2))
    r = model.start_fix(r, now=h(3))
    r = model.mark_fixed(r, RELEASE, now=h(4))
    r = model.publish_advisory(r, "REFCAM-SA-2026-0001", now=h(5))
    r = model.close(r, now=h(6))
    assert r.state is model.State.CLOSED
    assert [e.kind for e in r.history] == [
        "received",
        "acknowledged",
        "triaged",
        "fix_in_progress",
        "fixed",
        "advisory_published",
        "closed",
    ]
    assert r.severity == "critical" and r.score is not None and r.score.base_score == 9.8
    assert r.fixed_in == RELEASE
    assert r.entered_at(model.State.FIXED) == h(4)


def test_received_cannot_jump_to_fixed() -> None:
    r = fresh()
    with pytest.raises(TransitionError) as info:
        model.mark_fixed(r, RELEASE, now=h(1))
    assert str(info.value) == (
        "cannot move report R-2026-0001 from received to fixed "
        "(allowed: acknowledged, rejected, duplicate)"
    )
    assert r.state is model.State.RECEIVED and len(r.history) == 1


def test_final_states_allow_nothing() -> None:
    r = model.reject(fresh(), "not a vulnerability", now=h(1))
    with pytest.raises(TransitionError, match=r"from rejected to acknowledged \(allowed: none"):
        model.acknowledge(r, now=h(2))


def test_duplicate_records_the_original() -> None:
    r = model.mark_duplicate(fresh(), "R-2026-0007", now=h(1))
    assert r.state is model.State.DUPLICATE and r.duplicate_of == "R-2026-0007"
    with pytest.raises(PSIRTInputError, match="cannot be a duplicate of itself"):
        model.mark_duplicate(fresh(), "R-2026-0001", now=h(1))


def test_time_cannot_run_backwards() -> None:
    r = model.acknowledge(fresh(), now=h(5))
    with pytest.raises(TransitionError, match="before its last event"):
        model.triage(r, score_vector(CRITICAL), now=h(4))


def test_cra_submissions_need_the_exploited_flag_and_a_fix_for_the_final_report() -> None:
    r = model.acknowledge(fresh(), now=h(1))
    with pytest.raises(TransitionError, match="not flagged actively exploited"):
        model.record_cra_submission(r, "early_warning", now=h(2))
    r = model.mark_exploited(r, now=h(2))
    r = model.record_cra_submission(r, "early_warning", now=h(3))
    with pytest.raises(TransitionError, match="already recorded"):
        model.record_cra_submission(r, "early_warning", now=h(4))
    with pytest.raises(TransitionError, match="needs a fix first"):
        model.record_cra_submission(r, "final_report", now=h(4))
    with pytest.raises(TransitionError, match="already flagged"):
        model.mark_exploited(r, now=h(5))


def test_report_json_round_trip() -> None:
    sub = model.parse_submission(
        body(
            attachments=[
                {
                    "filename": "poc.py",
                    "content_type": "text/x-python",
                    "data_base64": base64.b64encode(b"print(1)").decode(),
                }
            ],
            cvss_vector=CRITICAL,
            reporter_contact="mailto:r@x.example",
        )
    )
    r = model.new_report(report_id="R-2026-0002", submission=sub, now=T0)
    r = model.mark_exploited(model.acknowledge(r, now=h(1)), now=h(2))
    r = model.add_message(r, "psirt", "Working on it", now=h(3))
    doc = model.report_to_json(r, with_attachment_data=True)
    assert model.report_from_json(doc) == r
    assert doc["attachments"][0]["size"] == 8


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "report must be a JSON object, got list"),
        (body(title=None), "field 'title' is required"),
        (body(title=5), "field 'title' must be a string, got int"),
        (body(title="   "), "field 'title' must not be empty"),
        (body(title="x" * 201), "field 'title' is 201 characters long, at most 200 allowed"),
        (body(title="a\nb"), "field 'title' must be a single line"),
        (body(version="1.0 beta"), "field 'version' must be a firmware version"),
        (body(extra=1), "report has unknown fields: extra"),
        (body(cvss_vector="CVSS:3.1/AV:X"), "CVSS vector 'CVSS:3.1/AV:X' is malformed"),
        (body(cvss_vector="CVSS:2.0/AV:N"), "unsupported prefix"),
        (body(attachments={}), "field 'attachments' must be a list"),
        (
            body(attachments=[{"filename": "../etc/passwd", "data_base64": ""}]),
            r"attachments\[0\].filename must be",
        ),
        (
            body(attachments=[{"filename": "a.txt", "data_base64": "!!"}]),
            r"attachments\[0\].data_base64 is not valid base64",
        ),
        (
            body(attachments=[{"filename": "a.txt", "data_base64": "AA=="}] * 5),
            "report has 5 attachments, at most 4 allowed",
        ),
        (
            body(
                attachments=[
                    {
                        "filename": "a.txt",
                        "data_base64": base64.b64encode(b"x" * (256 * 1024 + 1)).decode(),
                    }
                ]
            ),
            r"attachments\[0\] is .*262144",
        ),
        (body(description="a\x00b"), "contains a NUL character"),
    ],
)
def test_bad_submissions_are_rejected_with_the_field_named(doc: Any, message: str) -> None:
    with pytest.raises(PSIRTInputError, match=message):
        model.parse_submission(doc)


def test_reporter_cvss_is_normalised_and_v4_accepted() -> None:
    v4 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
    assert model.parse_submission(body(cvss_vector=v4)).cvss_vector == v4
    assert score_vector(v4).severity == "critical"
    with pytest.raises(CVSSVectorError):
        score_vector("CVSS:4.0/AV:N")


def test_firmware_release_parse() -> None:
    assert str(RELEASE) == "refcam-rc1080-v1:1.0.1"
    with pytest.raises(PSIRTInputError, match="expected HARDWARE_ID:VERSION"):
        model.FirmwareRelease.parse("1.0.1")


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
_fields = st.sampled_from(
    [
        "title",
        "description",
        "product",
        "version",
        "reporter_contact",
        "cvss_vector",
        "attachments",
        "other",
    ]
)


@given(st.dictionaries(_fields, _json_values, max_size=8) | _json_values)
def test_validator_accepts_or_raises_input_error_only(doc: Any) -> None:
    try:
        sub = model.parse_submission(doc)
    except PSIRTInputError:
        return
    assert sub.title and sub.description and sub.product and sub.version


@given(
    st.builds(
        body,
        title=st.text(min_size=1, max_size=250),
        description=st.text(min_size=1, max_size=50),
        version=st.text(min_size=1, max_size=70),
    )
)
def test_validator_on_near_valid_bodies(doc: dict[str, Any]) -> None:
    try:
        sub = model.parse_submission(doc)
    except PSIRTInputError:
        return
    assert len(sub.title) <= 200 and "\n" not in sub.title
