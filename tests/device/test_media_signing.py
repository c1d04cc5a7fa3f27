"""ONVIF Media Signing of H.264 (device/rtsp/mediasign.py), checked against ONVIF's reference implementation.

Both ways: what refcam signs, the reference validator (onvif/media-signing-framework,
vendored under tests/third_party and built with gcc) accepts as authentic with
its provenance proven to the manufacturer root, and finds the same tampering;
what the reference signer signs, `refcam stream verify`'s core accepts, with
and without emulation prevention before signing.
"""

from __future__ import annotations

import contextlib
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from device_fixtures import SERIAL
from hypothesis import given, settings
from hypothesis import strategies as st

from bootloader.keys import make_ca_certificate
from device.rtsp.errors import MediaError
from device.rtsp.media import H264Encoder
from device.rtsp.mediasign import (
    HASH_SIZE,
    ONVIF_UUID,
    RESERVED_EPB_BEFORE_SIGNING,
    TAG_CERTIFICATES,
    TAG_GENERAL,
    TAG_HASH_LIST,
    GopInfo,
    GopSigner,
    build_sei,
    parse_sei,
    verify_sei_signature,
)
from device.rtsp.rtp import annexb, split_annexb
from device.stream.signing import StreamSigner
from refcam.streamverify import verify_h264

AUTHENTICITY_NOT_OK, AUTHENTICITY_OK = 2, 4
PROVENANCE_OK = 3


def _encode(frames: int = 100) -> list[tuple[list[bytes], bool]]:
    encoder = H264Encoder(320, 240, 30.0)
    out = []
    for i in range(frames):
        image = np.full((240, 320, 3), (i * 7) % 255, np.uint8)
        image[(i * 3) % 200 : (i * 3) % 200 + 30, 50:90] = 255
        out += encoder.encode(image, i)
    return out


@pytest.fixture(scope="module")
def units() -> list[tuple[list[bytes], bool]]:
    return _encode()


@pytest.fixture(scope="module")
def p256(device_pki) -> StreamSigner:  # type: ignore[no-untyped-def]
    key = serialization.load_pem_private_key(device_pki.stream_p256_key_pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return StreamSigner(key, x509.load_pem_x509_certificates(device_pki.stream_p256_pem), device=SERIAL)


def _signed(units: list[tuple[list[bytes], bool]], signer: StreamSigner) -> list[bytes]:
    gops = GopSigner(signer, firmware_version="9.8.7")
    out: list[bytes] = []
    for i, (nals, key) in enumerate(units):
        out += gops.add_access_unit(nals, key=key, capture_wall_ns=1_760_000_000_000_000_000 + i * 33_333_333)
    return out


def _validate(tool: Path, root: Path, stream: Path) -> tuple[list[tuple[int, str, str]], dict[str, str]]:
    result = subprocess.run([str(tool), "validate", str(root), str(stream)], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert not [line for line in lines if line.startswith("error")], result.stdout
    validations = [(int(p[1]), p[2], p[3]) for p in (line.split() for line in lines if line.startswith("validation"))]
    summary = dict(field.split("=", 1) for field in lines[-1].split()[1:])
    return validations, summary


def _gop_starts(nals: list[bytes]) -> list[int]:
    return [i for i, n in enumerate(nals) if n[0] & 0x1F == 7]


def _changed(nals: list[bytes], gop: int) -> list[bytes]:
    starts = _gop_starts(nals)
    index = next(i for i in range(starts[gop], starts[gop + 1]) if nals[i][0] & 0x1F == 1)
    body = bytearray(nals[index])
    body[len(body) // 2] ^= 0x01
    return [*nals[:index], bytes(body), *nals[index + 1 :]]


def _cut(nals: list[bytes], gop: int) -> list[bytes]:
    starts = _gop_starts(nals)
    return nals[: starts[gop]] + nals[starts[gop + 1] :]


def _root(tmp_path: Path, device_pki) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path / "root.pem"
    root.write_bytes(device_pki.root_pem)
    return root


def _verify(nals: list[bytes], device_pki):  # type: ignore[no-untyped-def]
    root = x509.load_pem_x509_certificate(device_pki.root_pem)
    return verify_h264(annexb(nals), trust_root=root, now=datetime.now(UTC))


def test_reference_validator_accepts_what_refcam_signs(oms_tool, device_pki, units, p256, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stream = tmp_path / "signed.h264"
    stream.write_bytes(annexb(_signed(units, p256)))
    validations, summary = _validate(oms_tool, _root(tmp_path, device_pki), stream)
    assert len(validations) == 3  # GOPs 1..3 of 100 frames at one key frame a second; the 4th is unsigned
    assert all(v[0] == AUTHENTICITY_OK and "N" not in v[2] and "M" not in v[2] for v in validations), validations
    assert (summary["authenticity"], summary["provenance"]) == (str(AUTHENTICITY_OK), str(PROVENANCE_OK))
    assert (summary["serial"], summary["firmware"], summary["manufacturer"]) == (SERIAL, "9.8.7", "refcam")


def test_reference_validator_finds_the_tampering_refcam_finds(oms_tool, device_pki, units, p256, tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = _root(tmp_path, device_pki)
    signed = _signed(units, p256)
    for name, nals, ours in (
        ("changed", _changed(signed, 1), "GOP 2 (at 1): NAL unit 1 differs"),
        ("cut", _cut(signed, 2), "GOP 3 is missing from the recording"),
    ):
        stream = tmp_path / f"{name}.h264"
        stream.write_bytes(annexb(nals))
        validations, summary = _validate(oms_tool, root, stream)
        assert summary["authenticity"] == str(AUTHENTICITY_NOT_OK), (name, validations)
        assert any("N" in v[2] for v in validations), (name, validations)
        report = _verify(nals, device_pki)
        assert report.verdict == "not_authentic"
        assert ours in [g.detail for g in report.gops], report.gops


def test_a_foreign_root_proves_no_provenance(oms_tool, units, p256, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = ec.generate_private_key(ec.SECP256R1())
    root = make_ca_certificate(key=other, common_name="another maker", now=datetime.now(UTC) - timedelta(days=1),
                               lifetime=timedelta(days=30), path_length=1)
    root_file = tmp_path / "other.pem"
    root_file.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    stream = tmp_path / "signed.h264"
    stream.write_bytes(annexb(_signed(units, p256)))
    _, summary = _validate(oms_tool, root_file, stream)
    assert summary["provenance"] != str(PROVENANCE_OK)
    report = verify_h264(stream.read_bytes(), trust_root=root, now=datetime.now(UTC))
    assert report.verdict == "not_authentic"
    assert all(g.status in ("tampered", "unsigned") for g in report.gops)


@pytest.mark.parametrize("epb", [False, True], ids=["escaped-after-signing", "escaped-before-signing"])
def test_refcam_verifies_what_the_reference_signs(oms_tool, device_pki, units, epb, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plain = tmp_path / "plain.h264"
    plain.write_bytes(annexb([n for nals, _ in units for n in nals]))
    key, chain = tmp_path / "key.pem", tmp_path / "chain.pem"
    key.write_bytes(device_pki.stream_p256_key_pem)
    chain.write_bytes(device_pki.stream_p256_pem + device_pki.root_pem)
    signed = tmp_path / "reference.h264"
    result = subprocess.run([str(oms_tool), "sign", str(key), str(chain), str(plain), str(signed),
                             *(["epb"] if epb else [])], capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    nals = split_annexb(signed.read_bytes())
    seis = [parse_sei(n) for n in nals if n[0] & 0x1F == 6]
    assert [bool(s.reserved & RESERVED_EPB_BEFORE_SIGNING) for s in seis if s is not None] == [epb] * 3
    report = _verify(nals, device_pki)
    assert [g.status for g in report.gops] == ["authentic"] * 3 + ["unsigned"], report.gops
    assert report.signer is not None and "reference-signer" in report.signer
    tampered = _verify(_changed(nals, 2), device_pki)
    assert [g.status for g in tampered.gops] == ["authentic", "authentic", "tampered", "unsigned"], tampered.gops


def test_the_document_is_the_sei_as_sent_up_to_the_signature_tag(p256) -> None:  # type: ignore[no-untyped-def]
    # A value ending in two zero bytes makes H.264 insert 0x03 before the signature tag (itself 0x03):
    # that byte is part of the signed document, as the reference validator reads it.
    info = GopInfo(2, (26, 6, 0), False, 1, 2, 7, 1, bytes(HASH_SIZE), bytes(HASH_SIZE))
    tlvs = bytes((TAG_GENERAL,)) + len(info.encode()).to_bytes(2, "big") + info.encode()
    assert tlvs.endswith(b"\x00\x00")
    key = p256.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    nal = build_sei(tlvs, key)
    sei = parse_sei(nal)
    assert sei is not None and sei.general == info
    assert sei.document.endswith(b"\x00\x00\x03") and nal.startswith(sei.document + b"\x03")
    verify_sei_signature(sei, key.public_key())
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InvalidSignature):
        verify_sei_signature(sei, other.public_key())


def test_malformed_signing_seis_are_named(p256) -> None:  # type: ignore[no-untyped-def]
    key = p256.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    good = build_sei(bytes((TAG_HASH_LIST,)) + b"\x00\x21\x01" + bytes(32), key)
    assert parse_sei(good) is not None
    assert parse_sei(b"\x65\x88\x80") is None  # a slice
    assert parse_sei(b"\x06\x05\x10" + bytes(16) + b"\x80") is None  # another user_data_unregistered
    head = b"\x06\x05"
    cases = {
        "runs past": head + bytes((40,)) + ONVIF_UUID + b"\x00" + b"\x02\x00\x50\x01" + bytes(20) + b"\x80",
        "unknown TLV tag": head + bytes((21,)) + ONVIF_UUID + b"\x00" + b"\x09\x00\x01\x01" + b"\x80",
        "not the last": head + bytes((27,)) + ONVIF_UUID + b"\x00" + b"\x03\x00\x03\x01\x00\x00" + b"\x02\x00\x01\x01" + b"\x80",
        "truncated": head + bytes((16,)) + ONVIF_UUID + b"\x80",
    }
    for words, nal in cases.items():
        with pytest.raises(MediaError, match=words):
            parse_sei(nal)


def test_ed25519_cannot_sign_onvif_media(device_pki) -> None:  # type: ignore[no-untyped-def]
    key = serialization.load_pem_private_key(device_pki.stream_key_pem, password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    signer = StreamSigner(key, x509.load_pem_x509_certificates(device_pki.stream_pem), device=SERIAL)
    with pytest.raises(MediaError, match="P-256"):
        GopSigner(signer)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_parse_sei_on_hostile_bytes_raises_only_media_error(tail: bytes) -> None:
    for nal in (b"\x06\x05" + bytes((min(len(tail) + 17, 255),)) + ONVIF_UUID + tail, b"\x06" + tail):
        try:
            sei = parse_sei(nal)
        except MediaError:
            continue
        if sei is not None:
            for name in ("general", "hash_list", "vendor", "certificate_chain", "hash_oid"):
                with contextlib.suppress(MediaError):  # anything else escapes and fails the test
                    getattr(sei, name)


def test_verify_names_every_mutation_of_a_signing_sei(device_pki, units, p256) -> None:  # type: ignore[no-untyped-def]
    """Any byte of an SEI changed, or the SEI cut short: a verdict for every GOP, never an exception."""
    nals = _signed(units, p256)[:80]
    at = next(i for i, n in enumerate(nals) if parse_sei(n) is not None)
    root = x509.load_pem_x509_certificate(device_pki.root_pem)
    sei = nals[at]
    for offset in range(1, len(sei), 7):
        for variant in (sei[:offset] + bytes([sei[offset] ^ 0x5A]) + sei[offset + 1 :], sei[:offset]):
            report = verify_h264(annexb([*nals[:at], variant, *nals[at + 1 :]]), trust_root=root,
                                 now=datetime.now(UTC))
            assert report.gops and report.verdict in ("authentic", "not_authentic"), offset


def test_verify_reads_late_and_repeated_seis(device_pki, units, p256) -> None:  # type: ignore[no-untyped-def]
    """The specification lets a camera add the SEI later in the next GOP (IPSPPP), or send it twice."""
    signed = _signed(units, p256)
    late: list[bytes] = []
    waiting: list[bytes] = []
    for nal in signed:
        if parse_sei(nal) is not None:
            waiting.append(nal)
            continue
        late.append(nal)
        if waiting and nal[0] & 0x1F == 1:  # after the IDR and the first P slice of the next GOP
            late += waiting + waiting
            waiting = []
    report = _verify(late, device_pki)
    assert [g.status for g in report.gops] == ["authentic"] * 3 + ["unsigned"], report.gops
    changed = _verify(_changed(late, 1), device_pki)
    assert [g.status for g in changed.gops] == ["authentic", "tampered", "authentic", "unsigned"], changed.gops


def test_a_malformed_certificate_sei_is_no_chain_and_no_crash(device_pki, units, p256) -> None:  # type: ignore[no-untyped-def]
    key = p256.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    broken = build_sei(bytes((TAG_CERTIFICATES,)) + b"\x00\x01\x07", key, certificate_sei=True)
    signed = _signed(units, p256)
    report = _verify([broken, *signed], device_pki)
    assert [g.status for g in report.gops] == ["authentic"] * 3 + ["unsigned"], report.gops


def _second_sei(nals: list[bytes]) -> int:
    return [i for i, n in enumerate(nals) if parse_sei(n) is not None][1]


def _forged(sei: bytes) -> bytes:
    """The SEI with one byte of its signature changed (the trailing stop bit kept)."""
    return sei[:-5] + bytes([sei[-5] ^ 0x01]) + sei[-4:]


@pytest.mark.parametrize("order", ["forged first", "forged after"])
def test_a_forged_sei_beside_a_good_one_is_not_outvoted(  # type: ignore[no-untyped-def]
    oms_tool, device_pki, units, p256, order, tmp_path
) -> None:
    """Two different SEIs claim GOP 1, one with a broken signature: whichever comes last, the
    GOP is not authentic (a camera repeats an SEI byte for byte, never differently). The
    reference validator calls both streams not authentic too."""
    nals = _signed(units, p256)
    at = _second_sei(nals)
    pair = [_forged(nals[at]), nals[at]] if order == "forged first" else [nals[at], _forged(nals[at])]
    stream = [*nals[:at], *pair, *nals[at + 1 :]]
    recording = tmp_path / "forged.264"
    recording.write_bytes(annexb(stream))
    _, summary = _validate(oms_tool, _root(tmp_path, device_pki), recording)
    assert summary["authenticity"] == str(AUTHENTICITY_NOT_OK), summary
    report = _verify(stream, device_pki)
    statuses = [g.status for g in report.gops]
    assert statuses == ["authentic", "tampered", "authentic", "unsigned"], report.gops
    assert "does not verify" in report.gops[1].detail
    assert report.verdict == "not_authentic"
