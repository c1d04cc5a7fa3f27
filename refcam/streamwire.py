"""The recorder's side of the MJPEG wire format: an incremental, strict part parser.

The parts are documented (and written) in :mod:`device.stream.multipart`;
parsing them is a client's job, so it lives here with the recorder, outside
the firmware. Content-Length is required and header blocks are bounded,
since the bytes come from the network::

    parser = PartParser(BOUNDARY)
    for part in parser.feed(chunk):
        part.headers["x-frame-seq"], part.body, parse_ranges(part.headers.get("x-frames-not-sent", ""))
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from device.stream.errors import FormatError
from device.stream.multipart import BOUNDARY

MAX_HEADER_BLOCK = 1024 * 1024  # bytes; a part's headers (manifests included)
MAX_PART = 64 * 2**20  # bytes
MAX_RANGES = 100_000  # ranges in one X-Frames-Not-Sent header
_RANGE = re.compile(r"(\d{1,19})(?:-(\d{1,19}))?")


def parse_ranges(text: str) -> tuple[tuple[int, int], ...]:
    """``"0-119,125"`` -> ``((0, 119), (125, 125))``; raises :class:`FormatError`. Empty text: no range."""
    if not text.strip():
        return ()
    items = text.split(",")
    if len(items) > MAX_RANGES:
        raise FormatError(f"X-Frames-Not-Sent lists {len(items)} ranges; at most {MAX_RANGES} expected")
    ranges: list[tuple[int, int]] = []
    for item in items:
        match = _RANGE.fullmatch(item.strip())
        if match is None:
            raise FormatError(f"X-Frames-Not-Sent item {item[:30]!r} is not SEQ or FIRST-LAST")
        first = int(match[1])
        last = int(match[2]) if match[2] is not None else first
        if last < first:
            raise FormatError(f"X-Frames-Not-Sent range {item!r} ends before it starts")
        ranges.append((first, last))
    return tuple(ranges)


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
