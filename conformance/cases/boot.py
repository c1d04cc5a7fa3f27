"""Secure boot, attestation and security-event cases (KS X 3020 C3; rows 26-29)."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import socket
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..case import ProbeContext, failed, inconclusive, not_tested, passed, register, undone
from ..evidence import EvidenceRefused, appraise, read_evidence
from ..i18n import msg, said
from ..model import Evidence, UnitResult
from ..verdicts import undecided
from ._session import admin, login

NONCE_BYTES = 32


@register("BOOT-01", budget=2, order=10, requires=("interface:refcam-api",))
def model_and_support(ctx: ProbeContext) -> list[UnitResult]:
    ex = ctx.http.request("GET", "/api/v1/info")
    doc = ex.json() if ex.status == 200 else None
    doc = doc if isinstance(doc, dict) else {}
    model, support = doc.get("model"), doc.get("support_end")
    return [
        passed("a", msg("model \"{model}\"", model=model), ex.evidence()) if model else failed("a", msg("no model published"), ex.evidence()),
        passed("b", msg("support ends {support}", support=support), ex.evidence())
        if support
        else failed("b", msg("no support period published"), ex.evidence()),
    ]


def _evidence(ctx: ProbeContext) -> tuple[bytes, bytes, Evidence]:
    """Fresh evidence for a new nonce: (nonce, evidence bytes, the exchange as evidence)."""
    if "attestation" in ctx.cache:
        cached: tuple[bytes, bytes, Evidence] = ctx.cache["attestation"]
        return cached
    boss = admin(ctx)
    nonce = secrets.token_bytes(NONCE_BYTES)
    ex = ctx.http.request("POST", "/api/v1/attestation", json_body={"nonce": nonce.hex()}, token=boss.token)
    doc = ex.json()
    if ex.status != 200 or not isinstance(doc, dict) or not isinstance(doc.get("evidence"), str):
        raise EvidenceRefused("a", msg("the device returned no evidence: HTTP {status} {text}", status=ex.status, text=ex.text[:200]))
    try:
        evidence = base64.b64decode(doc["evidence"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EvidenceRefused("a", msg("the evidence is not base64")) from exc
    result = (nonce, evidence, ex.evidence())
    ctx.cache["attestation"] = result
    return result


def _root(ctx: ProbeContext) -> x509.Certificate:
    roots = x509.load_pem_x509_certificates(Path(ctx.options.ca_file or "").read_bytes())
    return roots[-1]


@register("BOOT-02", budget=6, order=25, requires=("interface:refcam-api", "attestation"))
def fresh_evidence(ctx: ProbeContext) -> list[UnitResult]:
    try:
        nonce, evidence, ev = _evidence(ctx)
    except EvidenceRefused as exc:
        return [failed(exc.unit, said(exc))]
    except Exception as exc:  # noqa: BLE001 - no credentials etc.
        return [undone("a", exc)]
    try:
        result = read_evidence(evidence, root=_root(ctx), nonce=nonce, now=int(time.time()))
    except EvidenceRefused as exc:
        return [failed(exc.unit, said(exc), ev)]
    detail = Evidence("note", "verified evidence", {"serial": result.serial, "register": result.register,
                                                      "stages": [e["stage"] for e in result.events]})
    return [
        passed("a", msg("the evidence binds the probe's fresh nonce"), ev),
        passed("b", msg("the certificate chain leads to the manufacturer root"), detail),
        passed("c", msg("{n_events} events replay to register {register}...", n_events=len(result.events), register=result.register[:16]), detail),
        _same_unit(ctx, result.serial, detail),
    ]


def _tls_serial(ctx: ProbeContext) -> str | None:
    """The serialNumber in the subject of the certificate the target presents, over a verified TLS handshake.

    The probe's own reading (ssl + cryptography), not the camera's code: the
    handshake checks the chain to the given root and the host name, so the
    serial is the manufacturer's word for *this* endpoint.
    """
    context = ctx.http.ssl_context
    if context is None:
        return None
    with (
        socket.create_connection((ctx.host, ctx.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=ctx.host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        return None
    serials = x509.load_der_x509_certificate(der).subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return str(serials[0].value) if len(serials) == 1 else None


def _same_unit(ctx: ProbeContext, evidence_serial: str, detail: Evidence) -> UnitResult:
    """Evidence relayed from another genuine unit verifies on its own; the serials must agree."""
    try:
        tls_serial = _tls_serial(ctx)
    except (OSError, ValueError) as exc:
        return inconclusive("d", msg("cannot read the target's TLS certificate: {exc}", exc=exc))
    if tls_serial is None:
        return inconclusive("d", msg("the target presents no TLS certificate with one serialNumber to compare"))
    seen = Evidence("note", "unit identity", {"tls_certificate_serial": tls_serial, "evidence_serial": evidence_serial})
    if tls_serial != evidence_serial:
        return failed(
            "d", msg("the evidence is from unit \"{evidence_serial}\", but the probe talks to unit \"{tls_serial}\" (relayed evidence)", evidence_serial=evidence_serial, tls_serial=tls_serial), seen, detail,
        )  # fmt: skip
    return passed("d", msg("the evidence is from the unit the probe talks to ({tls_serial})", tls_serial=tls_serial), seen)


@register("BOOT-03", budget=6, order=26, requires=("interface:refcam-api", "attestation"))
def reference_values(ctx: ProbeContext) -> list[UnitResult]:
    if ctx.options.reference_values is None:
        return [not_tested("a", msg("no reference values given"), "--reference")]
    try:
        references: Any = json.loads(Path(ctx.options.reference_values).read_text())
        nonce, evidence, ev = _evidence(ctx)
        stages = appraise(read_evidence(evidence, root=_root(ctx), nonce=nonce, now=int(time.time())), references)
    except EvidenceRefused as exc:
        return [failed("a", said(exc))]
    except (OSError, ValueError) as exc:
        return [inconclusive("a", msg("cannot read the reference values: {exc}", exc=exc))]
    except Exception as exc:  # noqa: BLE001 - no credentials etc.
        return [undone("a", exc)]
    detail = Evidence("note", "stage verdicts", {"stages": stages})
    return [passed("a", msg("every stage matches a reference value: {sorted}", sorted=', '.join(sorted(stages))), ev, detail)]


@register("BOOT-04", budget=8, order=60, requires=("interface:refcam-api",))
def security_events(ctx: ProbeContext) -> list[UnitResult]:
    anon = ctx.http.request("GET", "/api/v1/audit")
    if undecided(anon):
        a = inconclusive("a", msg("anonymous audit read: no definite answer (HTTP {value})", value=anon.status or anon.error),
                         anon.evidence())
    elif anon.status == 401:
        a = passed("a", msg("anonymous read refused (401)"), anon.evidence())
    else:
        a = failed("a", msg("anonymous audit read answered {status}", status=anon.status), anon.evidence())
    try:
        boss = admin(ctx)
    except Exception as exc:  # noqa: BLE001
        return [a, undone("b", exc)]
    marker = f"probe-audit-{secrets.token_hex(4)}"
    attempt = login(ctx.http, marker, "not-the-password-" + secrets.token_hex(8))
    ex = ctx.http.request("GET", "/api/v1/audit?limit=200", token=boss.token)
    found = marker in ex.text
    if found:
        b = passed("b", msg("the probe's failed login is in the audit log"), ex.evidence())
    elif undecided(attempt) or undecided(ex):
        b = inconclusive("b", msg("the failed login or the audit read got no definite answer"),
                         attempt.evidence(), ex.evidence())
    else:
        b = failed("b", msg("the probe's failed login is not in the audit log"), attempt.evidence(), ex.evidence())
    return [a, b]
