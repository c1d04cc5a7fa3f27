"""SLA engine: every deadline just before / at / after its boundary, on an injected clock
(requirement rows 31, 34, 35), the EU CRA cascade, figures and the policy data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from update_server.psirt import model
from update_server.psirt.cvss import score_vector
from update_server.psirt.errors import PolicyError
from update_server.psirt.policy import (
    disclosure_policy_text,
    load_policy,
)
from update_server.psirt.sla import AT_RISK, BREACHED, MET, MET_LATE, OPEN, evaluate

T0 = datetime(2026, 3, 1, tzinfo=UTC)
POLICY = load_policy()
SEC = timedelta(seconds=1)
VECTORS = {
    "critical": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
    "high": "CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:N",
    "medium": "CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:U/C:L/I:L/A:N",
    "low": "CVSS:3.1/AV:N/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",
}


def received(report_id: str = "R-2026-0001", at: datetime = T0) -> model.Report:
    sub = model.parse_submission(
        {"title": "bug", "description": "d", "product": "RC-1080", "version": "1.0.0"}
    )
    return model.new_report(report_id=report_id, submission=sub, now=at)


def status_of(report: model.Report, kind: str, now: datetime) -> str:
    [d] = [d for d in evaluate([report], POLICY, now=now).deadlines if d.kind == kind]
    return d.status


def test_default_policy_values() -> None:
    assert POLICY.acknowledge == timedelta(days=7)
    assert {k: v.days for k, v in POLICY.fix.items()} == {
        "critical": 15,
        "high": 30,
        "medium": 90,
        "low": 180,
    }
    assert POLICY.status_update == timedelta(days=14)
    assert (POLICY.cra_early_warning, POLICY.cra_notification, POLICY.cra_final_report) == (
        timedelta(hours=24),
        timedelta(hours=72),
        timedelta(days=14),
    )


def test_vectors_have_the_named_severity() -> None:
    for severity, vector in VECTORS.items():
        assert score_vector(vector).severity == severity


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-timedelta(hours=33, minutes=36) - SEC, OPEN),  # margin = min(20% of 7 d, 48 h)
        (-timedelta(hours=33, minutes=36), AT_RISK),
        (-SEC, AT_RISK),
        (timedelta(0), AT_RISK),  # at the deadline: not yet breached
        (SEC, BREACHED),
    ],
)
def test_acknowledge_deadline_boundaries(offset: timedelta, expected: str) -> None:
    due = T0 + timedelta(days=7)
    assert status_of(received(), "acknowledge", due + offset) == expected


@pytest.mark.parametrize(("late", "expected"), [(timedelta(0), MET), (SEC, MET_LATE)])
def test_acknowledgement_at_the_deadline_is_met_one_second_later_is_a_breach(
    late: timedelta, expected: str
) -> None:
    due = T0 + timedelta(days=7)
    r = model.acknowledge(received(), now=due + late)
    assert status_of(r, "acknowledge", due + timedelta(days=30)) == expected
    assert (evaluate([r], POLICY, now=due + timedelta(days=1)).breach_count >= 1) == (
        expected == MET_LATE
    )


@pytest.mark.parametrize("severity", ["critical", "high", "medium", "low"])
@pytest.mark.parametrize(
    ("offset", "expected"), [(-SEC, AT_RISK), (timedelta(0), AT_RISK), (SEC, BREACHED)]
)
def test_fix_deadline_boundaries_per_severity(
    severity: str, offset: timedelta, expected: str
) -> None:
    r = model.triage(model.acknowledge(received(), now=T0), score_vector(VECTORS[severity]), now=T0)
    due = T0 + POLICY.fix[severity]
    assert status_of(r, "fix", due + offset) == expected
    fixed = model.mark_fixed(
        model.start_fix(r, now=T0),
        model.FirmwareRelease.parse("refcam-rc1080-v1:1.0.1"),
        now=due + offset,
    )
    after = due + timedelta(days=1)
    assert status_of(fixed, "fix", after) == (MET_LATE if offset > timedelta(0) else MET)


def test_status_update_every_14_days_boundaries() -> None:
    acked = model.acknowledge(received(), now=T0)
    due = T0 + timedelta(days=14)
    statuses = [
        d.status
        for now in (due - SEC, due, due + SEC)
        for d in evaluate([acked], POLICY, now=now).deadlines
        if d.kind == "status_update"
    ]
    assert statuses == [AT_RISK, AT_RISK, BREACHED]
    # A message before the deadline meets it and starts the next window.
    updated = model.add_message(acked, "psirt", "still working", now=due)
    windows = [
        d for d in evaluate([updated], POLICY, now=due + SEC).deadlines if d.kind == "status_update"
    ]
    assert [(w.start, w.status) for w in windows] == [(T0, MET), (due, OPEN)]
    # Closed reports need no more updates.
    rejected = model.reject(acked, "works as intended", now=T0 + timedelta(days=1))
    windows = [
        d
        for d in evaluate([rejected], POLICY, now=T0 + timedelta(days=60)).deadlines
        if d.kind == "status_update"
    ]
    assert [w.status for w in windows] == [MET]


def test_cra_cascade_for_an_actively_exploited_vulnerability() -> None:
    ex = T0 + timedelta(hours=5)
    r = model.mark_exploited(model.acknowledge(received(), now=T0 + timedelta(hours=1)), now=ex)

    def cra(report: model.Report, now: datetime) -> dict[str, str]:
        return {
            d.kind: d.status
            for d in evaluate([report], POLICY, now=now).deadlines
            if d.kind.startswith("cra_")
        }

    day, three_days = ex + timedelta(hours=24), ex + timedelta(hours=72)
    assert cra(r, day - SEC) == {"cra_early_warning": AT_RISK, "cra_notification": OPEN}
    assert cra(r, day) == {"cra_early_warning": AT_RISK, "cra_notification": OPEN}
    assert cra(r, day + SEC) == {"cra_early_warning": BREACHED, "cra_notification": OPEN}
    assert cra(r, three_days) == {"cra_early_warning": BREACHED, "cra_notification": AT_RISK}
    assert cra(r, three_days + SEC) == {"cra_early_warning": BREACHED, "cra_notification": BREACHED}
    # On-time submissions meet both; the final report clock starts at the fix.
    r = model.record_cra_submission(r, "early_warning", now=day)
    r = model.record_cra_submission(r, "notification", now=three_days)
    r = model.triage(r, score_vector(VECTORS["critical"]), now=three_days)
    r = model.start_fix(r, now=three_days)
    fixed_at = three_days + timedelta(days=2)
    r = model.mark_fixed(r, model.FirmwareRelease.parse("refcam-rc1080-v1:1.0.1"), now=fixed_at)
    final_due = fixed_at + timedelta(days=14)
    assert cra(r, fixed_at - SEC) == {"cra_early_warning": MET, "cra_notification": MET}
    assert cra(r, final_due)["cra_final_report"] == AT_RISK
    assert cra(r, final_due + SEC)["cra_final_report"] == BREACHED
    done = model.record_cra_submission(r, "final_report", now=final_due)
    assert cra(done, final_due + timedelta(days=1))["cra_final_report"] == MET


def test_figures_medians_and_breach_count() -> None:
    a = model.acknowledge(received("R-2026-0001"), now=T0 + timedelta(hours=2))
    b = model.acknowledge(received("R-2026-0002"), now=T0 + timedelta(hours=4))
    c = received("R-2026-0003")  # never acknowledged
    a = model.triage(a, score_vector(VECTORS["high"]), now=T0 + timedelta(hours=3))
    a = model.mark_fixed(
        model.start_fix(a, now=T0 + timedelta(hours=3)),
        model.FirmwareRelease.parse("refcam-rc1080-v1:1.0.1"),
        now=T0 + timedelta(days=10),
    )
    status = evaluate([a, b, c], POLICY, now=T0 + timedelta(days=11))
    assert status.median_time_to_acknowledge == timedelta(hours=3)
    assert status.median_time_to_fix == {"high": timedelta(days=10)}
    assert [(d.report_id, d.kind) for d in status.breached] == [("R-2026-0003", "acknowledge")]
    assert status.breach_count == 1 and status.open_reports == 3
    assert status.to_json()["median_time_to_acknowledge_hours"] == 3.0


def test_reports_received_after_now_are_ignored() -> None:
    status = evaluate([received(at=T0 + timedelta(days=1))], POLICY, now=T0)
    assert status.deadlines == () and status.open_reports == 0


def test_vendor_policy_overrides_some_keys() -> None:
    policy = load_policy("[acknowledge]\ndays = 3\n[fix]\ncritical_days = 7\n")
    assert policy.acknowledge == timedelta(days=3)
    assert policy.fix["critical"] == timedelta(days=7)
    assert policy.fix["high"] == timedelta(days=30)  # default kept
    [d] = [d for d in evaluate([received()], policy, now=T0).deadlines if d.kind == "acknowledge"]
    assert d.due == T0 + timedelta(days=3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[acknowledge\n", "not valid TOML"),
        ("[ack]\ndays = 1\n", r"unknown section \[ack\]"),
        ("[fix]\nurgent_days = 1\n", "unknown key fix.urgent_days"),
        ("[acknowledge]\ndays = -1\n", "must be positive"),
        ("[acknowledge]\ndays = 'seven'\n", "must be a number of days"),
        ("[at_risk]\nfraction = 1.5\n", "must be between 0 and 1"),
    ],
)
def test_bad_vendor_policy_is_rejected(text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_policy(text, where="vendor.toml")


def test_disclosure_policy_states_the_measured_timelines() -> None:
    policy = load_policy("[acknowledge]\ndays = 3\n[status_update]\ndays = 10\n")
    text = disclosure_policy_text(
        policy,
        contacts=["mailto:psirt@vendor.example"],
        report_url="https://vendor.example/api/v1/reports",
    )
    assert "Acknowledgement-Time: 72 hours" in text
    assert "Status-Update-Interval: 240 hours" in text
    assert "within 3 days" in text and "at least every 10 days" in text
    assert "Safe harbour" in text


def test_replaying_the_past_ignores_later_events() -> None:
    r = model.triage(
        model.acknowledge(received(), now=T0 + timedelta(days=1)),
        score_vector(VECTORS["critical"]),
        now=T0 + timedelta(days=2),
    )
    r = model.mark_exploited(r, now=T0 + timedelta(days=3))
    kinds = {d.kind for d in evaluate([r], POLICY, now=T0 + timedelta(hours=12)).deadlines}
    assert kinds == {"acknowledge"}
    kinds = {d.kind for d in evaluate([r], POLICY, now=T0 + timedelta(days=4)).deadlines}
    assert kinds == {"acknowledge", "fix", "status_update", "cra_early_warning", "cra_notification"}
