"""Measured boot: the register, its event log and reference values (bootloader/measured.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given
from hypothesis import strategies as st

from bootloader.measured import (
    REFERENCE_VALUES_TYPE,
    MeasurementLog,
    event_digest,
    event_from_json,
    event_to_json,
    parse_reference_values,
    reference_values_from_images,
    replay,
)
from common.errors import AttestationError, ImageFormatError, ImageVerificationError
from common.handoff import MeasurementEvent
from common.image import SignedImage, sign_image

BL = hashlib.sha256(b"bootloader").digest()
FW = hashlib.sha256(b"firmware").digest()
SIGNER = hashlib.sha256(b"signer spki").digest()


def _log() -> MeasurementLog:
    log = MeasurementLog()
    log.extend("bootloader", BL, "1.0.0", SIGNER, 1)
    log.extend("firmware", FW, "2.3.0", SIGNER, 4)
    return log


def test_register_starts_at_zero_and_changes_with_each_extend() -> None:
    log = MeasurementLog()
    assert log.register == bytes(32)
    assert list(log.events) == []
    log.extend("bootloader", BL, "1.0.0", SIGNER, 1)
    first = log.register
    log.extend("firmware", FW, "2.3.0", SIGNER, 4)
    assert len({bytes(32), first, log.register}) == 3
    assert [e.stage for e in log.events] == ["bootloader", "firmware"]
    assert log.events[1] == MeasurementEvent("firmware", FW.hex(), "2.3.0", SIGNER.hex(), 4)


def test_known_answer_event_encoding() -> None:
    """The encoding of the module docstring, rebuilt here field by field."""
    encoded = (
        b"refcam-measurement-event/1\x00"
        + struct.pack(">H", 8)
        + b"firmware"
        + FW
        + struct.pack(">H", 5)
        + b"2.3.0"
        + SIGNER
        + struct.pack(">Q", 4)
    )
    event = MeasurementEvent("firmware", FW.hex(), "2.3.0", SIGNER.hex(), 4)
    assert event_digest(event) == hashlib.sha256(encoded).digest()
    log = MeasurementLog()
    log.extend("firmware", FW, "2.3.0", SIGNER, 4)
    assert log.register == hashlib.sha256(bytes(32) + hashlib.sha256(encoded).digest()).digest()


def test_replay_recomputes_the_register() -> None:
    log = _log()
    assert replay(log.events) == log.register
    assert replay([]) == bytes(32)


def test_replay_depends_on_event_order() -> None:
    log = _log()
    assert replay(reversed(log.events)) != log.register


@pytest.mark.parametrize(
    "change",
    [
        {"stage": "firmwarf"},
        {"digest": "00" * 32},
        {"version": "2.3.1"},
        {"signer_key_hash": "ff" * 32},
        {"security_counter": 5},
    ],
)
def test_every_event_field_is_bound_into_the_register(change: dict[str, object]) -> None:
    log = _log()
    events = list(log.events)
    events[1] = dataclasses.replace(events[1], **change)  # type: ignore[arg-type]
    assert replay(events) != log.register


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", BL, "1", SIGNER, 0), "stage name must be"),
        (("fw", BL[:31], "1", SIGNER, 0), "measurement digest must be 32 bytes, got 31"),
        (("fw", BL, "1", b"", 0), "signer key hash must be 32 bytes, got 0"),
        (("fw", BL, "1", SIGNER, -1), "outside 0..2\\*\\*64-1"),
    ],
)
def test_extend_rejects_malformed_fields(args: tuple[Any, ...], message: str) -> None:
    log = MeasurementLog()
    with pytest.raises(ValueError, match=message):
        log.extend(*args)
    assert log.register == bytes(32)
    assert list(log.events) == []


def test_events_round_trip_through_json() -> None:
    for event in _log().events:
        assert event_from_json(event_to_json(event)) == event


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "must be an object with exactly"),
        ({"stage": "fw"}, "must be an object with exactly"),
        (
            {
                "stage": "fw",
                "digest": "zz",
                "version": "1",
                "signer_key_hash": "00" * 32,
                "security_counter": 1,
            },
            "fw measurement digest 'zz' is not hex",
        ),
        (
            {
                "stage": "fw",
                "digest": "00" * 31,
                "version": "1",
                "signer_key_hash": "00" * 32,
                "security_counter": 1,
            },
            "fw measurement digest is 31 bytes, expected 32",
        ),
        (
            {
                "stage": "fw",
                "digest": "00" * 32,
                "version": "1",
                "signer_key_hash": "00" * 32,
                "security_counter": True,
            },
            "field 'security_counter' is bool, expected int",
        ),
        (
            {
                "stage": "fw",
                "digest": "00" * 32,
                "version": 1,
                "signer_key_hash": "00" * 32,
                "security_counter": 1,
            },
            "field 'version' is int, expected str",
        ),
    ],
)
def test_malformed_event_json_is_an_attestation_error(obj: object, message: str) -> None:
    with pytest.raises(AttestationError, match=message):
        event_from_json(obj)


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=20),
            st.binary(min_size=32, max_size=32),
            st.text(max_size=20),
            st.binary(min_size=32, max_size=32),
            st.integers(min_value=0, max_value=2**64 - 1),
        ),
        max_size=5,
    )
)
def test_replay_of_any_log_matches_its_register(events: list[tuple[Any, ...]]) -> None:
    log = MeasurementLog()
    for event in events:
        log.extend(*event)
    assert replay(log.events) == log.register
    assert replay(event_from_json(event_to_json(e)) for e in log.events) == log.register


# -- reference values -------------------------------------------------------


def _image(version: str, counter: int, payload: bytes = b"payload") -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    return sign_image(
        payload,
        version=version,
        security_counter=counter,
        hardware_id="refcam-rc1080-v1",
        signing_key=key,
    )


def test_reference_values_list_the_image_digests() -> None:
    bl = _image("1.0.0", 1)
    fw1, fw2 = _image("2.0.0", 3), _image("2.1.0+7", 4, b"other")
    doc = reference_values_from_images(bl, [fw1, fw2])
    assert doc["type"] == REFERENCE_VALUES_TYPE
    # The measurement is the SHA-256 over header, payload and protected TLVs (the hash TLV).
    expected_bl = hashlib.sha256(SignedImage.parse(bl).covered).hexdigest()
    assert SignedImage.parse(bl).image_hash.hex() == expected_bl
    assert doc["stages"]["bootloader"] == [
        {"digest": expected_bl, "version": "1.0.0", "security_counter": 1}
    ]
    assert [e["version"] for e in doc["stages"]["firmware"]] == ["2.0.0", "2.1.0+7"]
    assert [e["security_counter"] for e in doc["stages"]["firmware"]] == [3, 4]
    parsed = parse_reference_values(doc)
    assert parsed["bootloader"][0].digest == expected_bl
    assert len(parsed["firmware"]) == 2


def test_reference_values_refuse_an_image_whose_hash_tlv_lies() -> None:
    fw = bytearray(_image("2.0.0", 3, b"original payload"))
    fw[40] ^= 0x01  # inside the payload: the hash TLV no longer matches
    with pytest.raises(ImageVerificationError, match="does not match its contents"):
        reference_values_from_images(_image("1.0.0", 1), [bytes(fw)])


def test_reference_values_refuse_a_malformed_image() -> None:
    with pytest.raises(ImageFormatError):
        reference_values_from_images(b"not an image", [_image("2.0.0", 3)])


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"type": "other"}, "type is not 'refcam-reference-values/1'"),
        ({"type": REFERENCE_VALUES_TYPE}, "has no 'stages' object"),
        ({"type": REFERENCE_VALUES_TYPE, "stages": {"fw": []}}, "must be a non-empty list"),
        (
            {"type": REFERENCE_VALUES_TYPE, "stages": {"fw": [{"digest": "00" * 32}]}},
            "must have digest, version and security_counter",
        ),
        (
            {
                "type": REFERENCE_VALUES_TYPE,
                "stages": {"fw": [{"digest": "0", "version": "1", "security_counter": 1}]},
            },
            "reference fw digest '0' is not hex",
        ),
    ],
)
def test_malformed_reference_values_are_refused(doc: object, message: str) -> None:
    with pytest.raises(AttestationError, match=message):
        parse_reference_values(doc)
