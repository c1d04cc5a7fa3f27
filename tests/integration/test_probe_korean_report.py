"""A real probe run in Korean against the secure reference device: `--lang ko --tz Asia/Seoul`.

A short run (a few cases, over TLS, with the label password) through the
``refcam probe`` command; the HTML page must hold no English text from the
probe's catalogue (scripts/i18n.py's own extraction), show the run's times in
Seoul, and the JSON keep its codes and UTC times.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from refcam.cli import main as refcam_main

from .conftest import start_device

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CASES = ("CRED-01", "CRED-02", "TLS-01", "TLS-07", "ACC-01", "DISC-01")


def test_a_real_run_reports_in_korean_with_seoul_times(
    tmp_path: Path, provisioned: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location("refcam_i18n_tool_korean", ROOT / "scripts" / "i18n.py")
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    device = start_device(provisioned)
    out = tmp_path / "report"
    try:
        only = [arg for case in CASES for arg in ("--only", case)]
        code = refcam_main(["probe", device.url, "--ca", str(device.root_pem), "--label-password",
                            device.label_password, *only, "--lang", "ko", "--tz", "Asia/Seoul",
                            "--report", str(out)])
    finally:
        device.stop()
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "판정" in printed and "보고서:" in printed and "Asia/Seoul" in printed
    page = (out / "report.html").read_text("utf-8")
    assert tool.untranslated_in_page(page, "ko") == []
    assert "(Asia/Seoul, UTC+09:00)" in page and "시험 대상 기기" in page
    doc = json.loads((out / "report.json").read_text("utf-8"))
    assert doc["language"] == "ko" and doc["started"].endswith(("Z", "+00:00"))
    units = [u for case in doc["cases"] for u in case["units"]]
    assert {c["id"] for c in doc["cases"]} >= set(CASES)
    assert all(u["verdict"] in ("PASS", "FAIL", "INCONCLUSIVE", "NOT APPLICABLE", "NOT TESTED") for u in units)
    assert [u["reason"] for u in units if not re.search("[가-힣]", u["reason"])] == []
