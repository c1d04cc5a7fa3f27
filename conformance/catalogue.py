"""The probe's test catalogue, loaded from data (``catalogue.toml``).

Mappings to KS X 3020, EN 303 645, CLS and NIST IR 8259A live in the data so
official clause numbers can be dropped in without touching code::

    catalogue = load_catalogue()
    catalogue.case("TLS-01").ks  # "C2"
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .errors import CatalogueError
from .i18n import N_

KS_CONTROLS: dict[str, str] = {
    "C1": N_("Firmware signature verification"),
    "C2": N_("Encrypted remote access"),
    "C3": N_("Secure boot"),
    "C4": N_("Default credential management"),
    "C5": N_("Secure update mechanisms"),
    "C6": N_("Vulnerability disclosure handling"),
    "C7": N_("Incident-response SLAs"),
}
_ASVS_ID = re.compile(r"V\d{1,2}\.\d{1,2}\.\d{1,2}")  # OWASP ASVS 4.0.3 chapter.section.requirement
NIST_CAPABILITIES = {"DI", "DC", "DP", "LA", "SU", "SA", "-"}


@dataclass(frozen=True)
class TestCase:
    id: str
    group: str
    title: str
    purpose: str
    units: tuple[str, ...]
    verdict_rule: str
    requirements: tuple[int, ...]
    ks: str  # "C1".."C7" or "-"
    ks_clause: str | None
    en: str  # EN 303 645 provision
    en_status: str  # "M" or "R"
    cls: int  # lowest CLS level that expects it
    nist: str
    asvs: tuple[str, ...] = ()  # OWASP ASVS 4.0.3 requirement ids ("V3.4.1"), optional

    __test__ = False  # not a pytest class

    @property
    def unit_letters(self) -> tuple[str, ...]:
        return tuple(u.split(":", 1)[0].strip() for u in self.units)


@dataclass(frozen=True)
class Catalogue:
    version: str
    ks_provenance: str
    groups: dict[str, str]
    cases: tuple[TestCase, ...]

    def case(self, case_id: str) -> TestCase:
        for case in self.cases:
            if case.id == case_id:
                return case
        raise CatalogueError(f"no test case {case_id!r} in the catalogue")


_FIELDS = {
    "id": str, "group": str, "title": str, "purpose": str, "units": list,
    "verdict_rule": str, "requirements": list, "ks": str, "en": str, "en_status": str,
    "cls": int, "nist": str,
}


def _case(raw: Any, groups: dict[str, str], index: int) -> TestCase:
    if not isinstance(raw, dict):
        raise CatalogueError(f"case #{index} is not a table")
    for name, kind in _FIELDS.items():
        if not isinstance(raw.get(name), kind):
            raise CatalogueError(f"case #{index} ({raw.get('id')}): field {name!r} must be {kind.__name__}")
    unknown = set(raw) - set(_FIELDS) - {"ks_clause", "asvs"}
    if unknown:
        raise CatalogueError(f"case {raw['id']}: unknown fields {sorted(unknown)}")
    units = raw["units"]
    if not units or not all(isinstance(u, str) and ":" in u for u in units):
        raise CatalogueError(f"case {raw['id']}: units must be 'letter: description' strings")
    if not raw["requirements"] or not all(isinstance(r, int) for r in raw["requirements"]):
        raise CatalogueError(f"case {raw['id']}: requirements must be a non-empty list of row numbers")
    if raw["group"] not in groups:
        raise CatalogueError(f"case {raw['id']}: unknown group {raw['group']!r}")
    if raw["ks"] != "-" and raw["ks"] not in KS_CONTROLS:
        raise CatalogueError(f"case {raw['id']}: unknown KS X 3020 control {raw['ks']!r}")
    if raw["nist"] not in NIST_CAPABILITIES or raw["en_status"] not in {"M", "R"}:
        raise CatalogueError(f"case {raw['id']}: bad NIST capability or EN status")
    if not 1 <= raw["cls"] <= 4:
        raise CatalogueError(f"case {raw['id']}: CLS level must be 1..4")
    asvs = raw.get("asvs", [])
    if not isinstance(asvs, list) or not all(isinstance(a, str) and _ASVS_ID.fullmatch(a) for a in asvs):
        raise CatalogueError(f"case {raw['id']}: asvs must be a list of ASVS 4.0.3 ids such as \"V3.4.1\"")
    return TestCase(
        id=raw["id"], group=raw["group"], title=raw["title"], purpose=raw["purpose"],
        units=tuple(units), verdict_rule=raw["verdict_rule"], requirements=tuple(raw["requirements"]),
        ks=raw["ks"], ks_clause=raw.get("ks_clause"), en=raw["en"], en_status=raw["en_status"],
        cls=raw["cls"], nist=raw["nist"], asvs=tuple(asvs),
    )


def parse_catalogue(text: str) -> Catalogue:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"catalogue is not valid TOML: {exc}") from exc
    groups = doc.get("groups")
    if not isinstance(groups, dict):
        raise CatalogueError("catalogue has no [groups] table")
    cases = tuple(_case(raw, groups, i) for i, raw in enumerate(doc.get("case", [])))
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise CatalogueError("catalogue has duplicate case ids")
    return Catalogue(
        version=str(doc.get("catalogue_version", "")),
        ks_provenance=str(doc.get("ks_provenance", "")),
        groups=dict(groups),
        cases=cases,
    )


def load_catalogue() -> Catalogue:
    return parse_catalogue((resources.files(__package__) / "catalogue.toml").read_text("utf-8"))
