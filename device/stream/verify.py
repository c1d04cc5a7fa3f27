"""Verify a recorded signed stream (or a signed snapshot): a pure core.

Input: the records of a recording (frames and signed manifests, in the
order they were received), the manufacturer root certificate and ``now``.
Output: a frozen :class:`StreamReport` with a verdict per frame, per stream
session and overall:

* ``authentic``: every frame is listed, unchanged and in order in a validly
  signed manifest, and the manifests form one unbroken chain;
* ``authentic_missing_frames``: the same, but some listed frames were never
  received (normal for a slow viewer, or an fps-capped one);
* ``not_authentic``: a frame was modified, inserted or reordered, a segment
  was removed, sessions were spliced, the signing key changed, a manifest's
  or end marker's signature or certificate chain is bad, an end marker does
  not chain to the last segment, or frames follow the last manifest;
* ``not_signed``: no manifest at all.

Completeness is reported apart from authenticity, per session:

* ``begins``: segment 0 (the only one whose ``previous`` is null) is in the
  recording. Without it the recording starts later in the session: the
  recorder joined late, or the start was cut. The two look alike, and
  neither changes a frame, so it is a note, not a verdict.
* ``ends``: the session's signed end marker is in the recording and chains to
  the last recorded segment. Without it the end may have been cut; that is
  also what a recording looks like when the *recorder* stopped while the
  camera streamed on, so it is a note too. A forged, unsigned or unchained
  end marker, or segments missing before it, is ``not_authentic``.

``report.check()`` raises :class:`NotAuthentic` unless the verdict is one of
the first two (verification raises; the report carries the detail);
``report.check(complete=True)`` also raises :class:`Incomplete` unless every
session begins and ends in the recording.

:func:`link_snapshot` checks that a signed snapshot was taken from a session
of a recording: same session id and key, and the frame hash and chain anchor
the snapshot carries match the recorded segments (see
:mod:`device.stream.signing` for what a snapshot signs).

The recording container (``refcam stream record`` writes it), big-endian::

    magic   8 bytes  b"RCSTRM1\\n"
    record* type u8 | length u32 | body[length]
      type 1 frame:     seq u64 | capture wall time u64 (ns since the epoch) | JPEG bytes
      type 2 manifest:  signed segment or end-of-session envelope (see device.stream.signing)
      type 3 snapshot:  signed snapshot envelope, for the one frame record of a snapshot

Example::

    records = parse_container(Path("rec.rcs").read_bytes())
    report = verify_records(records, trust_root=root_cert, now=datetime.now(UTC))
    print(report.verdict, report.complete)      # "authentic" True
    report.check()
    link = link_snapshot(parse_container(snap), records, trust_root=root_cert, now=now)
    link.check()                                # the snapshot is a frame of the recorded session
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID

from bootloader.pki import STREAM_SIGNING_EKU

from .errors import FormatError, Incomplete, NotAuthentic
from .signing import (
    END_PAYLOAD_TYPE,
    END_TYPE,
    FRAME_HASHES,
    MAX_END_REASON,
    SEGMENT_PAYLOAD_TYPE,
    SEGMENT_TYPE,
    SNAPSHOT_PAYLOAD_TYPE,
    SNAPSHOT_TYPE,
    Envelope,
    algorithm_of,
    canonical_json,
    frame_digest,
)

MAGIC = b"RCSTRM1\n"
RECORD_HEADER = ">BI"  # record type, body length
RECORD_HEADER_SIZE = 5
assert struct.calcsize(RECORD_HEADER) == RECORD_HEADER_SIZE
FRAME_HEADER = ">QQ"  # seq, capture wall time (ns)
FRAME_HEADER_SIZE = 16
assert struct.calcsize(FRAME_HEADER) == FRAME_HEADER_SIZE
TYPE_FRAME, TYPE_MANIFEST, TYPE_SNAPSHOT = 1, 2, 3
MAX_RECORD = 64 * 2**20  # bytes
MAX_SEGMENT_FRAMES = 10_000

FrameStatus = Literal["authentic", "not_authentic", "not_signed"]
Verdict = Literal["authentic", "authentic_missing_frames", "not_authentic", "not_signed"]
ACCEPTED: tuple[Verdict, ...] = ("authentic", "authentic_missing_frames")
LinkVerdict = Literal["in_session", "not_in_session", "not_authentic"]


@dataclass(frozen=True)
class FrameRecord:
    seq: int
    capture_wall_ns: int  # ns since the epoch, as the X-Capture-Timestamp header said
    jpeg: bytes = field(repr=False)


@dataclass(frozen=True)
class ManifestRecord:
    envelope: bytes = field(repr=False)


@dataclass(frozen=True)
class SnapshotRecord:
    envelope: bytes = field(repr=False)


Record = FrameRecord | ManifestRecord | SnapshotRecord


def encode_record(record: Record) -> bytes:
    if isinstance(record, FrameRecord):
        body = struct.pack(FRAME_HEADER, record.seq, record.capture_wall_ns) + record.jpeg
        kind = TYPE_FRAME
    else:
        body = record.envelope
        kind = TYPE_MANIFEST if isinstance(record, ManifestRecord) else TYPE_SNAPSHOT
    return struct.pack(RECORD_HEADER, kind, len(body)) + body


def parse_container(data: bytes) -> tuple[Record, ...]:
    """Parse a recording strictly; raises :class:`FormatError` naming the offset."""
    if not data.startswith(MAGIC):
        raise FormatError(f"not a refcam stream recording: starts with {data[:8]!r}, expected {MAGIC!r}")
    records: list[Record] = []
    offset = len(MAGIC)
    while offset < len(data):
        if len(data) - offset < RECORD_HEADER_SIZE:
            raise FormatError(f"truncated record header at offset {offset}")
        kind, length = struct.unpack_from(RECORD_HEADER, data, offset)
        start = offset + RECORD_HEADER_SIZE
        if length > MAX_RECORD or start + length > len(data):
            raise FormatError(f"record at offset {offset} claims {length} bytes; only {len(data) - start} remain")
        body = data[start : start + length]
        if kind == TYPE_FRAME:
            if length < FRAME_HEADER_SIZE:
                raise FormatError(f"frame record at offset {offset} is {length} bytes; at least 16 expected")
            seq, wall = struct.unpack_from(FRAME_HEADER, body)
            records.append(FrameRecord(seq, wall, body[FRAME_HEADER_SIZE:]))
        elif kind == TYPE_MANIFEST:
            records.append(ManifestRecord(body))
        elif kind == TYPE_SNAPSHOT:
            records.append(SnapshotRecord(body))
        else:
            raise FormatError(f"record at offset {offset} has unknown type {kind} (expected 1, 2 or 3)")
        offset = start + length
    return tuple(records)


@dataclass(frozen=True)
class FrameResult:
    record: int  # index of the frame record in the recording
    seq: int
    status: FrameStatus
    reason: str = ""
    session: str | None = None
    segment: int | None = None


@dataclass(frozen=True)
class SessionResult:
    session: str
    device: str
    key_id: str
    first_segment: int  # the first segment in the recording (for a session recorded by its end marker only, its count)
    segments: int  # valid manifests seen
    frames_listed: int  # frames the manifests sign
    frames_authentic: int
    frames_missing: int  # listed but not received
    verdict: Verdict
    problems: tuple[str, ...]
    begins: bool = False  # segment 0 is in the recording: it holds the session's start
    ends: bool = False  # the signed end marker is in the recording and chains to the last segment
    end_reason: str | None = None  # what the end marker says ended the session
    total_segments: int | None = None  # segments in the whole session, from the end marker
    notes: tuple[str, ...] = ()  # completeness remarks (not authenticity problems)


@dataclass(frozen=True)
class StreamReport:
    kind: Literal["stream", "snapshot"]
    verdict: Verdict
    sessions: tuple[SessionResult, ...]
    frames: tuple[FrameResult, ...]
    problems: tuple[str, ...]  # every reason for "not_authentic", in record order

    @property
    def complete(self) -> bool:
        """Authentic, and every session's start and signed end are in the recording."""
        return (
            self.kind == "stream"
            and self.verdict in ACCEPTED
            and all(s.begins and s.ends for s in self.sessions)
        )

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(note for s in self.sessions for note in s.notes)

    def check(self, *, complete: bool = False) -> None:
        """Raise :class:`NotAuthentic` unless authentic (missing frames allowed); with ``complete``,
        :class:`Incomplete` unless the whole session is in the recording too."""
        if self.verdict not in ACCEPTED:
            first = self.problems[0] if self.problems else "no signed manifest"
            raise NotAuthentic(f"{self.kind} is {self.verdict.replace('_', ' ')}: {first}")
        if complete and not self.complete:
            raise Incomplete(f"{self.kind} is authentic but incomplete: {'; '.join(self.notes)}")


@dataclass(frozen=True)
class SnapshotLink:
    """Whether a signed snapshot is a frame of a recorded stream session (:func:`link_snapshot`)."""

    verdict: LinkVerdict
    session: str  # the snapshot's session ("" when its signature is not valid)
    seq: int
    segment: int | None  # the segment the snapshot says lists it
    detail: str  # what ties the snapshot to the session, or what does not
    snapshot: StreamReport
    recording: StreamReport

    def check(self) -> None:
        """Raise :class:`NotAuthentic` unless the snapshot belongs to a session of the recording."""
        if self.verdict != "in_session":
            raise NotAuthentic(f"snapshot seq {self.seq} {self.verdict.replace('_', ' ')}: {self.detail}")


class _ManifestInvalid(Exception):
    pass


@dataclass(frozen=True)
class _Segment:
    session: str
    segment: int
    first_seq: int
    frames: tuple[tuple[str, int], ...]
    previous: str | None
    linked_frame: str | None
    key_id: str
    device: str
    digest: str  # SHA-256 of the canonical payload: the next segment's "previous"
    frame_hash: str  # how the listed frame digests are computed


@dataclass(frozen=True)
class _End:
    session: str
    segments: int
    frames: int
    previous: str | None
    key_id: str
    device: str
    reason: str
    end_wall_ns: int


def _chain_verifier(trust_root: x509.Certificate, now: datetime) -> verification.ClientVerifier:
    # Any EE key usage policy is checked by hand below; CA certs get the WebPKI CA checks.
    return (
        verification.PolicyBuilder()
        .store(verification.Store([trust_root]))
        .time(now)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=verification.ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )


def _verify_envelope(
    envelope: Envelope, verifier: verification.ClientVerifier, payload_type: str
) -> dict[str, Any]:
    if envelope.payload_type != payload_type:
        raise _ManifestInvalid(f"payload type {envelope.payload_type!r}, expected {payload_type!r}")
    leaf = envelope.certificates[0]
    try:
        verifier.verify(leaf, list(envelope.certificates[1:]))
    except verification.VerificationError as e:
        raise _ManifestInvalid(f"certificate chain does not lead to the trusted root: {e}") from e
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is None or not usage.digital_signature:
        raise _ManifestInvalid("stream certificate does not allow digitalSignature")
    try:
        purposes = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        purposes = None
    if purposes is None or STREAM_SIGNING_EKU not in purposes:
        # Only a certificate issued for stream signing may sign streams (not e.g. the TLS key).
        raise _ManifestInvalid(f"certificate {leaf.subject.rfc4514_string()} lacks the stream-signing EKU")
    try:
        envelope.verify_signature()
    except (InvalidSignature, FormatError) as e:
        raise _ManifestInvalid(f"signature does not verify ({e or 'InvalidSignature'})") from e
    try:
        payload = json.loads(envelope.payload)
    except ValueError as e:
        raise _ManifestInvalid(f"payload is not JSON: {e}") from e
    if not isinstance(payload, dict):
        raise _ManifestInvalid("payload is not a JSON object")
    if payload.get("key_id") != envelope.keyid:
        raise _ManifestInvalid("payload key_id is not the signing key")
    if payload.get("alg") != algorithm_of(leaf.public_key()):
        raise _ManifestInvalid(f"payload alg {payload.get('alg')!r} does not match the key")
    serials = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)]
    if serials != [payload.get("device")]:
        # The device named in the payload must be the one the certificate was issued to.
        raise _ManifestInvalid(f"payload device {payload.get('device')!r} is not the certificate's serial {serials}")
    return payload


def _fields(p: dict[str, Any], kind: str, expected: set[str]) -> None:
    if set(p) != expected or p.get("type") != kind:
        raise _ManifestInvalid(f"payload fields {sorted(p)} / type are not those of {kind}")


def _hex(value: object, what: str, length: int) -> str:
    if not (isinstance(value, str) and len(value) == length and all(c in "0123456789abcdef" for c in value)):
        raise _ManifestInvalid(f"{what} is not {length} lowercase hex digits")
    return value


def _optional_hex(value: object, what: str) -> str | None:
    return None if value is None else _hex(value, what, 64)


def _frame_hash(value: object) -> str:
    if value not in FRAME_HASHES:
        raise _ManifestInvalid(f"frame_hash {value!r} is not one of {', '.join(FRAME_HASHES)}")
    return str(value)


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _ManifestInvalid(f"{what} is not a non-negative integer")
    return value


def _segment(envelope: Envelope, verifier: verification.ClientVerifier) -> _Segment:
    p = _verify_envelope(envelope, verifier, SEGMENT_PAYLOAD_TYPE)
    _fields(
        p,
        SEGMENT_TYPE,
        {"type", "alg", "frame_hash", "key_id", "session", "segment", "first_seq", "frames", "previous",
         "linked_frame", "device"},
    )
    frame_hash = _frame_hash(p["frame_hash"])
    frames = p["frames"]
    if not isinstance(frames, list) or not 1 <= len(frames) <= MAX_SEGMENT_FRAMES:
        raise _ManifestInvalid(f"frames must list 1 to {MAX_SEGMENT_FRAMES} frames")
    listed: list[tuple[str, int]] = []
    for i, item in enumerate(frames):
        if not (isinstance(item, list) and len(item) == 2):
            raise _ManifestInvalid(f"frames[{i}] is not [digest, capture_wall_ns]")
        listed.append((_hex(item[0], f"frames[{i}] hash", 64), _int(item[1], f"frames[{i}] time")))
    if not isinstance(p["device"], str):
        raise _ManifestInvalid("device is not a string")
    segment, first_seq = _int(p["segment"], "segment"), _int(p["first_seq"], "first_seq")
    previous = _optional_hex(p["previous"], "previous")
    linked = _optional_hex(p["linked_frame"], "linked_frame")
    # Segment 0, and only segment 0, has no anchor: that is what marks a session's start.
    if (segment == 0) != (previous is None) or (previous is None) != (linked is None):
        raise _ManifestInvalid(f"segment {segment} has previous {previous} / linked_frame {linked}; null only in segment 0")
    if segment == 0 and first_seq != 0:
        raise _ManifestInvalid(f"segment 0 starts at seq {first_seq}; a session's seq starts at 0")
    return _Segment(
        session=_hex(p["session"], "session", 32),
        segment=segment,
        first_seq=first_seq,
        frames=tuple(listed),
        previous=previous,
        linked_frame=linked,
        key_id=p["key_id"],
        device=p["device"],
        digest=hashlib.sha256(canonical_json(p)).hexdigest(),
        frame_hash=frame_hash,
    )


def _end(envelope: Envelope, verifier: verification.ClientVerifier) -> _End:
    p = _verify_envelope(envelope, verifier, END_PAYLOAD_TYPE)
    _fields(
        p,
        END_TYPE,
        {"type", "alg", "key_id", "session", "device", "segments", "frames", "previous", "reason", "end_wall_ns"},
    )
    if not isinstance(p["device"], str):
        raise _ManifestInvalid("device is not a string")
    if not isinstance(p["reason"], str) or len(p["reason"]) > MAX_END_REASON:
        raise _ManifestInvalid(f"reason is not a string of at most {MAX_END_REASON} characters")
    segments, frames = _int(p["segments"], "segments"), _int(p["frames"], "frames")
    previous = _optional_hex(p["previous"], "previous")
    if (segments == 0) != (previous is None) or (segments == 0) != (frames == 0):
        raise _ManifestInvalid(f"end marker counts {segments} segments, {frames} frames with previous {previous}")
    return _End(
        session=_hex(p["session"], "session", 32),
        segments=segments,
        frames=frames,
        previous=previous,
        key_id=p["key_id"],
        device=p["device"],
        reason=p["reason"],
        end_wall_ns=_int(p["end_wall_ns"], "end_wall_ns"),
    )


@dataclass
class _SessionState:
    session: str
    device: str
    key_id: str
    first_segment: int
    last: _Segment | None  # None while the session is known only by its end marker
    segments: int = 0
    listed: int = 0
    authentic: int = 0
    problems: list[str] = field(default_factory=list)
    by_number: dict[int, _Segment] = field(default_factory=dict)  # the valid, chained segments
    ended: _End | None = None  # a valid end marker that chains to the last segment


def verify_records(records: Sequence[Record], *, trust_root: x509.Certificate, now: datetime) -> StreamReport:
    """Verify a recording (see the module docstring). Pure: no I/O, ``now`` is given."""
    if any(isinstance(r, SnapshotRecord) for r in records):
        return _verify_snapshot(records, trust_root=trust_root, now=now)[0]
    return _verify_stream(records, _chain_verifier(trust_root, now))[0]


def _verify_stream(
    records: Sequence[Record], verifier: verification.ClientVerifier
) -> tuple[StreamReport, list[_SessionState]]:
    results: dict[int, FrameResult] = {}
    problems: list[str] = []
    sessions: list[_SessionState] = []
    pending: list[tuple[int, FrameRecord]] = []
    last_seq: int | None = None  # last frame seq accepted in the current session

    def refuse(index: int, frame: FrameRecord, reason: str, seg: _Segment | None = None) -> None:
        results[index] = FrameResult(
            index, frame.seq, "not_authentic", reason, seg.session if seg else None, seg.segment if seg else None
        )
        problems.append(f"frame seq {frame.seq} (record {index}): {reason}")

    def problem(state: _SessionState | None, msg: str) -> None:
        problems.append(msg)
        if state is not None:
            state.problems.append(msg)

    def session_for(item: _Segment | _End, index: int) -> tuple[_SessionState, bool]:
        """The session state ``item`` belongs to, and whether it is new (a later session is a splice)."""
        state = sessions[-1] if sessions else None
        if state is not None and state.session == item.session:
            return state, False
        if state is not None:
            problem(state, f"spliced session: session {item.session[:8]}... follows {state.session[:8]}... at record {index}")
        first = item.segment if isinstance(item, _Segment) else item.segments
        fresh = _SessionState(item.session, item.device, item.key_id, first, None)
        if sessions:
            fresh.problems.append("spliced onto the session before it")
        sessions.append(fresh)
        return fresh, True

    for index, record in enumerate(records):
        if isinstance(record, FrameRecord):
            pending.append((index, record))
            continue
        assert isinstance(record, ManifestRecord)
        what = "manifest"
        try:
            envelope = Envelope.parse(record.envelope)
            if envelope.payload_type == END_PAYLOAD_TYPE:
                what = "end marker"
                item: _Segment | _End = _end(envelope, verifier)
            else:
                item = _segment(envelope, verifier)
        except (FormatError, _ManifestInvalid) as e:
            problem(sessions[-1] if sessions else None, f"{what} (record {index}) is not valid: {e}")
            for i, frame in pending:
                refuse(i, frame, "its manifest is not valid")
            pending = []
            continue
        state, new = session_for(item, index)
        if new:
            last_seq = None
        if isinstance(item, _End):
            for i, frame in pending:
                refuse(i, frame, "not listed in any segment before the session's end marker: inserted")
            pending = []
            _close(state, item, index, problem)
            continue
        seg = item
        if state.ended is not None:
            problem(state, f"manifest (record {index}): segment {seg.segment} comes after the session's end marker")
        elif not new:
            _link(state, seg, index, problem)
        state.last = seg
        state.segments += 1
        state.by_number.setdefault(seg.segment, seg)
        state.listed += len(seg.frames)
        end = seg.first_seq + len(seg.frames)
        for i, frame in pending:
            if not seg.first_seq <= frame.seq < end:
                refuse(i, frame, f"seq is not in segment {seg.segment} ({seg.first_seq}..{end - 1}): inserted", seg)
            elif last_seq is not None and frame.seq <= last_seq:
                refuse(i, frame, f"seq comes after seq {last_seq}: reordered or duplicated", seg)
            elif seg.frames[frame.seq - seg.first_seq][0] != frame_digest(seg.frame_hash, frame.jpeg).hex():
                refuse(i, frame, f"JPEG hash differs from segment {seg.segment}'s: modified", seg)
            elif seg.frames[frame.seq - seg.first_seq][1] != frame.capture_wall_ns:
                refuse(i, frame, f"capture time differs from segment {seg.segment}'s: modified", seg)
            else:
                results[i] = FrameResult(i, frame.seq, "authentic", "", seg.session, seg.segment)
                state.authentic += 1
                last_seq = frame.seq
        if any(results[i].status != "authentic" for i, _ in pending):
            state.problems.append(f"segment {seg.segment} has frames that are not authentic")
        pending = []
    for i, frame in pending:
        if sessions:
            refuse(i, frame, "no signed manifest follows this frame: appended or truncated recording")
            sessions[-1].problems.append("frames after the last manifest")
        else:
            results[i] = FrameResult(i, frame.seq, "not_signed", "no manifest in the recording")
    frames = tuple(results[i] for i in sorted(results))
    session_results = tuple(_session_result(s) for s in sessions)
    if problems:
        verdict: Verdict = "not_authentic"
    elif not sessions:
        verdict = "not_signed"
    elif any(s.verdict == "authentic_missing_frames" for s in session_results):
        verdict = "authentic_missing_frames"
    else:
        verdict = "authentic"
    return StreamReport("stream", verdict, session_results, frames, tuple(problems)), sessions


def _link(state: _SessionState, seg: _Segment, index: int, problem: Any) -> None:
    """Check that ``seg`` directly follows ``state.last`` in the same session (the hash chain)."""
    last = state.last
    found: list[str] = []
    if last is None:
        found.append(f"segment {seg.segment} follows the session's end marker")
    elif seg.segment != last.segment + 1:
        if seg.segment > last.segment + 1:
            found.append(f"segments {last.segment + 1}..{seg.segment - 1} are missing: removed")
        else:
            found.append(f"segment {seg.segment} after segment {last.segment}: reordered or replayed")
    elif seg.previous != last.digest or seg.linked_frame != last.frames[0][0]:
        found.append(f"segment {seg.segment} does not chain to segment {last.segment} (previous anchor differs)")
    elif seg.first_seq != last.first_seq + len(last.frames):
        found.append(f"segment {seg.segment} starts at seq {seg.first_seq}, not {last.first_seq + len(last.frames)}")
    if seg.key_id != state.key_id:
        found.append(f"signing key changed within the session ({state.key_id[:16]}... -> {seg.key_id[:16]}...)")
    if last is not None and seg.frame_hash != last.frame_hash:
        found.append(f"frame hash changed within the session ({last.frame_hash} -> {seg.frame_hash})")
    for msg in found:
        problem(state, f"manifest (record {index}): {msg}")


def _close(state: _SessionState, end: _End, index: int, problem: Any) -> None:
    """Check the end marker against the recorded segments; a good one marks the session as ended."""
    last = state.last
    where = f"end marker (record {index})"
    found: list[str] = []
    if state.ended is not None:
        found.append("a second end marker for the session")
    elif last is None:
        pass  # the recording holds the session's end marker only: nothing to chain to
    elif end.segments != last.segment + 1:
        if end.segments > last.segment + 1:
            found.append(
                f"segments {last.segment + 1}..{end.segments - 1} are missing before it: removed (the end was cut)"
            )
        else:
            found.append(f"counts {end.segments} segments, but segment {last.segment} is in the recording")
    elif end.previous != last.digest:
        found.append(f"does not chain to segment {last.segment} (previous anchor differs)")
    elif end.frames != last.first_seq + len(last.frames):
        found.append(f"counts {end.frames} frames; the segments list {last.first_seq + len(last.frames)}")
    if end.key_id != state.key_id:
        found.append(f"signed by another key than the session ({state.key_id[:16]}... -> {end.key_id[:16]}...)")
    for msg in found:
        problem(state, f"{where}: {msg}")
    if not found:
        state.ended = end


def _session_result(state: _SessionState) -> SessionResult:
    missing = state.listed - state.authentic
    if state.problems:
        verdict: Verdict = "not_authentic"
    elif missing:
        verdict = "authentic_missing_frames"
    else:
        verdict = "authentic"
    begins = state.first_segment == 0
    notes: list[str] = []
    if not begins:
        notes.append(
            f"the recording starts at segment {state.first_segment}: the session's start is not in it "
            "(the recorder joined late, or the start was cut)"
        )
    if state.ended is None:
        notes.append(
            "no end marker: the end may have been cut (normal when the recorder stopped before the session ended)"
        )
    return SessionResult(
        session=state.session,
        device=state.device,
        key_id=state.key_id,
        first_segment=state.first_segment,
        segments=state.segments,
        frames_listed=state.listed,
        frames_authentic=state.authentic,
        frames_missing=missing,
        verdict=verdict,
        problems=tuple(state.problems),
        begins=begins,
        ends=state.ended is not None,
        end_reason=state.ended.reason if state.ended else None,
        total_segments=state.ended.segments if state.ended else None,
        notes=tuple(notes),
    )


_SNAPSHOT_FIELDS = {
    "type", "alg", "frame_hash", "key_id", "device", "session", "seq", "segment", "previous",
    "digest", "capture_wall_ns", "width", "height",
}  # fmt: skip


def _verify_snapshot(
    records: Iterable[Record], *, trust_root: x509.Certificate, now: datetime
) -> tuple[StreamReport, dict[str, Any] | None]:
    """The snapshot's report, and its payload when the signature is valid."""
    records = list(records)
    frames = [(i, r) for i, r in enumerate(records) if isinstance(r, FrameRecord)]
    signatures = [r for r in records if isinstance(r, SnapshotRecord)]
    others = [r for r in records if isinstance(r, ManifestRecord)]
    if len(frames) != 1 or len(signatures) != 1 or others:
        raise FormatError(
            f"a snapshot recording holds one frame and one snapshot signature; found {len(frames)} frames, "
            f"{len(signatures)} signatures, {len(others)} segment manifests"
        )
    index, frame = frames[0]
    problems: list[str] = []
    payload: dict[str, Any] | None = None
    try:
        envelope = Envelope.parse(signatures[0].envelope)
        p = _verify_envelope(envelope, _chain_verifier(trust_root, now), SNAPSHOT_PAYLOAD_TYPE)
        if p.get("type") != SNAPSHOT_TYPE:
            raise _ManifestInvalid(f"payload type {p.get('type')!r}, expected {SNAPSHOT_TYPE!r}")
        _fields(p, SNAPSHOT_TYPE, _SNAPSHOT_FIELDS)
        _hex(p["session"], "session", 32)
        _hex(p["digest"], "digest", 64)
        frame_hash = _frame_hash(p["frame_hash"])
        for name in ("seq", "segment", "capture_wall_ns", "width", "height"):
            _int(p[name], name)
        if (p["segment"] == 0) != (_optional_hex(p["previous"], "previous") is None):
            raise _ManifestInvalid(f"segment {p['segment']} with previous {p['previous']}; null only in segment 0")
        if p["digest"] != frame_digest(frame_hash, frame.jpeg).hex():
            problems.append("JPEG hash differs from the signed one: modified")
        if p["seq"] != frame.seq or p["capture_wall_ns"] != frame.capture_wall_ns:
            problems.append("seq or capture time differs from the signed ones: modified")
        payload = p
        device, key_id, session, segment = str(p["device"]), envelope.keyid, str(p["session"]), int(p["segment"])
    except (FormatError, _ManifestInvalid) as e:
        problems.append(f"snapshot signature is not valid: {e}")
        device = key_id = session = ""
        segment = 0
    status: FrameStatus = "not_authentic" if problems else "authentic"
    verdict: Verdict = "not_authentic" if problems else "authentic"
    result = FrameResult(index, frame.seq, status, "; ".join(problems), session or None, segment if session else None)
    session_result = SessionResult(
        session, device, key_id, segment, 0, 1, 0 if problems else 1, 0, verdict, tuple(problems)
    )
    report = StreamReport("snapshot", verdict, (session_result,), (result,), tuple(problems))
    return report, payload if not problems else None


def link_snapshot(
    snapshot: Sequence[Record], recording: Sequence[Record], *, trust_root: x509.Certificate, now: datetime
) -> SnapshotLink:
    """Check that ``snapshot`` (one frame + its signature) is a frame of a session in ``recording``. Pure.

    ``in_session`` needs an authentic snapshot and recording, the same session
    id, key and device, and, where the recording covers the place the snapshot
    names, the same frame hash under its seq in its segment (and that segment's
    anchor), or its anchor as the digest of the segment before.
    """
    verifier = _chain_verifier(trust_root, now)
    snap_report, p = _verify_snapshot(snapshot, trust_root=trust_root, now=now)
    if any(isinstance(r, SnapshotRecord) for r in recording):
        raise FormatError("the recording to check a snapshot against holds a snapshot, not a stream")
    rec_report, states = _verify_stream(recording, verifier)
    seq = snap_report.frames[0].seq

    def link(verdict: LinkVerdict, detail: str) -> SnapshotLink:
        session = str(p["session"]) if p else ""
        segment = int(p["segment"]) if p else None
        return SnapshotLink(verdict, session, seq, segment, detail, snap_report, rec_report)

    if p is None:
        return link("not_authentic", f"the snapshot is not authentic: {snap_report.problems[0]}")
    if rec_report.verdict not in ACCEPTED:
        first = rec_report.problems[0] if rec_report.problems else "no signed manifest"
        return link("not_authentic", f"the recording is {rec_report.verdict.replace('_', ' ')}: {first}")
    session, segment, previous = p["session"], p["segment"], p["previous"]
    state = next((s for s in states if s.session == session), None)
    if state is None:
        held = ", ".join(f"{s.session[:16]}..." for s in states)
        return link("not_in_session", f"the snapshot is from stream session {session[:16]}..., the recording holds {held}")
    if p["key_id"] != state.key_id or p["device"] != state.device:
        return link(
            "not_authentic",
            f"the snapshot is signed by key {p['key_id'][:16]}... of {p['device']}, "
            f"the session by key {state.key_id[:16]}... of {state.device}",
        )
    seg = state.by_number.get(segment)
    if seg is not None:
        if not seg.first_seq <= seq < seg.first_seq + len(seg.frames):
            last = seg.first_seq + len(seg.frames) - 1
            return link("not_authentic", f"recorded segment {segment} lists seq {seg.first_seq}..{last}, not seq {seq}")
        if seg.frame_hash != p["frame_hash"] or seg.frames[seq - seg.first_seq] != (p["digest"], p["capture_wall_ns"]):
            return link("not_authentic", f"recorded segment {segment} lists another frame (hash or time) under seq {seq}")
        if seg.previous != previous:
            return link("not_authentic", f"the snapshot's anchor is not recorded segment {segment}'s previous anchor")
        return link("in_session", f"frame seq {seq} of the session, listed with the same hash in recorded segment {segment}")
    before = state.by_number.get(segment - 1)
    if before is not None:
        if before.digest != previous:
            return link("not_authentic", f"the snapshot's anchor is not the digest of recorded segment {segment - 1}")
        return link(
            "in_session", f"frame seq {seq} of the session, chained to recorded segment {segment - 1} (segment {segment} is not recorded)"
        )
    if state.ended is not None and segment >= state.ended.segments:
        return link("not_authentic", f"the snapshot names segment {segment}; the session ended after {state.ended.segments}")
    recorded = sorted(state.by_number)
    span = f"{recorded[0]}..{recorded[-1]}" if recorded else "none"
    return link(
        "in_session",
        f"frame seq {seq} of the session (same session id, key and device); its segment {segment} is outside "
        f"the recorded segments ({span}), so its place in the chain is not checked",
    )
