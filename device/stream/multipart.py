"""The MJPEG wire format: ``multipart/x-mixed-replace`` parts, written and parsed.

Each part is::

    --BOUNDARY CRLF
    Content-Type: image/jpeg CRLF
    Content-Length: N CRLF
    X-Frame-Seq: 42 CRLF                       stream sequence number
    X-Capture-Timestamp: 1763791700123456789 CRLF   capture wall time, ns since the epoch
    X-Stream-Session: <32 hex> CRLF
    X-Segment-Manifest: <signed envelope JSON> CRLF   zero or more, see below
    X-Frames-Not-Sent: 0-119,125,130-131 CRLF  optional, see below
    CRLF
    <N bytes of JPEG> CRLF

Signed segment manifests ride as ``X-Segment-Manifest`` headers (canonical
JSON is printable ASCII without CR/LF, so it is a valid header value) on the
next frame part *after* the frames they cover; browsers showing the stream in
an ``<img>`` ignore them. When the stream ends, manifests still pending are
sent as parts of their own (``Content-Type:
application/vnd.refcam.stream-segment+json``, the envelope as the body),
then the session's signed end marker when the session itself ended
(``Content-Type: application/vnd.refcam.stream-end+json``), then the close
delimiter ``--BOUNDARY--``. A stream that ends without the end marker part
(the viewer logged out, the connection broke) tells a recorder that the
session went on without it.

``X-Frames-Not-Sent`` names, as inclusive seq ranges, the frames of the
session this viewer will never be sent (it joined after them, a newer frame
replaced them in its slot, or its fps cap left them out) since the previous
part. It is not signed: it is the server's word to this one viewer, which a
recorder keeps as a note so that a verifier can tell a frame that never came
from a frame removed from the recording (``refcam.streamverify``). The end
parts carry it too, and ``X-Stream-Session``.

This module writes parts (the device side); the recorder's parser lives in
``refcam.streamwire``.
"""

from __future__ import annotations

import re

BOUNDARY = "refcam-frame-7d1e"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
MANIFEST_CONTENT_TYPE = "application/vnd.refcam.stream-segment+json"
END_CONTENT_TYPE = "application/vnd.refcam.stream-end+json"
SIGNED_CONTENT_TYPES = frozenset({MANIFEST_CONTENT_TYPE, END_CONTENT_TYPE})  # parts whose body is an envelope


NOT_SENT_HEADER = "X-Frames-Not-Sent"


def format_ranges(ranges: tuple[tuple[int, int], ...]) -> str:
    """``((0, 119), (125, 125))`` -> ``"0-119,125"``: the value of ``X-Frames-Not-Sent``."""
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges)


def frame_part_head(
    *,
    seq: int,
    capture_wall_ns: int,
    session: str,
    length: int,
    manifests: tuple[bytes, ...] = (),
    not_sent: tuple[tuple[int, int], ...] = (),
) -> bytes:
    """Delimiter and headers of one frame part; the JPEG and a CRLF follow."""
    lines = [
        f"--{BOUNDARY}",
        "Content-Type: image/jpeg",
        f"Content-Length: {length}",
        f"X-Frame-Seq: {seq}",
        f"X-Capture-Timestamp: {capture_wall_ns}",
        f"X-Stream-Session: {session}",
    ]
    if not_sent:
        lines.append(f"{NOT_SENT_HEADER}: {format_ranges(not_sent)}")
    head = "\r\n".join(lines).encode("ascii") + b"\r\n"
    for manifest in manifests:
        head += b"X-Segment-Manifest: " + _header_safe(manifest) + b"\r\n"
    return head + b"\r\n"


def manifest_part(
    manifest: bytes,
    *,
    final: bool = False,
    session: str | None = None,
    not_sent: tuple[tuple[int, int], ...] = (),
) -> bytes:
    """A part carrying one manifest (``final``: the session's end marker) as its body, at the end of a stream."""
    kind = END_CONTENT_TYPE if final else MANIFEST_CONTENT_TYPE
    head = f"--{BOUNDARY}\r\nContent-Type: {kind}\r\nContent-Length: {len(manifest)}\r\n"
    if session is not None:
        head += f"X-Stream-Session: {session}\r\n"
    if not_sent:
        head += f"{NOT_SENT_HEADER}: {format_ranges(not_sent)}\r\n"
    return (head + "\r\n").encode("ascii") + manifest + b"\r\n"


def close_delimiter() -> bytes:
    return f"--{BOUNDARY}--\r\n".encode("ascii")


_PRINTABLE = re.compile(rb"[\x20-\x7e]*")


def _header_safe(value: bytes) -> bytes:
    if _PRINTABLE.fullmatch(value) is None:
        raise ValueError("manifest is not printable ASCII; cannot travel as a header")
    return value
