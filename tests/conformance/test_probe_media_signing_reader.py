"""RTSP-05's own reader of ONVIF Media Signing, on streams refcam's signer made (and then broke)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from bootloader import pki
from bootloader.keys import make_ca_certificate
from conformance.cases import rtsp
from device.rtsp.media import H264Encoder
from device.rtsp.mediasign import GopSigner
from device.stream.signing import StreamSigner

NOW = dt.datetime.now(dt.UTC)
SERIAL = "RCPROBE00001"


def _root_and_signer() -> tuple[x509.Certificate, StreamSigner]:
    root_key, ca_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    day = dt.timedelta(days=1)
    root = make_ca_certificate(key=root_key, common_name="probe test root", now=NOW - day,
                               lifetime=30 * day, path_length=1)
    ca = make_ca_certificate(key=ca_key, common_name="probe test device CA", now=NOW - day, lifetime=30 * day,
                             path_length=0, issuer_key=root_key, issuer_cert=root)
    cert = pki.issue_stream_certificate(serial=SERIAL, public_key=key.public_key(), device_ca_key=ca_key,
                                        device_ca_cert=ca, now=NOW - day)
    return root, StreamSigner(key, [cert, ca], device=SERIAL)


@pytest.fixture(scope="module")
def stream() -> tuple[x509.Certificate, list[bytes]]:
    root, signer = _root_and_signer()
    encoder, gops = H264Encoder(160, 120, 15.0), GopSigner(signer)
    nals: list[bytes] = []
    for i in range(75):  # five GOPs of 15 frames
        image = np.full((120, 160, 3), (i * 11) % 255, np.uint8)
        for unit, key in encoder.encode(image, i):
            nals += gops.add_access_unit(unit, key=key, capture_wall_ns=i * 66_666_666)
    return root, nals


def _slice_in(nals: list[bytes], gop: int) -> int:
    starts = [i for i, n in enumerate(nals) if n[0] & 0x1F == 7]
    return next(i for i in range(starts[gop], starts[gop + 1]) if nals[i][0] & 0x1F == 1)


def test_an_untouched_stream_verifies(stream) -> None:  # type: ignore[no-untyped-def]
    root, nals = stream
    checked, problems = rtsp._check_signed_gops(rtsp._gops(nals), root, NOW)
    assert (checked, problems) == (4, [])


def test_a_changed_slice_is_named(stream) -> None:  # type: ignore[no-untyped-def]
    root, nals = stream
    index = _slice_in(nals, 2)
    changed = list(nals)
    changed[index] = changed[index][:-3] + bytes([changed[index][-3] ^ 0x10]) + changed[index][-2:]
    _, problems = rtsp._check_signed_gops(rtsp._gops(changed), root, NOW)
    assert problems == ["GOP 2: NAL hashes differ from the signed ones"]


def test_a_dropped_gop_breaks_the_counter(stream) -> None:  # type: ignore[no-untyped-def]
    root, nals = stream
    starts = [i for i, n in enumerate(nals) if n[0] & 0x1F == 7]
    cut = nals[: starts[2]] + nals[starts[3] :]  # GOP 2 and the SEI that signed GOP 1 are gone
    _, problems = rtsp._check_signed_gops(rtsp._gops(cut), root, NOW)
    assert "GOP 1: SEI counter 3 does not follow 1" in problems, problems  # GOP 0 is signed by counter 1
    assert "GOP 2: not linked to the GOP before it" in problems, problems


def test_another_root_and_a_broken_sei_are_refused(stream) -> None:  # type: ignore[no-untyped-def]
    _, nals = stream
    other, _ = _root_and_signer()
    checked, problems = rtsp._check_signed_gops(rtsp._gops(nals), other, NOW)
    assert checked == 0 and len(problems) == 4 and all("does not verify" in p for p in problems)
    root, _ = stream
    sei_at = next(i for i, n in enumerate(nals) if n[0] & 0x1F == 6 and rtsp._signing_sei(n) is not None)
    broken = list(nals)
    broken[sei_at] = nals[sei_at][:40]  # cut inside its TLVs
    _, problems = rtsp._check_signed_gops(rtsp._gops(broken), root, NOW)
    assert problems and "does not verify" in problems[0]


def _moved_seis(nals: list[bytes], *, after: int) -> list[bytes]:
    """Each signing SEI moved ``after`` slices later (a camera that signs asynchronously: IPSPPP)."""
    out: list[bytes] = []
    waiting: list[bytes] = []
    slices = 0
    for nal in nals:
        if rtsp._signing_sei(nal) is not None:
            waiting.append(nal)
            slices = 0
            continue
        out.append(nal)
        if nal[0] & 0x1F in (1, 5):
            slices += 1
            if waiting and slices >= after:
                out += waiting
                waiting = []
    return out + waiting


def test_late_and_repeated_seis_are_read_as_the_specification_allows(stream) -> None:  # type: ignore[no-untyped-def]
    root, nals = stream
    late = _moved_seis(nals, after=3)
    assert (rtsp._check_signed_gops(rtsp._gops(late), root, NOW)) == (4, [])
    doubled = [m for n in nals for m in ((n, n) if rtsp._signing_sei(n) is not None else (n,))]
    assert (rtsp._check_signed_gops(rtsp._gops(doubled), root, NOW)) == (4, [])
    index = _slice_in(late, 1)
    late[index] = late[index][:-3] + bytes([late[index][-3] ^ 0x10]) + late[index][-2:]
    _, problems = rtsp._check_signed_gops(rtsp._gops(late), root, NOW)
    assert problems == ["GOP 1: NAL hashes differ from the signed ones"], problems


def test_a_forged_copy_of_an_sei_is_checked_not_taken_for_a_repeat(stream) -> None:  # type: ignore[no-untyped-def]
    """A repeat is the same bytes; the same document with another signature is checked, so a
    broken signature beside a good one is found in either order."""
    root, nals = stream
    at = [i for i, n in enumerate(nals) if rtsp._signing_sei(n) is not None][1]
    sei = nals[at]
    forged = sei[:-5] + bytes([sei[-5] ^ 0x01]) + sei[-4:]  # one signature byte; the stop bit kept
    for pair in ([sei, forged], [forged, sei]):
        _, problems = rtsp._check_signed_gops(rtsp._gops([*nals[:at], *pair, *nals[at + 1 :]]), root, NOW)
        assert len(problems) == 1 and "signature does not verify" in problems[0], problems
