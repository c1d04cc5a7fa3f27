"""CSAF 2.0 documents checked against the OASIS schemas, with ``jsonschema`` (no camera code).

Example::

    check_csaf(doc, "csaf")           # an advisory
    check_csaf(doc, "provider")       # provider-metadata.json
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, Literal

import jsonschema
import referencing
import referencing.jsonschema

from .errors import ProbeError
from .i18n import msg

_FILES = ("csaf_json_schema.json", "provider_json_schema.json", "cvss-v2.0.json", "cvss-v3.0.json", "cvss-v3.1.json")


@cache
def _schemas() -> tuple[referencing.Registry[Any], dict[str, Any]]:
    base = resources.files("conformance") / "schemas"
    registry: referencing.Registry[Any] = referencing.Registry()
    loaded: dict[str, Any] = {}
    for name in _FILES:
        contents = json.loads((base / name).read_text("utf-8"))
        resource = referencing.Resource.from_contents(
            contents, default_specification=referencing.jsonschema.DRAFT202012
        )
        # draft-04 schemas name themselves "id"; FIRST's ids carry a date query that the
        # CSAF schema's references leave out
        uri = str(contents.get("$id") or contents["id"]).split("?")[0]
        registry = registry.with_resource(uri, resource)
        loaded[name] = contents
    return registry, loaded


def check_csaf(doc: Any, kind: Literal["csaf", "provider"]) -> None:
    """Raise :class:`ProbeError` naming the first schema violation of ``doc``."""
    registry, loaded = _schemas()
    schema = loaded["csaf_json_schema.json" if kind == "csaf" else "provider_json_schema.json"]
    validator = jsonschema.Draft202012Validator(
        schema, registry=registry, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    errors = list(validator.iter_errors(doc))
    if errors:
        first = jsonschema.exceptions.best_match(errors)
        path = "/".join(str(p) for p in first.absolute_path) or "(root)"
        raise ProbeError(msg("fails the OASIS CSAF 2.0 schema at {path}: {message} ({n_errors} error(s))", path=path, message=first.message[:200], n_errors=len(errors)))
    if kind == "csaf" and doc["document"]["category"] == "csaf_security_advisory" and (
        "product_tree" not in doc or not doc.get("vulnerabilities")
    ):  # CSAF 6.1.27.4/6.1.27.5
        raise ProbeError(msg("a csaf_security_advisory needs product_tree and vulnerabilities"))
