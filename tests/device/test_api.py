"""The JSON API over real TLS: login, forced change, info/status, users, attestation, bad input."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from device_fixtures import INITIAL_PASSWORD, NEW_PASSWORD, RunningDevice, StartDevice
from hypothesis import given, settings
from hypothesis import strategies as st

from common import tls
from device.api import parse_json_object
from device.errors import RequestError
from refcam.cli import main


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_every_response_carries_hsts_and_security_headers(device: RunningDevice) -> None:
    async with device.client() as s:
        for path in ("/api/v1/info", "/api/v1/status", "/nowhere"):
            async with s.get(device.url(path)) as r:
                assert r.headers["Strict-Transport-Security"] == "max-age=63072000"
                assert r.headers["Server"] == "refcam"
                assert r.headers["X-Content-Type-Options"] == "nosniff"
                assert r.headers["Referrer-Policy"] == "no-referrer"
                assert r.headers["X-Frame-Options"] == "DENY"
                csp = r.headers["Content-Security-Policy"]
                assert csp.startswith("default-src 'self'") and "frame-ancestors 'none'" in csp


async def test_public_info_shows_model_and_support_period_but_not_serial(device: RunningDevice) -> None:
    async with device.client() as s, s.get(device.url("/api/v1/info")) as r:
        assert r.status == 200
        assert await r.json() == {
            "vendor": "refcam", "model": "RC-1080", "support_end": "2031-12-31", "password_policy": "nist-800-63b"
        }
    token = await device.admin_token()
    async with device.client() as s, s.get(device.url("/api/v1/info"), headers=bearer(token)) as r:
        body = await r.json()
        assert body["serial"] == "RCTEST000001" and body["firmware_version"] == "1.2.0"


async def test_label_password_only_allows_the_password_change(device: RunningDevice) -> None:
    first = await device.login()
    assert first["password_change_required"] is True and first["role"] == "admin"
    async with device.client() as s:
        async with s.get(device.url("/api/v1/status"), headers=bearer(first["token"])) as r:
            assert r.status == 403
            assert (await r.json())["error"] == "password_change_required"
        async with s.get(device.url("/api/v1/session"), headers=bearer(first["token"])) as r:
            assert r.status == 200 and (await r.json())["password_change_required"] is True
        async with s.post(
            device.url("/api/v1/session/password"),
            json={"current_password": INITIAL_PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(first["token"]),
        ) as r:
            assert r.status == 204
        async with s.get(device.url("/api/v1/status"), headers=bearer(first["token"])) as r:
            assert r.status == 200
            status = await r.json()
            assert status["booted_slot"] == "a" and status["lifecycle"] == "secured"
            assert status["slots"][1]["state"] == "invalid"
            assert status["measurement_register"] == "5a" * 32
            assert status["tls_profile"] == "intermediate" and status["password_policy"] == "nist-800-63b"
    # the old password no longer works, the new one does (REQUIREMENTS row 5)
    async with device.client() as s, s.post(
        device.url("/api/v1/session"), json={"username": "admin", "password": INITIAL_PASSWORD}
    ) as r:
        assert r.status == 401
    device.clock.advance(10)  # past the 1 s back-off of that failure
    again = await device.login(password=NEW_PASSWORD)
    assert again["password_change_required"] is False


async def test_weak_new_password_is_rejected_with_reasons(device: RunningDevice) -> None:
    first = await device.login()
    async with device.client() as s, s.post(
        device.url("/api/v1/session/password"),
        json={"current_password": INITIAL_PASSWORD, "new_password": "admin"},
        headers=bearer(first["token"]),
    ) as r:
        assert r.status == 400
        body = await r.json()
        assert body["error"] == "password_policy"
        assert "password has 5 characters; at least 15 are required" in body["reasons"]
        assert "password is a known default or commonly used password" in body["reasons"]
        assert "password contains the user name" in body["reasons"]


async def test_admin_manages_users_and_roles_are_enforced(device: RunningDevice) -> None:
    token = await device.admin_token()
    async with device.client() as s:
        async with s.post(
            device.url("/api/v1/users"),
            json={"username": "olga", "role": "viewer", "password": "short"},
            headers=bearer(token),
        ) as r:
            assert r.status == 400 and (await r.json())["error"] == "password_policy"
        async with s.post(
            device.url("/api/v1/users"),
            json={"username": "olga", "role": "viewer", "password": "granite lantern orbit seven"},
            headers=bearer(token),
        ) as r:
            assert r.status == 201
            assert (await r.json())["password_change_required"] is True
        async with s.post(
            device.url("/api/v1/users"),
            json={"username": "olga", "role": "viewer", "password": "granite lantern orbit seven"},
            headers=bearer(token),
        ) as r:
            assert r.status == 409 and (await r.json())["error"] == "user_exists"
    olga = await device.login("olga", "granite lantern orbit seven")
    async with device.client() as s:
        async with s.post(
            device.url("/api/v1/session/password"),
            json={"current_password": "granite lantern orbit seven", "new_password": "copper kettle sings at dawn"},
            headers=bearer(olga["token"]),
        ) as r:
            assert r.status == 204
        async with s.get(device.url("/api/v1/status"), headers=bearer(olga["token"])) as r:
            assert r.status == 200
        async with s.get(device.url("/api/v1/users"), headers=bearer(olga["token"])) as r:
            assert r.status == 403 and (await r.json())["error"] == "forbidden"
        async with s.patch(
            device.url("/api/v1/users/admin"), json={"role": "viewer"}, headers=bearer(token)
        ) as r:
            assert r.status == 409 and (await r.json())["error"] == "last_admin"
        async with s.delete(device.url("/api/v1/users/olga"), headers=bearer(token)) as r:
            assert r.status == 204
        # her session died with her account
        async with s.get(device.url("/api/v1/status"), headers=bearer(olga["token"])) as r:
            assert r.status == 401


async def test_attestation_binds_the_callers_nonce(device: RunningDevice) -> None:
    token = await device.admin_token()
    nonce = bytes(range(32))
    async with device.client() as s:
        async with s.post(
            device.url("/api/v1/attestation"), json={"nonce": nonce.hex()}, headers=bearer(token)
        ) as r:
            assert r.status == 200
            evidence = base64.b64decode((await r.json())["evidence"])
        attester = device.handoff.attester
        assert attester.calls[-1] == (nonce, int(device.clock.now))  # type: ignore[attr-defined]
        message = hashlib.sha256(nonce + int(device.clock.now).to_bytes(8, "big")).digest()
        attester.alias_key.public_key().verify(evidence, message)  # type: ignore[attr-defined]
        for bad in ("00" * 15, "00" * 65, "zz" * 16, 17):
            async with s.post(
                device.url("/api/v1/attestation"), json={"nonce": bad}, headers=bearer(token)
            ) as r:
                assert r.status == 400, bad


async def test_bad_bodies_get_4xx_json_never_500(device: RunningDevice) -> None:
    login = device.url("/api/v1/session")
    cases = [
        (b"{", "application/json", 400, "malformed_json"),
        (b"[]", "application/json", 400, "bad_type"),
        (b'{"username": 1, "password": "x"}', "application/json", 400, "bad_type"),
        (b'{"username": "admin"}', "application/json", 400, "missing_field"),
        (b'{"username": "\xff", "password": "x"}', "application/json", 400, "bad_encoding"),
        (b"NaN", "application/json", 400, "malformed_json"),
        (b"x" * (65 * 1024), "application/json", 413, "payload_too_large"),
        (b"username=admin", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"[" * 100_000, "application/json", 413, "payload_too_large"),
        (b"[" * 50_000, "application/json", 400, "malformed_json"),
    ]
    async with device.client() as s:
        for body, ctype, status, code in cases:
            async with s.post(login, data=body, headers={"Content-Type": ctype}) as r:
                assert r.status == status, (body[:20], await r.text())
                answer = await r.json()
                assert answer["error"] == code and answer["message"]


async def test_openapi_lists_every_route_with_its_access(device: RunningDevice) -> None:
    async with device.client() as s, s.get(device.url("/api/v1/openapi.json")) as r:
        doc = await r.json()
    assert doc["openapi"] == "3.1.0"
    assert doc["paths"]["/api/v1/users/{name}"]["delete"]["x-refcam-access"] == "admin"
    assert doc["paths"]["/api/v1/session"]["post"]["security"] == []
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in device.app.router.routes()
        if route.method != "HEAD"
    }
    listed = {(path, m) for path, item in doc["paths"].items() for m in item if m != "parameters"}
    assert listed == routes


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_json_parser_accepts_objects_and_refuses_the_rest_with_request_error(raw: bytes) -> None:
    try:
        value = parse_json_object(raw)
    except RequestError as exc:
        assert exc.status == 400 and exc.code in {"bad_encoding", "malformed_json", "bad_type"}
    else:
        assert isinstance(value, dict)
        assert value == json.loads(raw.decode("utf-8"))


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=20))
def test_json_parser_round_trips_any_json_value(value: object) -> None:
    raw = json.dumps(value).encode()
    if isinstance(value, dict):
        assert parse_json_object(raw) == value
    else:
        try:
            parse_json_object(raw)
        except RequestError as exc:
            assert exc.code == "bad_type"
        else:
            raise AssertionError("a non-object body was accepted")


@pytest.mark.slow
def test_refcam_device_run_boots_the_chain_and_serves_only_tls(tmp_path: Path) -> None:
    """The whole path: keys, signed image, provisioning, `refcam device run` from the verified image."""
    assert main(["keys", "init", "--dir", str(tmp_path / "K")]) == 0
    image = tmp_path / "fw.img"
    assert main(["firmware", "build", "--keys", str(tmp_path / "K"), "--version", "1.0.0",
                 "--security-counter", "1", "-o", str(image)]) == 0
    state = tmp_path / "S"
    assert main(["device", "provision", "--state", str(state), "--keys", str(tmp_path / "K"),
                 "--firmware", str(image)]) == 0
    label = (state / "label.txt").read_text()
    password = re.search(r"initial password: (\S+)", label).group(1)  # type: ignore[union-attr]
    root = tmp_path / "root.pem"
    root.write_bytes((state / "data" / "identity" / "manufacturer-root.pem").read_bytes())
    proc = subprocess.Popen(
        [sys.executable, "-m", "refcam.cli", "device", "run", "--state", str(state), "--port", "0",
         "--redirect-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None
        lines = []
        while not any(line.startswith("refcam device serving https://") for line in lines):
            line = proc.stdout.readline()
            assert line, f"device exited early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line.strip())
        serving = lines[-1]
        redirect = next(line for line in lines if line.startswith("refcam device redirecting"))
        assert "firmware 1.0.0" in serving
        port = int(serving.split()[3].rsplit(":", 1)[1])
        http_port = int(redirect.split()[3].rsplit(":", 1)[1])
        ctx = tls.client_context(root)
        conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=10)
        conn.request("POST", "/api/v1/session", body=json.dumps({"username": "admin", "password": password}),
                     headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        assert answer.status == 200 and json.loads(answer.read())["password_change_required"] is True
        assert answer.getheader("Strict-Transport-Security") == "max-age=63072000"
        plain = http.client.HTTPConnection("127.0.0.1", http_port, timeout=10)
        plain.request("GET", "/api/v1/info")
        moved = plain.getresponse()
        assert moved.status == 308 and moved.read() == b""
        assert moved.getheader("Location") == f"https://127.0.0.1:{port}/api/v1/info"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_admin_switches_password_policy_and_it_is_audited_and_kept(start_device: StartDevice) -> None:
    device = await start_device()
    token = await device.admin_token()
    headers = bearer(token)
    new_user = {"username": "kim", "role": "viewer", "password": "Zq8#mT2v"}
    async with device.client() as s:
        async with s.post(device.url("/api/v1/users"), json=new_user, headers=headers) as r:
            assert r.status == 400  # 8 characters: too short for NIST 800-63B
        async with s.patch(device.url("/api/v1/settings"), json={"password_policy": "kr"}, headers=headers) as r:
            assert r.status == 400 and (await r.json())["error"] == "bad_value"
        async with s.patch(device.url("/api/v1/settings"), json={"colour": "red"}, headers=headers) as r:
            assert r.status == 400 and (await r.json())["error"] == "unknown_setting"
        async with s.patch(
            device.url("/api/v1/settings"), json={"password_policy": "kr-terminal"}, headers=headers
        ) as r:
            assert r.status == 200
        async with s.post(device.url("/api/v1/users"), json=new_user, headers=headers) as r:
            assert r.status == 201  # 8 characters in 4 classes: the Korean rule
        async with s.get(device.url("/api/v1/audit?limit=500"), headers=headers) as r:
            changes = [e for e in (await r.json())["entries"] if e["event"] == "config_change"]
            assert [c["detail"] for c in changes] == [{"password_policy": ["nist-800-63b", "kr-terminal"]}]
    await device.stop()
    device = await start_device()  # a reboot keeps the setting
    token = (await device.login(password=NEW_PASSWORD))["token"]
    async with device.client() as s, s.get(device.url("/api/v1/settings"), headers=bearer(token)) as r:
        assert (await r.json())["password_policy"] == "kr-terminal"


async def test_fuzzed_bodies_on_every_json_route_never_get_a_500(device: RunningDevice) -> None:
    """Seeded random bytes and type-confused JSON on each POST/PATCH route: always 4xx JSON, never 500."""
    import random

    rng = random.Random(20260601)
    token = await device.admin_token()
    routes = [
        (route.method, route.resource.canonical.replace("{name}", "admin"))
        for route in device.app.router.routes()
        if route.method in ("POST", "PATCH")
    ]
    values = [None, True, 0, -1, 2**70, 1.5, "", "x" * 300, [], {}, ["a"], {"a": 1}, "\u0000", "\ud7ff"]
    fields = ["username", "password", "role", "nonce", "current_password", "new_password", "password_policy"]
    bodies: list[bytes] = [bytes(rng.getrandbits(8) for _ in range(rng.randrange(64))) for _ in range(40)]
    for _ in range(60):
        doc = {rng.choice(fields): rng.choice(values) for _ in range(rng.randrange(4))}
        bodies.append(json.dumps(doc).encode())
    async with device.client() as s:
        for method, path in routes:
            for body in bodies:
                async with s.request(
                    method, device.url(path), data=body,
                    headers={"Content-Type": "application/json", **bearer(token)},
                ) as r:
                    assert r.status < 500, (method, path, body, await r.text())
                    if r.status >= 400:
                        assert (await r.json())["error"]


@pytest.mark.slow
def test_device_ca_label_and_renew_cert_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "init", "--dir", str(tmp_path / "K")]) == 0
    image = tmp_path / "fw.img"
    assert main(["firmware", "build", "--keys", str(tmp_path / "K"), "--version", "1.0.0",
                 "--security-counter", "1", "-o", str(image)]) == 0
    state = tmp_path / "S"
    assert main(["device", "provision", "--state", str(state), "--keys", str(tmp_path / "K"),
                 "--firmware", str(image)]) == 0
    capsys.readouterr()
    assert main(["device", "ca", "--state", str(state)]) == 0
    root_pem = capsys.readouterr().out
    assert root_pem == (state / "data" / "identity" / "manufacturer-root.pem").read_text()
    assert main(["device", "label", "--state", str(state)]) == 0
    assert "initial password:" in capsys.readouterr().out
    before = (state / "data" / "identity" / "tls.pem").read_bytes()
    assert main(["device", "renew-cert", "--state", str(state), "--keys", str(tmp_path / "K"), "--days", "90"]) == 0
    assert "renewed TLS certificate" in capsys.readouterr().out
    after = (state / "data" / "identity" / "tls.pem").read_bytes()
    assert after != before
    leaf = x509.load_pem_x509_certificates(after)[0]
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 90
    assert leaf.public_key() == x509.load_pem_x509_certificates(before)[0].public_key()  # same device key
    assert main(["device", "renew-cert", "--state", str(state), "--keys", str(tmp_path / "K"), "--days", "400"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("refcam: error:") and "400 days" in err[0]
