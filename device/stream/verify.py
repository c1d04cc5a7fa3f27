"""Verify a recorded signed stream (or a signed snapshot): a pure core.

Input: the records of a recording (frames and signed segment manifests, in
the order they were received), the manufacturer root certificate and
``now``. Output: a frozen :class:`StreamReport` with a verdict per frame,
per stream session and overall:

* ``authentic``: every frame is listed, unchanged and in order in a validly
  signed manifest, and the manifests form one unbroken chain;
* ``authentic_missing_frames``: the same, but some listed frames were never
  received (normal for a slow viewer, or an fps-capped one);
* ``not_authentic``: a frame was modified, inserted or reordered, a segment
  was removed, sessions were spliced, the signing key changed, a manifest's
  signature or certificate chain is bad, or frames follow the last manifest;
* ``not_signed``: no manifest at all.

``report.check()`` raises :class:`NotAuthentic` unless the verdict is one of
the first two (verification raises; the report carries the detail).

The recording container (``refcam stream record`` writes it), big-endian::

    magic   8 bytes  b"RCSTRM1\\n"
    record* type u8 | length u32 | body[length]
      type 1 frame:     seq u64 | capture wall time u64 (ns since the epoch) | JPEG bytes
      type 2 manifest:  signed segment envelope (see device.stream.signing)
      type 3 snapshot:  signed snapshot envelope, for the one frame record of a snapshot

Example::

    records = parse_container(Path("rec.rcs").read_bytes())
    report = verify_records(records, trust_root=root_cert, now=datetime.now(UTC))
    print(report.verdict)      # "authentic"
    report.check()
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

from .errors import FormatError, NotAuthentic
from .signing import (
    SEGMENT_PAYLOAD_TYPE,
    SEGMENT_TYPE,
    SNAPSHOT_PAYLOAD_TYPE,
    SNAPSHOT_TYPE,
    Envelope,
    algorithm_of,
    canonical_json,
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
    first_segment: int
    segments: int  # valid manifests seen
    frames_listed: int  # frames the manifests sign
    frames_authentic: int
    frames_missing: int  # listed but not received
    verdict: Verdict
    problems: tuple[str, ...]


@dataclass(frozen=True)
class StreamReport:
    kind: Literal["stream", "snapshot"]
    verdict: Verdict
    sessions: tuple[SessionResult, ...]
    frames: tuple[FrameResult, ...]
    problems: tuple[str, ...]  # every reason for "not_authentic", in record order

    def check(self) -> None:
        """Raise :class:`NotAuthentic` unless the recording is authentic (missing frames allowed)."""
        if self.verdict not in ACCEPTED:
            first = self.problems[0] if self.problems else "no signed manifest"
            raise NotAuthentic(f"{self.kind} is {self.verdict.replace('_', ' ')}: {first}")


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


def _hex(value: object, what: str, length: int) -> str:
    if not (isinstance(value, str) and len(value) == length and all(c in "0123456789abcdef" for c in value)):
        raise _ManifestInvalid(f"{what} is not {length} lowercase hex digits")
    return value


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _ManifestInvalid(f"{what} is not a non-negative integer")
    return value


def _segment(envelope: Envelope, verifier: verification.ClientVerifier) -> _Segment:
    p = _verify_envelope(envelope, verifier, SEGMENT_PAYLOAD_TYPE)
    expected = {"type", "alg", "key_id", "session", "segment", "first_seq", "frames", "previous", "linked_frame", "device"}
    if set(p) != expected or p["type"] != SEGMENT_TYPE:
        raise _ManifestInvalid(f"payload fields {sorted(p)} / type are not those of {SEGMENT_TYPE}")
    frames = p["frames"]
    if not isinstance(frames, list) or not 1 <= len(frames) <= MAX_SEGMENT_FRAMES:
        raise _ManifestInvalid(f"frames must list 1 to {MAX_SEGMENT_FRAMES} frames")
    listed: list[tuple[str, int]] = []
    for i, item in enumerate(frames):
        if not (isinstance(item, list) and len(item) == 2):
            raise _ManifestInvalid(f"frames[{i}] is not [sha256, capture_wall_ns]")
        listed.append((_hex(item[0], f"frames[{i}] hash", 64), _int(item[1], f"frames[{i}] time")))
    previous = None if p["previous"] is None else _hex(p["previous"], "previous", 64)
    linked = None if p["linked_frame"] is None else _hex(p["linked_frame"], "linked_frame", 64)
    if not isinstance(p["device"], str):
        raise _ManifestInvalid("device is not a string")
    return _Segment(
        session=_hex(p["session"], "session", 32),
        segment=_int(p["segment"], "segment"),
        first_seq=_int(p["first_seq"], "first_seq"),
        frames=tuple(listed),
        previous=previous,
        linked_frame=linked,
        key_id=p["key_id"],
        device=p["device"],
        digest=hashlib.sha256(canonical_json(p)).hexdigest(),
    )


@dataclass
class _SessionState:
    session: str
    device: str
    key_id: str
    first_segment: int
    last: _Segment
    segments: int = 1
    listed: int = 0
    authentic: int = 0
    problems: list[str] = field(default_factory=list)


def verify_records(records: Sequence[Record], *, trust_root: x509.Certificate, now: datetime) -> StreamReport:
    """Verify a recording (see the module docstring). Pure: no I/O, ``now`` is given."""
    if any(isinstance(r, SnapshotRecord) for r in records):
        return _verify_snapshot(records, trust_root=trust_root, now=now)
    verifier = _chain_verifier(trust_root, now)
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

    for index, record in enumerate(records):
        if isinstance(record, FrameRecord):
            pending.append((index, record))
            continue
        assert isinstance(record, ManifestRecord)
        try:
            seg = _segment(Envelope.parse(record.envelope), verifier)
        except (FormatError, _ManifestInvalid) as e:
            problems.append(f"manifest (record {index}) is not valid: {e}")
            if sessions:
                sessions[-1].problems.append(f"manifest (record {index}) is not valid: {e}")
            for i, frame in pending:
                refuse(i, frame, "its manifest is not valid")
            pending = []
            continue
        state = sessions[-1] if sessions else None
        if state is None or state.session != seg.session:
            if state is not None:
                msg = f"spliced session: session {seg.session[:8]}... follows {state.session[:8]}... at record {index}"
                problems.append(msg)
                state.problems.append(msg)
            state = _SessionState(seg.session, seg.device, seg.key_id, seg.segment, seg)
            if sessions:
                state.problems.append("spliced onto the session before it")
            sessions.append(state)
            last_seq = None
        else:
            _link(state, seg, index, problems)
            state.last = seg
            state.segments += 1
        state.listed += len(seg.frames)
        end = seg.first_seq + len(seg.frames)
        for i, frame in pending:
            if not seg.first_seq <= frame.seq < end:
                refuse(i, frame, f"seq is not in segment {seg.segment} ({seg.first_seq}..{end - 1}): inserted", seg)
            elif last_seq is not None and frame.seq <= last_seq:
                refuse(i, frame, f"seq comes after seq {last_seq}: reordered or duplicated", seg)
            elif seg.frames[frame.seq - seg.first_seq][0] != hashlib.sha256(frame.jpeg).hexdigest():
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
    return StreamReport("stream", verdict, session_results, frames, tuple(problems))


def _link(state: _SessionState, seg: _Segment, index: int, problems: list[str]) -> None:
    """Check that ``seg`` directly follows ``state.last`` in the same session (the hash chain)."""
    last = state.last
    found: list[str] = []
    if seg.segment != last.segment + 1:
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
    for msg in found:
        problems.append(f"manifest (record {index}): {msg}")
        state.problems.append(msg)


def _session_result(state: _SessionState) -> SessionResult:
    missing = state.listed - state.authentic
    if state.problems:
        verdict: Verdict = "not_authentic"
    elif missing:
        verdict = "authentic_missing_frames"
    else:
        verdict = "authentic"
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
    )


def _verify_snapshot(records: Iterable[Record], *, trust_root: x509.Certificate, now: datetime) -> StreamReport:
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
    try:
        envelope = Envelope.parse(signatures[0].envelope)
        p = _verify_envelope(envelope, _chain_verifier(trust_root, now), SNAPSHOT_PAYLOAD_TYPE)
        if p.get("type") != SNAPSHOT_TYPE:
            raise _ManifestInvalid(f"payload type {p.get('type')!r}, expected {SNAPSHOT_TYPE!r}")
        if p.get("sha256") != hashlib.sha256(frame.jpeg).hexdigest():
            problems.append("JPEG hash differs from the signed one: modified")
        if p.get("seq") != frame.seq or p.get("capture_wall_ns") != frame.capture_wall_ns:
            problems.append("seq or capture time differs from the signed ones: modified")
        device, key_id, session = str(p.get("device")), envelope.keyid, str(p.get("session"))
    except (FormatError, _ManifestInvalid) as e:
        problems.append(f"snapshot signature is not valid: {e}")
        device = key_id = session = ""
    status: FrameStatus = "not_authentic" if problems else "authentic"
    verdict: Verdict = "not_authentic" if problems else "authentic"
    result = FrameResult(index, frame.seq, status, "; ".join(problems), session or None, None)
    session_result = SessionResult(session, device, key_id, 0, 0, 1, 0 if problems else 1, 0, verdict, tuple(problems))
    return StreamReport("snapshot", verdict, (session_result,), (result,), tuple(problems))
