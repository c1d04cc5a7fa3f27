"""Vulnerability disclosure and SLA cases (KS X 3020 C6, C7; rows 30-35)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from sectxt import Parser

from ..case import ProbeContext, failed, not_tested, passed, register, undone
from ..csafcheck import check_csaf
from ..errors import ProbeError
from ..http import ProbeHTTP
from ..i18n import msg, said
from ..model import Evidence, UnitResult
from ._session import admin

SECURITY_TXT = "/.well-known/security.txt"
PROVIDER_METADATA = "/.well-known/csaf/provider-metadata.json"
SLA_FIGURES = "/api/v1/sla"
MAX_ADVISORIES = 20  # advisories fetched and validated per run
_ACK = re.compile(r"acknowledg\w*\D{0,80}?(\d+)\s*(hours?|days?|business days?)", re.I | re.S)
_STATUS = re.compile(r"(?:status|progress)\s+update\w*\D{0,80}?(\d+)\s*(hours?|days?)", re.I | re.S)


class SecurityTxtError(ProbeError):
    """The camera's security.txt is missing or does not hold (RFC 9116)."""


@dataclass(frozen=True)
class SecurityTxt:
    contacts: tuple[str, ...]
    expires: datetime
    policy: tuple[str, ...]
    csaf: tuple[str, ...]


def _parse(text: str) -> SecurityTxt:
    """RFC 9116 as ``sectxt`` (an independent validator) reads it; its errors are the reason."""
    parser = Parser(text.encode("utf-8", "replace"))
    if parser.errors:
        raise SecurityTxtError(
            "; ".join(f"{e['code']}: {e['message']}" for e in parser.errors[:3])
        )
    fields: dict[str, list[str]] = {}
    for line in parser.lines:
        if line["type"] == "field" and line["field_name"]:
            fields.setdefault(line["field_name"].lower(), []).append(line["value"].strip())
    try:
        expires = datetime.fromisoformat(fields["expires"][0].replace("Z", "+00:00"))
    except (KeyError, IndexError, ValueError) as exc:
        raise SecurityTxtError(msg("Expires is missing or not a date: {exc}", exc=exc)) from exc
    if expires <= datetime.now(UTC):
        raise SecurityTxtError(msg("Expires {expires} is in the past", expires=expires.isoformat()))
    return SecurityTxt(
        tuple(fields.get("contact", ())), expires, tuple(fields.get("policy", ())), tuple(fields.get("csaf", ()))
    )


def _security_txt(ctx: ProbeContext) -> tuple[Any, Evidence]:
    ex = ctx.http.request("GET", SECURITY_TXT, headers={"Accept": "text/plain"})
    if ex.status != 200:
        raise SecurityTxtError(msg("{security_txt} answered HTTP {status}", security_txt=SECURITY_TXT, status=ex.status))
    return _parse(ex.text), ex.evidence()


@register("DISC-01", budget=3, order=5)
def security_txt(ctx: ProbeContext) -> list[UnitResult]:
    try:
        info, ev = _security_txt(ctx)
    except SecurityTxtError as exc:
        text = said(exc)
        if "answered HTTP" in text:
            return [failed("a", text)]
        return [passed("a", msg("served over HTTPS")), failed("b", text)]
    ctx.cache["security_txt"] = info
    c_missing = [name for name, value in (("Policy", info.policy), ("CSAF", info.csaf)) if not value]
    return [
        passed("a", msg("served over HTTPS"), ev),
        passed("b", msg("{n_contacts} Contact, Expires {expires}", n_contacts=len(info.contacts), expires=info.expires.isoformat()), ev),
        failed("c", msg("missing {c_missing}", c_missing=', '.join(c_missing)), ev) if c_missing else passed("c", msg("Policy and CSAF present"), ev),
    ]


def _fetch_absolute(ctx: ProbeContext, url: str) -> tuple[int, str, Evidence]:
    """GET an https URL on the camera or the vendor server (validated TLS, bounded)."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise SecurityTxtError(msg("{url} is not an https URL", url=url))
    target = ctx.target
    client: ProbeHTTP = ctx.http
    if (parts.hostname, parts.port or 443) != (target.host, target.port):
        vendor = ctx.vendor_http()
        if vendor is None or (parts.hostname, parts.port or 443) != (vendor.target.host, vendor.target.port):
            raise SecurityTxtError(msg("{url} is on neither the camera nor the --vendor server", url=url))
        client = vendor
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    ex = client.request("GET", path or "/", headers={"Accept": "text/html, text/plain"})
    return ex.status, ex.text, ex.evidence()


_POLICY_LINE = re.compile(r"(?im)^\s*policy\s*:\s*(\S+)\s*$")


@register("DISC-02", budget=4, order=6)
def disclosure_policy(ctx: ProbeContext) -> list[UnitResult]:
    # Judged apart from DISC-01: the policy link is read even from a file DISC-01 rejects.
    ex = ctx.http.request("GET", SECURITY_TXT, headers={"Accept": "text/plain"})
    if ex.status != 200:
        return [failed("a", msg("no security.txt to find the policy in (HTTP {status})", status=ex.status), ex.evidence())]
    links = _POLICY_LINE.findall(ex.text)
    if not links:
        return [failed("a", msg("security.txt names no Policy"), ex.evidence())]
    try:
        status, text, ev = _fetch_absolute(ctx, links[0])
    except SecurityTxtError as exc:
        return [undone("a", exc)]
    if status != 200:
        return [failed("a", msg("the policy {links} answered HTTP {status}", links=links[0], status=status), ev)]
    plain = re.sub(r"<[^>]+>", " ", text)
    ack, upd = _ACK.search(plain), _STATUS.search(plain)
    return [
        passed("a", msg("acknowledgement within {group} {group2}", group=ack.group(1), group2=ack.group(2)), ev)
        if ack
        else failed("a", msg("the policy states no acknowledgement time"), ev),
        passed("b", msg("status updates every {group} {group2}", group=upd.group(1), group2=upd.group(2)), ev)
        if upd
        else failed("b", msg("the policy states no status-update interval"), ev),
    ]


@register("DISC-03", budget=MAX_ADVISORIES + 6, order=7)
def csaf(ctx: ProbeContext) -> list[UnitResult]:
    vendor = ctx.vendor_http()
    if vendor is None:
        return [not_tested("a", msg("no vendor server given"), "--vendor")]
    ex = vendor.request("GET", PROVIDER_METADATA)
    doc = ex.json()
    try:
        check_csaf(doc, "provider")
    except Exception as exc:  # noqa: BLE001 - the schema error is the verdict reason
        return [failed("a", msg("provider metadata invalid: {exc}", exc=exc), ex.evidence())]
    a = passed("a", msg("provider-metadata.json validates against the CSAF 2.0 schema"), ex.evidence())
    directories = [d.get("directory_url") for d in doc.get("distributions", []) if isinstance(d, dict)]
    directory = next((d for d in directories if isinstance(d, str)), None)
    if directory is None:
        return [a, failed("b", msg("provider metadata lists no directory distribution"))]
    base = urlsplit(directory).path.rstrip("/") + "/"
    index = vendor.request("GET", base + "index.txt")
    if index.status != 200:
        return [a, failed("b", msg("{base}index.txt answered HTTP {status}", base=base, status=index.status), index.evidence())]
    names = [ln.strip() for ln in index.text.splitlines() if ln.strip()][:MAX_ADVISORIES]
    bad: list[Evidence] = []
    for name in names:
        adv = vendor.request("GET", urljoin(base, name))
        try:
            check_csaf(adv.json(), "csaf")
        except Exception as exc:  # noqa: BLE001 - reported per advisory
            bad.append(Evidence("http", f"{name}: {exc}", {"status": adv.status}))
    if bad:
        return [a, failed("b", msg("{n_bad} of {n_names} advisories are not valid CSAF 2.0", n_bad=len(bad), n_names=len(names)), *bad)]
    return [a, passed("b", msg("{n_names} advisories validate against the CSAF 2.0 schema", n_names=len(names)), index.evidence())]


@register("DISC-04", budget=4, order=27, requires=("interface:refcam-api",))
def sbom(ctx: ProbeContext) -> list[UnitResult]:
    try:
        boss = admin(ctx)
    except Exception as exc:  # noqa: BLE001
        return [undone("a", exc)]
    ex = ctx.http.request("GET", "/api/v1/sbom", token=boss.token)
    if ex.status != 200:
        return [failed("a", msg("no SBOM served: HTTP {status}", status=ex.status), ex.evidence())]
    doc = ex.json()
    info = ctx.http.request("GET", "/api/v1/info", token=boss.token).json() or {}
    version = info.get("firmware_version") if isinstance(info, dict) else None
    ok = isinstance(doc, dict) and doc.get("bomFormat") == "CycloneDX" and isinstance(doc.get("components"), list)
    described = json.dumps(doc.get("metadata", {})) if isinstance(doc, dict) else ""
    a = passed("a", msg("an SBOM is served to admins"), ex.evidence())
    if not ok:
        return [a, failed("b", msg("the SBOM is not CycloneDX JSON with components"), ex.evidence())]
    if version and version not in described:
        return [a, failed("b", msg("the SBOM does not describe the running firmware {version}", version=version), ex.evidence())]
    return [a, passed("b", msg("CycloneDX {get} with {n_doc} components for {version}", get=doc.get('specVersion'), n_doc=len(doc['components']), version=version))]


def _sla(ctx: ProbeContext) -> tuple[dict[str, Any], Evidence] | None:
    vendor = ctx.vendor_http()
    if vendor is None:
        return None
    ex = vendor.request("GET", SLA_FIGURES)
    doc = ex.json()
    if ex.status != 200 or not isinstance(doc, dict):
        return {}, ex.evidence()
    return doc, ex.evidence()


def _breaches(doc: dict[str, Any], kinds: tuple[str, ...]) -> list[Any]:
    breached = doc.get("breached", [])
    return [b for b in breached if isinstance(b, dict) and b.get("deadline") in kinds] if isinstance(breached, list) else []


@register("DISC-05", budget=3, order=8)
def acknowledged_in_time(ctx: ProbeContext) -> list[UnitResult]:
    got = _sla(ctx)
    if got is None:
        return [not_tested("a", msg("no vendor server given"), "--vendor")]
    doc, ev = got
    if not doc.get("policy"):
        return [failed("a", msg("the vendor publishes no SLA figures at {sla_figures}", sla_figures=SLA_FIGURES), ev)]
    late = _breaches(doc, ("acknowledge",))
    return [
        passed("a", msg("SLA policy and figures published"), ev),
        failed("b", msg("{n_late} reports were not acknowledged in time", n_late=len(late)), ev) if late else passed(
            "b", msg("no acknowledgement deadline breached"), ev
        ),
    ]


def _pairs(value: object) -> str:
    """``key value`` pairs of a mapping (never a Python repr in a report)."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
    return str(value)


@register("DISC-06", budget=3, order=9)
def fixed_in_time(ctx: ProbeContext) -> list[UnitResult]:
    got = _sla(ctx)
    if got is None:
        return [not_tested("a", msg("no vendor server given"), "--vendor")]
    doc, ev = got
    policy = doc.get("policy") or {}
    if not isinstance(policy, dict) or not policy.get("fix_hours"):
        return [failed("a", msg("no fix deadlines per severity are published"), ev)]
    late = _breaches(doc, ("fix", "advisory", "status_update", "cra_early_warning", "cra_notification", "cra_final_report"))
    return [
        passed("a", msg("fix deadlines published (hours): {deadlines}", deadlines=_pairs(policy["fix_hours"])), ev),
        failed("b", msg("{n_late} deadlines breached: {items}", n_late=len(late), items=', '.join(str(b.get('report')) for b in late)), ev)
        if late
        else passed("b", msg("no fix or advisory deadline breached"), ev),
    ]
