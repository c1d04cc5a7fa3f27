"""schemathesis against the vendor API's OpenAPI document (update_server/openapi.py).

Positive and negative examples for every operation, as nobody, as the
reporter of a real report and as the PSIRT operator, with path parameters
both generated and set to the real report: no 5xx, documented status, content
type and schema, and a 4xx leaves the reports as they were.
"""

from __future__ import annotations

import asyncio
import collections
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from update_server.openapi import vendor_openapi
from update_server.psirt.model import report_to_json
from update_server.psirt.policy import load_policy
from update_server.psirt.store import PSIRTStore
from update_server.psirt.web import WebLimits, create_vendor_psirt_app

EXAMPLES = int(os.environ.get("REFCAM_FUZZ_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
OPERATOR = "operator-token-0123456789abcdef"
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _snapshot(store: PSIRTStore) -> list[dict[str, Any]]:
    return [report_to_json(r) for r in store.all()]


def _fuzz(base: str, store: PSIRTStore, headers: dict[str, str], path_parameters: dict[str, str] | None,
          figures: collections.Counter[str], failures: list[str]) -> None:
    schema = schemathesis.openapi.from_dict(vendor_openapi())
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            key = f"{operation.method.upper()} {operation.path} {mode}"
            fixed = path_parameters if "{report_id}" in operation.path else None
            try:
                _fuzz_operation(base, store, operation, mode, fixed, session, headers, key, figures, failures)
            except Unsatisfiable:
                figures["unsatisfiable_negative"] += 1
            except Exception as exc:  # a generation problem is a finding too
                failures.append(f"{key}: {type(exc).__name__}: {str(exc)[:300]}")


def _fuzz_operation(
    base: str, store: PSIRTStore, operation: Any, mode: GenerationMode, fixed: dict[str, str] | None,
    session: requests.Session, headers: dict[str, str], key: str, figures: collections.Counter[str],
    failures: list[str],
) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=fixed))
    def run(case: Any) -> None:
        before = _snapshot(store)
        response = case.call(base_url=base, session=session, headers=headers, timeout=10)
        figures["requests"] += 1
        figures[f"status_{response.status_code // 100}xx"] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:
            failures.append(f"{key} {response.status_code} {response.text[:200]!r}: {str(exc)[:600]}")
        if 400 <= response.status_code < 500 and _snapshot(store) != before:
            failures.append(f"{key} {response.status_code} changed the reports")

    run()


@pytest.mark.slow
async def test_schemathesis_on_the_vendor_api(aiohttp_server: Any, tmp_path: Path) -> None:
    store = PSIRTStore.open(tmp_path / "psirt.db")
    app = create_vendor_psirt_app(
        store=store, policy=load_policy(), clock=lambda: T0, psirt_token=OPERATOR,
        base_url="https://vendor.example",
        web_limits=WebLimits(max_body=64 * 1024, reports_per_window=10_000, messages_per_window=10_000,
                             window=timedelta(hours=1)),
    )
    server = await aiohttp_server(app, host="127.0.0.1")
    base = str(server.make_url("")).rstrip("/")
    answer = await asyncio.to_thread(requests.post, f"{base}/api/v1/reports", timeout=10, json={
        "title": "Stored XSS in camera name", "description": "Set the name to <script>.",
        "product": "RC-1080", "version": "1.0.0"})
    assert answer.status_code == 201, answer.text
    report = answer.json()
    real = {"report_id": report["tracking_id"]}
    figures: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    for who, headers in (
        ("anonymous", {}),
        ("reporter", {"Authorization": f"Bearer {report['reporter_token']}"}),
        ("operator", {"Authorization": f"Bearer {OPERATOR}"}),
    ):
        for params in (None, real):
            start = figures["requests"]
            await asyncio.to_thread(_fuzz, base, store, headers, params, figures, failures)
            figures[f"as_{who}{'_real_id' if params else ''}"] = figures["requests"] - start
    store.close()
    print(f"schemathesis (vendor): {dict(figures)}; {len(failures)} failures")
    assert not failures, "\n".join(failures[:30])
    assert figures["status_5xx"] == 0 and figures["requests"] >= 6 * 9 * EXAMPLES
