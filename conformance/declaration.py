"""The device declaration: what the supplier says the unit has (ICS/IXIT, ETSI TS 103 701).

A versioned JSON document (``refcam-device-declaration/1``, schema
``conformance/schemas/declaration.schema.json``). The probe reads it to select
cases (a case whose feature is declared absent is NOT APPLICABLE; nothing else
is) and to parameterise them (the management interface and its adapter, the
vendor resources)::

    declaration = parse_declaration(text)
    declaration.absent("update:upload")  # True when the supplier says so
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jsonschema

from .errors import DeclarationError

DECLARATION_TYPE = "refcam-device-declaration/1"


def _schema() -> dict[str, Any]:
    text = (resources.files("conformance") / "schemas" / "declaration.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@dataclass(frozen=True)
class Declaration:
    document: Mapping[str, Any]  # as given, validated

    @property
    def management(self) -> Mapping[str, Any]:
        management: Mapping[str, Any] = self.document["management"]
        return management

    @property
    def vendor_base_url(self) -> str | None:
        value = self.document.get("vendor_resources", {}).get("base_url")
        return str(value) if value else None

    def features(self) -> dict[str, bool]:
        """Feature name -> declared present (True) or absent (False)."""
        doc = self.document
        out = {f"interface:{name}": bool(present) for name, present in doc["interfaces"].items()}
        mechanisms = set(doc["update"]["mechanisms"])
        out["update:upload"] = "upload" in mechanisms
        out["update:repository"] = "tuf-repository" in mechanisms
        out["update:anti-rollback"] = bool(doc["update"]["anti_rollback"]) and bool(mechanisms)
        out["user-management"] = len(doc["roles"]) >= 2
        out["password"] = doc["password_policy"]["initial"] != "none"
        if "attestation" in doc:
            out["attestation"] = bool(doc["attestation"])
        resources_ = doc.get("vendor_resources", {})
        out["vendor"] = bool(resources_.get("base_url"))
        return out

    def absent(self, feature: str) -> bool:
        """True only when the declaration explicitly says the feature is absent."""
        return self.features().get(feature) is False


def parse_declaration(text: str, *, source: str = "declaration") -> Declaration:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise DeclarationError(f"{source}: not JSON ({exc})") from exc
    try:
        jsonschema.validate(doc, _schema())
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise DeclarationError(f"{source}: {where}: {exc.message}") from exc
    if doc["management"]["interface"] not in (k for k, v in doc["interfaces"].items() if v):
        raise DeclarationError(f"{source}: management.interface {doc['management']['interface']!r} is not declared present")
    return Declaration(doc)
