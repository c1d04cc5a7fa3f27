"""Fuzzing the firmware's parsers of outside bytes (issue 13): signed stream manifests and
recordings, and TUF metadata exactly as the update client's trust state gets it.

Any input gives a value or the parser's typed error; bounded examples.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import struct

from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from securesystemslib.signer import CryptoSigner
from tuf.api.exceptions import RepositoryError
from tuf.api.metadata import Metadata, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization import DeserializationError
from tuf.ngclient._internal.trusted_metadata_set import TrustedMetadataSet
from tuf.ngclient.config import EnvelopeType

from device.stream.errors import FormatError
from device.stream.signing import Envelope
from refcam.streamverify import MAGIC, RECORD_HEADER, TYPE_MANIFEST, parse_container

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXPIRES = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)


@FUZZ
@given(st.binary(max_size=400))
def test_stream_envelope_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(FormatError):
        Envelope.parse(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(json_values, json_values, json_values)
def test_stream_envelope_json_shaped(payload: object, signatures: object, certificates: object) -> None:
    import json

    doc = {"payloadType": "application/vnd.refcam.manifest+json", "payload": payload,
           "signatures": signatures, "certificates": certificates}  # fmt: skip
    with contextlib.suppress(FormatError):
        Envelope.parse(json.dumps(doc).encode())


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 5), st.binary(max_size=60)), max_size=5), st.binary(max_size=20))
def test_stream_recording_containers(records: list[tuple[int, bytes]], tail: bytes) -> None:
    data = MAGIC + b"".join(struct.pack(RECORD_HEADER, kind, len(body)) + body for kind, body in records) + tail
    for candidate in (data, data[: len(data) // 2], MAGIC + struct.pack(RECORD_HEADER, TYPE_MANIFEST, 2**31)):
        with contextlib.suppress(FormatError):
            parse_container(candidate)


def _root_bytes() -> tuple[bytes, CryptoSigner]:
    signer = CryptoSigner(ed25519.Ed25519PrivateKey.from_private_bytes(b"\x03" * 32))
    root = Root(expires=EXPIRES)
    for role in ("root", "timestamp", "snapshot", "targets"):
        root.add_key(signer.public_key, role)
    md = Metadata(root)
    md.sign(signer)
    return md.to_bytes(), signer


ROOT_BYTES, SIGNER = _root_bytes()


def _signed(signed: Timestamp | Snapshot | Targets) -> bytes:
    md = Metadata(signed)
    md.sign(SIGNER)
    return md.to_bytes()


VALID = {
    "timestamp": _signed(Timestamp(expires=EXPIRES)),
    "root": ROOT_BYTES,
}


def _trusted() -> TrustedMetadataSet:
    return TrustedMetadataSet(ROOT_BYTES, EnvelopeType.METADATA)


@FUZZ
@given(st.binary(max_size=300))
def test_tuf_timestamp_and_root_arbitrary_bytes(data: bytes) -> None:
    for update in ("update_timestamp", "update_root"):
        with contextlib.suppress(RepositoryError, DeserializationError):
            getattr(_trusted(), update)(data)


@FUZZ
@given(st.sampled_from(sorted(VALID)), st.data())
def test_tuf_metadata_mutations_are_refused(role: str, data: st.DataObject) -> None:
    valid = VALID[role]
    offset = data.draw(st.integers(0, len(valid) - 1))
    xor = data.draw(st.integers(1, 255))
    mutated = bytearray(valid)
    mutated[offset] ^= xor
    trusted = _trusted()
    try:
        if role == "timestamp":
            trusted.update_timestamp(bytes(mutated))
        else:
            trusted.update_root(bytes(mutated))
    except (RepositoryError, DeserializationError):
        return
    # a flip that survived must be one JSON cannot tell (e.g. in insignificant whitespace)
    assert Metadata.from_bytes(bytes(mutated)).signed.type == role
