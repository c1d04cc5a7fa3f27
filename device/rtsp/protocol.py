"""RTSP 1.0 wire format (RFC 2326), pure: strict request parsing with size limits, responses.

A request head is at most :data:`MAX_HEAD` bytes (request line and headers up
to the blank line), at most :data:`MAX_HEADERS` header lines, a body at most
:data:`MAX_BODY` bytes. Anything else is an :class:`RtspError` with the status
to answer (400, 413, 414, 505...), never an exception of another kind::

    request = parse_request(head)          # bytes up to and including CRLF CRLF
    wire = format_response(200, "OK", cseq=request.cseq, headers={"Public": "..."})

Interleaved binary data (RFC 2326 10.12) is ``$``, a channel byte, a 16-bit
length and the packet: :func:`interleaved` frames one.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from .errors import RtspError

MAX_HEAD = 8192  # bytes of request line + headers
MAX_HEADERS = 50
MAX_BODY = 4096  # GET_PARAMETER / SET_PARAMETER bodies are tiny
MAX_URI = 1024
METHODS = ("OPTIONS", "DESCRIBE", "SETUP", "PLAY", "PAUSE", "TEARDOWN", "GET_PARAMETER")
SERVER = "refcam"  # no version, as on HTTPS

_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CSEQ = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class Request:
    method: str
    uri: str
    cseq: int
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names; repeated names refused
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def path(self) -> str:
        """The URI's path without a trailing ``/trackID=N`` control suffix (``/h264``)."""
        path = uri_path(self.uri)
        return re.sub(r"/trackID=[0-9]+$", "", path).rstrip("/") or "/"


def uri_path(uri: str) -> str:
    if uri == "*":
        return "*"
    try:
        parts = urlsplit(uri)
    except ValueError as exc:
        raise RtspError(400, "Bad Request", f"request URI {uri[:80]!r} is not a URI") from exc
    if parts.scheme not in ("rtsp", "rtsps") or not parts.hostname:
        raise RtspError(400, "Bad Request", "request URI must be an absolute rtsps:// URL")
    return parts.path or "/"


def head_length(buffer: bytes | bytearray) -> int | None:
    """Bytes of the request head at the start of ``buffer`` (with CRLF CRLF), None if incomplete.

    Raises 431-style 400 when no end of head is found within :data:`MAX_HEAD`.
    """
    end = buffer.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
    if end < 0:
        if len(buffer) >= MAX_HEAD:
            raise RtspError(400, "Bad Request", f"request head exceeds {MAX_HEAD} bytes")
        return None
    return end + 4


def parse_request(head: bytes) -> Request:
    """Parse a request head (request line + headers + CRLF CRLF); the body is read separately."""
    if len(head) > MAX_HEAD + 4:
        raise RtspError(400, "Bad Request", f"request head exceeds {MAX_HEAD} bytes")
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise RtspError(400, "Bad Request", "request head is not ASCII") from None
    if not text.endswith("\r\n\r\n"):
        raise RtspError(400, "Bad Request", "request head does not end with an empty line")
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not all(parts):
        raise RtspError(400, "Bad Request", "malformed request line")
    method, uri, version = parts
    if version != "RTSP/1.0":
        raise RtspError(505, "RTSP Version not supported", f"version {version[:20]!r} is not RTSP/1.0")
    if not _TOKEN.fullmatch(method.encode()):
        raise RtspError(400, "Bad Request", "malformed method")
    if len(uri) > MAX_URI:
        raise RtspError(414, "Request-URI Too Large", f"request URI exceeds {MAX_URI} characters")
    if any(ord(c) < 0x21 or ord(c) > 0x7E for c in uri):
        raise RtspError(400, "Bad Request", "request URI has control or space characters")
    if len(lines) - 1 > MAX_HEADERS:
        raise RtspError(400, "Bad Request", f"more than {MAX_HEADERS} header lines")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or not _TOKEN.fullmatch(name.encode()):
            raise RtspError(400, "Bad Request", "malformed header line")
        if any(ord(c) < 0x20 and c != "\t" for c in value):
            raise RtspError(400, "Bad Request", "control character in a header value")
        key = name.lower()
        if key in headers:
            raise RtspError(400, "Bad Request", f"header {name} appears twice")
        headers[key] = value.strip()
    cseq_text = headers.get("cseq")
    if cseq_text is None or not _CSEQ.fullmatch(cseq_text):
        raise RtspError(400, "Bad Request", "missing or malformed CSeq")
    return Request(method, uri, int(cseq_text), headers)


def content_length(request: Request) -> int:
    value = request.header("content-length")
    if value is None:
        return 0
    if not re.fullmatch(r"[0-9]{1,7}", value):
        raise RtspError(400, "Bad Request", "malformed Content-Length")
    length = int(value)
    if length > MAX_BODY:
        raise RtspError(413, "Request Entity Too Large", f"body exceeds {MAX_BODY} bytes")
    return length


def format_response(
    status: int,
    reason: str,
    *,
    cseq: int | None,
    headers: dict[str, str] | list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
) -> bytes:
    lines = [f"RTSP/1.0 {status} {reason}"]
    if cseq is not None:
        lines.append(f"CSeq: {cseq}")
    lines.append(f"Server: {SERVER}")
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    for name, value in items:
        if "\r" in value or "\n" in value:
            raise ValueError(f"header {name} value has a line break")
        lines.append(f"{name}: {value}")
    if body:
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


def interleaved(channel: int, packet: bytes) -> bytes:
    """RFC 2326 10.12 framing of one RTP/RTCP packet on the RTSP connection."""
    return struct.pack("!cBH", b"$", channel, len(packet)) + packet


@dataclass(frozen=True)
class Transport:
    """The client's interleaved transport request, as accepted."""

    channels: tuple[int, int]


def parse_transport(value: str | None) -> Transport:
    """Accept only ``RTP/AVP/TCP;unicast;interleaved=a-b`` (461 Unsupported Transport otherwise)."""
    if not value:
        raise RtspError(400, "Bad Request", "SETUP without a Transport header")
    for spec in value.split(","):
        params = [p.strip() for p in spec.split(";")]
        if params[0].upper() != "RTP/AVP/TCP":
            continue
        if any(p.lower() == "multicast" for p in params[1:]):
            continue
        channels = (0, 1)
        for param in params[1:]:
            name, _, arg = param.partition("=")
            if name.lower() == "interleaved":
                match = re.fullmatch(r"([0-9]{1,3})(?:-([0-9]{1,3}))?", arg)
                if match is None:
                    raise RtspError(400, "Bad Request", "malformed interleaved channels")
                first = int(match.group(1))
                second = int(match.group(2)) if match.group(2) is not None else first + 1
                if first > 255 or second > 255 or first == second:
                    raise RtspError(400, "Bad Request", "interleaved channels out of range")
                channels = (first, second)
        return Transport(channels)
    raise RtspError(
        461, "Unsupported transport", "only RTP/AVP/TCP interleaved on the TLS connection (RFC 2326 10.12)"
    )
