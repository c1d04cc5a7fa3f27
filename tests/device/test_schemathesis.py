"""schemathesis against the device's own OpenAPI document (issue 13, fuzzing that keeps it so).

For every operation, positive and negative examples (a bounded number each),
sent as each caller: the first-boot admin before the forced change, a viewer,
an operator, an admin that must still change its password, a full admin, and
nobody. Every answer: no 5xx, a documented status, the documented content type
and schema; a 4xx changes nothing (audit head, settings, users, sessions), except where a
refusal is itself recorded by design (failed logins and password changes).
Figures are printed (pytest -s) and asserted non-trivial.
"""

from __future__ import annotations

import asyncio
import collections
import os
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from device_fixtures import INITIAL_PASSWORD, NEW_PASSWORD, RunningDevice, StartDevice
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from device.appkeys import AUDIT_KEY, CONFIG_KEY, CREDENTIALS_KEY, SESSIONS_KEY
from device.openapi import build_openapi

EXAMPLES = int(os.environ.get("REFCAM_FUZZ_EXAMPLES", "8"))  # per operation, mode and caller
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# refusals that are recorded on purpose (a failed login counts and is audited)
AUDITED_REFUSALS = {("POST", "/api/v1/session"), ("POST", "/api/v1/session/password")}
LAST = {("DELETE", "/api/v1/session")}  # logout ends the caller's session: run it last


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _state(device: RunningDevice) -> tuple[Any, ...]:
    config = device.app[CONFIG_KEY]
    try:
        settings_bytes = config.settings_file.read_bytes()
    except FileNotFoundError:
        settings_bytes = b""
    users = tuple(device.app[CREDENTIALS_KEY].list_users())
    return device.app[AUDIT_KEY].head(), settings_bytes, users, device.app[SESSIONS_KEY].count()


def _fuzz(
    device: RunningDevice, schema: Any, cafile: Path, headers: dict[str, str], figures: collections.Counter[str],
    failures: list[str],
) -> None:
    """Runs in a thread: the device serves on the test's event loop meanwhile."""
    session = requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    operations.sort(key=lambda op: (op.method.upper(), op.path) in LAST)
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz_operation(device, operation, mode, session, cafile, headers, figures, failures)
            except Unsatisfiable:  # no parameter and no body: nothing negative to send
                figures["unsatisfiable_negative"] += 1
            except Exception as exc:  # a generation problem is a finding too
                failures.append(f"{operation.method.upper()} {operation.path} {mode}: {type(exc).__name__}: {exc}")


def _fuzz_operation(
    device: RunningDevice, operation: Any, mode: GenerationMode, session: requests.Session, cafile: Path,
    headers: dict[str, str], figures: collections.Counter[str], failures: list[str],
) -> None:
    key = (operation.method.upper(), operation.path)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        before = _state(device)
        response = case.call(base_url=device.base, session=session, headers=headers, verify=str(cafile), timeout=10)
        figures["requests"] += 1
        figures[f"status_{response.status_code // 100}xx"] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, BaseExceptionGroup) as exc:  # collected, reported together at the end
            failures.append(f"{key} {mode} {response.status_code} {response.text[:200]!r}: {str(exc)[:800]}")
        if 400 <= response.status_code < 500 and key not in AUDITED_REFUSALS:
            after = _state(device)
            if after != before:
                failures.append(f"{key} {response.status_code} changed state: {before} -> {after}")

    run()


async def _login(device: RunningDevice, username: str, password: str) -> str:
    async with device.client() as s, s.post(
        device.url("/api/v1/session"), json={"username": username, "password": password}
    ) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["token"])


@pytest.mark.slow
async def test_schemathesis_finds_no_5xx_no_schema_drift_and_no_4xx_effect(
    start_device: StartDevice, tmp_path: Path
) -> None:
    device = await start_device()
    cafile = tmp_path / "root.pem"
    cafile.write_bytes(device.app[CONFIG_KEY].identity_dir.joinpath("manufacturer-root.pem").read_bytes())
    schema = schemathesis.openapi.from_dict(build_openapi(device.app))
    figures: collections.Counter[str] = collections.Counter()
    failures: list[str] = []

    async def fuzz_as(who: str, headers: dict[str, str]) -> None:
        start = figures["requests"]
        await asyncio.to_thread(_fuzz, device, schema, cafile, headers, figures, failures)
        figures[f"as_{who}"] = figures["requests"] - start
        device.clock.advance(61)  # the fuzzed logins' per-source throttle window passes

    # 1. first boot: the label password's session, before the forced change
    owner = device.client()  # keeps the device cookie: the owner passes the lockout fuzzing causes
    async with owner.post(device.url("/api/v1/session"),
                          json={"username": "admin", "password": INITIAL_PASSWORD}) as r:
        first = (await r.json())["token"]
    await fuzz_as("first_boot_admin", bearer(first))
    async with owner.post(device.url("/api/v1/session"),
                          json={"username": "admin", "password": INITIAL_PASSWORD}) as r:
        assert r.status == 200, await r.text()
        token = (await r.json())["token"]
    async with owner.post(device.url("/api/v1/session/password"), headers=bearer(token),
                          json={"current_password": INITIAL_PASSWORD, "new_password": NEW_PASSWORD}) as r:
        assert r.status == 204, await r.text()
    async with owner.post(device.url("/api/v1/session"),
                          json={"username": "admin", "password": NEW_PASSWORD}) as r:
        assert r.status == 200, await r.text()
        admin = (await r.json())["token"]
    tokens = {}
    async with device.client() as s:
        for name, role in (("vera", "viewer"), ("otto", "operator"), ("penny", "admin")):
            initial = f"initial passphrase of a new {role} account"
            async with s.post(device.url("/api/v1/users"), headers=bearer(admin),
                              json={"username": name, "role": role, "password": initial}) as r:
                assert r.status == 201, await r.text()
            tokens[name] = await _login(device, name, initial)
            if name != "penny":  # penny stays before her forced change
                async with s.post(device.url("/api/v1/session/password"), headers=bearer(tokens[name]),
                                  json={"current_password": initial, "new_password": f"{NEW_PASSWORD} {role}"}) as r:
                    assert r.status == 204, await r.text()
    await fuzz_as("viewer", bearer(tokens["vera"]))
    await fuzz_as("operator", bearer(tokens["otto"]))
    await fuzz_as("admin_before_change", bearer(tokens["penny"]))
    await fuzz_as("admin", bearer(admin))
    await fuzz_as("anonymous", {})
    print(f"schemathesis: {dict(figures)}; {len(failures)} failures")
    assert not failures, "\n".join(failures[:30])
    assert figures["requests"] >= 5 * 19 * EXAMPLES
    assert figures["status_5xx"] == 0
    assert "internal_error" not in {entry.event for entry in device.app[AUDIT_KEY].entries()}
