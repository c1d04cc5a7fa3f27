"""``refcam stream record|verify``: record a camera's signed stream, check it offline.

``record`` connects over TLS (trusting ``--ca``, host name checked), logs in
(``--token``/``--token-env``, or ``--user`` with the password read from the
environment variable ``--password-env`` names: never from the URL or the
command line), reads the ``multipart/x-mixed-replace`` stream and writes
frames, signed manifests and the session's signed end marker to a recording
(the container documented in :mod:`refcam.streamverify`). With
``--frames``/``--seconds`` it stops taking frames at the limit but waits for
the manifest that signs the last one, so the recording verifies; the camera
streams on, so such a recording has no end marker, and the recorder notes
where and why it stopped. Without a limit it records until the session ends
(source ended, camera shut down) and holds the end marker. What the server
says it did not send (``X-Frames-Not-Sent``: a slow viewer, an fps cap, a
session joined late) is kept as the recorder's note too; notes are not
signed. A URL ending in ``/snapshot.jpg`` records one signed snapshot instead.

``verify`` checks a recording against the manufacturer root and prints a
verdict per session, whether the recording holds the session's start and
signed end, every frame that is not authentic, and every frame and segment
the recording lacks, by seq, segment and capture time, as *not sent* (the
recorder's note), *after the recorder stopped*, or *removed*. It exits 0 for
"authentic" and "authentic with missing frames" (every gap noted by the
recorder), 1 otherwise (a removed frame, segment, start or end is not
authentic); with ``--require-complete`` also 1 when anything at all is
missing, the start and the end marker included.
``--snapshot SNAP`` (repeatable) also checks that each recorded snapshot is a
frame of a session in the recording (exit 1 if not)::

    refcam stream record https://cam.local:8443 --ca root.pem --user admin \\
        --password-env CAM_PW --frames 300 --out cam.rcs
    refcam stream record https://cam.local:8443/api/v1/snapshot.jpg --ca root.pem \\
        --token-env CAM_TOKEN --out snap.rcs
    refcam stream verify cam.rcs --ca root.pem --snapshot snap.rcs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit

import aiohttp
from cryptography import x509
from yarl import URL

from common import tls
from device.stream.errors import FormatError, StreamError, TransportError
from device.stream.multipart import END_CONTENT_TYPE, SIGNED_CONTENT_TYPES
from device.stream.signing import Envelope
from device.stream.web import SIGNATURE_HEADER
from refcam.i18n import _
from refcam.progress import Progress

from .streamverify import (
    GAP_TEXT,
    MAGIC,
    FrameRecord,
    Gap,
    Incomplete,
    ManifestRecord,
    NotAuthentic,
    NoteRecord,
    Record,
    SnapshotLink,
    SnapshotRecord,
    StreamReport,
    encode_record,
    is_annexb,
    link_snapshot,
    parse_container,
    verify_h264,
    verify_records,
    wall_time,
)
from .streamwire import PartParser, parse_ranges

STREAM_PATH = "/api/v1/stream.mjpeg"
SNAPSHOT_PATH = "/api/v1/snapshot.jpg"
TAIL_TIMEOUT = 10.0  # seconds to wait for the manifest of the last recorded frame


def register(groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]]) -> None:
    rec = groups["stream"].add_parser("record", help=_("record a signed stream (or snapshot) to a file"))
    rec.add_argument(
        "url", help=_("https://HOST:PORT, the stream.mjpeg / snapshot.jpg URL, or rtsps://HOST:PORT/h264 (signed H.264)")
    )
    rec.add_argument("--out", required=True, type=Path, help=_("recording file to write"))
    rec.add_argument("--ca", type=Path, help=_("PEM trust anchor for the camera's TLS (manufacturer root)"))
    auth = rec.add_mutually_exclusive_group(required=True)
    auth.add_argument("--token", help=_("session token (prefer --token-env: argv is visible to other users)"))
    auth.add_argument("--token-env", metavar="VAR", help=_("environment variable holding a session token"))
    auth.add_argument("--user", help=_("log in as this user (password from --password-env)"))
    rec.add_argument("--password-env", metavar="VAR", help=_("environment variable holding the password"))
    limit = rec.add_mutually_exclusive_group()
    limit.add_argument("--seconds", type=float, help=_("stop taking frames after this many seconds"))
    limit.add_argument("--frames", type=int, help=_("stop after this many frames"))
    rec.add_argument("--fps", type=float, help=_("ask the camera for at most this frame rate"))
    rec.set_defaults(handler=cmd_record)

    ver = groups["stream"].add_parser("verify", help=_("verify a recording against the manufacturer root"))
    ver.add_argument(
        "file", type=Path, help=_("recording written by `refcam stream record` (signed MJPEG, or H.264 from rtsps://)")
    )
    ver.add_argument("--ca", required=True, type=Path, help=_("PEM manufacturer root certificate"))
    ver.add_argument("--all-frames", action="store_true", help=_("print a line for every frame"))
    ver.add_argument("--json", action="store_true", help=_("print the report as JSON"))
    ver.add_argument(
        "--require-complete",
        action="store_true",
        help=_("also fail unless the recording holds the session's start and its signed end marker"),
    )
    ver.add_argument(
        "--snapshot",
        action="append",
        default=[],
        type=Path,
        metavar="SNAP",
        help=_("a recorded snapshot that must be a frame of a session in FILE (repeatable)"),
    )
    ver.set_defaults(handler=cmd_verify)


# -- record --------------------------------------------------------------------


@dataclass(frozen=True)
class RecordResult:
    frames: int
    manifests: int
    complete: bool  # the last recorded frame is covered by a recorded manifest
    snapshot: bool
    ended: bool = False  # the session's end marker was recorded: the stream ended on the camera's side


def _target(url: str) -> tuple[URL, bool]:
    parsed = URL(url)
    if parsed.scheme != "https":
        raise StreamError(_("URL {url!r} is not https://; the camera serves its stream over TLS only").format(url=url))
    if parsed.user or parsed.password or parsed.query:
        raise StreamError(_("credentials and query strings do not go in the URL; use --token-env or --user"))
    if not parsed.host:
        raise StreamError(_("URL {url!r} has no host").format(url=url))
    if parsed.path in ("", "/"):
        return parsed.with_path(STREAM_PATH), False
    if parsed.path not in (STREAM_PATH, SNAPSHOT_PATH):
        raise StreamError(_("URL path {path!r} is neither {STREAM_PATH} nor {SNAPSHOT_PATH}").format(path=parsed.path, STREAM_PATH=STREAM_PATH, SNAPSHOT_PATH=SNAPSHOT_PATH))
    return parsed, parsed.path == SNAPSHOT_PATH


def _covered_up_to(envelope: bytes) -> int | None:
    """Last seq a manifest lists (unverified: only to know when to stop recording)."""
    try:
        payload = json.loads(Envelope.parse(envelope).payload)
        return int(payload["first_seq"]) + len(payload["frames"]) - 1
    except (FormatError, ValueError, KeyError, TypeError):
        return None  # not a segment (the end marker) or not parseable: the verifier will say


async def _login(session: aiohttp.ClientSession, base: URL, user: str, password: str) -> str:
    async with session.post(base.with_path("/api/v1/session"), json={"username": user, "password": password}) as r:
        if r.status != 200:
            raise TransportError(_("login as {user!r} refused: HTTP {status} {value}").format(user=user, status=r.status, value=await _error_text(r)))
        body = await r.json()
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str):
        raise TransportError(_("login answer has no session token"))
    return token


async def _error_text(response: aiohttp.ClientResponse) -> str:
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return ""
    if isinstance(body, dict):
        return f"({body.get('error')}: {body.get('message')})"
    return ""


async def record_stream(
    url: str,
    out: BinaryIO,
    *,
    ssl_context: Any,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    frames: int | None = None,
    seconds: float | None = None,
    fps: float | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> RecordResult:
    """Record ``url`` into ``out`` (container magic included); the adapter behind ``record``.

    ``on_frame(n)`` is called after the n-th frame is written (progress)."""
    target, snapshot = _target(url)
    connector = aiohttp.TCPConnector(ssl=ssl_context)
    timeout = aiohttp.ClientTimeout(total=None, connect=15, sock_read=TAIL_TIMEOUT)
    try:
        # A 1 MiB read buffer: a 1080p part is ~330 KB; aiohttp's 64 KiB default pauses reading per part.
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, read_bufsize=1 << 20) as session:
            if token is None:
                assert user is not None and password is not None
                token = await _login(session, target.with_path("/"), user, password)
            headers = {"Authorization": f"Bearer {token}"}
            if fps is not None:
                target = target.with_query(fps=str(fps))
            async with session.get(target, headers=headers) as response:
                if response.status != 200:
                    raise TransportError(_("GET {path} refused: HTTP {status} {value}").format(path=target.path, status=response.status, value=await _error_text(response)))
                out.write(MAGIC)
                if snapshot:
                    return await _record_snapshot(response, out)
                return await _record_parts(response, out, frames=frames, seconds=seconds, on_frame=on_frame)
    except (aiohttp.ClientError, TimeoutError, OSError) as e:
        raise TransportError(_("cannot record {target}: {value}").format(target=target, value=e or type(e).__name__)) from e


async def _record_snapshot(response: aiohttp.ClientResponse, out: BinaryIO) -> RecordResult:
    jpeg = await response.read()
    signature = response.headers.get(SIGNATURE_HEADER)
    try:
        frame = FrameRecord(int(response.headers["X-Frame-Seq"]), int(response.headers["X-Capture-Timestamp"]), jpeg)
    except (KeyError, ValueError) as e:
        raise TransportError(_("snapshot answer lacks a valid X-Frame-Seq / X-Capture-Timestamp: {e}").format(e=e)) from e
    out.write(encode_record(frame))
    if signature is not None:
        out.write(encode_record(SnapshotRecord(signature.encode("ascii", "replace"))))
    return RecordResult(1, int(signature is not None), signature is not None, True)


async def _record_parts(
    response: aiohttp.ClientResponse,
    out: BinaryIO,
    *,
    frames: int | None,
    seconds: float | None,
    on_frame: Callable[[int], None] | None = None,
) -> RecordResult:
    parser = PartParser()
    deadline = time.monotonic() + seconds if seconds is not None else None
    recorded = manifests = 0
    last_seq: int | None = None
    covered = -1
    taking = True
    ended = False
    session: str | None = None  # the stream session of the parts, from X-Stream-Session
    stop_reason = "the stream closed without the session's end marker"
    try:
        async for chunk in response.content.iter_any():
            for part in parser.feed(chunk):
                session = part.headers.get("x-stream-session", session)
                not_sent = parse_ranges(part.headers.get("x-frames-not-sent", ""))
                if not_sent and session is not None:
                    # What the server says it did not send us: kept (unsigned) so that verify can
                    # tell these gaps from frames removed from the recording later.
                    out.write(encode_record(NoteRecord(session, not_sent)))
                bodies = list(part.manifests)
                kind = part.headers.get("content-type")
                if kind in SIGNED_CONTENT_TYPES:
                    bodies.append(part.body)
                    ended = ended or kind == END_CONTENT_TYPE
                for body in bodies:
                    out.write(encode_record(ManifestRecord(body)))
                    manifests += 1
                    covered = max(covered, _covered_up_to(body) or -1)
                if not taking:
                    if last_seq is None or covered >= last_seq:
                        return RecordResult(recorded, manifests, True, False, ended)
                    continue
                if part.headers.get("content-type") != "image/jpeg":
                    continue
                try:
                    seq, ts = int(part.headers["x-frame-seq"]), int(part.headers["x-capture-timestamp"])
                except (KeyError, ValueError) as e:
                    raise FormatError(_("frame part lacks a valid X-Frame-Seq / X-Capture-Timestamp: {e}").format(e=e)) from e
                out.write(encode_record(FrameRecord(seq, ts, part.body)))
                recorded += 1
                last_seq = seq
                if on_frame is not None:
                    on_frame(recorded)
                if frames is not None and recorded >= frames:
                    taking, stop_reason = False, f"frame limit ({frames}) reached"
                elif deadline is not None and time.monotonic() >= deadline:
                    taking, stop_reason = False, f"time limit ({seconds:g} s) reached"
        return RecordResult(recorded, manifests, last_seq is None or covered >= last_seq, False, ended)
    except BaseException:
        stop_reason = "the recorder was interrupted or failed"
        raise
    finally:
        if not ended and session is not None:
            # The recording ends before the session did: say where and why, so that a
            # verifier can tell this end from one cut off the recording later.
            out.write(encode_record(NoteRecord(session, stopped=True, stopped_after=last_seq, reason=stop_reason)))


def cmd_record(args: argparse.Namespace) -> int:
    if args.frames is not None and args.frames < 1:
        raise StreamError(_("--frames {frames} must be at least 1").format(frames=args.frames))
    if args.seconds is not None and not args.seconds > 0:
        raise StreamError(_("--seconds {seconds} must be positive").format(seconds=args.seconds))
    token, user, password = args.token, args.user, None
    if args.token_env:
        token = _env(args.token_env, "--token-env")
    if user is not None:
        if not args.password_env:
            raise StreamError(_("--user needs --password-env VAR (the password is never taken from argv)"))
        password = _env(args.password_env, "--password-env")
    if args.url.startswith(("rtsps://", "rtsp://")):
        if user is None or password is None:
            raise StreamError(_("an rtsps:// recording needs --user and --password-env (RTSP Digest)"))
        return _record_rtsp(args, user, password)
    ssl_context = tls.client_context(args.ca) if args.ca else ssl.create_default_context()
    partial = args.out.with_name(args.out.name + ".part")
    progress = Progress("recording", total=args.frames, unit="frames")
    try:
        with partial.open("wb") as out:
            result = asyncio.run(
                record_stream(
                    args.url, out, ssl_context=ssl_context, token=token, user=user, password=password,
                    frames=args.frames, seconds=args.seconds, fps=args.fps, on_frame=progress.update,
                )
            )
    except KeyboardInterrupt:
        progress.finish("interrupted")
        result = RecordResult(-1, -1, False, False)
    except BaseException:
        progress.finish("failed")
        partial.unlink(missing_ok=True)
        raise
    progress.finish()
    partial.replace(args.out)
    what = "snapshot" if result.snapshot else f"{result.frames} frames, {result.manifests} manifests"
    if result.ended:
        what += " and the session's end marker"
    if result.frames < 0:
        what = "interrupted"
    print(_("recorded {what} to {out}").format(what=what, out=args.out))
    if not result.complete:
        print(_("refcam: warning: the stream ended before the last frames were signed"), file=sys.stderr)
    return 0


def record_rtsp(
    url: str, out: BinaryIO, *, ca: Path, user: str, password: str,
    frames: int | None = None, seconds: float | None = None,
) -> int:
    """Record an RTSPS H.264 stream as Annex B (what the camera sent, signing SEIs included).

    The client is PyAV's FFmpeg with ``tls_verify=1`` and ``ca_file``: the
    camera's chain is validated to ``ca`` (FFmpeg honours both for rtsps).
    Returns the number of access units written.
    """
    import av

    from device.rtsp.rtp import annexb, split_annexb

    parts = urlsplit(url)
    if parts.scheme != "rtsps" or not parts.hostname or parts.username or parts.password:
        raise StreamError(_("{url!r}: expected rtsps://HOST:PORT/h264 without credentials in it").format(url=url))
    port = f":{parts.port}" if parts.port else ""
    target = f"rtsps://{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}{port}{parts.path}"
    options = {"rtsp_transport": "tcp", "tls_verify": "1", "ca_file": str(ca)}
    written, deadline = 0, (time.monotonic() + seconds) if seconds else None
    try:
        with av.open(target, options=options, timeout=20) as container:
            stream = container.streams.video[0]
            if stream.codec_context.name != "h264":
                raise StreamError(_("{path} is {name}, not H.264: nothing to verify").format(path=parts.path, name=stream.codec_context.name))
            for packet in container.demux(stream):
                data = bytes(packet)
                if not data:
                    continue
                out.write(annexb(split_annexb(data)))
                written += 1
                if (frames is not None and written >= frames) or (deadline and time.monotonic() >= deadline):
                    break
    except av.FFmpegError as exc:
        raise TransportError(_("cannot record {scheme}://{hostname}{port}{path}: {exc}").format(scheme=parts.scheme, hostname=parts.hostname, port=port, path=parts.path, exc=exc)) from exc
    return written


def _record_rtsp(args: argparse.Namespace, user: str, password: str) -> int:
    if args.ca is None:
        raise StreamError(_("an rtsps:// recording needs --ca (the manufacturer root the camera's chain ends at)"))
    partial = args.out.with_name(args.out.name + ".part")
    try:
        with partial.open("wb") as out:
            written = record_rtsp(
                args.url, out, ca=args.ca, user=user, password=password, frames=args.frames, seconds=args.seconds
            )
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(args.out)
    print(_("recorded {written} H.264 access units to {out}").format(written=written, out=args.out))
    return 0


def _env(name: str, option: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise StreamError(_("{option} {name}: that environment variable is not set or empty").format(option=option, name=name))
    return value


# -- verify --------------------------------------------------------------------

VERDICT_TEXT = {
    "authentic": "authentic",
    "authentic_missing_frames": "authentic with missing frames (each noted by the recorder as not sent to it, or after it stopped)",
    "not_authentic": "NOT AUTHENTIC",
    "not_signed": "not signed",
}


def _load_root(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as e:
        raise StreamError(_("cannot read root certificate {path}: {e}").format(path=path, e=e)) from e


def format_report(report: StreamReport, *, all_frames: bool = False) -> list[str]:
    counts = {s: sum(f.status == s for f in report.frames) for s in ("authentic", "not_authentic", "not_signed")}
    lines = [
        f"{report.kind}: {len(report.frames)} frames: {counts['authentic']} authentic, "
        f"{counts['not_authentic']} not authentic, {counts['not_signed']} not signed"
    ]
    for s in report.sessions:
        lines.append(
            f"session {s.session[:16]} device {s.device} key {s.key_id[:16]}: {VERDICT_TEXT[s.verdict]} "
            f"(segments {s.segments} from #{s.first_segment}, frames {s.frames_authentic}/{s.frames_listed}, "
            f"{s.frames_missing} missing)"
        )
        if report.kind == "stream":
            start = "from the session's start (segment 0)" if s.begins else f"from segment {s.first_segment}"
            end = (
                f"to its signed end ({s.total_segments} segments; {s.end_reason})"
                if s.ends
                else "without an end marker"
            )
            lines.append(f"  recorded {start} {end}")
            lines.extend(f"  note: {note}" for note in s.notes)
            for gap in s.gaps:
                lines.append(f"  missing: frames {gap.describe()}: {GAP_TEXT[gap.kind]}")
                if all_frames:
                    lines.extend(_missing_frames(gap))
    for f in report.frames:
        if all_frames or f.status != "authentic":
            detail = f": {f.reason}" if f.reason else ""
            lines.append(f"  frame seq {f.seq} (record {f.record}): {f.status.replace('_', ' ')}{detail}")
    # Frame problems are listed above, per frame and per missing run.
    lines.extend(f"  problem: {p}" for p in report.problems if not p.startswith(("frame seq", "frames seq")))
    if report.kind == "stream" and report.verdict in ("authentic", "authentic_missing_frames"):
        lines.append("complete: " + ("yes, the whole session" if report.complete else "no, see the notes"))
    lines.append(f"verdict: {VERDICT_TEXT[report.verdict]}")
    return lines


def _missing_frames(gap: Gap) -> list[str]:
    """One line per missing frame of ``gap`` (``--all-frames``)."""
    kind = gap.kind.replace("_", " ")
    if not gap.capture_wall_ns:
        return [f"    frame seq {seq}: missing ({kind}; its manifest too)" for seq in range(gap.first_seq, gap.last_seq + 1)]
    return [
        f"    frame seq {seq}: missing ({kind}), captured {wall_time(ns)}"
        for seq, ns in zip(range(gap.first_seq, gap.last_seq + 1), gap.capture_wall_ns, strict=True)
    ]


LINK_TEXT = {
    "in_session": "belongs to the recorded session",
    "not_in_session": "NOT from a recorded session",
    "not_authentic": "NOT AUTHENTIC",
}


def format_link(path: Path, link: SnapshotLink) -> str:
    return f"snapshot {path} (seq {link.seq}): {LINK_TEXT[link.verdict]}: {link.detail}"


def _read_records(path: Path, what: str) -> tuple[Record, ...]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise StreamError(_("cannot read {what} {path}: {strerror}").format(what=what, path=path, strerror=e.strerror)) from e
    try:
        return parse_container(data)
    except FormatError as e:
        if what == "recording":
            raise
        raise FormatError(f"{what} {path}: {e}") from e  # name which of the files is bad


def cmd_verify(args: argparse.Namespace) -> int:
    root = _load_root(args.ca)
    if _is_h264(args.file):
        return _verify_h264(args, root)
    records = _read_records(args.file, "recording")
    now = datetime.now(UTC)
    report = verify_records(records, trust_root=root, now=now)
    links: list[tuple[Path, SnapshotLink]] = []
    if args.snapshot and report.kind != "stream":
        raise StreamError(_("{file} is a snapshot; --snapshot checks snapshots against a stream recording").format(file=args.file))
    for path in args.snapshot:
        links.append((path, link_snapshot(_read_records(path, "snapshot"), records, trust_root=root, now=now)))
    if args.json:
        doc = _jsonable(report)
        if links:
            doc["snapshots"] = [
                {"file": str(path), **{k: v for k, v in asdict(link).items() if k not in ("recording",)}}
                for path, link in links
            ]
        print(json.dumps(doc, indent=2))
    else:
        lines = format_report(report, all_frames=args.all_frames)
        lines[-1:-1] = [format_link(path, link) for path, link in links]
        print("\n".join(lines))
    try:
        report.check(complete=args.require_complete)
        for _gop, link in links:
            link.check()
    except (NotAuthentic, Incomplete):
        return 1
    return 0


def _is_h264(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return is_annexb(f.read(4))
    except OSError:
        return False  # the recording reader reports it ("cannot read recording ...")


def _verify_h264(args: argparse.Namespace, root: x509.Certificate) -> int:
    """A signed H.264 recording (``refcam stream record rtsps://...``): one line per GOP."""
    try:
        data = args.file.read_bytes()
    except OSError as e:
        raise FormatError(_("recording {file}: {e}").format(file=args.file, e=e)) from e
    report = verify_h264(data, trust_root=root, now=datetime.now(UTC))
    if args.json:
        print(json.dumps({"verdict": report.verdict, "signer": report.signer,
                          "gops": [asdict(g) for g in report.gops]}, indent=2))
    else:
        if report.signer:
            print(_("signed by {signer}").format(signer=report.signer))
        for gop in report.gops:
            print(_("{status:<10} {detail} ({frames} frames)").format(status=gop.status, detail=gop.detail, frames=gop.frames))
        print(_("verdict: {verdict}").format(verdict=report.verdict))
    try:
        report.check()
    except NotAuthentic:
        return 1
    return 0


def _jsonable(report: StreamReport) -> dict[str, Any]:
    doc = asdict(report)
    doc["complete"] = report.complete
    return doc
