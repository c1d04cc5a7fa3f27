"""Attestation evidence and its verifier (bootloader/attestation.py).

Threat model of these tests: the firmware holds the Alias key, so a tampered
firmware can sign any payload it likes; what it cannot do is obtain the Alias
key of the genuine firmware, or a DeviceID certificate for another bootloader.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from bootloader.attestation import (
    AttestationResult,
    DiceAttester,
    StageVerdict,
    b64url_decode,
    b64url_encode,
    make_evidence,
    verify_chain,
    verify_evidence,
)
from bootloader.dice import derive_alias, derive_device_id, issue_alias_certificate
from bootloader.measured import MeasurementLog, reference_values
from bootloader.pki import issue_device_id_certificate, issue_tls_certificate
from common.errors import AttestationError
from common.handoff import MeasurementEvent
from tests.bootloader.test_pki import UDS, ManufacturerCA, manufacturer_ca

T0 = 1_772_366_400  # 2026-03-01T12:00:00Z, the boot
NOW = dt.datetime.fromtimestamp(T0, dt.UTC)
NONCE = bytes(range(32))
BL = hashlib.sha256(b"bootloader image 1.0.0").digest()
FW = hashlib.sha256(b"firmware image 2.3.0").digest()
EVIL_FW = hashlib.sha256(b"tampered firmware").digest()
SIGNER = hashlib.sha256(b"firmware-signing spki").digest()


@dataclass(frozen=True)
class Boot:
    """One simulated boot: what chain.py hands to the firmware, plus the raw keys."""

    ca: ManufacturerCA
    device_id_key: ec.EllipticCurvePrivateKey
    device_id_cert: x509.Certificate
    alias_key: Ed25519PrivateKey
    chain: tuple[x509.Certificate, ...]
    log: MeasurementLog

    @property
    def attester(self) -> DiceAttester:
        return DiceAttester(self.alias_key, list(self.chain), self.log, self.log.register)


def boot(
    ca: ManufacturerCA,
    firmware: bytes = FW,
    *,
    serial: str = "RC1-0001",
    counter: int = 4,
    now: dt.datetime = NOW,
) -> Boot:
    device_id_key = derive_device_id(UDS, BL)
    device_id_cert = issue_device_id_certificate(
        serial=serial,
        device_id_public_key=device_id_key.public_key(),
        device_ca_key=ca.device_ca_key,
        device_ca_cert=ca.device_ca,
        now=now,
    )
    log = MeasurementLog()
    log.extend("bootloader", BL, "1.0.0", SIGNER, 1)
    log.extend("firmware", firmware, "2.3.0", SIGNER, counter)
    alias_key = derive_alias(UDS, BL, firmware)
    alias_cert = issue_alias_certificate(
        device_id_key=device_id_key,
        device_id_cert=device_id_cert,
        alias_public_key=alias_key.public_key(),
        firmware_measurement=firmware,
        now=now,
        firmware_version="2.3.0",
        security_counter=counter,
    )
    return Boot(
        ca,
        device_id_key,
        device_id_cert,
        alias_key,
        (alias_cert, device_id_cert, ca.device_ca),
        log,
    )


REFERENCE = reference_values({"bootloader": [(BL, "1.0.0", 1)], "firmware": [(FW, "2.3.0", 4)]})


@pytest.fixture(scope="module")
def ca() -> ManufacturerCA:
    return manufacturer_ca()


@pytest.fixture(scope="module")
def genuine(ca: ManufacturerCA) -> Boot:
    return boot(ca)


def _verify(
    evidence: bytes,
    ca: ManufacturerCA,
    *,
    nonce: bytes = NONCE,
    reference: dict[str, Any] | None = REFERENCE,
    now: int = T0 + 10,
) -> AttestationResult:
    return verify_evidence(
        evidence, root_cert=ca.root, nonce=nonce, reference_values=reference, now=now
    )


def _parts(evidence: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    h, p, s = evidence.decode().split(".")
    return (
        json.loads(b64url_decode(h, "h")),
        json.loads(b64url_decode(p, "p")),
        b64url_decode(s, "s"),
    )


def _sign(key: Ed25519PrivateKey, header: dict[str, Any], payload: dict[str, Any]) -> bytes:
    signing_input = ".".join(b64url_encode(json.dumps(part).encode()) for part in (header, payload))
    return f"{signing_input}.{b64url_encode(key.sign(signing_input.encode()))}".encode()


def test_evidence_round_trip(ca: ManufacturerCA, genuine: Boot) -> None:
    evidence = genuine.attester.evidence(NONCE, now=T0)
    result = _verify(evidence, ca)
    assert result.serial == "RC1-0001"
    assert result.register == genuine.log.register.hex()
    assert result.issued_at == T0
    assert result.events == genuine.log.events
    assert result.verdicts == (
        StageVerdict("bootloader", BL.hex(), "1.0.0", 1, "reference value"),
        StageVerdict("firmware", FW.hex(), "2.3.0", 4, "reference value"),
    )
    header, payload, signature = _parts(evidence)
    assert header["alg"] == "EdDSA" and header["typ"] == "refcam-evidence+jws"
    assert [base64.b64decode(c) for c in header["x5c"]] == [
        c.public_bytes(serialization.Encoding.DER) for c in genuine.chain
    ]
    assert payload["nonce"] == b64url_encode(NONCE) and len(signature) == 64


def test_without_reference_values_stages_are_reported_not_checked(
    ca: ManufacturerCA, genuine: Boot
) -> None:
    result = _verify(genuine.attester.evidence(NONCE, now=T0), ca, reference=None)
    assert [v.verdict for v in result.verdicts] == ["not checked", "not checked"]


def test_partial_reference_values_are_refused(ca: ManufacturerCA, genuine: Boot) -> None:
    """Fail closed: a stage the evidence reports without a reference value is an error."""
    evidence = genuine.attester.evidence(NONCE, now=T0)
    only_fw = reference_values({"firmware": [(FW, "2.3.0", 4)]})
    with pytest.raises(
        AttestationError,
        match=r"^reference values have no entry for the measured stage\(s\) bootloader: every stage the "
        r"evidence reports needs one \(they cover firmware\)$",
    ):
        _verify(evidence, ca, reference=only_fw)
    only_bl = reference_values({"bootloader": [(BL, "1.0.0", 1)]})
    with pytest.raises(AttestationError, match=r"no entry for the measured stage\(s\) firmware"):
        _verify(evidence, ca, reference=only_bl)


def test_empty_reference_values_are_refused(ca: ManufacturerCA, genuine: Boot) -> None:
    evidence = genuine.attester.evidence(NONCE, now=T0)
    empty = {**REFERENCE, "stages": {}}
    with pytest.raises(AttestationError, match="^reference values document lists no stage: it would match nothing$"):
        _verify(evidence, ca, reference=empty)


def test_tampered_payload_is_rejected(ca: ManufacturerCA, genuine: Boot) -> None:
    h, p, s = genuine.attester.evidence(NONCE, now=T0).decode().split(".")
    payload = json.loads(b64url_decode(p, "p"))
    payload["serial"] = "RC1-9999"
    forged = f"{h}.{b64url_encode(json.dumps(payload).encode())}.{s}".encode()
    with pytest.raises(
        AttestationError, match="^evidence signature does not verify with the alias key$"
    ):
        _verify(forged, ca)


def test_wrong_nonce_is_rejected(ca: ManufacturerCA, genuine: Boot) -> None:
    evidence = genuine.attester.evidence(NONCE, now=T0)
    with pytest.raises(AttestationError, match="^evidence nonce does not match the nonce sent$"):
        _verify(evidence, ca, nonce=bytes(32))


def test_replayed_old_evidence_is_stale(ca: ManufacturerCA, genuine: Boot) -> None:
    evidence = genuine.attester.evidence(NONCE, now=T0)
    _verify(evidence, ca, now=T0 + 300)
    with pytest.raises(
        AttestationError, match="^evidence is stale: issued 301 s ago, max age 300 s$"
    ):
        _verify(evidence, ca, now=T0 + 301)


def test_evidence_from_the_future_is_rejected(ca: ManufacturerCA, genuine: Boot) -> None:
    evidence = genuine.attester.evidence(NONCE, now=T0 + 100)
    with pytest.raises(AttestationError, match="issued 90 s in the future"):
        _verify(evidence, ca, now=T0 + 10)


def test_chain_to_another_root_is_rejected(ca: ManufacturerCA) -> None:
    """Another manufacturer's CAs, even with the same names, do not chain to our root."""
    other = boot(manufacturer_ca())
    with pytest.raises(
        AttestationError,
        match="^certificate chain does not lead to the manufacturer root: validation failed: "
        "candidates exhausted: signature does not match$",
    ):
        _verify(other.attester.evidence(NONCE, now=T0), ca)
    renamed = boot(manufacturer_ca(name="other"))
    with pytest.raises(AttestationError, match="^certificate chain does not lead to the manufacturer root: "):
        _verify(renamed.attester.evidence(NONCE, now=T0), ca)


def test_self_made_device_id_is_rejected(ca: ManufacturerCA, genuine: Boot) -> None:
    """A DeviceID certificate not issued by the device CA (e.g. made for a cloned UDS)."""
    rogue_key = ec.generate_private_key(ec.SECP256R1())
    rogue_ca = dataclasses.replace(ca, device_ca_key=rogue_key)
    forged = boot(rogue_ca)
    with pytest.raises(
        AttestationError, match="does not lead to the manufacturer root: .*signature does not match"
    ):
        _verify(forged.attester.evidence(NONCE, now=T0), ca)


def test_event_log_edited_does_not_replay_to_the_register(
    ca: ManufacturerCA, genuine: Boot
) -> None:
    """Compromised firmware rewrites its log entry but cannot undo the register."""
    events = list(genuine.log.events)
    events[0] = dataclasses.replace(events[0], version="9.9.9")
    evidence = make_evidence(
        alias_key=genuine.alias_key,
        chain=genuine.chain,
        events=events,
        register=genuine.log.register,
        serial="RC1-0001",
        nonce=NONCE,
        now=T0,
    )
    with pytest.raises(AttestationError, match="^measurement log does not replay to the register"):
        _verify(evidence, ca)


def test_tampered_firmware_does_not_attest_as_reference(ca: ManufacturerCA) -> None:
    """REQUIREMENTS row 27: the measurements of tampered firmware differ from the reference."""
    tampered = boot(ca, EVIL_FW)
    evidence = tampered.attester.evidence(NONCE, now=T0)
    with pytest.raises(
        AttestationError,
        match=rf"^stage firmware digest {EVIL_FW.hex()[:16]}\.\. is not a reference value "
        rf"\(expected one of {FW.hex()[:16]}\.\.\)$",
    ):
        _verify(evidence, ca)


def test_tampered_firmware_cannot_claim_the_genuine_measurement(ca: ManufacturerCA) -> None:
    """It rewrites log and register consistently, but its alias cert names its own digest."""
    tampered = boot(ca, EVIL_FW)
    log = MeasurementLog()
    log.extend("bootloader", BL, "1.0.0", SIGNER, 1)
    log.extend("firmware", FW, "2.3.0", SIGNER, 4)
    evidence = make_evidence(
        alias_key=tampered.alias_key,
        chain=tampered.chain,
        events=log.events,
        register=log.register,
        serial="RC1-0001",
        nonce=NONCE,
        now=T0,
    )
    with pytest.raises(
        AttestationError,
        match=rf"^alias certificate is bound to firmware {EVIL_FW.hex()[:16]}\.\. but the log "
        rf"measures firmware {FW.hex()[:16]}\.\.$",
    ):
        _verify(evidence, ca)


def test_security_counter_differing_from_the_reference_is_rejected(ca: ManufacturerCA) -> None:
    lying = boot(ca, counter=3)
    with pytest.raises(AttestationError, match="security counter 3, but the reference value says"):
        _verify(lying.attester.evidence(NONCE, now=T0), ca)


def test_missing_stage_covered_by_reference_is_rejected(ca: ManufacturerCA, genuine: Boot) -> None:
    refs = reference_values(
        {
            "bootloader": [(BL, "1.0.0", 1)],
            "firmware": [(FW, "2.3.0", 4)],
            "key-manifest": [(FW, "1", 1)],
        }
    )
    with pytest.raises(AttestationError, match="cover stage key-manifest but the log has no"):
        _verify(genuine.attester.evidence(NONCE, now=T0), ca, reference=refs)


@pytest.mark.parametrize("alg", ["none", "ES256", "HS256", None])
def test_only_eddsa_is_accepted(ca: ManufacturerCA, genuine: Boot, alg: str | None) -> None:
    header, payload, _ = _parts(genuine.attester.evidence(NONCE, now=T0))
    header["alg"] = alg
    with pytest.raises(AttestationError, match=f"^JWS alg is {alg!r}, expected 'EdDSA'$"):
        _verify(_sign(genuine.alias_key, header, payload), ca)


def test_unsupported_crit_header_is_rejected(ca: ManufacturerCA, genuine: Boot) -> None:
    header, payload, _ = _parts(genuine.attester.evidence(NONCE, now=T0))
    header["crit"] = ["exp"]
    with pytest.raises(AttestationError, match="unsupported crit"):
        _verify(_sign(genuine.alias_key, header, payload), ca)


def test_payload_with_an_unknown_field_is_rejected(ca: ManufacturerCA, genuine: Boot) -> None:
    header, payload, _ = _parts(genuine.attester.evidence(NONCE, now=T0))
    payload["debug"] = True
    with pytest.raises(AttestationError, match="payload must have exactly"):
        _verify(_sign(genuine.alias_key, header, payload), ca)


def test_serial_differing_from_the_certificate_is_rejected(
    ca: ManufacturerCA, genuine: Boot
) -> None:
    evidence = make_evidence(
        alias_key=genuine.alias_key,
        chain=genuine.chain,
        events=genuine.log.events,
        register=genuine.log.register,
        serial="RC1-0002",
        nonce=NONCE,
        now=T0,
    )
    with pytest.raises(AttestationError, match="evidence serial 'RC1-0002' does not match"):
        _verify(evidence, ca)


def test_evidence_signed_by_a_tls_leaf_is_rejected(ca: ManufacturerCA, genuine: Boot) -> None:
    """A non-CA certificate (the TLS leaf) cannot issue an alias certificate."""
    tls_key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_tls_certificate(
        serial="RC1-0001",
        public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        device_ca_key=ca.device_ca_key,
        device_ca_cert=ca.device_ca,
        now=NOW,
    )
    alias = issue_alias_certificate(
        device_id_key=tls_key,
        device_id_cert=leaf,
        alias_public_key=genuine.alias_key.public_key(),
        firmware_measurement=FW,
        now=NOW,
    )
    with pytest.raises(AttestationError, match="basicConstraints.cA must be asserted in a CA certificate"):
        verify_chain([alias, leaf, ca.device_ca], root_cert=ca.root, now=T0)


def test_alias_certificate_expired_at_verification_is_rejected(
    ca: ManufacturerCA, genuine: Boot
) -> None:
    later = T0 + 400 * 86400
    evidence = genuine.attester.evidence(NONCE, now=later)
    with pytest.raises(
        AttestationError, match="cert is not valid at validation time .*CN=refcam Alias [0-9a-f]{16}"
    ):
        _verify(evidence, ca, now=later)


def test_path_length_of_the_device_ca_is_enforced(genuine: Boot) -> None:
    """A device CA with path length 0 may not issue the DeviceID CA (RFC 5280 4.2.1.9)."""
    from bootloader.keys import make_ca_certificate

    ca = manufacturer_ca()
    narrow = make_ca_certificate(
        key=ca.device_ca_key,
        common_name="refcam Device CA",
        now=NOW,
        lifetime=dt.timedelta(days=1826),
        path_length=0,
        issuer_key=ca.root_key,
        issuer_cert=ca.root,
    )
    b = boot(dataclasses.replace(ca, device_ca=narrow))
    with pytest.raises(AttestationError, match="path length constraint violated"):
        _verify(b.attester.evidence(NONCE, now=T0), ca)


def test_unknown_critical_extension_is_rejected(ca: ManufacturerCA, genuine: Boot) -> None:
    cert = genuine.chain[0]
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(1)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00"), critical=True
        )
    )
    odd = builder.sign(genuine.device_id_key, hashes.SHA256())
    with pytest.raises(AttestationError, match="1.2.3.4: certificate contains unaccounted-for critical"):
        verify_chain([odd, *genuine.chain[1:]], root_cert=ca.root, now=T0)


@pytest.mark.parametrize("size", [0, 15, 65])
def test_nonce_length_is_bounded(ca: ManufacturerCA, genuine: Boot, size: int) -> None:
    with pytest.raises(AttestationError, match=f"^nonce is {size} bytes, expected 16 to 64$"):
        genuine.attester.evidence(bytes(size), now=T0)
    with pytest.raises(AttestationError, match=f"^nonce is {size} bytes, expected 16 to 64$"):
        _verify(genuine.attester.evidence(NONCE, now=T0), ca, nonce=bytes(size))


@pytest.mark.parametrize(
    ("evidence", "message"),
    [
        (b"a.b", "2 parts, expected 3"),
        (b"\xff.b.c", "not ASCII"),
        (b"a=.b.c", "JWS header is not unpadded base64url"),
        (b"e30.e30.", "JWS alg is None"),
        (b"W10.e30.", "JWS header is not a JSON object"),
        (b"x" * 70000, "more than the 65536 allowed"),
    ],
)
def test_malformed_jws_is_rejected(ca: ManufacturerCA, evidence: bytes, message: str) -> None:
    with pytest.raises(AttestationError, match=message):
        _verify(evidence, ca)


@given(st.binary(max_size=300))
def test_verifier_raises_only_attestation_errors_on_garbage(data: bytes) -> None:
    with contextlib.suppress(AttestationError):
        _verify(data, _CA)


_CA = manufacturer_ca()


def test_x5c_that_is_not_a_certificate_is_rejected(ca: ManufacturerCA, genuine: Boot) -> None:
    header, payload, _ = _parts(genuine.attester.evidence(NONCE, now=T0))
    header["x5c"] = ["AAAA"]
    with pytest.raises(AttestationError, match=r"JWS x5c\[0\] is not a base64 DER certificate"):
        _verify(_sign(genuine.alias_key, header, payload), ca)


def test_ecdsa_leaf_cannot_sign_eddsa_evidence(ca: ManufacturerCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_tls_certificate(
        serial="RC1-0001",
        public_key=key.public_key(),
        device_ca_key=ca.device_ca_key,
        device_ca_cert=ca.device_ca,
        now=NOW,
    )
    header = {
        "alg": "EdDSA",
        "typ": "refcam-evidence+jws",
        "x5c": [
            base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode()
            for c in (leaf, ca.device_ca)
        ],
    }
    signing_input = ".".join(b64url_encode(json.dumps(p).encode()) for p in (header, {}))
    sig = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    # The TLS leaf is refused for its purpose before its key type matters.
    with pytest.raises(AttestationError, match="is not issued for this purpose: extended key usage 1.3.6.1.5.5.7.3.1"):
        _verify(f"{signing_input}.{b64url_encode(sig)}".encode(), ca)


def test_events_from_evidence_are_measurement_events(ca: ManufacturerCA, genuine: Boot) -> None:
    result = _verify(genuine.attester.evidence(NONCE, now=T0), ca)
    assert all(isinstance(e, MeasurementEvent) for e in result.events)


_GENUINE = boot(_CA)
_EVIDENCE = _GENUINE.attester.evidence(NONCE, now=T0)


@given(st.integers(min_value=0, max_value=len(_EVIDENCE) - 1), st.integers(1, 255))
def test_any_single_byte_change_is_rejected(position: int, xor: int) -> None:
    mutated = bytearray(_EVIDENCE)
    mutated[position] ^= xor
    with pytest.raises(AttestationError):
        _verify(bytes(mutated), _CA)


def test_signing_certificate_without_digital_signature_usage_is_rejected(
    ca: ManufacturerCA, genuine: Boot
) -> None:
    cert = genuine.chain[0]
    usage = x509.KeyUsage(False, False, False, False, True, False, False, False, False)
    odd = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(cert.issuer)
        .public_key(cert.public_key())
        .serial_number(1)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
        .add_extension(usage, critical=True)
        .sign(genuine.device_id_key, hashes.SHA256())
    )
    with pytest.raises(AttestationError, match="key usage lacks digitalSignature"):
        verify_chain([odd, *genuine.chain[1:]], root_cert=ca.root, now=T0)
