"""RTP payload formats, pure: H.264 per RFC 6184 (single NAL unit + FU-A), JPEG per RFC 2435.

Payloads are built once per encoded frame and shared by every viewer; a
viewer only prefixes its own 12-byte RTP header (:func:`rtp_header`: its
sequence numbers, its SSRC) and the interleaved framing::

    nals = split_annexb(access_unit)               # b"\\x00\\x00\\x00\\x01..." -> [nal, ...]
    payloads = h264_payloads(nals, mtu=1400)       # single NAL units, FU-A for the large ones
    jpeg = parse_jpeg(data)                        # baseline 4:2:0 / 4:2:2 JFIF from cv2.imencode
    payloads = jpeg_payloads(jpeg, mtu=1400)       # main header + Q=255 in-band tables

The last payload of a frame carries the RTP marker bit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .errors import MediaError

DEFAULT_MTU = 1400  # payload bytes per RTP packet (the TLS record carries it whole)
H264_PAYLOAD_TYPE = 96
JPEG_PAYLOAD_TYPE = 26  # static (RFC 3551)
CLOCK_RATE = 90_000


def rtp_header(*, payload_type: int, seq: int, timestamp: int, ssrc: int, marker: bool) -> bytes:
    return struct.pack(
        "!BBHII", 0x80, (0x80 if marker else 0) | payload_type, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc
    )


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream (start codes 00 00 01 / 00 00 00 01 removed)."""
    nals: list[bytes] = []
    start = _next_start(data, 0)
    while start is not None:
        begin = start[1]
        following = _next_start(data, begin)
        end = following[0] if following is not None else len(data)
        nal = data[begin:end]
        if nal:
            nals.append(nal)
        start = following
    return nals


def _next_start(data: bytes, offset: int) -> tuple[int, int] | None:
    """(index where the start code begins, index after it) of the next start code."""
    index = data.find(b"\x00\x00\x01", offset)
    if index < 0:
        return None
    begin = index - 1 if index > offset and data[index - 1] == 0 else index
    # trailing zero bytes belong to the start code, not to the previous NAL
    while begin > offset and data[begin - 1] == 0:
        begin -= 1
    return begin, index + 3


def annexb(nals: list[bytes]) -> bytes:
    return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals)


def nal_type(nal: bytes) -> int:
    return nal[0] & 0x1F


def h264_payloads(nals: list[bytes], *, mtu: int = DEFAULT_MTU) -> list[bytes]:
    """RFC 6184 payloads for one access unit: single NAL unit packets, FU-A (5.8) beyond ``mtu``."""
    payloads: list[bytes] = []
    for nal in nals:
        if len(nal) <= mtu:
            payloads.append(nal)
            continue
        header = nal[0]
        indicator = (header & 0xE0) | 28  # F, NRI of the NAL; type 28 = FU-A
        kind = header & 0x1F
        body = memoryview(nal)[1:]
        chunk = mtu - 2
        for offset in range(0, len(body), chunk):
            start = offset == 0
            end = offset + chunk >= len(body)
            fu_header = (0x80 if start else 0) | (0x40 if end else 0) | kind
            payloads.append(bytes((indicator, fu_header)) + body[offset : offset + chunk])
    return payloads


@dataclass(frozen=True)
class JpegFrame:
    """The parts of a baseline JFIF that RFC 2435 carries."""

    width: int
    height: int
    type: int  # 0: 4:2:2 (2x1 luma), 1: 4:2:0 (2x2 luma)
    tables: bytes  # the quantization tables in order (64 bytes each, 8-bit precision)
    scan: bytes  # the entropy-coded data after SOS, up to (not including) EOI


def parse_jpeg(data: bytes) -> JpegFrame:
    """Split a baseline JPEG into what RFC 2435 sends; MediaError for anything it cannot carry."""
    if data[:2] != b"\xff\xd8":
        raise MediaError("not a JPEG (no SOI)")
    offset, tables, width, height, kind = 2, {}, 0, 0, -1
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            raise MediaError(f"JPEG marker expected at byte {offset}")
        marker = data[offset + 1]
        length = struct.unpack_from("!H", data, offset + 2)[0]
        segment = data[offset + 4 : offset + 2 + length]
        if marker == 0xDB:  # DQT
            index = 0
            while index < len(segment):
                precision, table = segment[index] >> 4, segment[index] & 0x0F
                if precision != 0:
                    raise MediaError("16-bit quantization tables are not carried by RFC 2435 here")
                tables[table] = segment[index + 1 : index + 65]
                index += 65
        elif marker == 0xC0:  # SOF0 baseline
            height, width = struct.unpack_from("!HH", segment, 1)
            components = segment[5]
            if components != 3:
                raise MediaError("RFC 2435 carries 3-component (YCbCr) JPEG only")
            sampling = segment[7]
            kind = {0x21: 0, 0x22: 1}.get(sampling, -1)
            if kind < 0 or segment[10] != 0x11 or segment[13] != 0x11:
                raise MediaError("RFC 2435 carries 4:2:2 or 4:2:0 sampling only")
        elif marker in (0xC1, 0xC2, 0xC3):
            raise MediaError("only baseline JPEG is carried")
        elif marker == 0xDD:
            raise MediaError("restart intervals are not carried (no restart marker header)")
        elif marker == 0xDA:  # SOS: the scan runs to EOI
            scan_start = offset + 2 + length
            end = data.rfind(b"\xff\xd9")
            if end < scan_start:
                raise MediaError("JPEG has no EOI")
            if kind < 0 or not 0 < width <= 2040 or not 0 < height <= 2040 or width % 8 or height % 8:
                raise MediaError(f"{width}x{height} JPEG cannot be carried (multiples of 8, at most 2040)")
            ordered = b"".join(tables[i] for i in sorted(tables))
            return JpegFrame(width, height, kind, ordered, data[scan_start:end])
        offset += 2 + length
    raise MediaError("JPEG ended before its scan")


def jpeg_payloads(frame: JpegFrame, *, mtu: int = DEFAULT_MTU) -> list[bytes]:
    """RFC 2435 payloads: main header on each, Q=255 with in-band tables (3.1.8) on the first."""
    payloads: list[bytes] = []
    quant = struct.pack("!BBH", 0, 0, len(frame.tables)) + frame.tables
    scan = memoryview(frame.scan)
    offset = 0
    while offset < len(scan) or offset == 0:
        extra = quant if offset == 0 else b""
        room = mtu - 8 - len(extra)
        if room <= 0:
            raise MediaError("MTU too small for the quantization tables")
        main = struct.pack(
            "!BBBBBBBB",
            0,
            (offset >> 16) & 0xFF,
            (offset >> 8) & 0xFF,
            offset & 0xFF,
            frame.type,
            255,
            frame.width // 8,
            frame.height // 8,
        )
        chunk = scan[offset : offset + room]
        payloads.append(main + extra + bytes(chunk))
        offset += len(chunk)
        if not chunk:
            break
    return payloads
