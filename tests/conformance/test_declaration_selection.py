"""The declaration selects cases: NOT APPLICABLE only for a feature it says is absent.

A case skipped for a missing option or a safety switch is NOT TESTED, whatever
the declaration says; a declaration that says nothing about a feature never
makes its cases NOT APPLICABLE.
"""

from __future__ import annotations

import json
from pathlib import Path

from conformance.case import ProbeContext, ProbeOptions
from conformance.declaration import parse_declaration
from conformance.http import ProbeHTTP, RawResponse, Target
from conformance.model import Verdict
from conformance.probe import run_case

IPYCAM = Path(__file__).parent / "ipycam-declaration.json"


def _ctx(options: ProbeOptions) -> ProbeContext:
    def nothing(method: str, path: str, body: bytes | None, headers: object) -> RawResponse:
        raise AssertionError(f"no request expected, got {method} {path}")

    target = Target.parse(options.target)
    return ProbeContext(options, target, ProbeHTTP(target, ssl_context=None, transport=nothing))


def test_a_declared_absent_feature_makes_its_cases_not_applicable() -> None:
    declaration = parse_declaration(IPYCAM.read_text())
    ctx = _ctx(ProbeOptions(target="http://127.0.0.1:9", ca_file=None, declaration=declaration,
                            allow_destructive=True))
    result = run_case(ctx, "UPD-01", ("a", "b"))
    assert result.verdict is Verdict.NOT_APPLICABLE
    assert "update:upload" in result.units[0].reason


def test_a_skipped_destructive_case_is_not_tested_and_names_the_switch() -> None:
    ctx = _ctx(ProbeOptions(target="https://127.0.0.1:9", ca_file=None))
    result = run_case(ctx, "UPD-01", ("a", "b"))
    assert result.verdict is Verdict.NOT_TESTED
    assert result.units[0].needs == ("--allow-destructive",)


def test_a_missing_option_is_not_tested_even_with_a_declaration() -> None:
    doc = json.loads(IPYCAM.read_text())
    doc["interfaces"]["refcam-api"] = True
    doc["update"]["mechanisms"] = ["upload"]
    doc["update"]["anti_rollback"] = True
    declaration = parse_declaration(json.dumps(doc))
    ctx = _ctx(ProbeOptions(target="https://127.0.0.1:9", ca_file=None, declaration=declaration,
                            allow_destructive=True))
    result = run_case(ctx, "UPD-03", ("a",))
    assert result.verdict is Verdict.NOT_TESTED
    assert result.units[0].needs == ("--older-image",)


def test_the_declaration_features_follow_the_document() -> None:
    features = parse_declaration(IPYCAM.read_text()).features()
    assert features["interface:refcam-api"] is False and features["interface:web-ui"] is True
    assert features["update:upload"] is False and features["user-management"] is False
