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
then the session's signed end marker when the session itself ended
(``Content-Type: application/vnd.refcam.stream-end+json``), then the close
delimiter ``--BOUNDARY--``. A stream that ends without the end marker part
(the viewer logged out, the connection broke) tells a recorder that the
session went on without it.

The parser (:class:`PartParser`) is incremental and strict (Content-Length is
required, header blocks are bounded) since it reads bytes from the network::

    parser = PartParser(BOUNDARY)
    for part in parser.feed(chunk):
        part.headers["x-frame-seq"], part.body
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import FormatError

BOUNDARY = "refcam-frame-7d1e"
CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
MANIFEST_CONTENT_TYPE = "application/vnd.refcam.stream-segment+json"
END_CONTENT_TYPE = "application/vnd.refcam.stream-end+json"
SIGNED_CONTENT_TYPES = frozenset({MANIFEST_CONTENT_TYPE, END_CONTENT_TYPE})  # parts whose body is an envelope
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


def manifest_part(manifest: bytes, *, final: bool = False) -> bytes:
    """A part carrying one manifest (``final``: the session's end marker) as its body, at the end of a stream."""
    kind = END_CONTENT_TYPE if final else MANIFEST_CONTENT_TYPE
    head = f"--{BOUNDARY}\r\nContent-Type: {kind}\r\nContent-Length: {len(manifest)}\r\n\r\n"
    return head.encode("ascii") + manifest + b"\r\n"


def close_delimiter() -> bytes:
    return f"--{BOUNDARY}--\r\n".encode("ascii")


_PRINTABLE = re.compile(rb"[\x20-\x7e]*")


def _header_safe(value: bytes) -> bytes:
    if _PRINTABLE.fullmatch(value) is None:
        raise ValueError("manifest is not printable ASCII; cannot travel as a header")
    return value


@dataclass(frozen=True)
class Part:
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    body: bytes = field(repr=False)
    manifests: tuple[bytes, ...] = ()  # every X-Segment-Manifest header, in order


class PartParser:
    """Incremental parser for the parts above; ``feed`` returns the parts completed so far.

    Headers are parsed from a small buffer; once a part's Content-Length is
    known its body is collected as the chunks arrive and joined once, so a
    JPEG is copied about once on its way through, not once per chunk.
    """

    def __init__(self, boundary: str = BOUNDARY) -> None:
        self._delimiter = b"--" + boundary.encode("ascii")
        self._buffer = bytearray()  # unparsed bytes while no body is being collected
        self._closed = False
        self._part: tuple[dict[str, str], tuple[bytes, ...], int] | None = None  # headers of the open body
        self._chunks: list[bytes] = []  # the open body's bytes so far (and what follows it)
        self._have = 0  # bytes in _chunks

    @property
    def closed(self) -> bool:
        """True once the close delimiter was seen."""
        return self._closed

    def feed(self, data: bytes) -> list[Part]:
        if self._closed:
            if data.strip():
                raise FormatError("data after the multipart close delimiter")
            return []
        parts: list[Part] = []
        if self._part is not None:
            self._chunks.append(bytes(data))
            self._have += len(data)
            part = self._body()
            if part is None:
                return parts
            parts.append(part)
        else:
            self._buffer += data
        while not self._closed:
            part = self._next()
            if part is None:
                break
            parts.append(part)
        return parts

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
            rest = bytes(buf[after + 2 :])
            buf.clear()
            if rest.strip():
                raise FormatError("data after the multipart close delimiter")
            return None
        if buf[after : after + 2] != b"\r\n":
            raise FormatError("multipart delimiter is not followed by CRLF")
        end = buf.find(b"\r\n\r\n", after, after + MAX_HEADER_BLOCK + 4)
        if end < 0:
            if len(buf) > MAX_HEADER_BLOCK:
                raise FormatError(f"part headers exceed {MAX_HEADER_BLOCK} bytes")
            return None
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
        self._part = (headers, tuple(manifests), int(length_text))
        with memoryview(buf) as view:  # one copy of the body's first bytes, not two
            self._chunks = [bytes(view[end + 4 :])]
        self._have = len(self._chunks[0])
        buf.clear()
        return self._body()

    def _body(self) -> Part | None:
        """The open part once its body and CRLF are in; the bytes after it go back to the buffer."""
        assert self._part is not None
        headers, manifests, length = self._part
        if self._have < length + 2:
            return None
        chunks, taken, i = self._chunks, 0, 0
        while taken + len(chunks[i]) < length:  # chunks[i] holds the body's last byte
            taken += len(chunks[i])
            i += 1
        cut = length - taken
        last = chunks[i]
        body = b"".join([*chunks[:i], last[:cut]]) if i or cut < len(last) else last
        self._buffer += last[cut:]
        for chunk in chunks[i + 1 :]:
            self._buffer += chunk
        self._part, self._chunks, self._have = None, [], 0
        if not self._buffer.startswith(b"\r\n"):
            raise FormatError("part body is not followed by CRLF (Content-Length wrong?)")
        del self._buffer[:2]
        return Part(headers, body, manifests)
