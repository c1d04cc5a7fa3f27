"""Verify a recorded signed stream (or a signed snapshot): a pure core.

Input: the records of a recording (frames, signed manifests and the
recorder's unsigned notes, in the order they were received), the
manufacturer root certificate and ``now``. Output: a frozen
:class:`StreamReport` with a verdict per frame, per stream session and
overall:

* ``authentic``: every frame of the session is in the recording, listed,
  unchanged and in order in a validly signed manifest, and the manifests
  form one unbroken chain from segment 0 to the signed end marker;
* ``authentic_missing_frames``: the same, except frames the recording lacks
  for a reason the recorder noted: the server said it did not send them
  (a slow or fps-capped viewer, a recorder that joined a running session),
  or the recorder stopped before the session ended;
* ``not_authentic``: a frame was modified, inserted or reordered, frames or
  segments the manifests commit to are missing without such a note (removed
  from the recording: one frame, a whole segment, the start, the end),
  sessions were spliced, the signing key changed, a manifest's or end
  marker's signature or certificate chain is bad, an end marker does not
  chain to the last segment, or frames follow the last manifest;
* ``not_signed``: no manifest at all.

Every manifest commits to the exact run of seq numbers it lists (with the
digests and capture times), segment 0 starts at seq 0 and each segment
starts where the one before ended, and the end marker counts the segments
and frames of the whole session. So the verifier knows every seq of a
session and names each one the recording lacks (:class:`Gap`: seq numbers,
segment numbers, capture times when the manifest is recorded), and of what
kind:

* ``not_sent``: the server told the recorder it did not send it
  (``X-Frames-Not-Sent``, kept as a note record). Unsigned: it is the
  recorder's report of what the server said, not the camera's signature;
* ``recorder_stopped``: after the seq at which the recorder noted that it
  stopped (its frame or time limit, the connection closed, an interrupt);
* ``removed``: neither: the recording was cut. Not authentic.

``report.check()`` raises :class:`NotAuthentic` unless the verdict is one of
the first two (verification raises; the report carries the detail);
``report.check(complete=True)`` also raises :class:`Incomplete` when any
frame, segment, the session's start or its signed end marker is missing,
for whatever reason.

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
      type 4 note:      the recorder's unsigned note, canonical JSON (:class:`NoteRecord`)

This is a client tool (it runs on the lab's machine, not on the camera), so
it lives in ``refcam/``, outside the firmware payload.

Example::

    records = parse_container(Path("rec.rcs").read_bytes())
    report = verify_records(records, trust_root=root_cert, now=datetime.now(UTC))
    print(report.verdict, report.complete)      # "authentic" True
    report.check()
    link = link_snapshot(parse_container(snap), records, trust_root=root_cert, now=now)
    link.check()                                # the snapshot is a frame of the recorded session
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from bootloader.pki import STREAM_SIGNING_EKU
from bootloader.x509verify import CertificateChainError, verify_certificate_chain
from device.stream.errors import FormatError, StreamError
from device.stream.signing import (
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

if TYPE_CHECKING:
    from device.rtsp.mediasign import GopHasher, MediaSigningSei

MAGIC = b"RCSTRM1\n"
RECORD_HEADER = ">BI"  # record type, body length
RECORD_HEADER_SIZE = 5
assert struct.calcsize(RECORD_HEADER) == RECORD_HEADER_SIZE
FRAME_HEADER = ">QQ"  # seq, capture wall time (ns)
FRAME_HEADER_SIZE = 16
assert struct.calcsize(FRAME_HEADER) == FRAME_HEADER_SIZE
TYPE_FRAME, TYPE_MANIFEST, TYPE_SNAPSHOT, TYPE_NOTE = 1, 2, 3, 4
MAX_RECORD = 64 * 2**20  # bytes
MAX_SEGMENT_FRAMES = 10_000
NOTE_TYPE = "refcam.recorder.note/1"
MAX_NOTE_REASON = 200  # characters
MAX_LISTED_GAPS = 20  # gaps spelled out in an Incomplete message (all are in SessionResult.gaps)

GapKind = Literal["not_sent", "recorder_stopped", "removed"]
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


@dataclass(frozen=True)
class NoteRecord:
    """What the recorder was told, or did; signed by nothing (the recorder's word, not the camera's).

    Canonical JSON in the container::

        {"type": "refcam.recorder.note/1", "session": "<32 hex>",
         "not_sent": [[first, last], ...],   # seq ranges the server said it did not send (X-Frames-Not-Sent)
         "stopped": false,                  # true: the recorder stopped before the session's end marker
         "stopped_after": 299 | null,       # the last seq it took (null: none)
         "reason": "frame limit reached"}
    """

    session: str
    not_sent: tuple[tuple[int, int], ...] = ()
    stopped: bool = False
    stopped_after: int | None = None
    reason: str = ""

    def to_json(self) -> bytes:
        return canonical_json(
            {
                "type": NOTE_TYPE,
                "session": self.session,
                "not_sent": [list(r) for r in self.not_sent],
                "stopped": self.stopped,
                "stopped_after": self.stopped_after,
                "reason": self.reason[:MAX_NOTE_REASON],
            }
        )

    @classmethod
    def parse(cls, body: bytes) -> NoteRecord:
        """Parse a note strictly; raises :class:`FormatError`."""
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise FormatError(f"recorder note is not JSON: {e}") from e
        fields = {"type", "session", "not_sent", "stopped", "stopped_after", "reason"}
        if not isinstance(doc, dict) or set(doc) != fields or doc["type"] != NOTE_TYPE:
            raise FormatError(f"recorder note is not a {NOTE_TYPE} object with fields {sorted(fields)}")
        session, not_sent, after, reason = doc["session"], doc["not_sent"], doc["stopped_after"], doc["reason"]
        if not (isinstance(session, str) and len(session) == 32 and all(c in "0123456789abcdef" for c in session)):
            raise FormatError("recorder note session is not 32 lowercase hex digits")
        ranges: list[tuple[int, int]] = []
        if not isinstance(not_sent, list):
            raise FormatError("recorder note not_sent is not a list")
        for item in not_sent:
            if not (
                isinstance(item, list) and len(item) == 2 and all(_natural(v) for v in item) and item[0] <= item[1]
            ):
                raise FormatError(f"recorder note range {item!r} is not [first, last] with 0 <= first <= last")
            ranges.append((item[0], item[1]))
        if not isinstance(doc["stopped"], bool) or not (after is None or _natural(after)):
            raise FormatError("recorder note stopped / stopped_after are not a boolean / a seq or null")
        if not isinstance(reason, str) or len(reason) > MAX_NOTE_REASON:
            raise FormatError(f"recorder note reason is not a string of at most {MAX_NOTE_REASON} characters")
        return cls(session, tuple(ranges), doc["stopped"], after, reason)


def _natural(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


Record = FrameRecord | ManifestRecord | SnapshotRecord | NoteRecord


class NotAuthentic(StreamError):
    """A recorded stream or snapshot failed verification (see the report for details)."""


class Incomplete(StreamError):
    """A recording lacks frames, segments, its session's start or signed end where completeness was required."""


def encode_record(record: Record) -> bytes:
    if isinstance(record, FrameRecord):
        body = struct.pack(FRAME_HEADER, record.seq, record.capture_wall_ns) + record.jpeg
        kind = TYPE_FRAME
    elif isinstance(record, NoteRecord):
        body, kind = record.to_json(), TYPE_NOTE
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
        elif kind == TYPE_NOTE:
            try:
                records.append(NoteRecord.parse(body))
            except FormatError as e:
                raise FormatError(f"record at offset {offset}: {e}") from e
        else:
            raise FormatError(f"record at offset {offset} has unknown type {kind} (expected 1 to 4)")
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
class Gap:
    """A run of consecutive seqs of a session that the recording lacks, all of one kind.

    ``segments`` is the first and last segment the run lies in;
    ``capture_wall_ns`` the capture time of each of its frames, from the
    recorded manifests, or empty when those manifests are missing too
    (``manifests_missing``): a whole segment cut with its manifest, the start
    or the end.
    """

    first_seq: int
    last_seq: int
    kind: GapKind
    segments: tuple[int, int]
    capture_wall_ns: tuple[int, ...] = ()
    manifests_missing: bool = False
    # With manifests_missing: the capture times around the run, from the recorded manifests (or the
    # end marker), when there are any: its frames were captured after ``after_ns``, before ``before_ns``.
    after_ns: int | None = None
    before_ns: int | None = None

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1

    def describe(self) -> str:
        """``seq 5..9 (segment 1, captured 08:13:20.166Z..08:13:20.300Z)``."""
        seqs = f"seq {self.first_seq}" if self.count == 1 else f"seq {self.first_seq}..{self.last_seq}"
        a, b = self.segments
        where = f"segment {a}" if a == b else f"segments {a}..{b}"
        if self.capture_wall_ns:
            first, last = wall_time(self.capture_wall_ns[0]), wall_time(self.capture_wall_ns[-1])
            when = f"captured {first}" if self.count == 1 else f"captured {first}..{last}"
            return f"{seqs} ({where}, {when})"
        window = ""
        if self.after_ns is not None and self.before_ns is not None:
            window = f", captured between {wall_time(self.after_ns)} and {wall_time(self.before_ns)}"
        elif self.before_ns is not None:
            window = f", captured before {wall_time(self.before_ns)}"
        elif self.after_ns is not None:
            window = f", captured after {wall_time(self.after_ns)}"
        return f"{seqs} ({where}, manifests missing too{window})"


GAP_TEXT: dict[GapKind, str] = {
    "not_sent": "not sent to the recorder (the server said so; the recorder's unsigned note)",
    "recorder_stopped": "after the recorder stopped (its unsigned note)",
    "removed": "removed from the recording (no note says they were not sent)",
}


def wall_time(ns: int) -> str:
    """Capture time as ISO 8601 UTC with milliseconds (integer arithmetic: no float rounding)."""
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


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
    gaps: tuple[Gap, ...] = ()  # every seq of the session the recording lacks, by kind
    recorder_stopped: str | None = None  # the recorder's note on why the recording ends before the session

    @property
    def complete(self) -> bool:
        """The whole session: its start, every frame and its signed end marker are in the recording."""
        return self.begins and self.ends and not self.gaps


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
        return self.kind == "stream" and self.verdict in ACCEPTED and all(s.complete for s in self.sessions)

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
            gaps = [g for s in self.sessions for g in s.gaps]
            named = [f"frames {g.describe()} {g.kind.replace('_', ' ')}" for g in gaps[:MAX_LISTED_GAPS]]
            if len(gaps) > MAX_LISTED_GAPS:
                named.append(f"{len(gaps) - MAX_LISTED_GAPS} more runs")
            missing = "; ".join([*self.notes, *named]) or "not a stream recording"
            raise Incomplete(f"{self.kind} is authentic but incomplete: {missing}")


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


@dataclass(frozen=True)
class _Trust:
    """What every certificate chain in a recording is validated against."""

    root: x509.Certificate
    now: datetime


def _verify_envelope(envelope: Envelope, trust: _Trust, payload_type: str) -> dict[str, Any]:
    if envelope.payload_type != payload_type:
        raise _ManifestInvalid(f"payload type {envelope.payload_type!r}, expected {payload_type!r}")
    leaf = envelope.certificates[0]
    try:
        # Only a certificate issued for stream signing may sign streams (not e.g. the TLS key).
        verify_certificate_chain(
            leaf, envelope.certificates[1:], trust_root=trust.root, now=trust.now, purpose=STREAM_SIGNING_EKU
        )
    except CertificateChainError as e:
        raise _ManifestInvalid(str(e)) from e
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


def _segment(envelope: Envelope, trust: _Trust) -> _Segment:
    p = _verify_envelope(envelope, trust, SEGMENT_PAYLOAD_TYPE)
    _fields(
        p,
        SEGMENT_TYPE,
        {"type", "alg", "frame_hash", "key_id", "session", "segment", "first_seq", "last_seq", "frames",
         "previous", "linked_frame", "device"},
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
    if _int(p["last_seq"], "last_seq") != first_seq + len(listed) - 1:
        # The manifest commits to its run of seqs twice: as bounds and as the list itself.
        raise _ManifestInvalid(
            f"segment {segment} covers seq {first_seq}..{p['last_seq']} but lists {len(listed)} frames"
        )
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


def _end(envelope: Envelope, trust: _Trust) -> _End:
    p = _verify_envelope(envelope, trust, END_PAYLOAD_TYPE)
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
    end_seen: _End | None = None  # the first validly signed end marker of the session, chained or not
    gaps: list[Gap] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    recorder_stopped: str | None = None


def verify_records(records: Sequence[Record], *, trust_root: x509.Certificate, now: datetime) -> StreamReport:
    """Verify a recording (see the module docstring). Pure: no I/O, ``now`` is given."""
    if any(isinstance(r, SnapshotRecord) for r in records):
        return _verify_snapshot(records, trust_root=trust_root, now=now)[0]
    return _verify_stream(records, _Trust(trust_root, now))[0]


def _verify_stream(
    records: Sequence[Record], trust: _Trust
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
        if isinstance(record, NoteRecord):
            continue  # read below, per session
        assert isinstance(record, ManifestRecord)
        what = "manifest"
        try:
            envelope = Envelope.parse(record.envelope)
            if envelope.payload_type == END_PAYLOAD_TYPE:
                what = "end marker"
                item: _Segment | _End = _end(envelope, trust)
            else:
                item = _segment(envelope, trust)
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
    notes = [r for r in records if isinstance(r, NoteRecord)]
    for state in sessions:
        present = {f.seq for f in frames if f.session == state.session}
        _account(state, present, [n for n in notes if n.session == state.session], problem)
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
    if state.end_seen is None:
        state.end_seen = end  # signed: it tells how long the session was, even when it does not chain
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


def _merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _account(state: _SessionState, present: set[int], notes: Sequence[NoteRecord], problem: Any) -> None:
    """Name every seq of the session the recording lacks, and why (module docstring); problems for removals.

    The session's seqs are known from the manifests: 0 up to the end
    marker's frame count, or up to the last recorded segment's last seq when
    the end marker is not in the recording. Between and around the recorded
    segments the seqs are known too (each segment starts where the one
    before ended), only not their capture times.
    """
    not_sent = _merge(r for n in notes for r in n.not_sent)
    starts = [a for a, _ in not_sent]
    stops = [n for n in notes if n.stopped]
    stop = stops[-1] if stops else None

    def kind(seq: int) -> GapKind:
        i = bisect.bisect_right(starts, seq) - 1
        if i >= 0 and not_sent[i][0] <= seq <= not_sent[i][1]:
            return "not_sent"
        if stop is not None and (stop.stopped_after is None or seq > stop.stopped_after):
            return "recorder_stopped"
        return "removed"

    segs = sorted(state.by_number.values(), key=lambda g: g.segment)
    end = state.end_seen
    next_seq = next_segment = 0
    gaps: list[Gap] = []

    def scan(
        first: int, last: int, segments: tuple[int, int], seg: _Segment | None,
        window: tuple[int | None, int | None] = (None, None),
    ) -> None:  # fmt: skip
        run: list[int] = []
        for seq in range(first, last + 1):
            if seq in present:
                continue
            k = kind(seq)
            if run and (run[-1] != seq - 1 or kind(run[-1]) != k):
                gaps.append(_gap(run, kind(run[0]), segments, seg, window))
                run = []
            run.append(seq)
        if run:
            gaps.append(_gap(run, kind(run[0]), segments, seg, window))

    after: int | None = None  # capture time of the last frame the recorded manifests list so far
    for seg in segs:
        if seg.first_seq > next_seq:  # segments before it, manifests and all, are not in the recording
            scan(next_seq, seg.first_seq - 1, (next_segment, max(next_segment, seg.segment - 1)), None,
                 (after, seg.frames[0][1]))  # fmt: skip
        last_seq = seg.first_seq + len(seg.frames) - 1
        scan(max(seg.first_seq, next_seq), last_seq, (seg.segment, seg.segment), seg)
        next_seq, next_segment = max(next_seq, last_seq + 1), seg.segment + 1
        after = seg.frames[-1][1]
    if end is not None and end.frames > next_seq:  # segments the end marker counts after the last recorded one
        scan(next_seq, end.frames - 1, (next_segment, max(next_segment, end.segments - 1)), None,
             (after, end.end_wall_ns))  # fmt: skip
    state.gaps = _join(gaps)

    for gap in state.gaps:
        if gap.kind == "removed":
            problem(state, f"frames {gap.describe()} are missing: {GAP_TEXT['removed']}")
    if state.gaps:
        by_kind = {k: sum(g.count for g in state.gaps if g.kind == k) for k in GAP_TEXT}
        counts = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in by_kind.items() if n)
        state.notes.append(f"{sum(by_kind.values())} frames missing in {len(state.gaps)} runs ({counts})")
    if state.first_segment != 0:
        state.notes.append("the session's start (segment 0, seq 0) is not in the recording")
    if state.ended is None and end is None:
        if stop is not None:
            where = "before any frame" if stop.stopped_after is None else f"after seq {stop.stopped_after}"
            state.recorder_stopped = stop.reason
            state.notes.append(
                f"no end marker: the recorder stopped {where} ({stop.reason}; its unsigned note), "
                "so the session's end is not in the recording"
            )
        elif segs:
            last = segs[-1]
            last_seq = last.first_seq + len(last.frames) - 1
            problem(
                state,
                f"the end is missing: no end marker after segment {last.segment} (seq {last_seq}, captured "
                f"{wall_time(last.frames[-1][1])}) and no recorder note that it stopped there: "
                "the end was removed from the recording",
            )
    elif state.ended is None:
        state.notes.append("the session's signed end marker does not chain to the recording (see the problems)")


def _gap(
    run: list[int], kind: GapKind, segments: tuple[int, int], seg: _Segment | None,
    window: tuple[int | None, int | None] = (None, None),
) -> Gap:  # fmt: skip
    if seg is None:
        return Gap(run[0], run[-1], kind, segments, (), True, window[0], window[1])
    walls = tuple(seg.frames[seq - seg.first_seq][1] for seq in run)
    return Gap(run[0], run[-1], kind, segments, walls)


def _join(gaps: list[Gap]) -> list[Gap]:
    """Merge runs that continue each other across a segment boundary (same kind, manifests alike)."""
    joined: list[Gap] = []
    for gap in gaps:
        prev = joined[-1] if joined else None
        if (
            prev is not None
            and prev.last_seq + 1 == gap.first_seq
            and prev.kind == gap.kind
            and prev.manifests_missing == gap.manifests_missing
        ):
            joined[-1] = Gap(
                prev.first_seq, gap.last_seq, gap.kind, (prev.segments[0], gap.segments[1]),
                prev.capture_wall_ns + gap.capture_wall_ns, gap.manifests_missing, prev.after_ns, gap.before_ns,
            )  # fmt: skip
        else:
            joined.append(gap)
    return joined


def _session_result(state: _SessionState) -> SessionResult:
    missing = state.listed - state.authentic
    if state.problems:
        verdict: Verdict = "not_authentic"
    elif missing or state.gaps:
        verdict = "authentic_missing_frames"
    else:
        verdict = "authentic"
    begins = state.first_segment == 0
    notes = state.notes
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
        gaps=tuple(state.gaps),
        recorder_stopped=state.recorder_stopped,
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
    others = [r for r in records if isinstance(r, ManifestRecord | NoteRecord)]
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
        p = _verify_envelope(envelope, _Trust(trust_root, now), SNAPSHOT_PAYLOAD_TYPE)
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
    trust = _Trust(trust_root, now)
    snap_report, p = _verify_snapshot(snapshot, trust_root=trust_root, now=now)
    if any(isinstance(r, SnapshotRecord) for r in recording):
        raise FormatError("the recording to check a snapshot against holds a snapshot, not a stream")
    rec_report, states = _verify_stream(recording, trust)
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


# -- signed H.264 (RTSPS recordings) ---------------------------------------------

GopStatus = Literal["authentic", "tampered", "missing", "unsigned"]


@dataclass(frozen=True)
class GopResult:
    """One GOP of a signed H.264 recording (``index`` in the file; ``gop`` the signed counter)."""

    index: int | None  # None for a GOP the signatures name but the file lacks
    gop: int | None
    status: GopStatus
    frames: int
    detail: str


@dataclass(frozen=True)
class H264Report:
    gops: tuple[GopResult, ...]
    signer: str | None  # "serial RC1-0001, firmware 1.0.0, manufacturer refcam" from the signing SEIs

    @property
    def verdict(self) -> Verdict:
        statuses = {g.status for g in self.gops}
        if "tampered" in statuses or "missing" in statuses:
            return "not_authentic"
        if "authentic" not in statuses:
            return "not_signed"
        return "authentic"

    def check(self) -> None:
        if self.verdict != "authentic":
            bad = [g for g in self.gops if g.status in ("tampered", "missing")]
            raise NotAuthentic("; ".join(g.detail for g in bad[:MAX_LISTED_GAPS]) or "no signed GOP")


def is_annexb(data: bytes) -> bool:
    return data.startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01"))


def verify_h264(data: bytes, *, trust_root: x509.Certificate, now: datetime) -> H264Report:
    """Verify a recorded Annex B H.264 stream signed with ONVIF Media Signing (:mod:`device.rtsp.mediasign`).

    Each GOP is ``authentic`` (its linked NAL hashes give the GOP hash of the
    signed SEI that follows it, the SEI's chain ends at ``trust_root`` with the
    stream-signing purpose, and its linked hash is the previous GOP's anchor),
    ``tampered`` (they differ, or that SEI's signature or chain is bad),
    ``unsigned`` (no SEI signs it: the recording's last GOP, or one whose
    SEI was cut out) or, for GOPs the SEI counters skip, ``missing``.
    """
    from device.rtsp.errors import MediaError
    from device.rtsp.mediasign import GopHasher, is_primary_slice, opens_gop, parse_sei
    from device.rtsp.rtp import split_annexb

    trust = _Trust(trust_root, now)
    gops: list[_RecordedGop] = []
    certificates: bytes | None = None  # from a certificate SEI, for SEIs that carry no chain
    signer: str | None = None
    seen: set[bytes] = set()  # the SEIs read: a camera may send each twice, byte for byte
    for nal in split_annexb(data):
        try:
            sei = parse_sei(nal)
        except MediaError as exc:
            if gops:
                gops[-1].claims.append(f"signing SEI is malformed: {exc}")
            continue
        if sei is not None:
            if sei.certificate_sei:
                # Only a source of certificates: each is verified to the root when an SEI uses it.
                with contextlib.suppress(MediaError):  # a malformed one supplies none
                    certificates = sei.certificate_chain or certificates
                continue
            if not gops or nal in seen:
                continue  # it signs a GOP before the recording started, or repeats one (redundancy)
            seen.add(nal)
            target = _signed_gop(gops, sei)
            try:
                target.claims.append(_verify_sei(sei, trust, certificates))
                vendor = sei.vendor
                if vendor is not None:
                    signer = (f"serial {vendor.serial_number}, firmware {vendor.firmware_version}, "
                              f"manufacturer {vendor.manufacturer}")
            except (_ManifestInvalid, MediaError) as exc:
                target.claims.append(f"signature in GOP {target.index + 1} does not verify: {exc}")
            continue
        if opens_gop(nal):
            gops.append(_RecordedGop(len(gops), GopHasher()))
        if gops:
            gop = gops[-1]
            gop.hasher.add(nal)
            if nal[0] & 0x1F in (1, 5) and is_primary_slice(nal):
                gop.frames += 1
    return H264Report(tuple(_gop_results(gops)), signer)


@dataclass
class _RecordedGop:
    index: int
    hasher: GopHasher
    frames: int = 0
    claims: list[_Claim | str] = field(default_factory=list)  # what verified SEIs claim, or why one failed

    @property
    def anchor(self) -> bytes | None:
        return self.hasher.anchor


@dataclass(frozen=True)
class _Claim:
    counter: int
    nal_count: int
    gop_hash: bytes
    linked_hash: bytes
    hash_list: tuple[bytes, ...] | None


def _signed_gop(gops: list[_RecordedGop], sei: MediaSigningSei) -> _RecordedGop:
    """The GOP an SEI signs: the open one or the one before it (the SEI comes before the next
    IDR, as refcam and the reference place it, or after it, which the specification allows).
    Told by the GOP hash; else, for a GOP whose bytes changed, by the NAL count when the one
    before is still unsigned; else the open one."""
    from device.rtsp.errors import MediaError

    current = gops[-1]
    if len(gops) < 2:
        return current
    try:
        info = sei.general
    except MediaError:  # reported against the open GOP when it is verified
        return current
    if info is None:
        return current
    previous = gops[-2]
    for gop in (current, previous):
        if info.gop_hash == gop.hasher.gop_hash() and info.nal_count == len(gop.hasher.hashes):
            return gop
    if not previous.claims and info.nal_count == len(previous.hasher.hashes) != len(current.hasher.hashes):
        return previous
    return current


def _verify_sei(sei: MediaSigningSei, trust: _Trust, certificates: bytes | None) -> _Claim:
    from cryptography.hazmat.primitives.asymmetric import ec

    from device.rtsp.errors import MediaError
    from device.rtsp.mediasign import SHA256_OID, verify_sei_signature

    if sei.signature is None:
        raise _ManifestInvalid("the SEI carries no signature (only streams signed every GOP are verified)")
    if sei.hash_oid not in (None, SHA256_OID):
        raise _ManifestInvalid(f"hash algorithm {sei.hash_oid.hex()} is not SHA-256")
    pem = sei.certificate_chain or certificates
    if pem is None:
        raise _ManifestInvalid("no certificate chain in the SEI or a certificate SEI before it")
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise _ManifestInvalid(f"certificate chain is not PEM: {e}") from e
    try:
        # Only a certificate issued for stream signing may sign streams (not e.g. the TLS key).
        verify_certificate_chain(chain[0], chain[1:], trust_root=trust.root, now=trust.now,
                                 purpose=STREAM_SIGNING_EKU)
    except CertificateChainError as e:
        raise _ManifestInvalid(str(e)) from e
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise _ManifestInvalid(f"signing key is {type(key).__name__}, not ECDSA")
    try:
        verify_sei_signature(sei, key)
    except InvalidSignature as e:
        raise _ManifestInvalid("signature does not verify") from e
    info = sei.general
    if info is None:
        raise MediaError("the SEI has no general GOP information")
    return _Claim(info.counter, info.nal_count, info.gop_hash, info.linked_hash, sei.hash_list)


def _gop_results(gops: list[_RecordedGop]) -> list[GopResult]:
    results: list[GopResult] = []
    expected: int | None = None  # the counter the next recorded GOP's SEI should carry
    previous_anchor: bytes | None = None  # of the GOP recorded before, when it verified
    for gop in gops:
        claim = _decisive_claim(gop)
        anchor, previous_anchor = previous_anchor, None
        if isinstance(claim, str):
            results.append(GopResult(gop.index, None, "tampered", gop.frames, f"GOP at {gop.index}: {claim}"))
            expected = None
            continue
        if claim is None:
            last = gop.index == len(gops) - 1
            why = "no signature after it (the recording ends here)" if last else "no signature for it"
            results.append(GopResult(gop.index, None, "unsigned", gop.frames, f"GOP at {gop.index}: {why}"))
            expected = None
            continue
        number = claim.counter
        hashes = list(gop.hasher.hashes)
        matches = gop.hasher.gop_hash() == claim.gop_hash and len(hashes) == claim.nal_count
        if expected is not None and number > expected:
            first_missing = expected
            if not matches:  # this GOP is `expected`; its signature travelled in a GOP cut out
                results.append(GopResult(gop.index, expected, "unsigned", gop.frames,
                                         f"GOP {expected} (at {gop.index}): its signature was in a missing GOP"))
                first_missing = expected + 1
            for missing in range(first_missing, number + (0 if matches else 1)):
                results.append(GopResult(None, missing, "missing", 0, f"GOP {missing} is missing from the recording"))
            if matches:
                results.append(GopResult(gop.index, number, "authentic", gop.frames, f"GOP {number}: authentic"))
                previous_anchor = gop.anchor
        elif expected is not None and number < expected:
            results.append(GopResult(gop.index, number, "tampered", gop.frames,
                                     f"GOP at {gop.index}: signed as GOP {number}, out of order"))
        elif matches and anchor is not None and claim.linked_hash != anchor:
            results.append(GopResult(gop.index, number, "tampered", gop.frames,
                                     f"GOP {number} (at {gop.index}): not linked to the GOP before it"))
        elif matches:
            results.append(GopResult(gop.index, number, "authentic", gop.frames, f"GOP {number}: authentic"))
            previous_anchor = gop.anchor
        else:
            results.append(GopResult(gop.index, number, "tampered", gop.frames,
                                     f"GOP {number} (at {gop.index}): {_difference(hashes, claim)}"))
        expected = number + 1
    return results


def _decisive_claim(gop: _RecordedGop) -> _Claim | str | None:
    """What decides a GOP signed by more than one SEI: every SEI that claims it must verify
    and agree with it. An SEI that fails (or one verified for other bytes) is not outvoted by
    a good one beside it: a camera repeats an SEI byte for byte (read once), never differently."""
    failed = [c for c in gop.claims if isinstance(c, str)]
    if failed:
        return failed[0]
    verified = [c for c in gop.claims if isinstance(c, _Claim)]
    if not verified:
        return None
    hashes = list(gop.hasher.hashes)
    gop_hash = gop.hasher.gop_hash()
    return next((c for c in verified if c.gop_hash != gop_hash or c.nal_count != len(hashes)), verified[0])


def _difference(hashes: list[bytes], claim: _Claim) -> str:
    if len(hashes) != claim.nal_count:
        return f"{len(hashes)} NAL units recorded, {claim.nal_count} signed"
    if claim.hash_list is None:
        return "its GOP hash differs (the SEI lists no NAL hashes)"
    changed = [i for i, (a, b) in enumerate(zip(hashes, claim.hash_list, strict=False)) if a != b]
    return f"NAL unit {changed[0]} differs" if changed else "its GOP hash differs from its NAL hashes"
