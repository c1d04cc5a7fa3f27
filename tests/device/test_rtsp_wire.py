"""The pure RTSP/RTP cores: strict parsing never raises anything but RtspError; payloads round-trip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.rtsp.errors import MediaError, RtspError
from device.rtsp.mediasign import add_emulation_prevention, remove_emulation_prevention
from device.rtsp.protocol import head_length, parse_request, parse_transport
from device.rtsp.rtp import h264_payloads, jpeg_payloads, parse_jpeg, split_annexb


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_request_refuses_with_rtsp_error_only(data: bytes) -> None:
    try:
        length = head_length(data)
        if length is not None:
            parse_request(data[:length])
    except RtspError as exc:
        assert 400 <= exc.status < 600


def test_a_good_request_parses() -> None:
    request = parse_request(b"DESCRIBE rtsps://cam:322/h264/trackID=0 RTSP/1.0\r\nCSeq: 7\r\nAccept: application/sdp\r\n\r\n")
    assert (request.method, request.cseq, request.path, request.header("Accept")) == (
        "DESCRIBE", 7, "/h264", "application/sdp"
    )


def test_transport_only_interleaved_tcp() -> None:
    assert parse_transport("RTP/AVP/TCP;unicast;interleaved=2-3").channels == (2, 3)
    with pytest.raises(RtspError) as exc:
        parse_transport("RTP/AVP;unicast;client_port=5000-5001")
    assert exc.value.status == 461


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=5000), min_size=1, max_size=5))
def test_fu_a_reassembles_every_nal(bodies: list[bytes]) -> None:
    nals = [bytes([0x65]) + b.replace(b"\x00\x00", b"\x00\x01") for b in bodies]
    payloads = h264_payloads(nals, mtu=1000)
    assert all(len(p) <= 1000 for p in payloads)
    out, fu = [], bytearray()
    for p in payloads:
        if p[0] & 0x1F == 28:
            if p[1] & 0x80:
                fu = bytearray([(p[0] & 0xE0) | (p[1] & 0x1F)])
            fu += p[2:]
            if p[1] & 0x40:
                out.append(bytes(fu))
        else:
            out.append(p)
    assert out == nals


@given(st.binary(max_size=300))
def test_emulation_prevention_round_trips(data: bytes) -> None:
    escaped = add_emulation_prevention(data)
    assert b"\x00\x00\x00" not in escaped and b"\x00\x00\x01" not in escaped and b"\x00\x00\x02" not in escaped
    assert remove_emulation_prevention(escaped) == data


def test_split_annexb() -> None:
    assert split_annexb(b"\x00\x00\x00\x01\x67ab\x00\x00\x01\x68c\x00\x00\x00\x01\x65d") == [b"\x67ab", b"\x68c", b"\x65d"]


def test_jpeg_from_the_pipeline_encoder_is_carried_and_others_refused() -> None:
    image = np.zeros((240, 320, 3), np.uint8)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80, cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
                                            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420])
    assert ok
    frame = parse_jpeg(jpeg.tobytes())
    assert (frame.width, frame.height, frame.type, len(frame.tables)) == (320, 240, 1, 128)
    payloads = jpeg_payloads(frame, mtu=500)
    assert payloads[0][5] == 255 and sum(len(p) - 8 for p in payloads) == len(frame.scan) + 4 + 128
    with pytest.raises(MediaError):
        parse_jpeg(b"not a jpeg")
    ok, odd = cv2.imencode(".jpg", np.zeros((100, 100, 3), np.uint8))
    with pytest.raises(MediaError):
        parse_jpeg(odd.tobytes())  # 100 is not a multiple of 8
