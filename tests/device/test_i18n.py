"""The web UI's languages: complete catalogues, Accept-Language, each account's choice."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from device_fixtures import RunningDevice, StartDevice

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
