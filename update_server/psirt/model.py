"""Vulnerability reports and the PSIRT workflow as a pure state machine.

A report moves ``received -> acknowledged -> triaged -> fix_in_progress ->
fixed -> advisory_published -> closed``; until a fix is underway it may also
end as ``rejected`` or ``duplicate`` (of another report). Every step returns a
new frozen :class:`Report` with the event appended to its history, so the SLA
engine can read every timestamp it needs (ETSI EN 303 645 5.2-1/5.2-2,
EU CRA Art. 14 for actively exploited vulnerabilities). Nothing here reads
the clock or touches storage: ``now`` is an argument.

Example::

    sub = parse_submission({"title": "RCE", "description": "...",
                            "product": "RC-1080", "version": "1.0.0"})
    r = new_report(report_id="R-2026-0001", submission=sub, now=t0)
    r = acknowledge(r, now=t1)
    r = triage(r, score_vector("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"), now=t2)
    mark_fixed(r, FirmwareRelease.parse("refcam-rc1080-v1:1.0.1"), now=t3)
    # -> TransitionError: cannot move report R-2026-0001 from triaged to fixed
    #    (allowed: fix_in_progress, rejected, duplicate)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from .cvss import Score, score_vector
from .errors import PSIRTInputError, TransitionError


class State(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    TRIAGED = "triaged"
    FIX_IN_PROGRESS = "fix_in_progress"
    FIXED = "fixed"
    ADVISORY_PUBLISHED = "advisory_published"
    CLOSED = "closed"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"


# state -> states it may move to, in the order the error message lists them
TRANSITIONS: Mapping[State, tuple[State, ...]] = {
    State.RECEIVED: (State.ACKNOWLEDGED, State.REJECTED, State.DUPLICATE),
    State.ACKNOWLEDGED: (State.TRIAGED, State.REJECTED, State.DUPLICATE),
    State.TRIAGED: (State.FIX_IN_PROGRESS, State.REJECTED, State.DUPLICATE),
    State.FIX_IN_PROGRESS: (State.FIXED,),
    State.FIXED: (State.ADVISORY_PUBLISHED,),
    State.ADVISORY_PUBLISHED: (State.CLOSED,),
    State.CLOSED: (),
    State.REJECTED: (),
    State.DUPLICATE: (),
}
# States in which the reporter no longer needs status updates.
TERMINAL_STATES = frozenset({State.CLOSED, State.REJECTED, State.DUPLICATE})

REPORT_ID_RE = re.compile(r"^R-(\d{4})-(\d{4,})$")
CRA_KINDS = ("early_warning", "notification", "final_report")  # EU CRA Art. 14(2)(a)-(c)


@dataclass(frozen=True)
class IntakeLimits:
    """Bounds on one submitted report (all checked by :func:`parse_submission`)."""

    max_title: int = 200  # characters
    max_description: int = 20_000  # characters
    max_product: int = 100  # characters
    max_version: int = 64  # characters
    max_contact: int = 320  # characters (an e-mail address is at most 320)
    max_message: int = 10_000  # characters
    max_attachments: int = 4
    max_attachment_size: int = 256 * 2**10  # bytes, decoded
    max_filename: int = 100  # characters


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class Submission:
    """A validated report as the reporter sent it."""

    title: str
    description: str
    product: str
    version: str
    reporter_contact: str | None = None
    cvss_vector: str | None = None  # as suggested by the reporter (scored, so known valid)
    attachments: tuple[Attachment, ...] = ()


@dataclass(frozen=True)
class FirmwareRelease:
    """A firmware release published through the update repository."""

    hardware_id: str
    version: str

    @classmethod
    def parse(cls, text: str) -> FirmwareRelease:
        """Parse ``HWID:VERSION`` (e.g. ``refcam-rc1080-v1:1.0.1``)."""
        hardware_id, sep, version = text.partition(":")
        if not sep or not _HWID_RE.fullmatch(hardware_id) or not _VERSION_RE.fullmatch(version):
            raise PSIRTInputError(
                f"firmware release {text[:80]!r} is malformed; expected HARDWARE_ID:VERSION, "
                "e.g. refcam-rc1080-v1:1.0.1"
            )
        return cls(hardware_id=hardware_id, version=version)

    def __str__(self) -> str:
        return f"{self.hardware_id}:{self.version}"


_CWE_RE = re.compile(r"CWE-[1-9][0-9]{0,5}")


@dataclass(frozen=True)
class CWE:
    """The weakness a report is an instance of (MITRE CWE; CSAF 2.0 3.2.3.3 ``cwe``)."""

    id: str  # "CWE-287"
    name: str  # the CWE catalogue's name, e.g. "Improper Authentication"

    @classmethod
    def parse(cls, cwe_id: str, name: str) -> CWE:
        if not _CWE_RE.fullmatch(cwe_id):
            raise PSIRTInputError(f"CWE id {cwe_id[:40]!r} is malformed; expected CWE-NNN, e.g. CWE-287")
        if not name.strip() or len(name) > 300:
            raise PSIRTInputError(f"{cwe_id} needs its catalogue name (1 to 300 characters)")
        return cls(cwe_id, name.strip())


@dataclass(frozen=True)
class Event:
    """One step in a report's history (a state change or a CRA submission)."""

    at: datetime
    kind: str  # a State value, "exploited", or "cra_<kind>"
    actor: str  # "reporter", "psirt" or "system"
    detail: str = ""


@dataclass(frozen=True)
class Message:
    at: datetime
    author: str  # "reporter" or "psirt"
    body: str


@dataclass(frozen=True)
class Report:
    report_id: str
    received_at: datetime
    submission: Submission
    state: State = State.RECEIVED
    history: tuple[Event, ...] = ()
    messages: tuple[Message, ...] = ()
    score: Score | None = None
    # A CVSS v3.x score kept beside a v4.0 one: CSAF 2.0 advisories carry v2/v3 scores only.
    score_v3: Score | None = None
    cwe: CWE | None = None
    fixed_in: FirmwareRelease | None = None
    duplicate_of: str | None = None
    advisory_id: str | None = None
    exploited_at: datetime | None = None
    cra_submitted: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def severity(self) -> str | None:
        return self.score.severity if self.score else None

    def entered_at(self, state: State) -> datetime | None:
        """When the report first entered ``state`` (None if it never did)."""
        if state is State.RECEIVED:
            return self.received_at
        for event in self.history:
            if event.kind == state.value:
                return event.at
        return None

    def psirt_contacts(self) -> tuple[datetime, ...]:
        """Times the PSIRT told the reporter something (state changes and PSIRT messages)."""
        times = [e.at for e in self.history if e.kind in _STATE_VALUES and e.actor == "psirt"]
        times += [m.at for m in self.messages if m.author == "psirt"]
        return tuple(sorted(times))


_STATE_VALUES = frozenset(s.value for s in State)
_HWID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_VERSION_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}")
_PRODUCT_RE = re.compile(r"[^\x00-\x1f\x7f]+")
_FILENAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CONTENT_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")
_SUBMISSION_FIELDS = frozenset(
    {"title", "description", "product", "version", "reporter_contact", "cvss_vector", "attachments"}
)


def format_report_id(year: int, sequence: int) -> str:
    return f"R-{year:04d}-{sequence:04d}"


def check_report_id(report_id: str) -> str:
    if not isinstance(report_id, str) or not REPORT_ID_RE.fullmatch(report_id):
        raise PSIRTInputError(
            f"report id {str(report_id)[:40]!r} is malformed; expected R-YYYY-NNNN"
        )
    return report_id


# -- intake validation ------------------------------------------------------------------


def _text(body: Mapping[str, Any], name: str, limit: int, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise PSIRTInputError(f"field {name!r} is required")
        return None
    if not isinstance(value, str):
        raise PSIRTInputError(f"field {name!r} must be a string, got {type(value).__name__}")
    if "\x00" in value:
        raise PSIRTInputError(f"field {name!r} contains a NUL character")
    stripped = value.strip()
    if required and not stripped:
        raise PSIRTInputError(f"field {name!r} must not be empty")
    if len(value) > limit:
        raise PSIRTInputError(
            f"field {name!r} is {len(value)} characters long, at most {limit} allowed"
        )
    return stripped or None


def _single_line(name: str, value: str) -> str:
    if not _PRODUCT_RE.fullmatch(value):
        raise PSIRTInputError(f"field {name!r} must be a single line without control characters")
    return value


def _attachment(index: int, item: Any, limits: IntakeLimits) -> Attachment:
    where = f"attachments[{index}]"
    if not isinstance(item, dict):
        raise PSIRTInputError(f"{where} must be an object, got {type(item).__name__}")
    unknown = set(item) - {"filename", "content_type", "data_base64"}
    if unknown:
        raise PSIRTInputError(f"{where} has unknown fields: {', '.join(sorted(map(str, unknown)))}")
    filename = item.get("filename")
    if (
        not isinstance(filename, str)
        or len(filename) > limits.max_filename
        or not _FILENAME_RE.fullmatch(filename)
    ):
        raise PSIRTInputError(
            f"{where}.filename must be 1-{limits.max_filename} characters of A-Z a-z 0-9 . _ - "
            "not starting with a dot"
        )
    content_type = item.get("content_type", "application/octet-stream")
    if not isinstance(content_type, str) or not _CONTENT_TYPE_RE.fullmatch(content_type):
        raise PSIRTInputError(f"{where}.content_type must be a MIME type such as text/plain")
    encoded = item.get("data_base64")
    if not isinstance(encoded, str):
        raise PSIRTInputError(f"{where}.data_base64 must be a base64 string")
    # Bound before decoding: 4 base64 characters carry 3 bytes.
    if len(encoded) > 4 * ((limits.max_attachment_size + 2) // 3):
        raise PSIRTInputError(f"{where} is larger than {limits.max_attachment_size} bytes")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PSIRTInputError(f"{where}.data_base64 is not valid base64: {exc}") from exc
    if len(data) > limits.max_attachment_size:
        raise PSIRTInputError(
            f"{where} is {len(data)} bytes, at most {limits.max_attachment_size} allowed"
        )
    return Attachment(filename=filename, content_type=content_type, data=data)


def parse_submission(body: Any, limits: IntakeLimits | None = None) -> Submission:
    """Validate a decoded JSON report body; raise PSIRTInputError naming the bad field."""
    limits = limits or IntakeLimits()
    if not isinstance(body, dict):
        raise PSIRTInputError(f"report must be a JSON object, got {type(body).__name__}")
    unknown = set(body) - _SUBMISSION_FIELDS
    if unknown:
        names = ", ".join(sorted(str(k)[:40] for k in unknown))
        raise PSIRTInputError(
            f"report has unknown fields: {names}; allowed: {', '.join(sorted(_SUBMISSION_FIELDS))}"
        )
    title = _text(body, "title", limits.max_title, required=True)
    description = _text(body, "description", limits.max_description, required=True)
    product = _text(body, "product", limits.max_product, required=True)
    version = _text(body, "version", limits.max_version, required=True)
    assert title and description and product and version  # required=True guarantees it
    _single_line("title", title)
    _single_line("product", product)
    if not _VERSION_RE.fullmatch(version):
        raise PSIRTInputError(
            "field 'version' must be a firmware version such as 1.0.0 (letters, digits, . + _ -)"
        )
    contact = _text(body, "reporter_contact", limits.max_contact, required=False)
    if contact is not None:
        _single_line("reporter_contact", contact)
    vector = _text(body, "cvss_vector", 512, required=False)
    if vector is not None:
        vector = score_vector(vector).vector  # raises CVSSVectorError (a PSIRTInputError)
    raw_attachments = body.get("attachments", [])
    if not isinstance(raw_attachments, list):
        raise PSIRTInputError("field 'attachments' must be a list")
    if len(raw_attachments) > limits.max_attachments:
        raise PSIRTInputError(
            f"report has {len(raw_attachments)} attachments, at most {limits.max_attachments} allowed"
        )
    attachments = tuple(_attachment(i, a, limits) for i, a in enumerate(raw_attachments))
    return Submission(
        title=title,
        description=description,
        product=product,
        version=version,
        reporter_contact=contact,
        cvss_vector=vector,
        attachments=attachments,
    )


def parse_message(body: Any, limits: IntakeLimits | None = None) -> str:
    """Validate a ``{"body": "..."}`` message; return its text."""
    limits = limits or IntakeLimits()
    if not isinstance(body, dict) or set(body) != {"body"}:
        raise PSIRTInputError('message must be a JSON object with exactly one field, "body"')
    text = _text(body, "body", limits.max_message, required=True)
    assert text is not None
    return text


# -- the workflow -----------------------------------------------------------------------


def new_report(*, report_id: str, submission: Submission, now: datetime) -> Report:
    _aware(now)
    return Report(
        report_id=check_report_id(report_id),
        received_at=now,
        submission=submission,
        history=(Event(at=now, kind=State.RECEIVED.value, actor="reporter"),),
    )


def _aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


def _move(report: Report, to: State, *, now: datetime, detail: str = "", **changes: Any) -> Report:
    _aware(now)
    allowed = TRANSITIONS[report.state]
    if to not in allowed:
        listed = ", ".join(s.value for s in allowed) or "none, the report is final"
        raise TransitionError(
            f"cannot move report {report.report_id} from {report.state.value} to {to.value} "
            f"(allowed: {listed})"
        )
    if now < report.history[-1].at:
        raise TransitionError(
            f"cannot move report {report.report_id} at {now.isoformat()}: "
            f"before its last event at {report.history[-1].at.isoformat()}"
        )
    event = Event(at=now, kind=to.value, actor="psirt", detail=detail)
    return replace(report, state=to, history=(*report.history, event), **changes)


def acknowledge(report: Report, *, now: datetime) -> Report:
    return _move(report, State.ACKNOWLEDGED, now=now)


def triage(
    report: Report, score: Score, *, now: datetime, score_v3: Score | None = None, cwe: CWE | None = None
) -> Report:
    """Score a report (and, optionally, name its weakness).

    ``score_v3`` is only for a CVSS v4.0 ``score``: the v3.x vector of the
    same finding, which the CSAF 2.0 advisory carries as its score.
    """
    if score_v3 is not None:
        if not score.version.startswith("4."):
            raise PSIRTInputError("a separate CVSS v3 score is only for a report scored with CVSS v4.0")
        if not score_v3.version.startswith("3."):
            raise PSIRTInputError(f"the CVSS v3 score must be a v3.x vector, not CVSS {score_v3.version}")
    return _move(report, State.TRIAGED, now=now, detail=score.vector, score=score, score_v3=score_v3, cwe=cwe)


def start_fix(report: Report, *, now: datetime) -> Report:
    return _move(report, State.FIX_IN_PROGRESS, now=now)


def mark_fixed(report: Report, release: FirmwareRelease, *, now: datetime) -> Report:
    return _move(report, State.FIXED, now=now, detail=str(release), fixed_in=release)


def publish_advisory(report: Report, advisory_id: str, *, now: datetime) -> Report:
    return _move(
        report, State.ADVISORY_PUBLISHED, now=now, detail=advisory_id, advisory_id=advisory_id
    )


def close(report: Report, *, now: datetime) -> Report:
    return _move(report, State.CLOSED, now=now)


def reject(report: Report, reason: str, *, now: datetime) -> Report:
    if not reason.strip():
        raise PSIRTInputError("a rejection needs a reason for the reporter")
    return _move(report, State.REJECTED, now=now, detail=reason.strip())


def mark_duplicate(report: Report, of: str, *, now: datetime) -> Report:
    check_report_id(of)
    if of == report.report_id:
        raise PSIRTInputError(f"report {report.report_id} cannot be a duplicate of itself")
    return _move(report, State.DUPLICATE, now=now, detail=of, duplicate_of=of)


def mark_exploited(report: Report, *, now: datetime) -> Report:
    """Flag the vulnerability as actively exploited: starts the EU CRA Art. 14 clocks."""
    _aware(now)
    if report.exploited_at is not None:
        raise TransitionError(
            f"report {report.report_id} is already flagged actively exploited since "
            f"{report.exploited_at.isoformat()}"
        )
    if report.state in (State.REJECTED, State.DUPLICATE):
        raise TransitionError(
            f"report {report.report_id} is {report.state.value}; flag the report it duplicates"
        )
    event = Event(at=now, kind="exploited", actor="psirt")
    return replace(report, exploited_at=now, history=(*report.history, event))


def record_cra_submission(report: Report, kind: str, *, now: datetime) -> Report:
    """Record that the CRA early warning / notification / final report was sent to the CSIRT."""
    _aware(now)
    if kind not in CRA_KINDS:
        raise PSIRTInputError(f"CRA submission kind {kind!r} unknown; expected one of {CRA_KINDS}")
    if report.exploited_at is None:
        raise TransitionError(
            f"report {report.report_id} is not flagged actively exploited; no CRA clock runs"
        )
    if kind in report.cra_submitted:
        raise TransitionError(f"CRA {kind} for report {report.report_id} was already recorded")
    if kind == "final_report" and report.fixed_in is None:
        raise TransitionError(
            f"CRA final report for {report.report_id} needs a fix first (state {report.state.value})"
        )
    submitted = {**report.cra_submitted, kind: now}
    event = Event(at=now, kind=f"cra_{kind}", actor="psirt")
    return replace(report, cra_submitted=submitted, history=(*report.history, event))


def add_message(report: Report, author: str, body: str, *, now: datetime) -> Report:
    _aware(now)
    if author not in ("reporter", "psirt"):
        raise ValueError(f"message author {author!r} is neither reporter nor psirt")
    return replace(report, messages=(*report.messages, Message(at=now, author=author, body=body)))


ACTIONS: Mapping[str, tuple[str, ...]] = {  # action -> required parameters
    "ack": (),
    "triage": ("cvss",),
    "start_fix": (),
    "fixed": ("release",),
    "close": (),
    "reject": ("reason",),
    "duplicate": ("of",),
    "exploited": (),
    "cra_report": ("kind",),
}
OPTIONAL_PARAMETERS: Mapping[str, tuple[str, ...]] = {  # action -> parameters it may also take
    "triage": ("cvss_v3", "cwe", "cwe_name"),
}


def apply_action(report: Report, body: Any, *, now: datetime) -> Report:
    """Apply ``{"action": NAME, ...parameters}`` (the PSIRT HTTP API) to a report."""
    if not isinstance(body, dict) or not isinstance(body.get("action"), str):
        raise PSIRTInputError('action must be a JSON object with an "action" string')
    action = body["action"]
    if action not in ACTIONS:
        raise PSIRTInputError(
            f"unknown action {action[:40]!r}; expected one of {', '.join(ACTIONS)}"
        )
    params = {k: v for k, v in body.items() if k != "action"}
    required, optional = set(ACTIONS[action]), set(OPTIONAL_PARAMETERS.get(action, ()))
    if not required <= set(params) <= required | optional:
        wanted = ", ".join(ACTIONS[action]) or "none"
        extra = f" (optional: {', '.join(sorted(optional))})" if optional else ""
        raise PSIRTInputError(f"action {action!r} takes parameters: {wanted}{extra}")
    for key, value in params.items():
        if not isinstance(value, str) or not value.strip() or len(value) > 2000:
            raise PSIRTInputError(f"parameter {key!r} must be a non-empty string")
    if action == "ack":
        return acknowledge(report, now=now)
    if action == "triage":
        if ("cwe" in params) != ("cwe_name" in params):
            raise PSIRTInputError("cwe and cwe_name go together (the CSAF cwe member needs both)")
        score_v3 = score_vector(params["cvss_v3"]) if "cvss_v3" in params else None
        cwe = CWE.parse(params["cwe"], params["cwe_name"]) if "cwe" in params else None
        return triage(report, score_vector(params["cvss"]), now=now, score_v3=score_v3, cwe=cwe)
    if action == "start_fix":
        return start_fix(report, now=now)
    if action == "fixed":
        return mark_fixed(report, FirmwareRelease.parse(params["release"]), now=now)
    if action == "close":
        return close(report, now=now)
    if action == "reject":
        return reject(report, params["reason"], now=now)
    if action == "duplicate":
        return mark_duplicate(report, params["of"], now=now)
    if action == "exploited":
        return mark_exploited(report, now=now)
    return record_cra_submission(report, params["kind"], now=now)


# -- serialisation (the store keeps reports as JSON) ------------------------------------


def report_to_json(report: Report, *, with_attachment_data: bool = False) -> dict[str, Any]:
    sub = report.submission
    return {
        "report_id": report.report_id,
        "received_at": report.received_at.isoformat(),
        "state": report.state.value,
        "title": sub.title,
        "description": sub.description,
        "product": sub.product,
        "version": sub.version,
        "reporter_contact": sub.reporter_contact,
        "cvss_vector": sub.cvss_vector,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": len(a.data),
                "sha256": a.sha256,
                **(
                    {"data_base64": base64.b64encode(a.data).decode()}
                    if with_attachment_data
                    else {}
                ),
            }
            for a in sub.attachments
        ],
        "history": [
            {"at": e.at.isoformat(), "kind": e.kind, "actor": e.actor, "detail": e.detail}
            for e in report.history
        ],
        "messages": [
            {"at": m.at.isoformat(), "author": m.author, "body": m.body} for m in report.messages
        ],
        "score": report.score.to_json() if report.score else None,
        "score_v3": report.score_v3.to_json() if report.score_v3 else None,
        "cwe": {"id": report.cwe.id, "name": report.cwe.name} if report.cwe else None,
        "fixed_in": str(report.fixed_in) if report.fixed_in else None,
        "duplicate_of": report.duplicate_of,
        "advisory_id": report.advisory_id,
        "exploited_at": report.exploited_at.isoformat() if report.exploited_at else None,
        "cra_submitted": {k: v.isoformat() for k, v in report.cra_submitted.items()},
    }


def report_from_json(doc: dict[str, Any]) -> Report:
    """Inverse of :func:`report_to_json` (with attachment data)."""
    dt = datetime.fromisoformat
    submission = Submission(
        title=doc["title"],
        description=doc["description"],
        product=doc["product"],
        version=doc["version"],
        reporter_contact=doc["reporter_contact"],
        cvss_vector=doc["cvss_vector"],
        attachments=tuple(
            Attachment(a["filename"], a["content_type"], base64.b64decode(a["data_base64"]))
            for a in doc["attachments"]
        ),
    )
    return Report(
        report_id=doc["report_id"],
        received_at=dt(doc["received_at"]),
        submission=submission,
        state=State(doc["state"]),
        history=tuple(
            Event(dt(e["at"]), e["kind"], e["actor"], e["detail"]) for e in doc["history"]
        ),
        messages=tuple(Message(dt(m["at"]), m["author"], m["body"]) for m in doc["messages"]),
        score=Score.from_json(doc["score"]) if doc["score"] else None,
        score_v3=Score.from_json(doc["score_v3"]) if doc.get("score_v3") else None,  # absent before CSAF v4 scores
        cwe=CWE(doc["cwe"]["id"], doc["cwe"]["name"]) if doc.get("cwe") else None,
        fixed_in=FirmwareRelease.parse(doc["fixed_in"]) if doc["fixed_in"] else None,
        duplicate_of=doc["duplicate_of"],
        advisory_id=doc["advisory_id"],
        exploited_at=dt(doc["exploited_at"]) if doc["exploited_at"] else None,
        cra_submitted={k: dt(v) for k, v in doc["cra_submitted"].items()},
    )
