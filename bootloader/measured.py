"""Measured boot: a TPM-PCR-like measurement register and its event log.

Each boot stage measures the next before handing over control and *extends*
the register with one event::

    register' = SHA-256(register || event_digest(event))

The register starts as 32 zero bytes, exactly like a TPM PCR after reset, so
it can only be driven to a given value by replaying the same events in the
same order. A verifier recomputes it from the log with :func:`replay` and
compares it with the (signed) register value.

``event_digest`` binds every field of the event with an unambiguous,
length-prefixed encoding (all integers big-endian)::

    b"refcam-measurement-event/1\\x00"      domain separation tag
    u16 len(stage)   || stage (UTF-8)
    32 bytes         digest               SHA-256 of what was measured
    u16 len(version) || version (UTF-8)
    32 bytes         signer_key_hash      SHA-256 of the signer's DER SPKI
    u64              security_counter

The digest measured for an image stage is the image's SHA-256 hash TLV value
(the value the signature covers), so it doubles as the reference value that
the vendor publishes (:func:`reference_values_from_images`, document type
``refcam-reference-values/1``)::

    log = MeasurementLog()
    log.extend("bootloader", bl.digest, "1.0.0", bl.signer_key_hash, 1)
    log.extend("firmware", fw.digest, "2.3.0", fw.signer_key_hash, 4)
    assert replay(log.events) == log.register
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from common.errors import AttestationError
from common.handoff import MeasurementEvent

REGISTER_SIZE = 32  # bytes, SHA-256
DIGEST_SIZE = 32  # bytes, SHA-256 of the measured object / of the signer SPKI
EVENT_TAG = b"refcam-measurement-event/1\x00"
REFERENCE_VALUES_TYPE = "refcam-reference-values/1"
MAX_FIELD = 0xFFFF  # u16 length prefix
MAX_COUNTER = 2**64 - 1  # u64


def _encode_event(
    stage: str, digest: bytes, version: str, signer_key_hash: bytes, security_counter: int
) -> bytes:
    stage_b = stage.encode("utf-8")
    version_b = version.encode("utf-8")
    if not stage_b or len(stage_b) > MAX_FIELD:
        raise ValueError(f"stage name must be 1..{MAX_FIELD} bytes, got {len(stage_b)}")
    if len(version_b) > MAX_FIELD:
        raise ValueError(f"version must be at most {MAX_FIELD} bytes, got {len(version_b)}")
    if len(digest) != DIGEST_SIZE:
        raise ValueError(f"measurement digest must be {DIGEST_SIZE} bytes, got {len(digest)}")
    if len(signer_key_hash) != DIGEST_SIZE:
        raise ValueError(f"signer key hash must be {DIGEST_SIZE} bytes, got {len(signer_key_hash)}")
    if not 0 <= security_counter <= MAX_COUNTER:
        raise ValueError(f"security counter {security_counter} is outside 0..2**64-1")
    return b"".join(
        (
            EVENT_TAG,
            struct.pack(">H", len(stage_b)),
            stage_b,
            digest,
            struct.pack(">H", len(version_b)),
            version_b,
            signer_key_hash,
            struct.pack(">Q", security_counter),
        )
    )


def _decode_hex(value: str, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError as e:
        raise AttestationError(f"{what} {value!r} is not hex") from e
    if len(raw) != DIGEST_SIZE:
        raise AttestationError(f"{what} is {len(raw)} bytes, expected {DIGEST_SIZE}")
    return raw


def event_digest(event: MeasurementEvent) -> bytes:
    """SHA-256 of the canonical encoding of ``event`` (see the module docstring).

    Raises :class:`AttestationError` if the event's fields are malformed (the
    event came from outside, e.g. from evidence).
    """
    digest = _decode_hex(event.digest, f"{event.stage} measurement digest")
    signer = _decode_hex(event.signer_key_hash, f"{event.stage} signer key hash")
    try:
        encoded = _encode_event(event.stage, digest, event.version, signer, event.security_counter)
    except ValueError as e:
        raise AttestationError(f"malformed measurement event: {e}") from e
    return hashlib.sha256(encoded).digest()


def _extend(register: bytes, digest: bytes) -> bytes:
    return hashlib.sha256(register + digest).digest()


class MeasurementLog:
    """The measurement register and the log of events that produced it."""

    def __init__(self) -> None:
        self._register = bytes(REGISTER_SIZE)
        self._events: list[MeasurementEvent] = []

    @property
    def register(self) -> bytes:
        return self._register

    @property
    def events(self) -> tuple[MeasurementEvent, ...]:
        return tuple(self._events)

    def extend(
        self,
        stage: str,
        digest: bytes,
        version: str,
        signer_key_hash: bytes,
        security_counter: int,
    ) -> None:
        """Record one measurement and extend the register with it."""
        encoded = _encode_event(stage, digest, version, signer_key_hash, security_counter)
        self._register = _extend(self._register, hashlib.sha256(encoded).digest())
        self._events.append(
            MeasurementEvent(
                stage=stage,
                digest=digest.hex(),
                version=version,
                signer_key_hash=signer_key_hash.hex(),
                security_counter=security_counter,
            )
        )


def replay(events: Iterable[MeasurementEvent]) -> bytes:
    """Recompute the register from an event log, starting at 32 zero bytes."""
    register = bytes(REGISTER_SIZE)
    for event in events:
        register = _extend(register, event_digest(event))
    return register


# -- events as JSON (the evidence payload) ---------------------------------

_EVENT_FIELDS = {
    "stage": str,
    "digest": str,
    "version": str,
    "signer_key_hash": str,
    "security_counter": int,
}


def event_to_json(event: MeasurementEvent) -> dict[str, Any]:
    return {
        "stage": event.stage,
        "digest": event.digest,
        "version": event.version,
        "signer_key_hash": event.signer_key_hash,
        "security_counter": event.security_counter,
    }


def event_from_json(obj: object) -> MeasurementEvent:
    """Parse one event object; raises :class:`AttestationError` if malformed."""
    if not isinstance(obj, Mapping) or set(obj) != set(_EVENT_FIELDS):
        raise AttestationError(
            f"measurement event must be an object with exactly {sorted(_EVENT_FIELDS)}"
        )
    for name, kind in _EVENT_FIELDS.items():
        value = obj[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise AttestationError(
                f"measurement event field {name!r} is {type(value).__name__}, "
                f"expected {kind.__name__}"
            )
    event = MeasurementEvent(
        stage=obj["stage"],
        digest=obj["digest"].lower(),
        version=obj["version"],
        signer_key_hash=obj["signer_key_hash"].lower(),
        security_counter=obj["security_counter"],
    )
    event_digest(event)  # validates every field
    return event


# -- reference values ------------------------------------------------------


def reference_values(
    stages: Mapping[str, Sequence[tuple[bytes, str, int]]],
) -> dict[str, Any]:
    """Build a ``refcam-reference-values/1`` document.

    ``stages`` maps a stage name to (digest, version, security_counter)
    tuples, one per allowed image::

        {"type": "refcam-reference-values/1",
         "stages": {"firmware": [{"digest": "<hex>", "version": "2.3.0",
                                  "security_counter": 4}, ...], ...}}
    """
    document: dict[str, Any] = {"type": REFERENCE_VALUES_TYPE, "stages": {}}
    for stage, entries in stages.items():
        out: list[dict[str, Any]] = []
        for digest, version, counter in entries:
            if len(digest) != DIGEST_SIZE:
                raise ValueError(f"{stage} digest must be {DIGEST_SIZE} bytes")
            entry = {"digest": digest.hex(), "version": version, "security_counter": counter}
            if entry not in out:
                out.append(entry)
        document["stages"][stage] = out
    return document


def reference_values_from_images(
    bootloader_image: bytes, firmware_images: list[bytes]
) -> dict[str, Any]:
    """The reference values a vendor publishes for a bootloader and firmware images.

    The images are parsed (not signature-checked: the vendor built them) and
    their hash TLV values become the allowed digests of the ``bootloader``
    and ``firmware`` stages. Raises ``ImageFormatError`` for a malformed image.
    """
    from common.errors import ImageVerificationError
    from common.image import SignedImage  # the image format module

    def entry(data: bytes) -> tuple[bytes, str, int]:
        image = SignedImage.parse(data)
        # The measurement is the SHA-256 of the covered bytes, which the hash TLV must equal.
        digest = hashlib.sha256(image.covered).digest()
        if digest != image.image_hash:
            raise ImageVerificationError(
                f"image hash TLV {image.image_hash.hex()[:16]}.. does not match its "
                f"contents {digest.hex()[:16]}.."
            )
        return (digest, str(image.version), image.security_counter)

    if not firmware_images:
        raise ValueError("at least one firmware image is required")
    return reference_values(
        {
            "bootloader": [entry(bootloader_image)],
            "firmware": [entry(data) for data in firmware_images],
        }
    )


def parse_reference_values(document: object) -> dict[str, tuple[MeasurementEvent, ...]]:
    """Validate a reference-values document; return stage -> allowed entries.

    The returned events have an empty ``signer_key_hash`` (reference values
    do not pin the signer; the signature was checked by the boot chain).
    """
    if not isinstance(document, Mapping) or document.get("type") != REFERENCE_VALUES_TYPE:
        raise AttestationError(f"reference values document type is not {REFERENCE_VALUES_TYPE!r}")
    stages = document.get("stages")
    if not isinstance(stages, Mapping):
        raise AttestationError("reference values document has no 'stages' object")
    if not stages:
        raise AttestationError("reference values document lists no stage: it would match nothing")
    parsed: dict[str, tuple[MeasurementEvent, ...]] = {}
    for stage, entries in stages.items():
        if not isinstance(stage, str) or not isinstance(entries, list) or not entries:
            raise AttestationError(f"reference values for stage {stage!r} must be a non-empty list")
        allowed: list[MeasurementEvent] = []
        for item in entries:
            if (
                not isinstance(item, Mapping)
                or not isinstance(item.get("digest"), str)
                or not isinstance(item.get("version"), str)
                or not isinstance(item.get("security_counter"), int)
                or isinstance(item.get("security_counter"), bool)
            ):
                raise AttestationError(
                    f"reference value for stage {stage!r} must have digest, version "
                    "and security_counter"
                )
            digest = _decode_hex(item["digest"], f"reference {stage} digest")
            allowed.append(
                MeasurementEvent(
                    stage=stage,
                    digest=digest.hex(),
                    version=item["version"],
                    signer_key_hash="",
                    security_counter=item["security_counter"],
                )
            )
        parsed[stage] = tuple(allowed)
    return parsed
