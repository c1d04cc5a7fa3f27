"""The stream verifier: every tamper kind is detected, honest gaps are not."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st
from stream_fixtures import NOW, issue, make_pki

from device.stream.errors import FormatError, NotAuthentic
from device.stream.signing import SegmentSigner, StreamSigner
from device.stream.verify import (
    MAGIC,
    FrameRecord,
    ManifestRecord,
    Record,
    SnapshotRecord,
    StreamReport,
    encode_record,
    parse_container,
    verify_records,
)

PKI = make_pki()
SIGNER = PKI.stream_signer()
PER_SEGMENT = 5


def stream(signer: StreamSigner = SIGNER, frames: int = 20, session: bytes | None = None, start_seq: int = 0) -> list[Record]:
    """Records in the order a recorder writes them: a segment's frames, then its manifest."""
    segments = SegmentSigner(signer, session=session or os.urandom(16), frames_per_segment=PER_SEGMENT)
    records: list[Record] = []
    for seq in range(start_seq, start_seq + frames):
        jpeg = b"\xff\xd8 frame %d " % seq + os.urandom(32)
        wall = 1_763_800_000_000_000_000 + seq * 33_333_333
        records.append(FrameRecord(seq, wall, jpeg))
        envelope = segments.add(seq, hashlib.sha256(jpeg).digest(), wall)
        if envelope is not None:
            records.append(ManifestRecord(envelope))
    tail = segments.flush()
    if tail is not None:
        records.append(ManifestRecord(tail))
    return records


def verify(records: Sequence[Record], now: dt.datetime = NOW) -> StreamReport:
    return verify_records(records, trust_root=PKI.root, now=now)


def frame_indices(records: list[Record]) -> list[int]:
    return [i for i, r in enumerate(records) if isinstance(r, FrameRecord)]


def manifest_indices(records: list[Record]) -> list[int]:
    return [i for i, r in enumerate(records) if isinstance(r, ManifestRecord)]


def test_untouched_stream_is_authentic() -> None:
    report = verify(stream())
    assert report.verdict == "authentic"
    assert [f.status for f in report.frames] == ["authentic"] * 20
    (session,) = report.sessions
    assert (session.segments, session.frames_listed, session.frames_authentic) == (4, 20, 20)
    assert session.device == "RCTEST000001" and session.key_id == SIGNER.key_id
    report.check()


def test_ecdsa_p256_stream_is_authentic() -> None:
    assert verify(stream(PKI.stream_signer(algorithm="ecdsa-p256-sha256"))).verdict == "authentic"


def test_dropped_frames_are_authentic_with_missing_frames() -> None:
    records = stream()
    kept = [r for r in records if not (isinstance(r, FrameRecord) and r.seq % 3 == 1)]
    report = verify(kept)
    assert report.verdict == "authentic_missing_frames"
    assert report.sessions[0].frames_missing == 7
    report.check()  # a slow viewer's recording is still accepted


def test_recording_joined_mid_session_is_authentic() -> None:
    records = stream(frames=20)
    first_manifest = manifest_indices(records)[0]
    report = verify(records[first_manifest + 3 :])  # starts inside segment 1
    assert report.verdict == "authentic_missing_frames"
    assert report.sessions[0].first_segment == 1


def test_modified_frame_is_detected() -> None:
    records = stream()
    i = frame_indices(records)[6]
    frame = records[i]
    assert isinstance(frame, FrameRecord)
    records[i] = FrameRecord(frame.seq, frame.capture_wall_ns, frame.jpeg[:-1] + b"\x00")
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert report.frames[6].status == "not_authentic"
    assert "modified" in report.frames[6].reason
    assert sum(f.status == "authentic" for f in report.frames) == 19
    with pytest.raises(NotAuthentic, match="not authentic: frame seq 6"):
        report.check()


def test_modified_capture_time_is_detected() -> None:
    records = stream()
    i = frame_indices(records)[2]
    frame = records[i]
    assert isinstance(frame, FrameRecord)
    records[i] = FrameRecord(frame.seq, frame.capture_wall_ns + 1_000_000_000, frame.jpeg)
    report = verify(records)
    assert report.verdict == "not_authentic" and "capture time" in report.frames[2].reason


def test_inserted_frame_is_detected() -> None:
    records = stream()
    records.insert(3, FrameRecord(99, 1_763_800_000_000_000_000, b"\xff\xd8 forged"))
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert any("inserted" in p for p in report.problems)


def test_inserted_copy_of_a_frame_is_detected() -> None:
    records = stream()
    records.insert(3, records[1])  # replay an authentic frame
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert any("reordered or duplicated" in p for p in report.problems)


def test_reordered_frames_are_detected() -> None:
    records = stream()
    a, b = frame_indices(records)[1:3]
    records[a], records[b] = records[b], records[a]
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert any("reordered" in p for p in report.problems)


def test_frame_moved_to_another_segment_is_detected() -> None:
    records = stream()
    moved = records.pop(frame_indices(records)[7])  # seq 7, segment 1
    records.insert(0, moved)  # now before segment 0's manifest
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert any("not in segment 0" in p for p in report.problems)


def test_removed_segment_is_detected() -> None:
    records = stream()
    manifests = manifest_indices(records)
    # Cut segment 1: its frames and its manifest.
    cut = records[: manifests[0] + 1] + records[manifests[1] + 1 :]
    report = verify(cut)
    assert report.verdict == "not_authentic"
    assert any("segments 1..1 are missing: removed" in p for p in report.problems)


def test_removed_manifest_is_detected() -> None:
    records = stream()
    del records[manifest_indices(records)[1]]
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert any("not in segment 2" in p for p in report.problems)


def test_reordered_segments_are_detected() -> None:
    records = stream()
    m = manifest_indices(records)
    seg1, seg2 = records[m[0] + 1 : m[1] + 1], records[m[1] + 1 : m[2] + 1]
    swapped = records[: m[0] + 1] + seg2 + seg1 + records[m[2] + 1 :]
    report = verify(swapped)
    assert report.verdict == "not_authentic"
    assert any("reordered or replayed" in p or "missing" in p for p in report.problems)


def test_spliced_session_is_detected() -> None:
    first = stream(frames=10)
    second = stream(frames=10, start_seq=10)  # another session, same key, continuing seq
    report = verify(first + second)
    assert report.verdict == "not_authentic"
    assert any("spliced session" in p for p in report.problems)
    assert [s.verdict for s in report.sessions] == ["not_authentic", "not_authentic"]


def test_key_change_within_a_session_is_detected() -> None:
    session = os.urandom(16)
    other = PKI.stream_signer()  # a valid certificate from the same CA, another key
    first = SegmentSigner(SIGNER, session=session, frames_per_segment=PER_SEGMENT)
    records: list[Record] = []
    for seq in range(10):
        jpeg = b"frame %d" % seq
        records.append(FrameRecord(seq, seq, jpeg))
        if seq == 5:  # continue the same session and chain with the other key
            first.signer = other
        envelope = first.add(seq, hashlib.sha256(jpeg).digest(), seq)
        if envelope is not None:
            records.append(ManifestRecord(envelope))
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert any("signing key changed within the session" in p for p in report.problems)


def test_stream_signed_by_untrusted_ca_is_refused() -> None:
    foreign = make_pki().stream_signer()
    report = verify(stream(foreign))
    assert report.verdict == "not_authentic"
    assert all(f.status == "not_authentic" for f in report.frames)
    assert "certificate chain does not lead to the trusted root" in report.problems[0]


def test_stream_verified_after_the_certificates_expired_is_refused() -> None:
    report = verify(stream(), now=NOW + dt.timedelta(days=2000))  # past the device CA's 5 years
    assert report.verdict == "not_authentic"
    assert "certificate chain does not lead to the trusted root" in report.problems[0]


def test_certificate_without_the_stream_signing_purpose_is_refused() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    leaf = issue("not for streams", key.public_key(), PKI.ca, PKI.ca_key, ca=False, serial="RC1")
    report = verify(stream(StreamSigner(key, [leaf, PKI.ca], device="RC1")))
    assert report.verdict == "not_authentic"
    assert "lacks the stream-signing EKU" in report.problems[0]


def test_manifest_claiming_another_device_is_refused() -> None:
    liar = PKI.stream_signer(device="RCTEST000001")
    liar.device = "RCTEST000002"  # a device signing frames in another camera's name
    report = verify(stream(liar))
    assert report.verdict == "not_authentic"
    assert "payload device 'RCTEST000002' is not the certificate's serial ['RCTEST000001']" in report.problems[0]


def test_forged_manifest_signature_is_refused() -> None:
    records = stream()
    i = manifest_indices(records)[0]
    manifest = records[i]
    assert isinstance(manifest, ManifestRecord)
    doc = json.loads(manifest.envelope)
    payload = json.loads(base64.b64decode(doc["payload"]))
    payload["frames"][0][0] = "00" * 32  # rewrite a hash, keep the old signature
    doc["payload"] = base64.b64encode(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).decode()
    records[i] = ManifestRecord(json.dumps(doc).encode())
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert "signature does not verify" in report.problems[0]


def test_frames_after_the_last_manifest_are_not_authentic() -> None:
    records = [*stream(), FrameRecord(20, 1, b"appended")]
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert report.frames[-1].reason.startswith("no signed manifest follows this frame")


def test_unsigned_stream_is_reported_not_signed() -> None:
    records = [r for r in stream() if isinstance(r, FrameRecord)]
    report = verify(records)
    assert report.verdict == "not_signed"
    assert {f.status for f in report.frames} == {"not_signed"}
    with pytest.raises(NotAuthentic, match="not signed"):
        report.check()


def test_snapshot_signature_verifies_and_detects_modification() -> None:
    jpeg = b"\xff\xd8 snapshot"
    envelope = SIGNER.sign_snapshot(
        session="ab" * 16, seq=7, sha256=hashlib.sha256(jpeg).digest(), capture_wall_ns=123, width=64, height=48
    )
    good = verify([FrameRecord(7, 123, jpeg), SnapshotRecord(envelope)])
    assert good.kind == "snapshot" and good.verdict == "authentic"
    bad = verify([FrameRecord(7, 123, jpeg + b"x"), SnapshotRecord(envelope)])
    assert bad.verdict == "not_authentic" and "modified" in bad.problems[0]
    relabelled = verify([FrameRecord(8, 123, jpeg), SnapshotRecord(envelope)])
    assert relabelled.verdict == "not_authentic"


def test_segment_manifest_is_not_accepted_as_snapshot_signature() -> None:
    records = stream(frames=5)
    manifest = records[-1]
    assert isinstance(manifest, ManifestRecord)
    report = verify([records[0], SnapshotRecord(manifest.envelope)])
    assert report.verdict == "not_authentic" and "payload type" in report.problems[0]


def test_container_round_trip() -> None:
    records = stream(frames=7)
    data = MAGIC + b"".join(encode_record(r) for r in records)
    assert list(parse_container(data)) == records


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF89a..", "not a refcam stream recording"),
        (MAGIC + b"\x01\x00\x00", "truncated record header"),
        (MAGIC + b"\x01\x00\x00\x00\x09abc", "claims 9 bytes"),
        (MAGIC + b"\x01\x00\x00\x00\x03abc", "at least 16 expected"),
        (MAGIC + b"\x07\x00\x00\x00\x00", "unknown type 7"),
    ],
)
def test_malformed_container_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        parse_container(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_container_parser_never_crashes(tail: bytes) -> None:
    try:
        records = parse_container(MAGIC + tail)
    except FormatError:
        return
    verify(list(records))  # whatever parses can be verified without an unexpected exception


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_manifest_is_reported_not_raised(envelope: bytes) -> None:
    report = verify([FrameRecord(0, 0, b"x"), ManifestRecord(envelope)])
    assert report.verdict == "not_authentic"
