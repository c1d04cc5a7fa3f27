"""The public report intake, the reporter channel, PSIRT API/HTML views and disclosure routes
(requirement rows 30, 31, 34, 36), on an in-process aiohttp server with an injected clock."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

import pytest
import sectxt
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.securitytxt import parse_security_txt
from update_server.psirt import model
from update_server.psirt.errors import PSIRTInputError
from update_server.psirt.policy import load_policy
from update_server.psirt.store import PSIRTStore
from update_server.psirt.web import (
    WebLimits,
    create_vendor_psirt_app,
    disclosure_extension,
)

Client: TypeAlias = TestClient[web.Request, web.Application]
T0 = datetime(2026, 3, 1, tzinfo=UTC)
V40 = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"
OPERATOR = "operator-token-0123456789abcdef"
BASE = "https://vendor.example"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def report_body(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "title": "Stored XSS in camera name",
        "description": "Set the name to <script>alert(1)</script>.",
        "product": "RC-1080",
        "version": "1.0.0",
    }
    doc.update(overrides)
    return doc


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PSIRTStore]:
    s = PSIRTStore.open(tmp_path / "psirt.db")
    yield s
    s.close()


@pytest.fixture
async def client(aiohttp_client: Any, store: PSIRTStore, clock: Clock) -> Client:
    app = create_vendor_psirt_app(
        store=store,
        policy=load_policy(),
        clock=clock,
        psirt_token=OPERATOR,
        base_url=BASE,
        web_limits=WebLimits(max_body=64 * 1024, reports_per_window=5, window=timedelta(hours=1)),
    )
    return await aiohttp_client(app)  # type: ignore[no-any-return]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def submit(client: Client, **overrides: Any) -> dict[str, Any]:
    resp = await client.post("/api/v1/reports", json=report_body(**overrides))
    assert resp.status == 201, await resp.text()
    return await resp.json()  # type: ignore[no-any-return]


async def test_anonymous_report_gets_tracking_id_and_token(client: Client) -> None:
    answer = await submit(client)
    assert answer["tracking_id"] == "R-2026-0001"
    assert answer["acknowledge_by"] == (T0 + timedelta(days=7)).isoformat()
    resp = await client.get("/api/v1/reports/R-2026-0001", headers=auth(answer["reporter_token"]))
    assert resp.status == 200
    view = await resp.json()
    assert view["state"] == "received" and view["messages"] == []


async def test_reporter_and_psirt_exchange_messages(
    client: Client, clock: Clock, store: PSIRTStore
) -> None:
    answer = await submit(client)
    rid, token = answer["tracking_id"], answer["reporter_token"]
    clock.now = T0 + timedelta(hours=1)
    resp = await client.post(
        f"/api/v1/reports/{rid}/messages", json={"body": "PoC attached"}, headers=auth(token)
    )
    assert resp.status == 201
    resp = await client.post(
        f"/api/v1/psirt/reports/{rid}/messages", json={"body": "Reproduced"}, headers=auth(OPERATOR)
    )
    assert resp.status == 201
    view = await (await client.get(f"/api/v1/reports/{rid}", headers=auth(token))).json()
    assert [(m["author"], m["body"]) for m in view["messages"]] == [
        ("reporter", "PoC attached"),
        ("psirt", "Reproduced"),
    ]
    assert store.get(rid).psirt_contacts() == (T0 + timedelta(hours=1),)


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}]
)
async def test_report_status_needs_its_own_token(client: Client, headers: dict[str, str]) -> None:
    await submit(client)
    other = await submit(client)
    resp = await client.get("/api/v1/reports/R-2026-0001", headers=headers)
    assert resp.status == 401
    resp = await client.get("/api/v1/reports/R-2026-0001", headers=auth(other["reporter_token"]))
    assert resp.status == 401
    assert "not valid for report R-2026-0001" in (await resp.json())["error"]


@pytest.mark.parametrize(
    ("payload", "content_type", "status", "message"),
    [
        (b"{", "application/json", 400, "not valid UTF-8 JSON"),
        (b"\xff\xfe", "application/json", 400, "not valid UTF-8 JSON"),
        (b"[" * 100_00 + b"]" * 100_00, "application/json", 400, "not valid UTF-8 JSON"),
        (json.dumps(report_body()).encode(), "text/plain", 400, "expected 'application/json'"),
        (
            json.dumps(report_body(title=["x"])).encode(),
            "application/json",
            400,
            "field 'title' must be a string, got list",
        ),
        (
            json.dumps({"title": "t"}).encode(),
            "application/json",
            400,
            "field 'description' is required",
        ),
        (
            json.dumps(report_body(version=1)).encode(),
            "application/json",
            400,
            "field 'version' must be a string, got int",
        ),
        (
            json.dumps(report_body(cvss_vector="CVSS:3.1/AV:Q")).encode(),
            "application/json",
            400,
            "malformed",
        ),
        (b"x" * (64 * 1024 + 1), "application/json", 413, "at most 65536"),
    ],
)
async def test_bad_intake_bodies_get_a_clear_4xx(
    client: Client,
    store: PSIRTStore,
    payload: bytes,
    content_type: str,
    status: int,
    message: str,
) -> None:
    resp = await client.post(
        "/api/v1/reports", data=payload, headers={"Content-Type": content_type}
    )
    assert resp.status == status
    assert message in (await resp.json())["error"]
    assert store.all() == []


async def test_chunked_body_without_length_is_bounded_too(client: Client) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 8192

    resp = await client.post(
        "/api/v1/reports", data=chunks(), headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413


async def test_attachments_are_bounded_and_stored(client: Client, store: PSIRTStore) -> None:
    poc = base64.b64encode(b"GET /cgi-bin/x?`id`").decode()
    answer = await submit(
        client,
        attachments=[{"filename": "poc.txt", "content_type": "text/plain", "data_base64": poc}],
    )
    [att] = store.get(answer["tracking_id"]).submission.attachments
    assert att.data == b"GET /cgi-bin/x?`id`"
    resp = await client.post(
        "/api/v1/reports",
        json=report_body(attachments=[{"filename": "a.bin", "data_base64": poc}] * 5),
    )
    assert resp.status == 400


async def test_intake_is_rate_limited_per_source_on_the_injected_clock(
    client: Client, clock: Clock
) -> None:
    for _ in range(5):
        await submit(client)
    resp = await client.post("/api/v1/reports", json=report_body())
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) > 0
    clock.now = T0 + timedelta(hours=1)
    await submit(client)


async def test_psirt_routes_need_the_operator_token(client: Client) -> None:
    for path in ("/api/v1/psirt/reports", "/api/v1/psirt/sla", "/psirt/status"):
        assert (await client.get(path)).status == 401
        assert (await client.get(path, headers=auth("x" * 30))).status == 401
        assert (await client.get(path, headers=auth(OPERATOR))).status == 200


async def test_html_views_escape_reporter_text(client: Client) -> None:
    answer = await submit(client, title="<script>alert('t')</script>")
    resp = await client.get(f"/psirt/reports/{answer['tracking_id']}", headers=auth(OPERATOR))
    page = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;t&#x27;)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # the description
    status_page = await (await client.get("/psirt/status", headers=auth(OPERATOR))).text()
    assert "<script>" not in status_page and "&lt;script&gt;" in status_page


async def test_sla_route_shows_breach_after_the_clock_passes_the_deadline(
    client: Client, clock: Clock, store: PSIRTStore
) -> None:
    answer = await submit(client)
    clock.now = T0 + timedelta(days=7)
    doc = await (await client.get("/api/v1/psirt/sla", headers=auth(OPERATOR))).json()
    assert doc["breach_count"] == 0
    assert [d["kind"] for d in doc["at_risk"]] == ["acknowledge"]
    clock.now = T0 + timedelta(days=7, seconds=1)
    doc = await (await client.get("/api/v1/psirt/sla", headers=auth(OPERATOR))).json()
    assert [(d["report_id"], d["kind"]) for d in doc["breached"]] == [
        (answer["tracking_id"], "acknowledge")
    ]
    await client.get("/api/v1/psirt/sla", headers=auth(OPERATOR))
    assert len(store.audit_entries()) == 1


async def test_acknowledged_state_is_visible_to_the_reporter(
    client: Client, store: PSIRTStore, clock: Clock
) -> None:
    answer = await submit(client)
    store.update(answer["tracking_id"], lambda r: model.acknowledge(r, now=T0 + timedelta(days=1)))
    view = await (
        await client.get(
            f"/api/v1/reports/{answer['tracking_id']}", headers=auth(answer["reporter_token"])
        )
    ).json()
    assert view["state"] == "acknowledged"
    assert [h["state"] for h in view["history"]] == ["received", "acknowledged"]


async def test_unknown_or_malformed_report_ids(client: Client) -> None:
    resp = await client.get("/api/v1/psirt/reports/R-2026-0999", headers=auth(OPERATOR))
    assert resp.status == 404
    resp = await client.get("/api/v1/psirt/reports/..%2Fetc", headers=auth(OPERATOR))
    assert resp.status in (400, 404)


async def test_security_txt_and_policy_are_public_and_valid(client: Client, clock: Clock) -> None:
    clock.now = T0 + timedelta(days=1000)
    resp = await client.get("/.well-known/security.txt")
    assert resp.status == 200 and resp.content_type == "text/plain"
    info = parse_security_txt(
        await resp.text(), now=clock.now, source_url=f"{BASE}/.well-known/security.txt"
    )
    assert info.expires == clock.now + timedelta(days=180)
    assert info.policy == (f"{BASE}/security/policy",)
    page = await (await client.get("/security/policy")).text()
    assert "Acknowledgement-Time: 168 hours" in page
    assert "Status-Update-Interval: 336 hours" in page
    text = await (await client.get("/security/policy", headers={"Accept": "text/plain"})).text()
    assert text.startswith("Vulnerability disclosure policy\n")


async def test_vendor_security_txt_passes_sectxt(client: Client, clock: Clock) -> None:
    """sectxt, an independent RFC 9116 validator: no error; only the missing signature is recommended."""
    clock.now = datetime.now(UTC)  # sectxt judges Expires against the real clock
    body = await (await client.get("/.well-known/security.txt")).read()
    parser = sectxt.Parser(body, urls=f"{BASE}/.well-known/security.txt")
    assert parser.errors == [], parser.errors
    assert {r["code"] for r in parser.recommendations} <= {"not_signed"}, parser.recommendations
    assert parser.contact_url == f"{BASE}/security/policy"  # the first Contact: the page with the form


async def test_the_policy_page_report_form_files_a_report(client: Client, store: PSIRTStore) -> None:
    page = await client.get("/security/policy")
    text = await page.text()
    assert '<form method="post" action="/security/report">' in text
    assert "form-action 'self'" in page.headers["Content-Security-Policy"]
    form = {"title": "Telnet left open", "description": "port 23 answers", "product": "RC-1080",
            "version": "1.0.0", "reporter_contact": ""}  # fmt: skip
    sent = await client.post("/security/report", data=form)
    assert sent.status == 201 and sent.content_type == "text/html"
    answer = await sent.text()
    report = store.all()[-1]
    assert report.submission.title == "Telnet left open" and report.submission.reporter_contact is None
    assert f"Tracking id: <b>{report.report_id}</b>" in answer and "reporter token" in answer
    bad = await client.post("/security/report", data={**form, "title": ""})
    assert bad.status == 400 and "The report was not sent" in await bad.text()
    assert (await client.post("/security/report", json=form)).status == 415


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=3),
    max_leaves=8,
)
_bodies = (
    st.binary(max_size=200)
    | _json.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(
        st.sampled_from(
            [
                "title",
                "description",
                "product",
                "version",
                "cvss_vector",
                "attachments",
                "reporter_contact",
            ]
        ),
        _json,
    ).map(lambda v: json.dumps(v).encode())
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=_bodies)
def test_fuzzed_intake_bodies_never_cause_a_5xx(tmp_path: Path, payload: bytes) -> None:
    async def post() -> int:
        store = PSIRTStore.open(tmp_path / "fuzz.db")
        app = create_vendor_psirt_app(
            store=store,
            policy=load_policy(),
            clock=lambda: T0,
            psirt_token=OPERATOR,
            base_url=BASE,
            web_limits=WebLimits(reports_per_window=10_000),
        )
        try:
            async with TestClient(TestServer(app)) as client:
                resp = await client.post(
                    "/api/v1/reports", data=payload, headers={"Content-Type": "application/json"}
                )
                if resp.status != 201:
                    assert "error" in await resp.json()
                return resp.status
        finally:
            store.close()

    assert asyncio.run(post()) in (201, 400)


async def test_operator_drives_the_workflow_over_the_api(client: Client, clock: Clock) -> None:
    answer = await submit(client)
    path = f"/api/v1/psirt/reports/{answer['tracking_id']}/actions"

    async def act(status: int, **body: str) -> dict[str, Any]:
        resp = await client.post(path, json=body, headers=auth(OPERATOR))
        assert resp.status == status, await resp.text()
        return await resp.json()  # type: ignore[no-any-return]

    assert (
        "from received to fixed"
        in (await act(409, action="fixed", release="refcam-rc1080-v1:1.0.1"))["error"]
    )
    assert "unknown action 'hack'" in (await act(400, action="hack"))["error"]
    assert "takes parameters: cvss (optional: cvss_v3, cwe, cwe_name)" in (await act(400, action="triage"))["error"]
    assert "mark it fixed first" in (await act(409, action="publish"))["error"]
    await act(200, action="ack")
    assert "cwe and cwe_name go together" in (await act(400, action="triage", cvss=V40, cwe="CWE-287"))["error"]
    await act(  # a CVSS v4.0 score, its v3.1 vector for the CSAF 2.0 advisory, and the weakness
        200, action="triage", cvss=V40, cvss_v3="CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
        cwe="CWE-287", cwe_name="Improper Authentication",
    )  # fmt: skip
    await act(200, action="start_fix")
    clock.now = T0 + timedelta(days=5)
    await act(200, action="fixed", release="refcam-rc1080-v1:1.0.1")
    published = await act(200, action="publish", cve="CVE-2026-12345")
    assert published["state"] == "advisory_published"
    assert published["advisory_id"] == "REFCAM-SA-2026-0001"
    index = await (await client.get("/.well-known/csaf/white/index.txt")).text()
    advisory = await (await client.get(f"/.well-known/csaf/white/{index.strip()}")).json()
    assert advisory["vulnerabilities"][0]["cve"] == "CVE-2026-12345"
    assert advisory["vulnerabilities"][0]["cwe"] == {"id": "CWE-287", "name": "Improper Authentication"}
    assert advisory["vulnerabilities"][0]["scores"][0]["cvss_v3"]["baseScore"] == 9.8
    view = await (
        await client.get(
            f"/api/v1/reports/{answer['tracking_id']}", headers=auth(answer["reporter_token"])
        )
    ).json()
    assert (view["state"], view["fixed_in"]) == ("advisory_published", "refcam-rc1080-v1:1.0.1")
    assert (await client.post(path, json={"action": "ack"})).status == 401


def test_short_operator_token_is_refused(store: PSIRTStore) -> None:
    with pytest.raises(PSIRTInputError, match="at least 16 characters"):
        create_vendor_psirt_app(
            store=store, policy=load_policy(), clock=lambda: T0, psirt_token="short", base_url=BASE
        )


async def test_storage_failure_is_503_without_internal_detail(
    client: Client, store: PSIRTStore
) -> None:
    store.close()
    resp = await client.post("/api/v1/reports", json=report_body())
    assert resp.status == 503
    error = (await resp.json())["error"]
    assert error == "the vulnerability database is unavailable; try again later"
    resp = await client.get("/api/v1/psirt/reports", headers=auth(OPERATOR))
    assert resp.status == 503


async def test_extension_mounts_every_route_on_another_app(
    aiohttp_client: Any, store: PSIRTStore
) -> None:
    app = web.Application()
    disclosure_extension(
        store=store, policy=load_policy(), clock=lambda: T0, psirt_token=OPERATOR, base_url=BASE
    )(app)
    client = await aiohttp_client(app)
    assert (await client.get("/.well-known/security.txt")).status == 200
    assert (await client.get("/.well-known/csaf/provider-metadata.json")).status == 200
    assert (await client.post("/api/v1/reports", json=report_body())).status == 201
    big = {"title": "t", "description": "x" * (2 * 2**20), "product": "p", "version": "1"}
    assert (await client.post("/api/v1/reports", json=big)).status == 413
