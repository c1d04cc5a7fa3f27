"""The media plane: RTSP over TLS only, Digest required, Basic and replays refused, signed H.264.

The probe's own RTSP 1.0 client (RFC 2326) on a TLS socket validated to the
operator's root, its own Digest (RFC 7616, SHA-256 preferred), its own
RTP/H.264 depacketiser (RFC 6184: single NAL unit, STAP-A, FU-A) and its own
reading of ONVIF Media Signing (specification 26.06, byte order as in ONVIF's
reference implementation): the user_data_unregistered SEI with ONVIF's UUID,
its TLVs, its certificate chain (which must end at the operator's root), its
ECDSA signature over SHA-256 of the SEI up to the signature tag, and the GOP
hash of the linked SHA-256 hashes of the GOP before it. Nothing of the
camera's code is used.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import secrets
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from ..case import ProbeContext, failed, inconclusive, not_tested, passed, register
from ..http import client_context, raw_exchange
from ..i18n import joined, msg
from ..model import Evidence, UnitResult

MEDIA_SIGNING_UUID = bytes.fromhex("005bc93f2d715e95ada4796f90877a6f")  # ONVIF Media Signing
TIMEOUT = 8.0


class RtspProbeError(Exception):
    """The RTSP exchange could not be completed (reported INCONCLUSIVE or NOT APPLICABLE)."""


@dataclass
class Reply:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def first(self, name: str) -> str:
        values = self.headers.get(name.lower(), [])
        return values[0] if values else ""


@dataclass
class RtspClient:
    sock: socket.socket
    host: str
    port: int
    cseq: int = 0
    buffer: bytearray = field(default_factory=bytearray)
    media: list[tuple[int, bytes]] = field(default_factory=list)  # (channel, packet) read while waiting

    @classmethod
    def connect(cls, host: str, port: int, context: ssl.SSLContext | None) -> RtspClient:
        raw = socket.create_connection((host, port), timeout=TIMEOUT)
        try:
            sock = context.wrap_socket(raw, server_hostname=host) if context is not None else raw
        except (ssl.SSLError, OSError):
            raw.close()
            raise
        return cls(sock, host, port)

    def url(self, path: str) -> str:
        return f"rtsps://{self.host}:{self.port}{path}"

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            return

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise RtspProbeError(msg("the camera closed the RTSP connection"))
        self.buffer += chunk

    def request(self, method: str, uri: str, headers: dict[str, str] | None = None) -> Reply:
        self.cseq += 1
        lines = [f"{method} {uri} RTSP/1.0", f"CSeq: {self.cseq}", "User-Agent: refcam-probe"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        return self.reply()

    def reply(self) -> Reply:
        while True:
            while self.buffer[:1] == b"$":
                packet = self._interleaved()
                if packet is None:
                    self._fill()
                    continue
                self.media.append(packet)
            end = self.buffer.find(b"\r\n\r\n")
            if end >= 0 and self.buffer[:1] != b"$":
                break
            self._fill()
        head = bytes(self.buffer[:end]).decode("latin-1")
        del self.buffer[: end + 4]
        lines = head.split("\r\n")
        match = re.match(r"RTSP/1\.0 (\d{3})", lines[0])
        if match is None:
            raise RtspProbeError(msg("not an RTSP reply: “{lines}”", lines=lines[0][:80]))
        headers: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        length = int((headers.get("content-length") or ["0"])[0])
        while len(self.buffer) < length:
            self._fill()
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return Reply(int(match.group(1)), headers, body)

    def _interleaved(self) -> tuple[int, bytes] | None:
        if len(self.buffer) < 4:
            return None
        size = struct.unpack_from("!H", self.buffer, 2)[0]
        if len(self.buffer) < 4 + size:
            return None
        packet = (self.buffer[1], bytes(self.buffer[4 : 4 + size]))
        del self.buffer[: 4 + size]
        return packet

    def read_media(self, seconds: float) -> list[tuple[int, bytes]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            packet = self._interleaved()
            if packet is not None:
                self.media.append(packet)
                continue
            if bytes(self.buffer[:1]) not in (b"", b"$"):
                raise RtspProbeError(msg("unexpected RTSP data in the media stream"))
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                self._fill()
            except TimeoutError:
                break
        media, self.media = self.media, []
        return media


def _params(challenge: str) -> dict[str, str]:
    return {k.lower(): v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', challenge)}


@dataclass
class Digest:
    """A Digest session on one nonce: each response uses the next ``nc``."""

    challenge: dict[str, str]
    username: str
    password: str
    nc: int = 0

    @classmethod
    def pick(cls, reply: Reply, username: str, password: str) -> Digest | None:
        offers = [_params(v) for v in reply.headers.get("www-authenticate", []) if v.lower().startswith("digest ")]
        for algorithm in ("SHA-256", "MD5"):
            for offer in offers:
                if offer.get("algorithm", "MD5").upper() == algorithm:
                    return cls(offer, username, password)
        return None

    def header(self, method: str, uri: str, *, nc: int | None = None) -> str:
        if nc is None:
            self.nc += 1
            nc = self.nc
        algorithm = self.challenge.get("algorithm", "MD5").upper()
        h = hashlib.sha256 if algorithm == "SHA-256" else hashlib.md5

        def hexd(text: str) -> str:
            return h(text.encode("utf-8")).hexdigest()

        cnonce = secrets.token_hex(8)
        realm, nonce = self.challenge.get("realm", ""), self.challenge.get("nonce", "")
        ha1 = hexd(f"{self.username}:{realm}:{self.password}")
        response = hexd(f"{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{hexd(f'{method}:{uri}')}")
        parts = [
            f'username="{self.username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
            f"algorithm={algorithm}", "qop=auth", f"nc={nc:08x}", f'cnonce="{cnonce}"', f'response="{response}"',
        ]
        if "opaque" in self.challenge:
            parts.append(f'opaque="{self.challenge["opaque"]}"')
        return "Digest " + ", ".join(parts)


def _evidence(summary: str, **detail: Any) -> Evidence:
    return Evidence("rtsp", summary, detail)


def _rtsps_port(ctx: ProbeContext) -> int:
    return ctx.options.rtsps_port


def _paths(ctx: ProbeContext) -> tuple[str, ...]:
    return ctx.options.rtsp_paths or ("/h264",)


def _connect(ctx: ProbeContext) -> RtspClient:
    return RtspClient.connect(ctx.host, _rtsps_port(ctx), client_context(ctx.options.ca_file))


def _service_state(ctx: ProbeContext) -> str | None:
    """None if an RTSPS service answers OPTIONS over a validated channel; else why not."""
    cached = ctx.cache.get("rtsps_state", "unset")
    if cached != "unset":
        return cached if isinstance(cached, str) else None
    state: str | None
    try:
        client = _connect(ctx)
    except ConnectionRefusedError:
        state = msg("no RTSPS service on port {port}", port=_rtsps_port(ctx))
    except (ssl.SSLError, ssl.CertificateError) as exc:
        state = msg("TLS to the RTSPS port does not validate to the given root: {exc}", exc=exc)
    except OSError as exc:
        state = msg("RTSPS port unreachable: {exc}", exc=exc)
    else:
        try:
            reply = client.request("OPTIONS", "*")
            state = None if reply.status == 200 else msg("OPTIONS answered {status}", status=reply.status)
        except (OSError, RtspProbeError) as exc:
            state = msg("RTSPS OPTIONS failed: {exc}", exc=exc)
        finally:
            client.close()
    ctx.cache["rtsps_state"] = state
    return state


def _skip(ctx: ProbeContext, letters: str) -> list[UnitResult] | None:
    state = _service_state(ctx)
    if state is None:
        return None
    if state.startswith("no RTSPS service"):
        # NOT APPLICABLE comes only from the declaration (declared-absent interface:rtsp)
        declaration = ctx.options.declaration
        if declaration is not None and declaration.features().get("interface:rtsp"):
            return [failed(letter, msg("{state}, although the declaration names RTSP", state=state)) for letter in letters]
        return [not_tested(letter, state, "--rtsps-port", "--declaration") for letter in letters]
    return [inconclusive(letter, state) for letter in letters]


def _admin(ctx: ProbeContext) -> tuple[str, str] | None:
    from ._session import admin

    try:
        account = admin(ctx)
    except Exception:  # noqa: BLE001 - no credentials: the unit is INCONCLUSIVE
        return None
    return account.username, account.password


def _plain_rtsp(host: str, port: int) -> tuple[str, bytes]:
    return raw_exchange(
        host, port, b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: refcam-probe\r\n\r\n",
        answer=b"RTSP/1.0", limit=4096, head_only=True,
    )


@register("RTSP-01", budget=0, order=12, requires=("interface:rtsp",))
def no_plaintext_rtsp(ctx: ProbeContext) -> list[UnitResult]:
    port = _rtsps_port(ctx)
    state, data = _plain_rtsp(ctx.host, port)
    ev_a = _evidence(f"plaintext RTSP to the RTSPS port {port}: {state}", first_bytes=data[:120].decode("latin-1"))
    a = failed("a", msg("the RTSPS port answers plaintext RTSP"), ev_a) if state == "answered" else passed(
        "a", msg("plaintext RTSP to the RTSPS port: {state}", state=state), ev_a
    )
    ports = tuple(dict.fromkeys((554, 8554, *ctx.options.rtsp_plaintext_ports)))
    findings, offending = [], []
    for candidate in ports:
        if candidate == port:
            continue
        cstate, reply = _plain_rtsp(ctx.host, candidate)
        findings.append({"port": candidate, "state": cstate, "first_bytes": reply[:120].decode("latin-1")})
        if cstate == "answered":
            offending.append(candidate)
    ev_b = _evidence("plaintext RTSP ports", ports=findings)
    b = failed("b", msg("plaintext RTSP served on ports {offending}", offending=offending), ev_b) if offending else passed(
        "b", msg("no plaintext RTSP on ports {items}", items=', '.join(str(p) for p in ports)), ev_b
    )
    return [a, b]


@register("RTSP-02", budget=10, order=12, requires=("interface:rtsp",))
def rtsp_requires_auth(ctx: ProbeContext) -> list[UnitResult]:
    skipped = _skip(ctx, "ab")
    if skipped:
        return skipped
    open_paths, answers, offers = [], [], []
    client = _connect(ctx)
    try:
        for path in _paths(ctx):
            reply = client.request("DESCRIBE", client.url(path), {"Accept": "application/sdp"})
            answers.append({"path": path, "status": reply.status})
            if reply.status == 200:
                open_paths.append(path)
            offers += reply.headers.get("www-authenticate", [])
    finally:
        client.close()
    ev = _evidence("DESCRIBE without credentials", answers=answers, challenges=offers)
    a = failed("a", msg("streams described to an anonymous client: {open_paths}", open_paths=open_paths), ev) if open_paths else passed(
        "a", msg("every stream asks for credentials (401)"), ev
    )
    sha = any(o.lower().startswith("digest ") and "sha-256" in o.lower() for o in offers)
    b = passed("b", msg("Digest with SHA-256 is offered"), ev) if sha else failed(
        "b", msg("no Digest SHA-256 challenge"), ev
    )
    return [a, b]


@register("RTSP-03", budget=10, order=12, requires=("interface:rtsp",))
def rtsp_basic_refused(ctx: ProbeContext) -> list[UnitResult]:
    skipped = _skip(ctx, "ab")
    if skipped:
        return skipped
    path = _paths(ctx)[0]
    client = _connect(ctx)
    try:
        reply = client.request("DESCRIBE", client.url(path), {"Accept": "application/sdp"})
        basic_offered = [v for v in reply.headers.get("www-authenticate", []) if v.lower().startswith("basic")]
        ev_a = _evidence("challenges", challenges=reply.headers.get("www-authenticate", []))
        a = failed("a", msg("Basic authentication is offered"), ev_a) if basic_offered else passed(
            "a", msg("no Basic challenge"), ev_a
        )
        creds = _admin(ctx)
        if creds is None:
            return [a, inconclusive("b", msg("no admin credentials to send as Basic"))]
        token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode("ascii")
        basic = client.request("DESCRIBE", client.url(path), {"Authorization": f"Basic {token}", "Accept": "application/sdp"})
    finally:
        client.close()
    ev_b = _evidence("DESCRIBE with valid credentials as Basic", status=basic.status)
    b = failed("b", msg("valid credentials sent as Basic were accepted ({status})", status=basic.status), ev_b) if basic.status == 200 else passed(
        "b", msg("Basic credentials refused ({status})", status=basic.status), ev_b
    )
    return [a, b]


@register("RTSP-04", budget=10, order=12, requires=("interface:rtsp",))
def rtsp_digest_replay(ctx: ProbeContext) -> list[UnitResult]:
    skipped = _skip(ctx, "ab")
    if skipped:
        return skipped
    creds = _admin(ctx)
    if creds is None:
        return [inconclusive("a", msg("no admin credentials")), inconclusive("b", msg("no admin credentials"))]
    path = _paths(ctx)[0]
    client = _connect(ctx)
    try:
        uri = client.url(path)
        first = client.request("DESCRIBE", uri, {"Accept": "application/sdp"})
        digest = Digest.pick(first, *creds)
        if digest is None and first.status == 200:
            header = "Digest username=\"x\""  # no challenge at all: the replay below is still sent
        elif digest is None:
            return [inconclusive("a", msg("no Digest challenge ({status})", status=first.status)), inconclusive("b", msg("no Digest"))]
        else:
            header = digest.header("DESCRIBE", uri)
        fresh = client.request("DESCRIBE", uri, {"Authorization": header, "Accept": "application/sdp"})
        replay = client.request("DESCRIBE", uri, {"Authorization": header, "Accept": "application/sdp"})
    finally:
        client.close()
    ev = _evidence("a Digest response sent twice", first=fresh.status, replayed=replay.status)
    a = passed("a", msg("a fresh Digest response is accepted"), ev) if fresh.status == 200 else inconclusive(
        "a", msg("a fresh Digest response got {status}", status=fresh.status), ev
    )
    b = failed("b", msg("the replayed Digest response was accepted"), ev) if replay.status == 200 else passed(
        "b", msg("the replayed Digest response was refused ({status})", status=replay.status), ev
    )
    return [a, b]


# -- RTSP-05: signed H.264 ----------------------------------------------------------


def _depacketise(packets: list[bytes]) -> list[bytes]:
    """RFC 6184: RTP payloads -> NAL units (single, STAP-A, FU-A); a broken FU is dropped."""
    nals: list[bytes] = []
    fu: bytearray | None = None
    last_seq: int | None = None
    for packet in packets:
        if len(packet) < 13 or packet[0] >> 6 != 2:
            continue
        seq = struct.unpack_from("!H", packet, 2)[0]
        offset = 12 + 4 * (packet[0] & 0x0F)
        if packet[0] & 0x10:  # header extension
            offset += 4 + 4 * struct.unpack_from("!H", packet, offset + 2)[0]
        payload = packet[offset:]
        if packet[0] & 0x20:
            payload = payload[: len(payload) - payload[-1]]
        gap = last_seq is not None and seq != (last_seq + 1) & 0xFFFF
        last_seq = seq
        if gap:
            fu = None
        kind = payload[0] & 0x1F
        if kind == 24:  # STAP-A
            index = 1
            while index + 2 <= len(payload):
                size = struct.unpack_from("!H", payload, index)[0]
                nals.append(bytes(payload[index + 2 : index + 2 + size]))
                index += 2 + size
        elif kind == 28:  # FU-A
            start, end = payload[1] & 0x80, payload[1] & 0x40
            if start:
                fu = bytearray([(payload[0] & 0xE0) | (payload[1] & 0x1F)]) + payload[2:]
            elif fu is not None:
                fu += payload[2:]
            if end and fu is not None:
                nals.append(bytes(fu))
                fu = None
        elif 1 <= kind <= 23:
            nals.append(bytes(payload))
    return nals


def _unescape(data: bytes) -> tuple[bytes, list[int]]:
    """H.264 RBSP of ``data`` (emulation prevention removed) and each byte's offset in ``data``."""
    out, where, zeros = bytearray(), [], 0
    for offset, byte in enumerate(data):
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        where.append(offset)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out), where


@dataclass
class _SigningSei:
    document: bytes  # what the signature covers: the SEI from its NAL header up to the signature tag
    signature: bytes | None
    tags: dict[int, bytes]


def _ff(data: bytes, index: int) -> tuple[int, int]:
    value = 0
    while index < len(data) and data[index] == 0xFF:
        value += 255
        index += 1
    if index >= len(data):
        raise ValueError("SEI header runs past the NAL unit")
    return value + data[index], index + 1


def _signing_sei(nal: bytes) -> _SigningSei | None:
    """The ONVIF Media Signing SEI in ``nal`` (None if it is none); ValueError if it is malformed."""
    if not nal or nal[0] & 0x1F != 6:
        return None
    raw = nal.rstrip(b"\x00")
    rbsp, where = _unescape(raw[1:])
    index = 0
    while index < len(rbsp) and rbsp[index] != 0x80:
        kind, index = _ff(rbsp, index)
        size, index = _ff(rbsp, index)
        begin, index = index, index + size
        if kind != 5 or rbsp[begin : begin + 16] != MEDIA_SIGNING_UUID:
            continue
        if index > len(rbsp) or size < 17:
            raise ValueError("truncated SEI")
        reserved, at = rbsp[begin + 16], begin + 17
        tags: dict[int, bytes] = {}
        signature, signature_at = None, index
        while at < index:
            tag, length = rbsp[at], int.from_bytes(rbsp[at + 1 : at + 3], "big")
            value = rbsp[at + 3 : at + 3 + length]
            if len(value) != length:
                raise ValueError(f"TLV {tag} runs past the SEI")
            if tag == 3:
                size_ = int.from_bytes(value[1:3], "big")
                signature, signature_at = value[3 : 3 + size_], at
            else:
                tags.setdefault(tag, value)
            at += 3 + length
        if reserved & 0x40:  # emulation prevention applied before signing: the bytes as sent
            document = raw[: 1 + where[signature_at]] if signature_at < len(where) else raw
        else:
            document = raw[:1] + rbsp[:signature_at]
        return _SigningSei(document, signature, tags)
    return None


def _verify_sei(sei: _SigningSei, root: x509.Certificate, now: datetime) -> dict[str, Any]:
    """Chain to ``root``, ECDSA signature over SHA-256 of the document; the general GOP information."""
    if sei.signature is None:
        raise ValueError("the SEI carries no signature")
    certificates = sei.tags.get(6)
    if certificates is None or certificates[:2] != b"\x01\x00":
        raise ValueError("no manufacturer certificate chain in the SEI")
    chain = x509.load_pem_x509_certificates(certificates[2:])
    for cert, issuer in zip(chain, [*chain[1:], root], strict=True):
        cert.verify_directly_issued_by(issuer)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise ValueError(f"certificate {cert.subject.rfc4514_string()} is not valid now")
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError(f"signing key is {type(key).__name__}, not ECDSA")
    key.verify(sei.signature, hashlib.sha256(sei.document).digest(), ec.ECDSA(Prehashed(hashes.SHA256())))
    general = sei.tags.get(1)
    if general is None or general[0] != 2 or len(general) != 27 + 64:
        raise ValueError("general GOP information is not version 2 with SHA-256 hashes")
    return {"counter": int.from_bytes(general[21:25], "big"), "count": int.from_bytes(general[25:27], "big"),
            "gop_hash": general[27:59], "linked": general[59:91]}


def _gop_hashes(nals: list[bytes]) -> list[bytes]:
    """The linked hashes of a GOP's slices: the IDR's primary slice is the anchor, the rest SHA-256(anchor || H)."""
    anchor: bytes | None = None
    out: list[bytes] = []
    for nal in nals:
        kind = nal[0] & 0x1F
        if kind not in (1, 5):
            continue
        digest = hashlib.sha256(nal.rstrip(b"\x00")).digest()
        if anchor is None:
            anchor = digest
            out.append(digest)
        else:
            out.append(hashlib.sha256(anchor + digest).digest())
    return out


Gop = tuple[list[bytes], list[_SigningSei | str]]


def _gops(nals: list[bytes]) -> list[Gop]:
    """(NAL units without signing SEIs, the signing SEIs found in it) per GOP; a malformed SEI is its error text.

    GOPs open at SPS + IDR. An SEI in the access unit that opens a GOP (after
    the parameter sets, before the IDR: the specification's ``SIPPPP``) or
    later in it (``IPSPPP``, a camera that signs asynchronously) is found in
    that GOP and signs the GOP before; one placed at the very end of a GOP,
    before the next parameter sets, signs its own. :func:`_check_signed_gops`
    tells which by the GOP hash.
    """
    gops: list[Gop] = []
    lead: list[bytes] = []
    pending: list[_SigningSei | str] = []  # read in the lead of the GOP about to open
    for nal in nals:
        try:
            sei: _SigningSei | str | None = _signing_sei(nal)
        except (ValueError, IndexError) as exc:
            sei = str(exc) or type(exc).__name__
        if sei is not None:
            (pending if lead or not gops else gops[-1][1]).append(sei)
            continue
        kind = nal[0] & 0x1F
        if kind not in (1, 5):
            lead.append(nal)
            continue
        if kind == 5 and any(n[0] & 0x1F == 7 for n in lead):
            gops.append(([], pending))
            pending = []
        elif pending and gops:
            gops[-1][1].extend(pending)  # an SEI among non-VCL units inside a GOP
            pending = []
        if gops:
            gops[-1][0].extend([*lead, nal])
        lead = []
    return gops


def _digest_of(covered: list[bytes]) -> bytes:
    return hashlib.sha256(b"".join(covered)).digest()


def _check_signed_gops(gops: list[Gop], root: x509.Certificate, now: datetime) -> tuple[int, list[str]]:
    """How many GOPs' signatures were checked, and what was wrong.

    An SEI found in GOP *i* signs GOP *i - 1*, or GOP *i* itself when its GOP
    hash says so (an SEI at the end of the GOP it signs). One in the first GOP
    that signs neither signs a GOP before the probe joined. A repeated SEI
    (the same bytes, sent twice for redundancy) is checked once; a second SEI
    for the same document with another signature is checked too.
    """
    hashes = [_gop_hashes(nals) for nals, _ in gops]
    problems: list[str] = []
    checked = 0
    anchors: dict[int, bytes] = {}
    counter: int | None = None  # of the SEI before, when it verified
    seen: set[bytes] = set()
    signed: set[bytes] = set()  # documents whose signature verified
    for index, (_, seis) in enumerate(gops):
        for sei in seis:
            if isinstance(sei, _SigningSei):
                sent = sei.document + (sei.signature or b"")  # a repeat is byte for byte the same SEI
                if sent in seen:
                    continue
                seen.add(sent)
            try:
                if isinstance(sei, str):
                    raise ValueError(sei)
                claim = _verify_sei(sei, root, now)
            except (ValueError, KeyError, TypeError, IndexError, InvalidSignature) as exc:
                if index > 0:
                    problems.append(msg("GOP {index}: signature does not verify ({value})", index=index, value=exc or type(exc).__name__))
                continue
            if sei.document in signed:
                continue  # the same document signed anew: a repeat, not another GOP
            signed.add(sei.document)

            def signs(target: int, claim: dict[str, Any] = claim) -> bool:
                covered = hashes[target]
                return bool(len(covered) == claim["count"] and _digest_of(covered) == claim["gop_hash"])

            complete = index < len(gops) - 1  # the last GOP read may be cut short
            if index > 0 and signs(index - 1):
                target = index - 1
            elif complete and signs(index):
                target = index
            elif index == 0:
                continue  # it signs a GOP before the probe joined
            else:
                target = index - 1
            if counter is not None and claim["counter"] != counter + 1:
                problems.append(msg("GOP {index}: SEI counter {counter} does not follow {previous}",
                                    index=target, counter=claim["counter"], previous=counter))
            counter = claim["counter"]
            if hashes[target]:
                anchors[target] = hashes[target][0]
            if not signs(target):
                problems.append(msg("GOP {index}: NAL hashes differ from the signed ones", index=target))
            elif target - 1 in anchors and claim["linked"] != anchors[target - 1]:
                problems.append(msg("GOP {index}: not linked to the GOP before it", index=target))
            checked += 1
    return checked, problems


@register("RTSP-05", budget=10, order=12, requires=("interface:rtsp",))
def rtsp_stream_signed(ctx: ProbeContext) -> list[UnitResult]:
    skipped = _skip(ctx, "ab")
    if skipped:
        return skipped
    creds = _admin(ctx)
    if creds is None or not ctx.options.ca_file:
        return [inconclusive("a", msg("needs admin credentials and --ca")), inconclusive("b", msg("needs admin credentials and --ca"))]
    path = _paths(ctx)[0]
    client = _connect(ctx)
    try:
        uri = client.url(path)
        first = client.request("DESCRIBE", uri, {"Accept": "application/sdp"})
        digest = Digest.pick(first, *creds)

        def auth(method: str, target: str) -> dict[str, str]:
            return {"Authorization": digest.header(method, target)} if digest is not None else {}

        describe = client.request("DESCRIBE", uri, {"Accept": "application/sdp", **auth("DESCRIBE", uri)})
        if describe.status != 200 or b"H264/90000" not in describe.body:
            return [inconclusive("a", msg("{path} is not an H.264 stream the probe can read ({status})", path=path, status=describe.status)),
                    inconclusive("b", msg("no H.264 stream"))]
        track = uri + "/trackID=0"
        setup = client.request("SETUP", track, {"Transport": "RTP/AVP/TCP;unicast;interleaved=0-1", **auth("SETUP", track)})
        session = setup.first("session").split(";")[0]
        client.request("PLAY", uri, {"Session": session, "Range": "npt=0-", **auth("PLAY", uri)})
        media = client.read_media(2.5)  # past the second key frame: its SEI signs the first whole GOP
        with contextlib.suppress(OSError, RtspProbeError):
            client.request("TEARDOWN", uri, {"Session": session, **auth("TEARDOWN", uri)})
    except (OSError, RtspProbeError, ValueError) as exc:
        return [inconclusive("a", msg("could not read the stream: {exc}", exc=exc)), inconclusive("b", msg("no stream"))]
    finally:
        client.close()
    nals = _depacketise([packet for channel, packet in media if channel == 0])
    gops = _gops(nals)
    signed = [sei for _, seis in gops for sei in seis]
    ev = _evidence("H.264 stream read", nal_units=len(nals), gops=len(gops), signing_seis=len(signed))
    if not signed:
        return [failed("a", msg("no signing SEI in {n_gops} GOPs of {path}", n_gops=len(gops), path=path), ev), failed("b", msg("the stream is not signed"), ev)]
    a = passed("a", msg("{n_signed} signing SEIs in {n_gops} GOPs", n_signed=len(signed), n_gops=len(gops)), ev)
    root = x509.load_pem_x509_certificate(open(ctx.options.ca_file, "rb").read())  # noqa: SIM115
    checked, problems = _check_signed_gops(gops, root, datetime.now(UTC))
    ev_b = _evidence("signed GOPs checked", checked=checked, problems=problems)
    if problems:
        return [a, failed("b", joined(problems[:5]), ev_b)]
    if not checked:
        return [a, inconclusive("b", msg("no complete signed GOP was received"), ev_b)]
    return [a, passed("b", msg("{checked} GOPs verify to the manufacturer root", checked=checked), ev_b)]
