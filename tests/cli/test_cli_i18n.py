"""The refcam command in Korean: a complete ``cli`` catalogue, chosen the standard way.

``LANG=ko_KR.UTF-8`` (or ``LANGUAGE``/``LC_ALL``/``LC_MESSAGES``, or ``--lang ko``)
turns the command's one-line errors, status lines and help into Korean, argparse's
own usage errors included; exit statuses and JSON do not change; English stays the
default.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from refcam.cli import main

ROOT = Path(__file__).resolve().parents[2]
REFCAM = [sys.executable, "-m", "refcam.cli"]
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def _i18n_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("refcam_i18n_script", ROOT / "scripts" / "i18n.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _refcam(*argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in LOCALE_VARIABLES}
    return subprocess.run(
        [*REFCAM, *argv], env={**base, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def _english(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in LOCALE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_every_cli_string_has_a_korean_translation() -> None:
    """Each ``_()``/``N_()`` string of refcam/ and each of argparse's has a Korean
    translation with the same placeholders, and the compiled ``cli.mo`` is up to date."""
    problems = _i18n_script().missing("ko", "cli")
    assert not problems, "\n".join(problems[:40])


def test_the_catalogue_covers_argparse_and_refcam() -> None:
    template = _i18n_script().build_template("cli")
    ids = {m.id for m in template if isinstance(m.id, str)}
    assert "the following arguments are required: %s" in ids  # argparse's own
    assert "refcam: error: {message}" in ids
    assert "provisioned {serial} in {state_dir}" in ids


@pytest.mark.parametrize("variable", ["LANG", "LC_ALL", "LC_MESSAGES", "LANGUAGE"])
def test_a_missing_argument_is_a_korean_usage_error(variable: str) -> None:
    result = _refcam("firmware", "build", "--keys", "K", **{variable: "ko_KR.UTF-8"})
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last == "refcam firmware build: 오류: 다음 인수가 필요합니다: --version, --security-counter, -o/--output"
    assert result.stderr.startswith("사용법: refcam firmware build")


def test_a_bad_value_is_a_korean_usage_error_naming_it() -> None:
    """refcam's own type check (its message translated) inside argparse's (translated too)."""
    result = _refcam(
        "firmware", "build", "--keys", "K", "--version", "1.0.0", "--security-counter", "many", "-o", "x.img",
        LANG="ko_KR.UTF-8",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "refcam firmware build: 오류: 인수 --security-counter: 'many'은(는) 정수가 아닙니다"
    )


def test_an_unknown_command_is_a_korean_usage_error() -> None:
    result = _refcam("devic", LANG="ko_KR.UTF-8")
    assert result.returncode == 2
    assert "refcam: 오류: 인수 COMMAND: 잘못된 선택: 'devic'" in result.stderr


def test_a_domain_error_is_one_korean_line(tmp_path: Path) -> None:
    result = _refcam("device", "label", "--state", str(tmp_path / "none"), LANG="ko_KR.UTF-8")
    assert result.returncode != 0 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("refcam: 오류: ") and "프로비저닝된 장치 상태 디렉터리가 아닙니다" in line
    assert "Traceback" not in result.stderr


def test_english_is_the_default_and_unchanged() -> None:
    for env in ({}, {"LANG": "C.UTF-8"}, {"LANG": "en_US.UTF-8"}, {"LANG": "de_DE.UTF-8"}):
        result = _refcam("firmware", "build", "--keys", "K", **env)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines()[-1] == (
            "refcam firmware build: error: the following arguments are required: --version, --security-counter, "
            "-o/--output"
        ), env


def test_lang_option_overrides_the_environment(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--lang", "ko", "firmware", "build"])
    assert exit_info.value.code == 2
    assert "오류: 다음 인수가 필요합니다" in capsys.readouterr().err
    assert "LANGUAGE" not in os.environ  # the choice lasts one run
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")
    with pytest.raises(SystemExit):
        main(["--lang=en", "firmware", "build"])
    assert "error: the following arguments are required" in capsys.readouterr().err


def test_help_is_korean(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")
    with pytest.raises(SystemExit) as exit_info:
        main(["keys", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("사용법: refcam keys")
    assert "새 디렉터리에 제조사 키 세트 전체를 만듭니다" in out and "이 도움말을 표시하고 끝냅니다" in out


@pytest.mark.slow
def test_json_and_exit_status_do_not_change_with_the_language(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, image = tmp_path / "K", tmp_path / "fw.img"
    assert main(["keys", "init", "--dir", str(keys)]) == 0
    assert main(["firmware", "build", "--keys", str(keys), "--version", "1.0.0", "--security-counter", "1",
                 "-o", str(image)]) == 0  # fmt: skip
    capsys.readouterr()
    outputs = {}
    for language in ("en", "ko"):
        monkeypatch.setenv("LANG", f"{language}_KR.UTF-8" if language == "ko" else "C.UTF-8")
        assert main(["firmware", "inspect", str(image), "--json"]) == 0
        outputs[language] = json.loads(capsys.readouterr().out)
        assert main(["firmware", "verify", str(image), "--keys", str(tmp_path / "none")]) != 0
        capsys.readouterr()
    assert outputs["en"] == outputs["ko"]
    monkeypatch.setenv("LANG", "ko_KR.UTF-8")
    assert main(["firmware", "verify", str(image), "--keys", str(keys)]) == 0
    assert "보안 카운터 1" in capsys.readouterr().out


@pytest.mark.parametrize("language", ["C.UTF-8", "ko_KR.UTF-8"])
def test_every_command_help_renders(language: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command's help formats in both languages (argparse expands ``%`` in help texts:
    a translation with a broken ``%`` would only fail when someone asks for help)."""
    import argparse

    from refcam.cli import build_parser
    from refcam.i18n import speaking

    monkeypatch.setenv("LANG", language)
    with speaking(None):
        parser = build_parser()
        pending, seen = [parser], 0
        while pending:
            current = pending.pop()
            text = current.format_help()
            seen += 1
            if language.startswith("ko"):
                assert "옵션" in text, current.prog
            for action in current._actions:
                if isinstance(action, argparse._SubParsersAction):
                    pending.extend(action.choices.values())
    assert seen > 60


def test_a_new_cli_string_without_translation_fails_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _i18n_script()
    import shutil

    shutil.copytree(ROOT / "refcam", tmp_path / "refcam", ignore=shutil.ignore_patterns("__pycache__", "locale"))
    module = tmp_path / "refcam" / "cli_keys.py"
    module.write_text(module.read_text() + '\n_ADDED = _("a status line added without its translation {n}")\n')
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    problems = tool.missing("ko", "cli")
    assert problems == ["no ko translation of 'a status line added without its translation {n}'"]


def test_a_broken_or_stale_cli_translation_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _i18n_script()
    po = tmp_path / "ko" / "LC_MESSAGES" / "cli.po"
    po.parent.mkdir(parents=True)
    text = tool.po_path("ko", "cli").read_text(encoding="utf-8")
    po.write_text(text.replace('msgstr "알 수 없는 인수: %s"', 'msgstr "알 수 없는 인수"'), encoding="utf-8")
    (po.parent / "cli.mo").write_bytes(tool.po_path("ko", "cli").with_suffix(".mo").read_bytes())
    monkeypatch.setattr(tool, "CLI_LOCALE", tmp_path)
    assert tool.missing("ko", "cli") == [
        "ko translation of 'unrecognized arguments: %s' does not use the placeholders ['%s']",
        "ko/LC_MESSAGES/cli.mo is not compiled from its .po: run scripts/i18n.py compile",
    ]
