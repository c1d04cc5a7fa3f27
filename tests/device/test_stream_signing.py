"""The segment manifest format and the device-side signer."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from stream_fixtures import issue, make_pki, pem

from device.stream.errors import FormatError, SigningKeyError
from device.stream.signing import (
    END_PAYLOAD_TYPE,
    SEGMENT_PAYLOAD_TYPE,
    SNAPSHOT_PAYLOAD_TYPE,
    Envelope,
    SegmentSigner,
    StreamSigner,
    canonical_json,
    pae,
    spki_sha256,
)

PKI = make_pki()


def test_canonical_json_known_answer() -> None:
    # Made by hand from the rules in device/stream/signing.py: sorted keys, no spaces, ASCII.
    value = {"b": [1, "x"], "a": None, "é": {"z": 0, "y": True}}
    assert canonical_json(value) == b'{"a":null,"b":[1,"x"],"\\u00e9":{"y":true,"z":0}}'
    with pytest.raises(TypeError, match="no floats"):
        canonical_json({"fps": 29.97})


def test_pae_is_dsse_v1() -> None:
    assert pae("t/x", b"hello") == b"DSSEv1 3 t/x 5 hello"


def test_segments_chain_to_each_other() -> None:
    signer = PKI.stream_signer()
    segments = SegmentSigner(signer, session=bytes(16), frames_per_segment=2)
    hashes = [hashlib.sha256(b"%d" % i).digest() for i in range(5)]
    envelopes = [segments.add(i, h, 1000 + i) for i, h in enumerate(hashes)]
    assert [e is not None for e in envelopes] == [False, True, False, True, False]
    last = segments.flush()
    assert last is not None and segments.flush() is None
    payloads = []
    for raw in (envelopes[1], envelopes[3], last):
        assert raw is not None
        env = Envelope.parse(raw)
        env.verify_signature()
        assert env.payload_type == SEGMENT_PAYLOAD_TYPE and env.keyid == signer.key_id
        assert len(env.certificates) == 2 and env.certificates[1] == PKI.ca
        payloads.append(json.loads(env.payload))
    assert [p["segment"] for p in payloads] == [0, 1, 2]
    assert [p["first_seq"] for p in payloads] == [0, 2, 4]
    assert payloads[0]["previous"] is None and payloads[0]["linked_frame"] is None
    assert payloads[1]["previous"] == hashlib.sha256(canonical_json(payloads[0])).hexdigest()
    assert payloads[1]["linked_frame"] == hashes[0].hex()
    assert payloads[2]["frames"] == [[hashes[4].hex(), 1004]]
    assert payloads[0]["session"] == "00" * 16 and payloads[0]["device"] == "RCTEST000001"


def test_segment_signer_refuses_a_gap_in_seq() -> None:
    segments = SegmentSigner(PKI.stream_signer(), session=os.urandom(16), frames_per_segment=5)
    with pytest.raises(ValueError, match="does not follow -1"):
        segments.add(3, bytes(32), 0)  # a session's seq starts at 0
    segments.add(0, bytes(32), 0)
    with pytest.raises(ValueError, match="does not follow 0"):
        segments.add(2, bytes(32), 0)


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256-sha256"])
def test_envelope_is_canonical_json_and_verifies(algorithm: str) -> None:
    signer = PKI.stream_signer(algorithm=algorithm)
    for payload_type in (SEGMENT_PAYLOAD_TYPE, END_PAYLOAD_TYPE, SNAPSHOT_PAYLOAD_TYPE):
        raw = signer.envelope(payload_type, {"z": [1, "é"], "a": None})
        assert raw == canonical_json(json.loads(raw))  # assembled from cached pieces, still canonical
        env = Envelope.parse(raw)
        env.verify_signature()
        assert env.payload == canonical_json({"z": [1, "é"], "a": None}) and env.payload_type == payload_type
    with pytest.raises(ValueError, match="not plain ASCII"):
        signer.envelope('bad"type', {})


def test_end_marker_chains_to_the_last_segment() -> None:
    signer = PKI.stream_signer()
    segments = SegmentSigner(signer, session=bytes(16), frames_per_segment=2)
    assert segments.position == (0, None)
    first = segments.add(0, bytes(32), 10)
    assert first is None and segments.position == (0, None)
    first = segments.add(1, bytes(32), 11)
    assert first is not None
    anchor = hashlib.sha256(Envelope.parse(first).payload).hexdigest()
    after: tuple[int, str | None] = segments.position
    assert after == (1, anchor)  # frame 2 will be listed in segment 1, which chains to segment 0
    segments.add(2, bytes(32), 12)
    with pytest.raises(ValueError, match="segment 1 is still open: flush"):
        segments.end(reason="x", end_wall_ns=0)
    tail = segments.flush()
    assert tail is not None
    end = Envelope.parse(segments.end(reason="source ended" + "!" * 300, end_wall_ns=99))
    end.verify_signature()
    assert end.payload_type == END_PAYLOAD_TYPE
    assert json.loads(end.payload) == {
        "type": "refcam.stream.end/1", "alg": "ed25519", "key_id": signer.key_id, "device": "RCTEST000001",
        "session": "00" * 16, "segments": 2, "frames": 3,
        "previous": hashlib.sha256(Envelope.parse(tail).payload).hexdigest(),
        "reason": ("source ended" + "!" * 300)[:200], "end_wall_ns": 99,
    }  # fmt: skip
    with pytest.raises(ValueError, match="has ended; frame seq 3 comes too late"):
        segments.add(3, bytes(32), 13)
    with pytest.raises(ValueError, match="has already ended"):
        segments.end(reason="again", end_wall_ns=100)


def test_snapshot_names_its_session_segment_and_anchor() -> None:
    signer = PKI.stream_signer()
    raw = signer.sign_snapshot(
        session="ab" * 16, seq=7, segment=1, previous="cd" * 32, digest=bytes(32), capture_wall_ns=5, width=4, height=3
    )
    payload = json.loads(Envelope.parse(raw).payload)
    assert (payload["session"], payload["seq"], payload["segment"], payload["previous"]) == ("ab" * 16, 7, 1, "cd" * 32)


def test_tampered_envelope_signature_is_refused() -> None:
    signer = PKI.stream_signer(algorithm="ecdsa-p256-sha256")
    raw = signer.envelope(SEGMENT_PAYLOAD_TYPE, {"x": 1})
    env = Envelope.parse(raw)
    env.verify_signature()
    doc = json.loads(raw)
    doc["payload"] = base64.b64encode(b'{"x":2}').decode()
    from cryptography.exceptions import InvalidSignature

    with pytest.raises(InvalidSignature):
        Envelope.parse(json.dumps(doc).encode()).verify_signature()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[]", "has fields list"),
        (b"{not json", "is not JSON"),
        (b'{"payloadType":"t","payload":"!!","signatures":[{"keyid":"a","sig":"AA=="}],"certificates":["AA=="]}', "base64"),
        (b'{"payloadType":"t","payload":"","signatures":[],"certificates":["AA=="]}', "exactly one signature"),
    ],
)
def test_malformed_envelope_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        Envelope.parse(data)


def write_identity(directory: Path, key: ed25519.Ed25519PrivateKey, certs: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (directory / "stream.key.pem").write_bytes(key_pem)
    os.chmod(directory / "stream.key.pem", 0o600)
    (directory / "stream.pem").write_bytes(certs)


def test_identity_dir_with_leaf_only_takes_the_device_ca_from_the_tls_chain(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    leaf = issue("stream", key.public_key(), PKI.ca, PKI.ca_key, ca=False, serial="RC1")
    write_identity(tmp_path, key, pem(leaf))
    PKI.tls_server(tmp_path)  # writes tls.pem = TLS leaf + device CA
    signer = StreamSigner.from_identity_dir(tmp_path, device="RC1")
    assert signer.chain == (leaf, PKI.ca)
    assert signer.key_id == spki_sha256(key.public_key()) and signer.algorithm == "ed25519"


def test_certificate_for_another_key_is_refused(tmp_path: Path) -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    leaf = issue("stream", other.public_key(), PKI.ca, PKI.ca_key, ca=False)
    write_identity(tmp_path, ed25519.Ed25519PrivateKey.generate(), pem(leaf) + pem(PKI.ca))
    with pytest.raises(SigningKeyError, match="is not for the stream signing key"):
        StreamSigner.from_identity_dir(tmp_path, device="RC1")


def test_missing_identity_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="cannot load stream signing identity"):
        StreamSigner.from_identity_dir(tmp_path, algorithm="ecdsa-p256-sha256", device="RC1")


def test_certificate_of_another_device_is_refused() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    leaf = issue("stream", key.public_key(), PKI.ca, PKI.ca_key, ca=False, serial="RC2")
    with pytest.raises(SigningKeyError, match=r"issued to serial \['RC2'\], not to device 'RC1'"):
        StreamSigner(key, [leaf, PKI.ca], device="RC1")
