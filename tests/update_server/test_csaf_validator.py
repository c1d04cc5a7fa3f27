"""The advisories refcam publishes pass secvisogram's CSAF 2.0 validator (BSI csaf-validator-lib).

An independent check of what refcam's own schema validation cannot see: the
mandatory tests (CSAF 2.0 6.1) and the optional / recommended ones (6.2: every
affected product has a score, keys are sorted, ...). The validator is an npm
package installed in ``tests/update_server/csaf_validator`` (``make nodedeps``,
which ``make test`` runs); ``validate.mjs`` prints every finding.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.update_server.test_csaf import BASE, PRODUCT, PUBLISHER, T0, V31, V40, fixed_report
from update_server import csaf
from update_server.psirt import model
from update_server.psirt.store import PSIRTStore

VALIDATOR = Path(__file__).parent / "csaf_validator"


def run_validator(files: list[Path]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node is not None, "node is not installed (Debian: nodejs; .ci/system-deps.sh installs it)"
    assert (VALIDATOR / "node_modules" / "@secvisogram" / "csaf-validator-lib").is_dir(), (
        "secvisogram's validator is not installed: run `make nodedeps`"
    )
    done = subprocess.run(
        [node, "validate.mjs", *map(str, files)], cwd=VALIDATOR, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def advisories(tmp_path: Path) -> dict[str, dict[str, Any]]:
    """One advisory of each shape refcam produces."""
    later = T0 + timedelta(days=4)
    cwe = model.CWE.parse("CWE-287", "Improper Authentication")
    first = csaf.build_advisory(fixed_report(), publisher=PUBLISHER, product=PRODUCT, now=later)
    docs = {
        "cvss31": first,
        "cvss31-cwe-cve": csaf.build_advisory(
            fixed_report(cwe=cwe, report_id="R-2026-0002"), publisher=PUBLISHER, product=PRODUCT, now=later,
            cve="CVE-2026-12345",
        ),
        "cvss40-exploited": csaf.build_advisory(
            fixed_report(V40, exploited=True, v3=V31, report_id="R-2026-0003"), publisher=PUBLISHER,
            product=PRODUCT, now=later,
        ),
        "revised": csaf.build_advisory(
            fixed_report(), publisher=PUBLISHER, product=PRODUCT, now=later + timedelta(days=2), previous=first
        ),
    }
    # ...and one published through the store, as `refcam psirt publish` does.
    store = PSIRTStore.open(tmp_path / "psirt.db")
    store.record_publisher(csaf.Publisher.default(BASE))
    report = fixed_report(cwe=model.CWE.parse("CWE-798", "Use of Hard-coded Credentials"))
    created, _ = store.create_report(report.submission, now=T0)
    store.update(created.report_id, lambda r: dataclasses.replace(report, report_id=r.report_id))
    _, docs["store"] = store.publish(created.report_id, publisher=None, vendor="refcam", model_name="RC-1080", now=later)
    store.close()
    return docs


def test_every_advisory_passes_the_mandatory_and_recommended_tests(tmp_path: Path) -> None:
    files = []
    for name, doc in advisories(tmp_path).items():
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        files.append(path)
    results = run_validator(files)
    assert len(results) == len(files)
    for result in results:
        assert result["tests"] > 40, result  # the schema, 6.1.x and 6.2.x tests all ran
        assert result["valid"] and result["findings"] == [], json.dumps(result, indent=1)


MUTATIONS: dict[str, tuple[Any, str]] = {
    "no-score": (lambda d: d["vulnerabilities"][0].pop("scores"), "optionalTest_6_2_3"),
    "misnamed-cwe": (
        lambda d: d["vulnerabilities"][0].update(cwe={"id": "CWE-287", "name": "Wrong Name"}), "mandatoryTest_6_1_11"
    ),
}


def test_the_validator_does_catch_what_it_checks(tmp_path: Path) -> None:
    """The check above is not vacuous: a document without a score, or a misnamed CWE, is caught."""
    files = []
    for name, (mutate, _) in MUTATIONS.items():
        doc = advisories(tmp_path / name)["cvss31-cwe-cve"]
        mutate(doc)
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(doc, sort_keys=True))
    for (name, (_, test)), result in zip(MUTATIONS.items(), run_validator(files), strict=True):
        assert test in {f["test"] for f in result["findings"]}, (name, result)
