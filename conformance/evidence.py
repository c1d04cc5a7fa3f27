"""The probe's own reading of refcam attestation evidence (no camera code).

A lab cannot catch a bug in a camera's verifier by running that verifier, so
the probe checks evidence from the published format alone, with
``cryptography`` for the primitives. Evidence is a JWS compact serialization
(RFC 7515 7.1) signed with EdDSA (RFC 8037) by the unit's Alias key; its
header carries ``x5c`` = [Alias, DeviceID, device CA] (RFC 7515 4.1.6) and its
payload ``nonce``, ``iat``, ``serial``, ``measurements`` (the event log) and
``register``. An event is folded into the register as in a TPM PCR::

    register' = SHA-256(register || SHA-256(encode(event)))
    encode = b"refcam-measurement-event/1\\x00" || u16 len || stage || digest(32)
             || u16 len || version || signer_key_hash(32) || u64 security_counter

Every failure raises :class:`EvidenceRefused` naming the catalogue unit it
refutes (``a`` freshness, ``b`` the chain, ``c`` the log), so a case never
guesses which requirement a message was about.

Example::

    seen = read_evidence(jws, root=root, nonce=nonce, now=int(time.time()))
    appraise(seen, json.loads(reference_text))
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .errors import ProbeError
from .i18n import msg

MAX_EVIDENCE = 256 * 1024  # bytes
MAX_AGE = 300  # seconds between the evidence's iat and the probe's clock
EVENT_TAG = b"refcam-measurement-event/1\x00"
REFERENCE_TYPE = "refcam-reference-values/1"
_PAYLOAD = {"nonce", "iat", "serial", "measurements", "register"}
_EVENT = {"stage": str, "digest": str, "version": str, "signer_key_hash": str, "security_counter": int}


class EvidenceRefused(ProbeError):
    """Evidence that does not hold; ``unit`` is the catalogue unit it fails."""

    def __init__(self, unit: str, message: str) -> None:
        super().__init__(message)
        self.unit = unit


@dataclass(frozen=True)
class SeenEvidence:
    """Evidence the probe checked: who signed it, and what it says was measured."""

    serial: str
    register: str  # hex
    events: tuple[Mapping[str, Any], ...]


def _b64url(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise EvidenceRefused("b", msg("{what} is not a string", what=what))
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise EvidenceRefused("b", msg("{what} is not base64url", what=what)) from exc


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EvidenceRefused("b", msg("{what} is not JSON", what=what)) from exc
    if not isinstance(doc, dict):
        raise EvidenceRefused("b", msg("{what} is not a JSON object", what=what))
    return doc


def _check_chain(chain: Sequence[x509.Certificate], root: x509.Certificate, now: int) -> None:
    """Each certificate signed by the next, the last by ``root``; all valid now; issuers CAs."""
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    for cert in [*chain, root]:
        if not cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
            raise EvidenceRefused("b", msg("certificate {subject} is not valid now", subject=cert.subject.rfc4514_string()))
    for cert, issuer in zip(chain, [*chain[1:], root], strict=True):
        try:
            constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise EvidenceRefused("b", msg("{subject} is not a CA, yet issued a certificate", subject=issuer.subject.rfc4514_string()))
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise EvidenceRefused(
                "b",
                msg("{subject} is not issued by {subject2} (the chain does not lead to the manufacturer root)", subject=cert.subject.rfc4514_string(), subject2=issuer.subject.rfc4514_string()),
            ) from exc


def _event_digest(event: Mapping[str, Any]) -> bytes:
    if not isinstance(event, Mapping) or set(event) != set(_EVENT):
        raise EvidenceRefused("c", msg("a measurement event must have exactly {sorted}", sorted=sorted(_EVENT)))
    for name, kind in _EVENT.items():
        if not isinstance(event[name], kind) or isinstance(event[name], bool):
            raise EvidenceRefused("c", msg("measurement event field {name!r} is not {name2}", name=name, name2=kind.__name__))
    try:
        digest, signer = bytes.fromhex(event["digest"]), bytes.fromhex(event["signer_key_hash"])
    except ValueError as exc:
        raise EvidenceRefused("c", msg("a measurement event digest is not hex")) from exc
    stage, version = event["stage"].encode(), event["version"].encode()
    counter = event["security_counter"]
    if len(digest) != 32 or len(signer) != 32 or not stage or not 0 <= counter < 2**64:
        raise EvidenceRefused("c", msg("measurement event for {event!r} is malformed", event=event['stage']))
    encoded = b"".join((
        EVENT_TAG, struct.pack(">H", len(stage)), stage, digest,
        struct.pack(">H", len(version)), version, signer, struct.pack(">Q", counter),
    ))  # fmt: skip
    return hashlib.sha256(encoded).digest()


def read_evidence(evidence: bytes, *, root: x509.Certificate, nonce: bytes, now: int) -> SeenEvidence:
    """Check evidence against the manufacturer root, the probe's nonce and its own log."""
    if len(evidence) > MAX_EVIDENCE:
        raise EvidenceRefused("b", msg("evidence is {n_evidence} bytes, more than {max_evidence}", n_evidence=len(evidence), max_evidence=MAX_EVIDENCE))
    parts = evidence.decode("ascii", "replace").strip().split(".")
    if len(parts) != 3:
        raise EvidenceRefused("b", msg("evidence is not a JWS compact serialization ({n_parts} parts)", n_parts=len(parts)))
    header = _json_object(_b64url(parts[0], "JWS header"), "JWS header")
    payload = _json_object(_b64url(parts[1], "JWS payload"), "JWS payload")
    if header.get("alg") != "EdDSA":
        raise EvidenceRefused("b", msg("JWS alg is {get!r}, not EdDSA", get=header.get('alg')))
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not x5c or not all(isinstance(c, str) for c in x5c):
        raise EvidenceRefused("b", msg("JWS header has no x5c certificate chain"))
    try:
        chain = [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c]
    except (binascii.Error, ValueError) as exc:
        raise EvidenceRefused("b", msg("an x5c certificate does not parse: {exc}", exc=exc)) from exc
    _check_chain(chain, root, now)
    alias = chain[0].public_key()
    if not isinstance(alias, Ed25519PublicKey):
        raise EvidenceRefused("b", msg("the signing certificate holds no Ed25519 key"))
    try:
        alias.verify(_b64url(parts[2], "JWS signature"), f"{parts[0]}.{parts[1]}".encode("ascii"))
    except (InvalidSignature, UnicodeEncodeError) as exc:
        raise EvidenceRefused("b", msg("the evidence signature does not verify with the alias key")) from exc
    if set(payload) != _PAYLOAD:
        raise EvidenceRefused("b", msg("evidence payload must have exactly {sorted}", sorted=sorted(_PAYLOAD)))
    if not hmac.compare_digest(_b64url(payload["nonce"], "evidence nonce"), nonce):
        raise EvidenceRefused("a", msg("the evidence does not carry the nonce the probe sent"))
    iat = payload["iat"]
    if not isinstance(iat, int) or isinstance(iat, bool) or abs(now - iat) > MAX_AGE:
        raise EvidenceRefused("a", msg("the evidence was not made now (iat {iat!r}, probe clock {now})", iat=iat, now=now))
    events = payload["measurements"]
    if not isinstance(events, list) or not events:
        raise EvidenceRefused("c", msg("the evidence carries no measurement log"))
    register = bytes(32)
    for event in events:
        register = hashlib.sha256(register + _event_digest(event)).digest()
    if not isinstance(payload["register"], str) or register.hex() != payload["register"].lower():
        raise EvidenceRefused("c", msg("the measurement log does not replay to the signed register"))
    if not isinstance(payload["serial"], str):
        raise EvidenceRefused("b", msg("the evidence serial is not a string"))
    return SeenEvidence(payload["serial"], register.hex(), tuple(events))


def appraise(seen: SeenEvidence, reference: object) -> dict[str, str]:
    """Stage -> "reference value" for every measured stage; raises when any stage has no
    matching reference value, or the reference document covers none (fail closed)."""
    if not isinstance(reference, Mapping) or reference.get("type") != REFERENCE_TYPE:
        raise EvidenceRefused("a", msg("the reference values are not a {reference_type!r} document", reference_type=REFERENCE_TYPE))
    stages = reference.get("stages")
    if not isinstance(stages, Mapping) or not stages:
        raise EvidenceRefused("a", msg("the reference values list no stage"))
    verdicts: dict[str, str] = {}
    for event in seen.events:
        allowed = stages.get(event["stage"])
        if not isinstance(allowed, list) or not allowed:
            raise EvidenceRefused("a", msg("the reference values have no entry for stage {event!r}", event=event['stage']))
        if not any(
            isinstance(ref, Mapping)
            and str(ref.get("digest", "")).lower() == event["digest"].lower()
            and ref.get("version") == event["version"]
            and ref.get("security_counter") == event["security_counter"]
            for ref in allowed
        ):
            raise EvidenceRefused(
                "a",
                msg("stage {event} measured {event2}.. (version {event3}, counter {event4}) matches no reference value", event=event['stage'], event2=event['digest'][:16], event3=event['version'], event4=event['security_counter']),
            )
        verdicts[event["stage"]] = "reference value"
    return verdicts
