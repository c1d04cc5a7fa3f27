"""Signed H.264: one signed SEI per GOP, modelled on ONVIF Media Signing.

As in ONVIF Media Signing (and Axis's signed-video-framework), the signature
travels *in* the video as an SEI NAL unit of type ``user_data_unregistered``
(H.264 7.3.2.3.1, payloadType 5) and signs the hashes of the NAL units of a
GOP; the SEI for GOP *n* is sent in the first access unit of GOP *n + 1*,
between the parameter sets and the IDR slice, and is excluded from every
hash. The key is the device's stream-signing key, certified by the device
identity chain exactly as for the signed MJPEG stream
(:mod:`device.stream.signing`: same envelope, same certificates).

Not byte-compatible with the ONVIF TLV layout: the SEI carries its own UUID
(:data:`SEI_UUID`, not ONVIF's ``005bc93f-...``) and a DSSE envelope
(canonical JSON) instead of ONVIF's TLVs, so ONVIF validators skip it as an
unknown SEI rather than misreading it. docs/RTSP.md says what was and was
not tested.

GOP payload (canonical JSON, signed in the envelope, payloadType
``application/vnd.refcam.h264-gop+json``)::

    {"type": "refcam.h264.gop/1", "alg", "key_id", "device",
     "session": "<32 hex, random per encoder session>",
     "gop": 7,                         # counter from 0 within the session
     "frames": 15,                     # access units in the GOP
     "nal_hashes": ["<hex SHA-256 of each NAL unit, as sent (with emulation prevention), in order>"],
     "previous": "<hex SHA-256 of GOP 6's payload bytes>" | null}

Example::

    signer = GopSigner(stream_signer, session=os.urandom(16))
    nals = signer.add_access_unit(nals, key=True, capture_wall_ns=t)   # SEI inserted at GOP starts
    found = find_signature(nal)                                         # envelope bytes or None
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import MediaError
from .rtp import nal_type

if TYPE_CHECKING:
    from ..stream.signing import StreamSigner

SEI_UUID = bytes.fromhex("8f0a5e3c7b2d4e61a9c4726566636d31")  # refcam "signed GOP" SEI (…"refcm1")
GOP_TYPE = "refcam.h264.gop/1"
GOP_PAYLOAD_TYPE = "application/vnd.refcam.h264-gop+json"
USER_DATA_UNREGISTERED = 5
MAX_GOP_NALS = 4096


def add_emulation_prevention(rbsp: bytes) -> bytes:
    """H.264 7.4.1: insert 0x03 after two zero bytes when the next byte is 0..3."""
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def remove_emulation_prevention(ebsp: bytes) -> bytes:
    out = bytearray()
    zeros = 0
    for byte in ebsp:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def _ff_coded(value: int) -> bytes:
    return b"\xff" * (value // 255) + bytes((value % 255,))


def sei_nal(envelope: bytes) -> bytes:
    """One SEI NAL unit (nal_ref_idc 0, type 6) with a user_data_unregistered message."""
    body = SEI_UUID + envelope
    rbsp = _ff_coded(USER_DATA_UNREGISTERED) + _ff_coded(len(body)) + body + b"\x80"
    return b"\x06" + add_emulation_prevention(rbsp)


def find_signature(nal: bytes) -> bytes | None:
    """The envelope if ``nal`` is our signing SEI, else None; MediaError if it is ours but malformed."""
    if not nal or nal_type(nal) != 6:
        return None
    rbsp = remove_emulation_prevention(nal[1:])
    offset = 0
    while offset < len(rbsp) and rbsp[offset] != 0x80:
        kind, offset = _read_ff(rbsp, offset)
        size, offset = _read_ff(rbsp, offset)
        content = rbsp[offset : offset + size]
        offset += size
        if kind == USER_DATA_UNREGISTERED and content[:16] == SEI_UUID:
            if len(content) != size:
                raise MediaError("signing SEI is truncated")
            return content[16:]
    return None


def _read_ff(data: bytes, offset: int) -> tuple[int, int]:
    value = 0
    while offset < len(data) and data[offset] == 0xFF:
        value += 255
        offset += 1
    if offset >= len(data):
        raise MediaError("SEI message header runs past the NAL unit")
    return value + data[offset], offset + 1


def nal_hash(nal: bytes) -> str:
    return hashlib.sha256(nal).hexdigest()


class GopSigner:
    """Collects each GOP's NAL hashes and inserts the signed SEI into the next GOP's first access unit."""

    def __init__(self, signer: StreamSigner, *, session: bytes) -> None:
        self.signer = signer
        self.session = session.hex()
        self.gop = 0
        self._hashes: list[str] = []
        self._frames = 0
        self._previous: str | None = None

    def add_access_unit(self, nals: list[bytes], *, key: bool, capture_wall_ns: int = 0) -> list[bytes]:
        out = nals
        if key and self._frames:
            sei = sei_nal(self._sign())
            at = next((i for i, n in enumerate(nals) if nal_type(n) in (1, 5)), len(nals))  # before the slice
            out = [*nals[:at], sei, *nals[at:]]
        if len(self._hashes) + len(nals) > MAX_GOP_NALS:
            raise MediaError(f"GOP exceeds {MAX_GOP_NALS} NAL units")
        self._hashes.extend(nal_hash(n) for n in nals)
        self._frames += 1
        return out

    def _sign(self) -> bytes:
        signer = self.signer
        payload = {
            "type": GOP_TYPE,
            "alg": signer.algorithm,
            "key_id": signer.key_id,
            "device": signer.device,
            "session": self.session,
            "gop": self.gop,
            "frames": self._frames,
            "nal_hashes": self._hashes,
            "previous": self._previous,
        }
        from ..stream.signing import canonical_json

        body = canonical_json(payload)
        envelope = signer.envelope_for(GOP_PAYLOAD_TYPE, body)
        self._previous = hashlib.sha256(body).hexdigest()
        self.gop += 1
        self._hashes, self._frames = [], 0
        return envelope


@dataclass(frozen=True)
class RecordedGop:
    """A GOP as found in a recording: its NAL hashes (signing SEIs left out) and the SEI it carries."""

    index: int  # position in the recording, from 0
    frames: int
    nal_hashes: tuple[str, ...]
    signature: bytes | None  # the envelope of the signing SEI in this GOP (it signs the GOP before)
    malformed: str | None = None  # a signing SEI that could not be read


def split_gops(nals: list[bytes]) -> list[RecordedGop]:
    """Group a recorded NAL sequence into GOPs: each opens with parameter sets and an IDR slice.

    NAL units before the first key frame (a recording that did not start at
    one) form no GOP and are not reported.
    """
    gops: list[RecordedGop] = []
    current: list[bytes] | None = None
    frames = 0
    signature: bytes | None = None
    malformed: str | None = None
    lead: list[bytes] = []  # non-VCL NAL units waiting for the slice of their access unit
    lead_signature: bytes | None = None
    lead_malformed: str | None = None

    def close() -> None:
        if current is not None:
            hashes = tuple(nal_hash(n) for n in current)
            gops.append(RecordedGop(len(gops), frames, hashes, signature, malformed))

    for nal in nals:
        kind = nal_type(nal)
        try:
            envelope = find_signature(nal)
        except MediaError as exc:
            lead_signature, lead_malformed = None, str(exc)
            continue
        if envelope is not None:
            lead_signature, lead_malformed = envelope, None
            continue
        if kind not in (1, 5):  # SPS, PPS, other SEI, AUD...: part of the next access unit
            lead.append(nal)
            continue
        opens = kind == 5 and (current is None or any(nal_type(n) == 7 for n in lead))
        if opens:
            close()
            current, frames = [], 0
            signature, malformed = lead_signature, lead_malformed
        elif current is None:  # before the first key frame
            lead.clear()
            lead_signature = lead_malformed = None
            continue
        current.extend(lead)
        current.append(nal)
        lead.clear()
        lead_signature = lead_malformed = None
        if _first_slice(nal):
            frames += 1
    if current is not None:
        current.extend(lead)
    close()
    return gops


def _first_slice(nal: bytes) -> bool:
    """first_mb_in_slice == 0: ue(v) 0 is a single 1 bit, the top bit of the slice header."""
    return len(nal) > 1 and bool(nal[1] & 0x80)
