"""The MJPEG wire format: ``multipart/x-mixed-replace`` parts, written and parsed.

Each part is::

    --BOUNDARY CRLF
    Content-Type: image/jpeg CRLF
    Content-Length: N CRLF
    X-Frame-Seq: 42 CRLF                       stream sequence number
    X-Capture-Timestamp: 1763791700123456789 CRLF   capture wall time, ns since the epoch
    X-Stream-Session: <32 hex> CRLF
    X-Segment-Manifest: <signed envelope JSON> CRLF   zero or more, see below
    CRLF
    <N bytes of JPEG> CRLF

Signed segment manifests ride as ``X-Segment-Manifest`` headers (canonical
JSON is printable ASCII without CR/LF, so it is a valid header value) on the
next frame part *after* the frames they cover; browsers showing the stream in
an ``<img>`` ignore them. When the stream ends, manifests still pending are
sent as parts of their own (``Content-Type:
application/vnd.refcam.stream-segment+json``, the envelope as the body),
then the close delimiter ``--BOUNDARY--``.

The parser (:class:`PartParser`) is incremental and strict (Content-Length is
required, header blocks are bounded) since it reads bytes from the network::

    parser = PartParser(BOUNDARY)
    for part in parser.feed(chunk):
        part.headers["x-frame-seq"], part.body
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import FormatError

BOUNDARY = "refcam-frame-7d1e"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
MANIFEST_CONTENT_TYPE = "application/vnd.refcam.stream-segment+json"
MAX_HEADER_BLOCK = 1024 * 1024  # bytes; a part's headers (manifests included)
MAX_PART = 64 * 2**20  # bytes


def frame_part_head(
    *, seq: int, capture_wall_ns: int, session: str, length: int, manifests: tuple[bytes, ...] = ()
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
    head = "\r\n".join(lines).encode("ascii") + b"\r\n"
    for manifest in manifests:
        head += b"X-Segment-Manifest: " + _header_safe(manifest) + b"\r\n"
    return head + b"\r\n"


def manifest_part(manifest: bytes) -> bytes:
    """A part carrying one manifest as its body (used at the end of a stream)."""
    head = f"--{BOUNDARY}\r\nContent-Type: {MANIFEST_CONTENT_TYPE}\r\nContent-Length: {len(manifest)}\r\n\r\n"
    return head.encode("ascii") + manifest + b"\r\n"


def close_delimiter() -> bytes:
    return f"--{BOUNDARY}--\r\n".encode("ascii")


def _header_safe(value: bytes) -> bytes:
    if any(b < 0x20 or b > 0x7E for b in value):
        raise ValueError("manifest is not printable ASCII; cannot travel as a header")
    return value


@dataclass(frozen=True)
class Part:
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    body: bytes = field(repr=False)
    manifests: tuple[bytes, ...] = ()  # every X-Segment-Manifest header, in order


class PartParser:
    """Incremental parser for the parts above; ``feed`` returns the parts completed so far."""

    def __init__(self, boundary: str = BOUNDARY) -> None:
        self._delimiter = b"--" + boundary.encode("ascii")
        self._buffer = bytearray()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the close delimiter was seen."""
        return self._closed

    def feed(self, data: bytes) -> list[Part]:
        if self._closed:
            if data.strip():
                raise FormatError("data after the multipart close delimiter")
            return []
        self._buffer += data
        parts: list[Part] = []
        while True:
            part = self._next()
            if part is None:
                return parts
            parts.append(part)

    def _next(self) -> Part | None:
        buf = self._buffer
        # Tolerate blank lines between parts (some servers send CRLF before the delimiter).
        while buf.startswith(b"\r\n"):
            del buf[:2]
        if len(buf) < len(self._delimiter) + 2:
            return None
        if not buf.startswith(self._delimiter):
            raise FormatError(f"expected the multipart delimiter, found {bytes(buf[:40])!r}")
        after = len(self._delimiter)
        if buf[after : after + 2] == b"--":
            self._closed = True
            buf.clear()
            return None
        if buf[after : after + 2] != b"\r\n":
            raise FormatError("multipart delimiter is not followed by CRLF")
        end = buf.find(b"\r\n\r\n", after)
        if end < 0:
            if len(buf) > MAX_HEADER_BLOCK:
                raise FormatError(f"part headers exceed {MAX_HEADER_BLOCK} bytes")
            return None
        if end - after > MAX_HEADER_BLOCK:
            raise FormatError(f"part headers exceed {MAX_HEADER_BLOCK} bytes")
        headers: dict[str, str] = {}
        manifests: list[bytes] = []
        for line in bytes(buf[after + 2 : end]).split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep or not name.strip():
                raise FormatError(f"malformed part header line {line[:60]!r}")
            key = name.strip().lower().decode("ascii", "replace")
            if key == "x-segment-manifest":
                manifests.append(value.strip())
            else:
                headers[key] = value.strip().decode("latin-1")
        length_text = headers.get("content-length", "")
        if not length_text.isdigit() or int(length_text) > MAX_PART:
            raise FormatError(f"part Content-Length {length_text!r} is missing or out of range")
        length = int(length_text)
        body_start = end + 4
        if len(buf) < body_start + length + 2:
            return None
        if buf[body_start + length : body_start + length + 2] != b"\r\n":
            raise FormatError("part body is not followed by CRLF (Content-Length wrong?)")
        with memoryview(buf) as view:  # one copy of the body, not two (bytearray slice + bytes)
            body = bytes(view[body_start : body_start + length])
        del buf[: body_start + length + 2]
        return Part(headers, body, tuple(manifests))
