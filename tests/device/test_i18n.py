"""The web UI's languages: complete catalogues, Accept-Language, each account's choice."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from device_fixtures import INITIAL_PASSWORD, RunningDevice, StartDevice

from device.i18n import LANGUAGES, load_messages, negotiate, parse_accept_language
from device.webui import add_language_routes, add_webui_routes

ROOT = Path(__file__).resolve().parents[2]


def i18n_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("refcam_i18n_tool", ROOT / "scripts" / "i18n.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_ui_string_has_a_korean_translation_with_its_placeholders() -> None:
    tool = i18n_tool()
    assert tool.missing("ko") == []
    assert tool.missing("ko", "api") == []
    assert len(list(tool.build_template("api"))) > 40
    template = list(tool.build_template())
    assert len(template) > 200  # the whole UI, not a sample
    messages = load_messages("ko")
    assert messages["Dashboard"] == "대시보드"
    assert messages["Too many failed logins. Try again in {seconds} seconds."].count("{seconds}") == 1


def test_a_new_string_without_translation_fails_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = i18n_tool()
    static = tmp_path / "device" / "webui" / "static"
    shutil.copytree(tool.STATIC, static)
    (static / "app.js").write_text(
        (static / "app.js").read_text() + '\nconsole.log(_("A sentence added without its translation {n}", { n: 1 }));\n'
    )
    html = (static / "index.html").read_text().replace("<h1>Log in</h1>", "<h1>Sign in here</h1>")
    (static / "index.html").write_text(html)
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    monkeypatch.setattr(tool, "STATIC", static)
    problems = tool.missing("ko")
    assert "no ko translation of 'A sentence added without its translation {n}'" in problems
    assert "no ko translation of 'Sign in here'" in problems
    assert "ko catalogue has a string no longer in the UI: 'Log in'" not in problems  # still used by the button


def test_a_translation_that_drops_a_placeholder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = i18n_tool()
    po = tmp_path / "ko" / "LC_MESSAGES" / "webui.po"
    po.parent.mkdir(parents=True)
    text = tool.po_path("ko").read_text(encoding="utf-8")
    po.write_text(text.replace('msgstr "{hours}시간마다"', 'msgstr "매시간"'), encoding="utf-8")
    monkeypatch.setattr(tool, "LOCALE", tmp_path)
    assert tool.missing("ko") == ["ko translation of 'every {hours} h' does not use the placeholders ['hours']"]


@pytest.mark.parametrize(
    ("header", "preferred", "expected"),
    [
        ("ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7", None, "ko"),
        ("en-US,en;q=0.9,ko;q=0.8", None, "en"),
        ("fr-FR, ko;q=0.5", None, "ko"),
        ("ko;q=0, en", None, "en"),
        ("de, fr", None, "en"),
        ("", None, "en"),
        (None, None, "en"),
        ("*", None, "en"),
        ("ko;q=abc, en;q=0.1", None, "en"),
        ("en", "ko", "ko"),  # the account's choice wins
        ("ko", "xx", "ko"),  # an unknown stored choice is ignored
        ("\u00e9\u00e9, ko", None, "ko"),
        ("x" * 5000, None, "en"),
    ],
)
def test_negotiation_follows_accept_language_and_the_account(header: str | None, preferred: str | None, expected: str) -> None:
    assert negotiate(header, preferred=preferred) == expected


def test_accept_language_ranks_by_q_then_order() -> None:
    assert parse_accept_language("en;q=0.5, ko, fr;q=0.5") == ["ko", "en", "fr"]


@pytest.fixture
async def ui_device(start_device: StartDevice) -> RunningDevice:
    device: RunningDevice = await start_device(extensions=[add_webui_routes, add_language_routes])
    return device


async def _call(device: RunningDevice, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    async with device.client() as s, s.request(method, device.url(path), **kw) as r:
        body = await r.json() if r.content_type == "application/json" else await r.text()
        return r.status, body


async def test_catalogue_route_answers_in_the_browsers_language(ui_device: RunningDevice) -> None:
    device = ui_device
    status, body = await _call(device, "GET", "/api/v1/i18n", headers={"Accept-Language": "ko-KR,ko;q=0.9"})
    assert status == 200 and body["language"] == "ko" and body["messages"]["Log in"] == "로그인"
    assert body["languages"] == dict(LANGUAGES)
    status, body = await _call(device, "GET", "/api/v1/i18n?lang=en", headers={"Accept-Language": "ko"})
    assert status == 200 and body["language"] == "en" and body["messages"] == {}
    status, body = await _call(device, "GET", "/api/v1/i18n?lang=%F0%9F%98%80")
    assert status == 400 and body["error"] == "bad_value"


async def test_language_choice_needs_the_forced_change_first_and_is_audited(ui_device: RunningDevice) -> None:
    device = ui_device
    first = await device.login()
    label_auth = {"Authorization": f"Bearer {first['token']}"}
    status, body = await _call(device, "GET", "/api/v1/session/language", headers=label_auth)
    assert status == 403 and body["error"] == "password_change_required"
    status, body = await _call(device, "PUT", "/api/v1/session/language", json={"language": "ko"}, headers=label_auth)
    assert status == 403 and body["error"] == "password_change_required"
    status, _ = await _call(device, "PUT", "/api/v1/session/language", json={"language": "ko"})
    assert status == 401
    token = await device.admin_token()
    auth = {"Authorization": f"Bearer {token}"}
    for bad, code in (
        ({"language": "fr"}, "bad_value"),
        ({"language": 1}, "bad_type"),
        ({"language": "ko", "theme": "dark"}, "unknown_field"),
        ({}, "missing_field"),
        ({"language": "k" * 100}, "too_long"),
    ):
        status, body = await _call(device, "PUT", "/api/v1/session/language", json=bad, headers=auth)
        assert status == 400 and body["error"] == code, (bad, body)
    status, body = await _call(device, "GET", "/api/v1/session/language", headers=auth)
    assert status == 200 and body == {"language": None}
    status, body = await _call(device, "PUT", "/api/v1/session/language", json={"language": "ko"}, headers=auth)
    assert status == 200 and body == {"language": "ko"}
    status, body = await _call(device, "GET", "/api/v1/session/language", headers=auth)
    assert body == {"language": "ko"}
    status, page = await _call(device, "GET", "/api/v1/audit?after=0&limit=100", headers=auth)
    changes = [e for e in page["entries"] if e["event"] == "preference_change"]
    assert [c["detail"] for c in changes] == [{"language": [None, "ko"]}]
    assert changes[0]["actor"] == "admin"


def test_messages_keep_their_english_text_and_translate_with_their_values() -> None:
    from device.i18n import msg, translate

    text = msg("password has {length} characters; at least {minimum} are required", length=9, minimum=15)
    assert text == "password has 9 characters; at least 15 are required"
    assert translate(text, "en") == text
    assert translate(text, "ko") == "비밀번호가 9자입니다. 15자 이상이어야 합니다"
    nested = msg("password contains the {what}", what=msg("device serial number"))
    assert translate(nested, "ko") == "비밀번호에 기기 일련번호이(가) 들어 있습니다"
    assert translate("plain text from elsewhere", "ko") == "plain text from elsewhere"
    assert translate(msg("a template no catalogue has {x}", x=1), "ko") == "a template no catalogue has 1"


async def test_api_refusals_speak_the_clients_language_and_keep_their_codes(ui_device: RunningDevice) -> None:
    device = ui_device
    ko = {"Accept-Language": "ko-KR,ko;q=0.9"}
    status, body = await _call(device, "GET", "/api/v1/users", headers=ko)
    assert status == 401 and body == {"error": "authentication_required", "message": "먼저 로그인하십시오(POST /api/v1/session)"}
    status, body = await _call(device, "GET", "/api/v1/users")
    assert body["message"] == "log in first (POST /api/v1/session)"
    status, body = await _call(device, "POST", "/api/v1/session", json={"username": "admin", "password": "wrong"}, headers=ko)
    assert status == 401 and body["error"] == "invalid_credentials" and body["message"] == "사용자 이름 또는 비밀번호가 올바르지 않습니다"
    device.clock.advance(10)  # past the back-off of that one failure
    first = await device.login()
    auth = {"Authorization": f"Bearer {first['token']}", **ko}
    status, body = await _call(
        device, "POST", "/api/v1/session/password", headers=auth,
        json={"current_password": INITIAL_PASSWORD, "new_password": "short"},
    )
    assert status == 400 and body["error"] == "password_policy"
    assert "비밀번호가 5자입니다. 15자 이상이어야 합니다" in body["reasons"]
    assert body["message"].startswith("비밀번호 거부: ")
    status, body = await _call(device, "PUT", "/api/v1/session/language", json={"language": "ko"}, headers=auth)
    assert status == 403 and body["error"] == "password_change_required" and "초기 비밀번호" in body["message"]
