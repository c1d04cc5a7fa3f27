"""Attestation evidence (a JWS signed by the DICE Alias key) and its verifier.

Evidence is a JWS in compact serialization (RFC 7515 section 7.1) signed
with EdDSA (RFC 8037) by this boot's Alias key::

    header  = {"alg": "EdDSA", "typ": "refcam-evidence+jws",
               "x5c": [alias cert, DeviceID cert, device CA cert]}   # base64 DER, RFC 7515 4.1.6
    payload = {"nonce": b64url(nonce), "iat": now, "serial": "...",
               "measurements": [event, ...], "register": "<hex>"}
    evidence = b64url(header) "." b64url(payload) "." b64url(signature)

A verifier (:func:`verify_evidence`) checks, in this order, and raises
:class:`AttestationError` with a precise message at the first failure:

1. the JWS is well formed and ``alg`` is EdDSA (nothing else is accepted);
2. the ``x5c`` chain leads to the manufacturer root (cryptography's path
   validator, :mod:`bootloader.x509verify`): each certificate signed by the
   next and valid at ``now``, issuers CAs allowed to issue at that depth, no
   unknown critical extension; the leaf is no CA, allows digitalSignature
   and is issued for the DICE attestation key purpose;
3. the signature verifies with the Alias key (``x5c[0]``);
4. the nonce is the verifier's own (freshness, REQUIREMENTS row 28) and
   ``iat`` is within ``max_age`` seconds of ``now``;
5. replaying the event log gives the signed register;
6. the Alias certificate's DiceTcbInfo FWID equals the firmware measurement
   in the log (the Alias key is bound to that firmware);
7. each measured stage is among the reference values (row 27), and every
   measured stage has reference values: a reference that leaves a stage out,
   or is empty, is refused (fail closed)::

    result = verify_evidence(evidence, root_cert=root, nonce=nonce,
                             reference_values=json.loads(values), now=int(time.time()))
    for verdict in result.verdicts:
        print(verdict.stage, verdict.verdict)
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bootloader.dice import TCG_DICE_KP_ATTEST_LOC, alias_tcb_info, serial_attribute
from bootloader.measured import (
    MeasurementLog,
    event_from_json,
    event_to_json,
    parse_reference_values,
    replay,
)
from bootloader.x509verify import CertificateChainError, verify_certificate_chain
from common.errors import AttestationError
from common.handoff import MeasurementEvent

ALG: Final = "EdDSA"
TYP: Final = "refcam-evidence+jws"
MIN_NONCE: Final = 16  # bytes
MAX_NONCE: Final = 64  # bytes
MAX_EVIDENCE: Final = 64 * 1024  # bytes
MAX_CHAIN: Final = 4  # certificates in x5c
MAX_SKEW: Final = 30  # seconds an iat may lie in the future (clock skew)
FIRMWARE_STAGE: Final = "firmware"

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_PAYLOAD_FIELDS: Final = {"nonce", "iat", "serial", "measurements", "register"}
Verdict = Literal["reference value", "not checked"]


@dataclass(frozen=True)
class StageVerdict:
    stage: str
    digest: str  # hex
    version: str
    security_counter: int
    verdict: Verdict


@dataclass(frozen=True)
class AttestationResult:
    """What verified evidence says about the device and its boot."""

    serial: str
    register: str  # hex
    issued_at: int  # seconds since the epoch
    events: tuple[MeasurementEvent, ...]
    verdicts: tuple[StageVerdict, ...]


# -- base64url (RFC 7515 section 2: no padding) ----------------------------


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str, what: str) -> bytes:
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise AttestationError(f"{what} is not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise AttestationError(f"{what} is not unpadded base64url") from e
    if b64url_encode(data) != text:  # non-canonical trailing bits
        raise AttestationError(f"{what} is not canonical base64url")
    return data


def _json_part(text: str, what: str) -> dict[str, Any]:
    raw = b64url_decode(text, what)
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise AttestationError(f"{what} is not UTF-8 JSON") from e
    if not isinstance(value, dict):
        raise AttestationError(f"{what} is not a JSON object")
    return value


def check_nonce(nonce: bytes) -> None:
    if not MIN_NONCE <= len(nonce) <= MAX_NONCE:
        raise AttestationError(f"nonce is {len(nonce)} bytes, expected {MIN_NONCE} to {MAX_NONCE}")


# -- producing evidence (the device side) ----------------------------------


def make_evidence(
    *,
    alias_key: Ed25519PrivateKey,
    chain: Sequence[x509.Certificate],
    events: Sequence[MeasurementEvent],
    register: bytes,
    serial: str,
    nonce: bytes,
    now: int,
) -> bytes:
    """Sign evidence binding ``nonce`` to the measurement log with the Alias key."""
    check_nonce(nonce)
    header = {
        "alg": ALG,
        "typ": TYP,
        "x5c": [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode("ascii")
            for c in chain
        ],
    }
    payload = {
        "nonce": b64url_encode(nonce),
        "iat": int(now),
        "serial": serial,
        "measurements": [event_to_json(e) for e in events],
        "register": register.hex(),
    }
    signing_input = ".".join(
        b64url_encode(json.dumps(part, separators=(",", ":"), sort_keys=True).encode("utf-8"))
        for part in (header, payload)
    )
    signature = alias_key.sign(signing_input.encode("ascii"))
    return f"{signing_input}.{b64url_encode(signature)}".encode("ascii")


# -- verifying evidence ----------------------------------------------------


@dataclass(frozen=True)
class _JWS:
    header: dict[str, Any]
    payload: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _parse_jws(evidence: bytes) -> _JWS:
    if len(evidence) > MAX_EVIDENCE:
        raise AttestationError(
            f"evidence is {len(evidence)} bytes, more than the {MAX_EVIDENCE} allowed"
        )
    try:
        text = evidence.decode("ascii").strip()
    except UnicodeDecodeError as e:
        raise AttestationError("evidence is not a JWS compact serialization (not ASCII)") from e
    parts = text.split(".")
    if len(parts) != 3:
        raise AttestationError(
            f"evidence is not a JWS compact serialization ({len(parts)} parts, expected 3)"
        )
    header = _json_part(parts[0], "JWS header")
    if header.get("alg") != ALG:
        raise AttestationError(f"JWS alg is {header.get('alg')!r}, expected {ALG!r}")
    if header.get("typ") != TYP:
        raise AttestationError(f"JWS typ is {header.get('typ')!r}, expected {TYP!r}")
    if "crit" in header:  # RFC 7515 4.1.11: we understand no extensions
        raise AttestationError(f"JWS header has unsupported crit parameters {header['crit']!r}")
    payload = _json_part(parts[1], "JWS payload")
    signature = b64url_decode(parts[2], "JWS signature")
    return _JWS(header, payload, f"{parts[0]}.{parts[1]}".encode("ascii"), signature)


def _x5c(header: Mapping[str, Any]) -> list[x509.Certificate]:
    x5c = header.get("x5c")
    if not isinstance(x5c, list) or not 1 <= len(x5c) <= MAX_CHAIN:
        raise AttestationError(f"JWS x5c must list 1 to {MAX_CHAIN} certificates")
    certs = []
    for i, item in enumerate(x5c):
        try:
            if not isinstance(item, str):
                raise ValueError("not a string")
            der = base64.b64decode(item, validate=True)
            cert = x509.load_der_x509_certificate(der)
        except (binascii.Error, ValueError, x509.InvalidVersion) as e:  # InvalidVersion: a bad version field
            raise AttestationError(f"JWS x5c[{i}] is not a base64 DER certificate") from e
        _check_parses(cert, f"JWS x5c[{i}]")
        certs.append(cert)
    return certs


def _check_parses(cert: x509.Certificate, what: str) -> None:
    """Parse the parts cryptography decodes lazily, so checks later cannot hit a ValueError."""
    try:
        _ = (cert.subject, cert.issuer, cert.extensions, cert.not_valid_after_utc)
        cert.public_key()
    # cryptography reports some malformed names with TypeError or KeyError.
    except (
        ValueError,
        TypeError,
        KeyError,
        UnsupportedAlgorithm,
        x509.DuplicateExtension,
        x509.UnsupportedGeneralNameType,
    ) as e:
        raise AttestationError(f"{what} is a malformed certificate: {e!s}") from e


def verify_chain(
    chain: Sequence[x509.Certificate], *, root_cert: x509.Certificate, now: int
) -> None:
    """Validate ``chain`` (Alias leaf first) up to ``root_cert`` at ``now``; raises AttestationError.

    Path validation is :func:`bootloader.x509verify.verify_certificate_chain`
    (cryptography's verifier), for the DICE attestation key purpose.
    """
    certs = list(chain)
    if certs and certs[-1] == root_cert:
        certs.pop()  # the anchor itself may be included; it is trusted only as given
    if not certs:
        raise AttestationError(
            "certificate chain does not lead to the manufacturer root: "
            "the chain holds no certificate below the root"
        )
    when = dt.datetime.fromtimestamp(now, dt.UTC)
    try:
        verify_certificate_chain(
            certs[0], certs[1:], trust_root=root_cert, now=when, purpose=TCG_DICE_KP_ATTEST_LOC
        )
    except CertificateChainError as e:
        raise AttestationError(str(e).replace("trusted root", "manufacturer root")) from e


def check_unit(
    chain: Sequence[x509.Certificate],
    serial: str,
    *,
    expect_serial: str | None,
    expect_certificate: Sequence[x509.Certificate] | None,
    root_cert: x509.Certificate,
    now: int,
) -> None:
    """Check that verified evidence (``chain``: Alias, DeviceID, ...) comes from the unit expected.

    ``expect_certificate`` is a certificate of that unit, leaf first: its
    DeviceID certificate (then the evidence's DeviceID key must be its key),
    or its TLS certificate as a client saw it (then it must validate to the
    manufacturer root for serverAuth and name the evidence's serial: the
    device CA vouches for both serials, so a unit relaying another unit's
    evidence is caught). Raises :class:`AttestationError`.
    """
    if expect_serial is not None and serial != expect_serial:
        raise AttestationError(
            f"evidence is from unit {serial!r}, not from the expected unit {expect_serial!r}"
        )
    if not expect_certificate:
        return
    leaf = expect_certificate[0]
    try:
        is_ca = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if is_ca:  # a DeviceID certificate: the binding is its key
        if len(chain) < 2 or leaf.public_key() != chain[1].public_key():
            raise AttestationError(
                f"evidence is from unit {serial!r}, whose DeviceID key is not the key of the "
                f"expected certificate {leaf.subject.rfc4514_string()}"
            )
        return
    try:
        verify_certificate_chain(
            leaf,
            expect_certificate[1:],
            trust_root=root_cert,
            now=dt.datetime.fromtimestamp(now, dt.UTC),
            purpose=ExtendedKeyUsageOID.SERVER_AUTH,
        )
    except CertificateChainError as e:
        raise AttestationError(f"the expected unit's certificate is not valid: {e}") from e
    unit = _serial_of(leaf)
    if unit != serial:
        raise AttestationError(
            f"evidence is from unit {serial!r}, but the expected certificate is of unit {unit!r} "
            "(relayed evidence?)"
        )


def _serial_of(cert: x509.Certificate) -> str | None:
    attrs = cert.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return str(attrs[0].value) if attrs else None


def _short(hex_digest: str) -> str:
    return hex_digest[:16] + ".."


def _appraise(
    events: Sequence[MeasurementEvent], reference_values: Mapping[str, Any] | None
) -> tuple[StageVerdict, ...]:
    def verdict(event: MeasurementEvent, v: Verdict) -> StageVerdict:
        return StageVerdict(event.stage, event.digest, event.version, event.security_counter, v)

    if reference_values is None:
        return tuple(verdict(e, "not checked") for e in events)
    references = parse_reference_values(reference_values)
    logged = {e.stage for e in events}
    for stage in references:
        if stage not in logged:
            raise AttestationError(
                f"reference values cover stage {stage} but the log has no {stage} measurement"
            )
    unmatched = sorted({e.stage for e in events} - set(references))
    if unmatched:
        # Fail closed: a stage without a reference value would pass unappraised.
        raise AttestationError(
            f"reference values have no entry for the measured stage(s) {', '.join(unmatched)}: "
            f"every stage the evidence reports needs one (they cover {', '.join(sorted(references))})"
        )
    verdicts = []
    for event in events:
        allowed = references[event.stage]
        match = next((r for r in allowed if r.digest == event.digest), None)
        if match is None:
            expected = ", ".join(_short(r.digest) for r in allowed)
            raise AttestationError(
                f"stage {event.stage} digest {_short(event.digest)} is not a reference value "
                f"(expected one of {expected})"
            )
        if (match.version, match.security_counter) != (event.version, event.security_counter):
            raise AttestationError(
                f"stage {event.stage} digest {_short(event.digest)} is logged as version "
                f"{event.version} security counter {event.security_counter}, but the reference "
                f"value says version {match.version} security counter {match.security_counter}"
            )
        verdicts.append(verdict(event, "reference value"))
    return tuple(verdicts)


def verify_evidence(
    evidence: bytes,
    *,
    root_cert: x509.Certificate,
    nonce: bytes,
    reference_values: Mapping[str, Any] | None,
    now: int,
    max_age: int = 300,
    max_skew: int = MAX_SKEW,
    expect_serial: str | None = None,
    expect_certificate: Sequence[x509.Certificate] | None = None,
) -> AttestationResult:
    """Verify evidence against the manufacturer root, our nonce and the reference values.

    ``max_age`` and ``max_skew`` are seconds. ``expect_serial`` and
    ``expect_certificate`` bind the evidence to one unit (:func:`check_unit`):
    without them, genuine evidence from *any* unit answering the nonce
    verifies, which is what a relay exploits. Raises :class:`AttestationError`.
    """
    check_nonce(nonce)
    jws = _parse_jws(evidence)
    chain = _x5c(jws.header)
    verify_chain(chain, root_cert=root_cert, now=now)
    alias_public = chain[0].public_key()
    if not isinstance(alias_public, Ed25519PublicKey):
        raise AttestationError("the signing certificate does not hold an Ed25519 key (alg EdDSA)")
    try:
        alias_public.verify(jws.signature, jws.signing_input)
    except InvalidSignature as e:
        raise AttestationError("evidence signature does not verify with the alias key") from e

    # From here on the payload is authentic: check what it says.
    payload = jws.payload
    if set(payload) != _PAYLOAD_FIELDS:
        raise AttestationError(f"evidence payload must have exactly {sorted(_PAYLOAD_FIELDS)}")
    if not isinstance(payload["nonce"], str):
        raise AttestationError("evidence nonce is not a string")
    if not hmac.compare_digest(b64url_decode(payload["nonce"], "evidence nonce"), nonce):
        raise AttestationError("evidence nonce does not match the nonce sent")
    iat = payload["iat"]
    if not isinstance(iat, int) or isinstance(iat, bool):
        raise AttestationError("evidence iat is not an integer")
    if iat > now + max_skew:
        raise AttestationError(
            f"evidence is issued {iat - now} s in the future (allowed clock skew {max_skew} s)"
        )
    if now - iat > max_age:
        raise AttestationError(f"evidence is stale: issued {now - iat} s ago, max age {max_age} s")
    if not isinstance(payload["measurements"], list):
        raise AttestationError("evidence measurements is not a list")
    events = tuple(event_from_json(e) for e in payload["measurements"])
    register = payload["register"]
    if not isinstance(register, str) or not re.fullmatch(r"[0-9a-f]{64}", register):
        raise AttestationError("evidence register is not 64 lowercase hex digits")
    replayed = replay(events).hex()
    if not hmac.compare_digest(replayed, register):
        raise AttestationError(
            f"measurement log does not replay to the register: replay gives "
            f"{_short(replayed)}, evidence says {_short(register)}"
        )

    # The alias key is bound to one firmware: its certificate must name the logged one.
    firmware = [e for e in events if e.stage == FIRMWARE_STAGE]
    if len(firmware) != 1:
        raise AttestationError(
            f"measurement log has {len(firmware)} firmware measurements, expected 1"
        )
    tcb = alias_tcb_info(chain[0])
    if tcb.fwid_sha256.hex() != firmware[0].digest:
        raise AttestationError(
            f"alias certificate is bound to firmware {_short(tcb.fwid_sha256.hex())} "
            f"but the log measures firmware {_short(firmware[0].digest)}"
        )
    if tcb.svn is not None and tcb.svn != firmware[0].security_counter:
        raise AttestationError(
            f"alias certificate names security counter {tcb.svn} but the log says "
            f"{firmware[0].security_counter}"
        )

    serial = payload["serial"]
    cert_serial = _serial_of(chain[0])
    if len(chain) > 1 and _serial_of(chain[1]) != cert_serial:
        raise AttestationError(
            f"alias certificate serial {cert_serial!r} differs from its issuer's "
            f"{_serial_of(chain[1])!r}"
        )
    if not isinstance(serial, str) or serial != cert_serial:
        raise AttestationError(
            f"evidence serial {serial!r} does not match the alias certificate's {cert_serial!r}"
        )
    if expect_serial is not None or expect_certificate is not None:
        check_unit(
            chain, serial, expect_serial=expect_serial, expect_certificate=expect_certificate,
            root_cert=root_cert, now=now,
        )  # fmt: skip
    return AttestationResult(
        serial=serial,
        register=register,
        issued_at=iat,
        events=events,
        verdicts=_appraise(events, reference_values),
    )


# ---------------------------------------------------------------- the attester


class DiceAttester:
    """Signs attestation evidence with this boot's Alias key (``handoff.Attester``).

    ``chain`` is [alias certificate, DeviceID certificate, device CA
    certificate]; ``log`` the measurement log (or its events) and
    ``register`` the measurement register it produced.
    """

    def __init__(
        self,
        alias_key: Ed25519PrivateKey,
        chain: Sequence[x509.Certificate],
        log: MeasurementLog | Sequence[MeasurementEvent],
        register: bytes,
    ) -> None:
        if not chain:
            raise ValueError("the attester needs at least the alias certificate")
        if chain[0].public_key() != alias_key.public_key():
            raise ValueError("the first certificate of the chain does not certify the alias key")
        self._key = alias_key
        self._chain = tuple(chain)
        self._events = log.events if isinstance(log, MeasurementLog) else tuple(log)
        self._register = bytes(register)

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return self._chain

    def evidence(self, nonce: bytes, *, now: int) -> bytes:
        serial = serial_attribute(self._chain[0].subject) or ""
        return make_evidence(
            alias_key=self._key,
            chain=self._chain,
            events=self._events,
            register=self._register,
            serial=serial,
            nonce=nonce,
            now=now,
        )
