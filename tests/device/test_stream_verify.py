"""The stream verifier: every tamper kind is detected, honest gaps are not, truncation is told apart."""

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

from device.stream.errors import FormatError
from device.stream.signing import (
    END_PAYLOAD_TYPE,
    SEGMENT_PAYLOAD_TYPE,
    SegmentSigner,
    StreamSigner,
)
from refcam.streamverify import (
    MAGIC,
    FrameRecord,
    Incomplete,
    ManifestRecord,
    NotAuthentic,
    NoteRecord,
    Record,
    SnapshotRecord,
    StreamReport,
    encode_record,
    link_snapshot,
    parse_container,
    verify_records,
)

PKI = make_pki()
SIGNER = PKI.stream_signer()
PER_SEGMENT = 5


def stream(
    signer: StreamSigner = SIGNER, frames: int = 20, session: bytes | None = None, end: str | None = "source ended"
) -> list[Record]:
    """Records in the order a recorder writes them: a segment's frames, then its manifest; the end marker last.

    ``end=None``: the recording stops after the last segment, as when the recorder stopped first.
    """
    records, _ = session_records(signer, frames, session, end)
    return records


def session_records(
    signer: StreamSigner = SIGNER, frames: int = 20, session: bytes | None = None, end: str | None = "source ended"
) -> tuple[list[Record], SegmentSigner]:
    segments = SegmentSigner(signer, session=session or os.urandom(16), frames_per_segment=PER_SEGMENT)
    records: list[Record] = []
    for seq in range(frames):
        jpeg = b"\xff\xd8 frame %d " % seq + os.urandom(32)
        wall = 1_763_800_000_000_000_000 + seq * 33_333_333
        records.append(FrameRecord(seq, wall, jpeg))
        envelope = segments.add(seq, signer.frame_digest(jpeg), wall)
        if envelope is not None:
            records.append(ManifestRecord(envelope))
    tail = segments.flush()
    if tail is not None:
        records.append(ManifestRecord(tail))
    if end is not None:
        records.append(ManifestRecord(segments.end(reason=end, end_wall_ns=1_763_800_100_000_000_000)))
    return records, segments


def verify(records: Sequence[Record], now: dt.datetime = NOW) -> StreamReport:
    return verify_records(records, trust_root=PKI.root, now=now)


def frame_indices(records: list[Record]) -> list[int]:
    return [i for i, r in enumerate(records) if isinstance(r, FrameRecord)]


def manifest_indices(records: list[Record]) -> list[int]:
    """Indices of the segment manifests (not the end marker)."""
    return [
        i for i, r in enumerate(records)
        if isinstance(r, ManifestRecord) and json.loads(r.envelope)["payloadType"] == SEGMENT_PAYLOAD_TYPE
    ]


def payload_of(record: Record) -> dict[str, object]:
    assert isinstance(record, ManifestRecord | SnapshotRecord)
    payload: dict[str, object] = json.loads(base64.b64decode(json.loads(record.envelope)["payload"]))
    return payload


def test_untouched_stream_is_authentic_and_complete() -> None:
    report = verify(stream())
    assert report.verdict == "authentic"
    assert [f.status for f in report.frames] == ["authentic"] * 20
    (session,) = report.sessions
    assert (session.segments, session.frames_listed, session.frames_authentic) == (4, 20, 20)
    assert session.device == "RCTEST000001" and session.key_id == SIGNER.key_id
    assert session.begins and session.ends and session.end_reason == "source ended"
    assert session.total_segments == 4 and session.notes == ()
    assert report.complete
    report.check(complete=True)


def test_ecdsa_p256_stream_is_authentic() -> None:
    assert verify(stream(PKI.stream_signer(algorithm="ecdsa-p256-sha256"))).verdict == "authentic"


def test_blake3_framed_stream_is_authentic_and_its_tampering_detected() -> None:
    signer = PKI.stream_signer(frame_hash="blake3")
    records = stream(signer)
    assert {payload_of(records[i])["frame_hash"] for i in manifest_indices(records)} == {"blake3"}
    assert verify(records).verdict == "authentic"
    i = frame_indices(records)[3]
    frame = records[i]
    assert isinstance(frame, FrameRecord)
    records[i] = FrameRecord(frame.seq, frame.capture_wall_ns, frame.jpeg[:-1] + b"\x00")
    report = verify(records)
    assert report.verdict == "not_authentic" and "modified" in report.frames[3].reason


def test_frame_hash_switched_within_a_session_is_not_authentic() -> None:
    session = os.urandom(16)
    sha = SegmentSigner(SIGNER, session=session, frames_per_segment=PER_SEGMENT)
    fast = SegmentSigner(
        StreamSigner(SIGNER.key, SIGNER.chain, device=SIGNER.device, frame_hash="blake3"),
        session=session, frames_per_segment=PER_SEGMENT,
    )  # fmt: skip
    records: list[Record] = []
    for seq in range(2 * PER_SEGMENT):
        jpeg = b"frame %d" % seq
        records.append(FrameRecord(seq, seq, jpeg))
        signer = sha if seq < PER_SEGMENT else fast
        if seq == PER_SEGMENT:  # the second signer takes over the chain where the first stopped
            fast.segment, fast.frames, fast._previous, fast._linked_frame = (
                sha.segment, sha.frames, sha._previous, sha._linked_frame,
            )  # fmt: skip
        envelope = signer.add(seq, signer.signer.frame_digest(jpeg), seq)
        if envelope is not None:
            records.append(ManifestRecord(envelope))
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert any("frame hash changed within the session (sha256 -> blake3)" in p for p in report.problems)


def test_unknown_frame_hash_is_refused() -> None:
    payload = {
        "type": "refcam.stream.segment/2", "alg": SIGNER.algorithm, "frame_hash": "md5", "key_id": SIGNER.key_id,
        "device": SIGNER.device, "session": "cd" * 16, "segment": 0, "first_seq": 0, "last_seq": 0, "frames": [["00" * 32, 1]],
        "previous": None, "linked_frame": None,
    }  # fmt: skip
    report = verify([FrameRecord(0, 1, b"x"), ManifestRecord(SIGNER.envelope(SEGMENT_PAYLOAD_TYPE, payload))])
    assert report.verdict == "not_authentic"
    assert "frame_hash 'md5' is not one of sha256, blake3" in report.problems[0]


def session_of(records: Sequence[Record]) -> str:
    return str(payload_of(next(r for r in records if isinstance(r, ManifestRecord)))["session"])


def not_sent(records: Sequence[Record], *ranges: tuple[int, int]) -> NoteRecord:
    """The note a recorder writes when the server says it did not send these seqs."""
    return NoteRecord(session_of(records), tuple(ranges))


def stopped_note(records: Sequence[Record], after: int | None, reason: str = "frame limit (12) reached") -> NoteRecord:
    return NoteRecord(session_of(records), stopped=True, stopped_after=after, reason=reason)


def without_frames(records: list[Record], seqs: set[int]) -> list[Record]:
    return [r for r in records if not (isinstance(r, FrameRecord) and r.seq in seqs)]


def test_frames_the_server_did_not_send_are_authentic_missing_frames_and_named() -> None:
    records = stream()
    dropped = {seq for seq in range(20) if seq % 3 == 1}
    kept = without_frames(records, dropped)
    kept.insert(0, not_sent(records, *((seq, seq) for seq in sorted(dropped))))  # what the server told the recorder
    report = verify(kept)
    assert report.verdict == "authentic_missing_frames" and report.problems == ()
    (session,) = report.sessions
    assert session.frames_missing == 7
    assert [(g.first_seq, g.last_seq, g.kind) for g in session.gaps] == [(s, s, "not_sent") for s in sorted(dropped)]
    assert session.gaps[0].capture_wall_ns == (1_763_800_000_000_000_000 + 33_333_333,)
    assert session.gaps[0].describe() == "seq 1 (segment 0, captured 2025-11-22T08:26:40.033Z)"
    report.check()  # a slow viewer's recording is still accepted...
    with pytest.raises(Incomplete, match=r"frames seq 1 \(segment 0, captured 2025-11-22T08:26:40.033Z\) not sent"):
        report.check(complete=True)  # ...but it is not the whole session


# -- a tamper per kind of removal: each is named by seq, segment and time, and refused -------


def test_one_frame_removed_is_named_and_not_authentic() -> None:
    report = verify(without_frames(stream(), {7}))
    assert report.verdict == "not_authentic"
    (gap,) = report.sessions[0].gaps
    assert (gap.first_seq, gap.last_seq, gap.kind, gap.segments) == (7, 7, "removed", (1, 1))
    assert report.problems == (
        "frames seq 7 (segment 1, captured 2025-11-22T08:26:40.233Z) are missing: "
        "removed from the recording (no note says they were not sent)",
    )
    with pytest.raises(NotAuthentic, match="frames seq 7 "):
        report.check()


def test_whole_segment_removed_keeping_its_manifest_is_named() -> None:
    report = verify(without_frames(stream(), set(range(5, 10))))  # segment 1's five frames, manifest kept
    assert report.verdict == "not_authentic"
    (gap,) = report.sessions[0].gaps
    assert (gap.first_seq, gap.last_seq, gap.kind, gap.manifests_missing) == (5, 9, "removed", False)
    assert "frames seq 5..9 (segment 1, captured 2025-11-22T08:26:40.166Z..2025-11-22T08:26:40.299Z)" in report.problems[0]


def test_whole_segment_removed_with_its_manifest_is_named() -> None:
    records = stream()
    m = manifest_indices(records)
    report = verify(records[: m[0] + 1] + records[m[1] + 1 :])  # segment 1: frames and manifest
    assert report.verdict == "not_authentic"
    assert any("segments 1..1 are missing: removed" in p for p in report.problems)
    (gap,) = report.sessions[0].gaps
    assert (gap.first_seq, gap.last_seq, gap.segments, gap.manifests_missing) == (5, 9, (1, 1), True)
    assert any(p.startswith(
        "frames seq 5..9 (segment 1, manifests missing too, captured between 2025-11-22T08:26:40.133Z and "
        "2025-11-22T08:26:40.333Z) are missing: removed"
    ) for p in report.problems)


def test_head_removed_is_named_and_not_authentic() -> None:
    records = stream(frames=20)
    cut = records[manifest_indices(records)[1] + 1 :]  # segments 0 and 1 removed whole
    report = verify(cut)
    assert report.verdict == "not_authentic"
    (session,) = report.sessions
    assert session.first_segment == 2 and not session.begins and session.ends
    (gap,) = session.gaps
    assert (gap.first_seq, gap.last_seq, gap.segments, gap.kind) == (0, 9, (0, 1), "removed")
    assert report.problems == (
        "frames seq 0..9 (segments 0..1, manifests missing too, captured before 2025-11-22T08:26:40.333Z) are missing: "
        "removed from the recording (no note says they were not sent)",
    )


def test_recorder_that_joined_late_is_told_apart_from_a_removed_head() -> None:
    records = stream(frames=20)
    first_manifest = manifest_indices(records)[0]
    joined = [not_sent(records, (0, 6)), *records[first_manifest + 3 :]]  # starts at seq 7, inside segment 1
    report = verify(joined)
    assert report.verdict == "authentic_missing_frames" and report.problems == ()
    (session,) = report.sessions
    assert session.first_segment == 1 and not session.begins and session.ends and not report.complete
    assert [(g.first_seq, g.last_seq, g.segments, g.kind) for g in session.gaps] == [
        (0, 4, (0, 0), "not_sent"), (5, 6, (1, 1), "not_sent"),
    ]  # fmt: skip
    assert "the session's start (segment 0, seq 0) is not in the recording" in session.notes
    with pytest.raises(Incomplete, match=r"frames seq 0\.\.4 \(segment 0, manifests missing too, captured before 2025-11-22T08:26:40\.166Z\) not sent"):
        report.check(complete=True)


def test_tail_removed_with_the_end_marker_is_named_and_not_authentic() -> None:
    records = stream(frames=20)
    cut = records[: manifest_indices(records)[2] + 1]  # segment 3 and the end marker removed
    report = verify(cut)
    assert report.verdict == "not_authentic"
    (session,) = report.sessions
    assert session.begins and not session.ends and session.end_reason is None
    assert report.problems == (
        "the end is missing: no end marker after segment 2 (seq 14, captured 2025-11-22T08:26:40.466Z) "
        "and no recorder note that it stopped there: the end was removed from the recording",
    )


def test_tail_frames_removed_keeping_the_end_marker_are_named() -> None:
    report = verify(without_frames(stream(frames=20), {17, 18, 19}))
    assert report.verdict == "not_authentic"
    (gap,) = report.sessions[0].gaps
    assert (gap.first_seq, gap.last_seq, gap.segments, gap.kind) == (17, 19, (3, 3), "removed")


def test_tail_frames_removed_with_the_end_marker_are_named() -> None:
    records = without_frames(stream(frames=20), {17, 18, 19})[:-1]  # the last frames and the end marker
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert report.problems[0].startswith("frames seq 17..19 (segment 3, captured ")
    assert report.problems[1].startswith("the end is missing: no end marker after segment 3 (seq 19")


def test_recorder_that_stopped_first_notes_it_and_is_authentic_without_an_end_marker() -> None:
    records = stream(frames=20, end=None)
    recorded = without_frames(records, {18, 19})  # it took frames up to 17, then waited for the manifest
    report = verify([*recorded, stopped_note(records, 17)])
    assert report.verdict == "authentic_missing_frames" and report.problems == ()
    (session,) = report.sessions
    assert not session.ends and session.recorder_stopped == "frame limit (12) reached" and not report.complete
    assert [(g.first_seq, g.last_seq, g.kind) for g in session.gaps] == [(18, 19, "recorder_stopped")]
    assert (
        "no end marker: the recorder stopped after seq 17 (frame limit (12) reached; its unsigned note), "
        "so the session's end is not in the recording"
    ) in session.notes
    report.check()
    with pytest.raises(Incomplete, match="no end marker: the recorder stopped after seq 17"):
        report.check(complete=True)


def test_a_stop_note_does_not_excuse_frames_removed_before_the_stop() -> None:
    records = stream(frames=20, end=None)
    report = verify([*without_frames(records, {3}), stopped_note(records, 19)])
    assert report.verdict == "not_authentic"
    assert report.problems[0].startswith("frames seq 3 (segment 0, captured ")


def test_manifest_whose_bounds_disagree_with_its_list_is_refused() -> None:
    payload = {
        "type": "refcam.stream.segment/2", "alg": SIGNER.algorithm, "frame_hash": "sha256", "key_id": SIGNER.key_id,
        "device": SIGNER.device, "session": "cd" * 16, "segment": 0, "first_seq": 0, "last_seq": 1,
        "frames": [[hashlib.sha256(b"x").hexdigest(), 1]], "previous": None, "linked_frame": None,
    }  # fmt: skip
    report = verify([FrameRecord(0, 1, b"x"), ManifestRecord(SIGNER.envelope(SEGMENT_PAYLOAD_TYPE, payload))])
    assert report.verdict == "not_authentic"
    assert "segment 0 covers seq 0..1 but lists 1 frames" in report.problems[0]


def test_note_records_round_trip_and_malformed_notes_are_refused() -> None:
    note = NoteRecord("ab" * 16, ((0, 3), (9, 9)), stopped=True, stopped_after=12, reason="interrupted")
    assert parse_container(MAGIC + encode_record(note)) == (note,)
    bad = b'{"type":"refcam.recorder.note/1","session":"ab","not_sent":[],"stopped":false,"stopped_after":null,"reason":""}'
    with pytest.raises(FormatError, match="session is not 32 lowercase hex"):
        parse_container(MAGIC + b"\x04" + len(bad).to_bytes(4, "big") + bad)


def test_end_cut_but_end_marker_kept_is_detected() -> None:
    records = stream(frames=20)
    m = manifest_indices(records)
    cut = [*records[: m[1] + 1], records[-1]]  # segments 2 and 3 removed, the end marker put back
    report = verify(cut)
    assert report.verdict == "not_authentic"
    assert any("segments 2..3 are missing before it: removed (the end was cut)" in p for p in report.problems)
    assert not report.sessions[0].ends


def test_forged_end_marker_is_refused() -> None:
    records = stream(frames=20)
    doc = json.loads(records[-1].envelope)  # type: ignore[union-attr]
    payload = payload_of(records[-1])
    payload["frames"] = 15  # claim the session was shorter, keep the signature
    doc["payload"] = base64.b64encode(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).decode()
    records[-1] = ManifestRecord(json.dumps(doc).encode())
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert report.problems[0].startswith("end marker (record 24) is not valid: signature does not verify")
    assert not report.sessions[0].ends


def test_unsigned_end_marker_is_refused() -> None:
    records = stream(frames=20)
    records[-1] = ManifestRecord(json.dumps(payload_of(records[-1])).encode())  # the payload without its envelope
    report = verify(records)
    assert report.verdict == "not_authentic" and not report.sessions[0].ends
    assert report.problems[0].startswith("manifest (record 24) is not valid: signed envelope has fields")


def test_end_marker_signed_by_an_untrusted_key_is_refused() -> None:
    records, segments = session_records(end=None)
    foreign = make_pki().stream_signer()  # another manufacturer's chain, same serial
    forger = SegmentSigner(foreign, session=bytes.fromhex(segments.session), frames_per_segment=PER_SEGMENT)
    forger.segment, forger.frames, forger._previous = segments.segment, segments.frames, segments.position[1]
    records.append(ManifestRecord(forger.end(reason="source ended", end_wall_ns=1)))
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert "end marker (record 24) is not valid: certificate chain does not lead to the trusted root" in report.problems[0]


def test_end_marker_that_does_not_chain_is_refused() -> None:
    records, segments = session_records(end=None)
    payload = {
        "type": "refcam.stream.end/1", "alg": SIGNER.algorithm, "key_id": SIGNER.key_id, "device": SIGNER.device,
        "session": segments.session, "segments": 4, "frames": 20, "previous": "ab" * 32,
        "reason": "source ended", "end_wall_ns": 1,
    }  # fmt: skip
    records.append(ManifestRecord(SIGNER.envelope(END_PAYLOAD_TYPE, payload)))
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert "end marker (record 24): does not chain to segment 3 (previous anchor differs)" in report.problems


def test_end_marker_of_another_session_is_refused() -> None:
    other = stream(frames=20)
    records = [*stream(frames=20, end=None), other[-1]]  # this recording's end cut, another session's end appended
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert any("spliced session" in p for p in report.problems)


def test_end_marker_moved_before_the_last_segment_is_refused() -> None:
    records = stream(frames=20)
    m = manifest_indices(records)
    moved = [*records[: m[2] + 1], records[-1], *records[m[2] + 1 : -1]]  # end marker before segment 3
    report = verify(moved)
    assert report.verdict == "not_authentic"
    assert any("segments 3..3 are missing before it" in p for p in report.problems)


def test_segment_after_a_valid_end_marker_is_refused() -> None:
    records = stream(frames=20)
    last = payload_of(records[manifest_indices(records)[-1]])
    extra = {
        **last, "segment": 4, "first_seq": 20, "last_seq": 20, "frames": [[hashlib.sha256(b"late").hexdigest(), 1]],
        "previous": hashlib.sha256(json.dumps(last, sort_keys=True, separators=(",", ":")).encode()).hexdigest(),
        "linked_frame": last["frames"][0][0],  # type: ignore[index]
    }  # fmt: skip
    records += [FrameRecord(20, 1, b"late"), ManifestRecord(SIGNER.envelope(SEGMENT_PAYLOAD_TYPE, extra))]
    report = verify(records)
    assert report.verdict == "not_authentic"
    assert "manifest (record 26): segment 4 comes after the session's end marker" in report.problems


def test_second_end_marker_is_refused() -> None:
    records = stream(frames=20)
    report = verify([*records, records[-1]])
    assert report.verdict == "not_authentic"
    assert any("a second end marker for the session" in p for p in report.problems)


def test_session_without_frames_is_complete() -> None:
    segments = SegmentSigner(SIGNER, session=os.urandom(16), frames_per_segment=PER_SEGMENT)
    report = verify([ManifestRecord(segments.end(reason="source failed: no camera", end_wall_ns=5))])
    assert report.verdict == "authentic" and report.complete
    assert report.sessions[0].end_reason == "source failed: no camera" and report.sessions[0].frames_listed == 0


def test_segment_zero_with_an_anchor_is_refused() -> None:
    payload = {
        "type": "refcam.stream.segment/2", "alg": SIGNER.algorithm, "frame_hash": "sha256", "key_id": SIGNER.key_id, "device": SIGNER.device,
        "session": "cd" * 16, "segment": 0, "first_seq": 0, "last_seq": 0, "frames": [["00" * 32, 1]],
        "previous": "ab" * 32, "linked_frame": "ab" * 32,
    }  # fmt: skip
    report = verify([FrameRecord(0, 1, b"x"), ManifestRecord(SIGNER.envelope(SEGMENT_PAYLOAD_TYPE, payload))])
    assert report.verdict == "not_authentic"
    assert "null only in segment 0" in report.problems[0]


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
    first = stream(frames=10, end=None)
    second = stream(frames=10)  # another session of the same camera and key
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
    assert "is not issued for this purpose: extended key usage none, expected 2.25." in report.problems[0]


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
    records = [*stream(end=None), FrameRecord(20, 1, b"appended")]
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


def test_frames_after_the_end_marker_are_not_authentic() -> None:
    report = verify([*stream(), FrameRecord(20, 1, b"appended")])
    assert report.verdict == "not_authentic"
    assert report.frames[-1].reason.startswith("no signed manifest follows this frame")


def test_snapshot_signature_verifies_and_detects_modification() -> None:
    jpeg = b"\xff\xd8 snapshot"
    envelope = SIGNER.sign_snapshot(
        session="ab" * 16, seq=7, segment=1, previous="cd" * 32, digest=hashlib.sha256(jpeg).digest(),
        capture_wall_ns=123, width=64, height=48,
    )
    good = verify([FrameRecord(7, 123, jpeg), SnapshotRecord(envelope)])
    assert good.kind == "snapshot" and good.verdict == "authentic"
    bad = verify([FrameRecord(7, 123, jpeg + b"x"), SnapshotRecord(envelope)])
    assert bad.verdict == "not_authentic" and "modified" in bad.problems[0]
    relabelled = verify([FrameRecord(8, 123, jpeg), SnapshotRecord(envelope)])
    assert relabelled.verdict == "not_authentic"


def test_segment_manifest_is_not_accepted_as_snapshot_signature() -> None:
    records = stream(frames=5, end=None)
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


# -- a snapshot checked against a recording of its session -----------------------------


def snapshot_of(records: list[Record], seq: int, signer: StreamSigner = SIGNER, session: str | None = None) -> list[Record]:
    """A signed snapshot of frame ``seq`` of the recorded session, as the pipeline signs it."""
    frame = next(r for r in records if isinstance(r, FrameRecord) and r.seq == seq)
    manifests = [payload_of(records[i]) for i in manifest_indices(records)]
    segment = seq // PER_SEGMENT
    previous = None
    if segment:
        body = base64.b64decode(json.loads(records[manifest_indices(records)[segment - 1]].envelope)["payload"])  # type: ignore[union-attr]
        previous = hashlib.sha256(body).hexdigest()
    envelope = signer.sign_snapshot(
        session=session or str(manifests[0]["session"]), seq=seq, segment=segment, previous=previous,
        digest=hashlib.sha256(frame.jpeg).digest(), capture_wall_ns=frame.capture_wall_ns, width=64, height=48,
    )  # fmt: skip
    return [frame, SnapshotRecord(envelope)]



def test_snapshot_of_the_recorded_session_is_linked_by_hash_and_anchor() -> None:
    records = stream(frames=20)
    result = link_snapshot(snapshot_of(records, 12), records, trust_root=PKI.root, now=NOW)
    assert result.verdict == "in_session" and result.segment == 2 and result.seq == 12
    assert result.detail == "frame seq 12 of the session, listed with the same hash in recorded segment 2"
    result.check()


def test_snapshot_after_the_recording_ended_is_linked_by_its_anchor() -> None:
    records = stream(frames=20)
    snapshot = snapshot_of(records, 17)  # segment 3
    cut = [*records[: manifest_indices(records)[2] + 1], stopped_note(records, 14)]  # the recorder stopped
    result = link_snapshot(snapshot, cut, trust_root=PKI.root, now=NOW)
    assert result.verdict == "in_session"
    assert "chained to recorded segment 2 (segment 3 is not recorded)" in result.detail


def test_snapshot_outside_the_recorded_segments_is_linked_by_session_only() -> None:
    records = stream(frames=20)
    snapshot = snapshot_of(records, 2)  # segment 0
    late = [not_sent(records, (0, 9)), *records[manifest_indices(records)[1] + 1 :]]  # joined at segment 2
    result = link_snapshot(snapshot, late, trust_root=PKI.root, now=NOW)
    assert result.verdict == "in_session"
    assert "its segment 0 is outside the recorded segments (2..3), so its place in the chain is not checked" in result.detail


def test_snapshot_from_another_session_is_refused() -> None:
    records = stream(frames=20)
    other = stream(frames=20)  # the same camera, another session
    result = link_snapshot(snapshot_of(other, 12), records, trust_root=PKI.root, now=NOW)
    assert result.verdict == "not_in_session"
    assert result.detail.startswith(f"the snapshot is from stream session {result.session[:16]}..., the recording holds")
    with pytest.raises(NotAuthentic, match="snapshot seq 12 not in session"):
        result.check()


def test_snapshot_claiming_a_recorded_seq_with_other_pixels_is_refused() -> None:
    records = stream(frames=20)
    frame, _ = snapshot_of(records, 12)
    assert isinstance(frame, FrameRecord)
    forged_frame = FrameRecord(12, frame.capture_wall_ns, b"\xff\xd8 other pixels")
    session = str(payload_of(records[manifest_indices(records)[0]])["session"])
    envelope = SIGNER.sign_snapshot(
        session=session, seq=12, segment=2, previous=str(payload_of(records[manifest_indices(records)[2]])["previous"]),
        digest=hashlib.sha256(forged_frame.jpeg).digest(), capture_wall_ns=frame.capture_wall_ns, width=64, height=48,
    )  # fmt: skip
    result = link_snapshot([forged_frame, SnapshotRecord(envelope)], records, trust_root=PKI.root, now=NOW)
    assert result.verdict == "not_authentic"
    assert result.detail == "recorded segment 2 lists another frame (hash or time) under seq 12"


def test_snapshot_with_a_wrong_anchor_is_refused() -> None:
    records = stream(frames=20)
    frame, signature = snapshot_of(records, 12)
    payload = payload_of(signature)
    envelope = SIGNER.sign_snapshot(
        session=str(payload["session"]), seq=12, segment=2, previous="ef" * 32,
        digest=hashlib.sha256(frame.jpeg).digest(), capture_wall_ns=frame.capture_wall_ns, width=64, height=48,  # type: ignore[union-attr]
    )  # fmt: skip
    result = link_snapshot([frame, SnapshotRecord(envelope)], records, trust_root=PKI.root, now=NOW)
    assert result.verdict == "not_authentic"
    assert result.detail == "the snapshot's anchor is not recorded segment 2's previous anchor"


def test_snapshot_signed_by_another_key_of_the_device_is_refused() -> None:
    records = stream(frames=20)
    result = link_snapshot(snapshot_of(records, 12, signer=PKI.stream_signer()), records, trust_root=PKI.root, now=NOW)
    assert result.verdict == "not_authentic" and "the session by key" in result.detail


def test_modified_snapshot_or_recording_cannot_be_linked() -> None:
    records = stream(frames=20)
    frame, signature = snapshot_of(records, 12)
    assert isinstance(frame, FrameRecord)
    bad_snapshot = [FrameRecord(12, frame.capture_wall_ns, frame.jpeg + b"x"), signature]
    result = link_snapshot(bad_snapshot, records, trust_root=PKI.root, now=NOW)
    assert result.verdict == "not_authentic" and result.detail.startswith("the snapshot is not authentic: JPEG hash")
    spliced = records + stream(frames=5)
    result = link_snapshot([frame, signature], spliced, trust_root=PKI.root, now=NOW)
    assert result.verdict == "not_authentic" and result.detail.startswith("the recording is not authentic")


def test_snapshot_naming_a_segment_after_the_session_ended_is_refused() -> None:
    records = stream(frames=20)
    session = str(payload_of(records[manifest_indices(records)[0]])["session"])
    jpeg = b"\xff\xd8 late"
    envelope = SIGNER.sign_snapshot(
        session=session, seq=40, segment=8, previous="ab" * 32, digest=hashlib.sha256(jpeg).digest(),
        capture_wall_ns=1, width=64, height=48,
    )  # fmt: skip
    late_start = [not_sent(records, (0, 9)), *records[manifest_indices(records)[1] + 1 :]]  # segments 2, 3, end
    result = link_snapshot([FrameRecord(40, 1, jpeg), SnapshotRecord(envelope)], late_start, trust_root=PKI.root, now=NOW)
    assert result.verdict == "not_authentic" and result.detail == "the snapshot names segment 8; the session ended after 4"
