"""CSAF 2.0 security advisories, provider metadata and the directory distribution, pure.

A fixed PSIRT report becomes a ``csaf_security_advisory`` (CSAF 2.0 section
4.5): ``document`` (publisher, tracking with revision history), a
``product_tree`` (vendor -> product_name (camera model) -> product_version /
product_version_range (firmware) branches; the hardware id rides in
``product_identification_helper.model_numbers``) and one vulnerability with
``product_status`` (known_affected + fixed), a ``vendor_fix`` remediation
naming the firmware release and, for CVSS v3.x, a ``cvss_v3`` score. Every
document is validated against the official OASIS schema vendored in
``update_server/schemas`` (CVSS schemas resolved locally, no network).

The provider serves ``/.well-known/csaf/provider-metadata.json`` (role
``csaf_provider``, CSAF 7.1.7) and a directory distribution (7.1.11-7.1.14):
``<directory>/<year>/<file>.json``, ``index.txt``, ``changes.csv`` and an
HTML listing of each folder (requirement 14). Every advisory's keys are
sorted (test 6.2.13); a CVSS v4.0 report carries its v3.x score in
``scores`` (CSAF 2.0 knows no other; test 6.2.3) and the v4.0 vector in a
note; a report's CWE becomes the vulnerability's ``cwe``.

Example::

    doc = build_advisory(report, publisher=Publisher.default("https://vendor.example"),
                         product=ProductInfo.default(), now=now)
    validate_advisory(doc)
    advisories_affecting("refcam-rc1080-v1", "1.0.0", [doc])
    # -> [("REFCAM-SA-2026-0001", "affected", "1.0.1")]
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import referencing
from referencing.jsonschema import DRAFT4, DRAFT7, DRAFT202012

from update_server.psirt.cvss import cvss_v3_json
from update_server.psirt.errors import CSAFError
from update_server.psirt.model import Report, State

CSAF_SCHEMA_ID = "https://docs.oasis-open.org/csaf/csaf/v2.0/csaf_json_schema.json"
PROVIDER_SCHEMA_ID = "https://docs.oasis-open.org/csaf/csaf/v2.0/provider_json_schema.json"
# $id the CSAF schema uses for each vendored file, and the draft it is written in
_VENDORED = {
    "csaf_json_schema.json": (CSAF_SCHEMA_ID, DRAFT202012),
    "provider_json_schema.json": (PROVIDER_SCHEMA_ID, DRAFT202012),
    "cvss-v2.0.json": ("https://www.first.org/cvss/cvss-v2.0.json", DRAFT4),
    "cvss-v3.0.json": ("https://www.first.org/cvss/cvss-v3.0.json", DRAFT4),
    "cvss-v3.1.json": ("https://www.first.org/cvss/cvss-v3.1.json", DRAFT7),
}
DIRECTORY = "/.well-known/csaf/white"  # TLP:WHITE directory distribution (CSAF 7.1.11)
PROVIDER_METADATA = "/.well-known/csaf/provider-metadata.json"  # CSAF 7.1.7


@dataclass(frozen=True)
class Publisher:
    name: str
    namespace: str  # https URL of the publisher (CSAF 3.2.1.8.3)
    category: str = "vendor"
    contact_details: str | None = None

    @classmethod
    def default(cls, base_url: str) -> Publisher:
        return cls(name="refcam PSIRT", namespace=base_url.rstrip("/"))

    def to_json(self) -> dict[str, Any]:
        doc = {"category": self.category, "name": self.name, "namespace": self.namespace}
        if self.contact_details:
            doc["contact_details"] = self.contact_details
        return doc


@dataclass(frozen=True)
class ProductInfo:
    vendor: str
    model: str  # product_name branch, e.g. "RC-1080"
    hardware_id: str  # model_numbers entry, matches the firmware manifest

    @classmethod
    def default(cls) -> ProductInfo:
        return cls(vendor="refcam", model="RC-1080", hardware_id="refcam-rc1080-v1")


def _schema_resources() -> list[tuple[str, referencing.Resource[Any]]]:
    base = resources.files("update_server").joinpath("schemas")
    out = []
    for filename, (uri, spec) in _VENDORED.items():
        contents = json.loads(base.joinpath(filename).read_text("utf-8"))
        out.append((uri, spec.create_resource(contents)))
    return out


@cache
def _registry() -> referencing.Registry[Any]:
    registry: referencing.Registry[Any] = referencing.Registry()
    return registry.with_resources(_schema_resources())


def _validator(schema_id: str) -> jsonschema.Draft202012Validator:
    registry = _registry()
    schema = registry.contents(schema_id)
    return jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _validate(doc: Any, schema_id: str, what: str) -> None:
    errors = list(_validator(schema_id).iter_errors(doc))
    if errors:
        first = jsonschema.exceptions.best_match(errors)
        path = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise CSAFError(
            f"{what} fails the OASIS CSAF 2.0 schema at {path}: {first.message[:200]} "
            f"({len(errors)} error(s))"
        )


def validate_advisory(doc: Any) -> None:
    """Raise CSAFError unless ``doc`` is valid against the CSAF 2.0 JSON schema."""
    _validate(doc, CSAF_SCHEMA_ID, "CSAF document")
    # CSAF 6.1.27.4/6.1.27.5: this profile needs a product tree and vulnerabilities.
    if doc["document"]["category"] == "csaf_security_advisory" and (
        "product_tree" not in doc or not doc.get("vulnerabilities")
    ):
        raise CSAFError("csaf_security_advisory needs product_tree and vulnerabilities")


def validate_provider_metadata(doc: Any) -> None:
    _validate(doc, PROVIDER_SCHEMA_ID, "CSAF provider metadata")


def advisory_id_for(report_id: str, *, prefix: str = "REFCAM-SA") -> str:
    """``R-2026-0001`` -> ``REFCAM-SA-2026-0001``."""
    return f"{prefix}-{report_id.removeprefix('R-')}"


def advisory_filename(tracking_id: str) -> str:
    """CSAF 5.1: lower case, every run of other characters than ``+ - a-z 0-9`` -> ``_``."""
    return re.sub(r"[^+\-a-z0-9]+", "_", tracking_id.lower()) + ".json"


def advisory_path(doc: dict[str, Any]) -> str:
    """Path inside the directory distribution: ``<year of initial release>/<file>`` (7.1.11)."""
    tracking = doc["document"]["tracking"]
    return f"{tracking['initial_release_date'][:4]}/{advisory_filename(tracking['id'])}"


def _timestamp(now: datetime) -> str:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _pid(hardware_id: str, version: str, *, fixed: bool) -> str:
    tag = re.sub(r"[^A-Za-z0-9._-]", "_", f"{hardware_id}-{version}")
    return f"CSAFPID-{tag}" if fixed else f"CSAFPID-{tag}-affected"


def build_advisory(
    report: Report,
    *,
    publisher: Publisher,
    product: ProductInfo,
    now: datetime,
    advisory_id: str | None = None,
    cve: str | None = None,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The CSAF 2.0 advisory for a fixed report (validated before it is returned).

    ``previous`` is the advisory published before for the same report: its
    initial release date and revision history are kept and a revision added.
    """
    if report.state not in (State.FIXED, State.ADVISORY_PUBLISHED, State.CLOSED):
        raise CSAFError(
            f"report {report.report_id} is {report.state.value}; only a fixed report gets "
            "an advisory"
        )
    if report.fixed_in is None or report.score is None:
        raise CSAFError(f"report {report.report_id} lacks a fixed release or a CVSS score")
    if report.fixed_in.hardware_id != product.hardware_id:
        raise CSAFError(
            f"report {report.report_id} was fixed for {report.fixed_in.hardware_id}, "
            f"not for {product.hardware_id}"
        )
    tracking_id = advisory_id or advisory_id_for(report.report_id)
    stamp = _timestamp(now)
    if previous is not None:
        old = previous["document"]["tracking"]
        history = [*old["revision_history"]]
        number = str(int(old["version"]) + 1)
        history.append({"date": stamp, "number": number, "summary": "Updated advisory."})
        initial = old["initial_release_date"]
    else:
        number, initial = "1", stamp
        history = [{"date": stamp, "number": "1", "summary": "Initial release."}]
    affected_version = report.submission.version
    fixed_version = report.fixed_in.version
    affected_pid = _pid(product.hardware_id, affected_version, fixed=False)
    range_pid = _pid(product.hardware_id, f"lt-{fixed_version}", fixed=False)
    fixed_pid = _pid(product.hardware_id, fixed_version, fixed=True)
    helper = {"model_numbers": [product.hardware_id]}

    def leaf(category: str, name: str, pid: str, label: str) -> dict[str, Any]:
        return {
            "category": category,
            "name": name,
            "product": {
                "name": f"{product.vendor} {product.model} firmware {label}",
                "product_id": pid,
                "product_identification_helper": helper,
            },
        }

    leaves = [
        leaf("product_version", affected_version, affected_pid, affected_version),
        leaf(
            "product_version_range",
            f"vers:generic/<{fixed_version}",
            range_pid,
            f"before {fixed_version}",
        ),
        leaf("product_version", fixed_version, fixed_pid, fixed_version),
    ]
    if affected_version == fixed_version:
        raise CSAFError(f"report {report.report_id}: the fixed version equals the affected one")
    affected = [affected_pid, range_pid]
    title = report.submission.title
    vulnerability: dict[str, Any] = {
        "ids": [{"system_name": f"{publisher.name} report", "text": report.report_id}],
        "title": title,
        "notes": [
            {
                "category": "summary",
                "title": "Summary",
                "text": f"{title}. Affects {product.model} firmware before {fixed_version} "
                f"(reported against {affected_version}); fixed in {fixed_version}.",
            }
        ],
        "product_status": {"known_affected": affected, "fixed": [fixed_pid]},
        "remediations": [
            {
                "category": "vendor_fix",
                "details": f"Update the {product.model} firmware to {fixed_version} or later "
                "through the signed update repository.",
                "product_ids": affected,
            }
        ],
    }
    if cve is not None:
        if not re.fullmatch(r"CVE-\d{4}-\d{4,}", cve):
            raise CSAFError(f"CVE id {cve!r} is malformed; expected CVE-YYYY-NNNN")
        vulnerability["cve"] = cve
    if report.cwe is not None:
        vulnerability["cwe"] = {"id": report.cwe.id, "name": report.cwe.name}  # CSAF 3.2.3.3
    if report.score.version.startswith("3."):
        vulnerability["scores"] = [{"cvss_v3": cvss_v3_json(report.score), "products": affected}]
    else:
        # CSAF 2.0 scores carry CVSS v2/v3 only, and every affected product needs a score
        # (test 6.2.3): the v3.x vector triaged beside the v4.0 one goes there, the v4.0
        # vector into a note.
        if report.score_v3 is None:
            raise CSAFError(
                f"report {report.report_id} is scored with CVSS {report.score.version} only; a CSAF 2.0 "
                "advisory needs a CVSS v3.x score too: triage it again with --cvss-v3 VECTOR"
            )
        vulnerability["scores"] = [{"cvss_v3": cvss_v3_json(report.score_v3), "products": affected}]
        vulnerability["notes"].append(
            {
                "category": "other",
                "title": "CVSS v4.0",
                "text": f"{report.score.vector} (base score {report.score.base_score}, "
                f"{report.score.severity})",
            }
        )
    if report.exploited_at is not None:
        vulnerability["threats"] = [
            {
                "category": "exploit_status",
                "details": "Actively exploited.",
                "date": _timestamp(report.exploited_at),
                "product_ids": affected,
            }
        ]
    doc: dict[str, Any] = {
        "document": {
            "category": "csaf_security_advisory",
            "csaf_version": "2.0",
            "distribution": {"tlp": {"label": "WHITE", "url": "https://www.first.org/tlp/"}},
            "lang": "en",
            "notes": [{"category": "summary", "title": "Summary", "text": title}],
            "publisher": publisher.to_json(),
            "references": [
                {
                    "category": "self",
                    "summary": "This advisory",
                    "url": f"{publisher.namespace}{DIRECTORY}/"
                    f"{initial[:4]}/{advisory_filename(tracking_id)}",
                }
            ],
            "title": f"{product.model}: {title}",
            "tracking": {
                "current_release_date": stamp,
                "id": tracking_id,
                "initial_release_date": initial,
                "revision_history": history,
                "status": "final",
                "version": number,
            },
        },
        "product_tree": {
            "branches": [
                {
                    "category": "vendor",
                    "name": product.vendor,
                    "branches": [
                        {"category": "product_name", "name": product.model, "branches": leaves}
                    ],
                }
            ]
        },
        "vulnerabilities": [vulnerability],
    }
    doc = json.loads(json.dumps(doc, sort_keys=True))  # every key sorted (CSAF 6.2.13)
    validate_advisory(doc)
    return doc


def provider_metadata(
    *, base_url: str, publisher: Publisher, last_updated: datetime
) -> dict[str, Any]:
    """``provider-metadata.json`` for a ``csaf_provider`` with a directory distribution."""
    base = base_url.rstrip("/")
    doc = {
        "canonical_url": f"{base}{PROVIDER_METADATA}",
        "distributions": [{"directory_url": f"{base}{DIRECTORY}/"}],
        "last_updated": _timestamp(last_updated),
        "list_on_CSAF_aggregators": True,
        "metadata_version": "2.0",
        "mirror_on_CSAF_aggregators": True,
        "publisher": publisher.to_json(),
        "role": "csaf_provider",
    }
    validate_provider_metadata(doc)
    return doc


def directory_listing(path: str, entries: Sequence[str]) -> str:
    """An HTML listing of one folder of the directory distribution (CSAF 7.1.14, requirement 14).

    ``path`` is the folder's URL path (ending in ``/``), ``entries`` its file and
    sub-folder names (folders end in ``/``).
    """
    title = html.escape(path)
    items = "".join(
        f'<li><a href="{html.escape(name, quote=True)}">{html.escape(name)}</a></li>\n' for name in entries
    )
    parent = '<li><a href="../">../</a></li>\n' if path.rstrip("/") != DIRECTORY else ""
    return (
        f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n"
        f"<body><h1>Index of {title}</h1>\n<ul>\n{parent}{items}</ul></body></html>\n"
    )


def directory_entries(advisories: Iterable[dict[str, Any]], year: str | None = None) -> list[str]:
    """The names in the distribution's root folder (``year`` None) or in one year's folder."""
    paths = sorted(advisory_path(d) for d in advisories)
    if year is None:
        return ["changes.csv", "index.txt", *sorted({p.split("/")[0] + "/" for p in paths})]
    return [p.split("/", 1)[1] for p in paths if p.startswith(f"{year}/")]


def index_txt(advisories: Iterable[dict[str, Any]]) -> str:
    """CSAF 7.1.12: one advisory path per line."""
    return "".join(f"{advisory_path(d)}\n" for d in sorted(advisories, key=advisory_path))


def changes_csv(advisories: Iterable[dict[str, Any]]) -> str:
    """CSAF 7.1.13: ``"path","current_release_date"``, newest first."""
    rows = sorted(
        ((advisory_path(d), d["document"]["tracking"]["current_release_date"]) for d in advisories),
        key=lambda r: r[1],
        reverse=True,
    )
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue()


# -- what a device shows ----------------------------------------------------------------


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Order firmware versions: numeric parts numerically, others as text (``1.10 > 1.9``)."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.split(r"[.+_-]", version)
        if part
    )


def _leaves(branches: Sequence[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for branch in branches:
        if "product" in branch:
            yield branch
        yield from _leaves(branch.get("branches", []))


def advisories_affecting(
    hardware_id: str, version: str, advisories: Iterable[dict[str, Any]]
) -> list[tuple[str, str, str | None]]:
    """``[(advisory id, "affected" | "fixed", fixed-in version)]`` for one device.

    A device is ``fixed`` once its version is at least the lowest fixed version
    of that hardware; ``affected`` if it is below it, or listed as affected.
    """
    out: list[tuple[str, str, str | None]] = []
    mine = version_key(version)
    for doc in advisories:
        tree = doc.get("product_tree", {})
        by_pid: dict[str, tuple[str, str]] = {}
        for leaf in _leaves(tree.get("branches", [])):
            helper = leaf["product"].get("product_identification_helper", {})
            if hardware_id in helper.get("model_numbers", []):
                by_pid[leaf["product"]["product_id"]] = (leaf["category"], leaf["name"])
        if not by_pid:
            continue
        verdict: str | None = None
        fixed_in: str | None = None
        for vuln in doc.get("vulnerabilities", []):
            status = vuln.get("product_status", {})
            fixed = [by_pid[p][1] for p in status.get("fixed", []) if p in by_pid]
            lowest = min(fixed, key=version_key) if fixed else None
            hit = False
            for pid in status.get("known_affected", []):
                if pid not in by_pid:
                    continue
                category, name = by_pid[pid]
                if category == "product_version" and name == version:
                    hit = True
                elif category == "product_version_range" and name.startswith("vers:generic/<"):
                    hit = hit or mine < version_key(name.removeprefix("vers:generic/<"))
            if lowest is not None and mine >= version_key(lowest):
                verdict = verdict or "fixed"
                fixed_in = fixed_in or lowest
            elif hit:
                verdict, fixed_in = "affected", lowest
        if verdict is not None:
            out.append((doc["document"]["tracking"]["id"], verdict, fixed_in))
    return out


def release_custom_metadata(advisory_ids: Sequence[str]) -> dict[str, Any]:
    """The TUF target ``custom`` member naming the advisories a release fixes."""
    return {"advisories": sorted(set(advisory_ids))}
