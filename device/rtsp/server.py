"""The RTSPS server: RTSP 1.0 (RFC 2326) on TLS only, RTP/RTCP interleaved on the same connection.

Methods: OPTIONS, DESCRIBE (SDP), SETUP (``RTP/AVP/TCP;interleaved`` only),
PLAY, PAUSE, TEARDOWN, GET_PARAMETER (keep-alive). A session belongs to the
connection that set it up: another connection naming its id gets 454, so a
session id seen elsewhere cannot be taken over. Sessions end with their
connection, on TEARDOWN, or after ``session_timeout`` seconds without a
request or RTCP packet from the client (RFC 2326 12.37).

Limits: ``max_sessions`` in total (503 beyond), ``max_sessions_per_client``
per client address (453 Not Enough Bandwidth beyond), ``max_connections``
(further connections are closed at once), a request head within
``request_timeout`` seconds, and the size limits of :mod:`.protocol`. A
malformed request is answered 400 and the connection closed; nothing a
client sends raises out of a connection handler.

Example::

    server = RtspServer({"/h264": h264, "/mjpeg": mjpeg}, authenticator, RtspConfig(port=0), clock=time.time)
    await server.start(ssl_context)            # TLS; the plaintext listener exists only as a flaw
    print(server.port)
    await server.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .auth import Principal, RtspAuthenticator
from .errors import MediaError, RtspError
from .media import MediaFrame, MediaStream, Subscriber
from .protocol import (
    METHODS,
    Request,
    content_length,
    format_response,
    head_length,
    interleaved,
    parse_request,
    parse_transport,
)
from .rtp import rtp_header

log = logging.getLogger(__name__)

DEFAULT_PORT = 322  # RTSPS (IANA "rtsps")


@dataclass(frozen=True)
class RtspConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_sessions: int = 32
    max_sessions_per_client: int = 4
    max_connections: int = 64
    session_timeout: float = 60.0  # seconds without a request or RTCP from the client
    request_timeout: float = 10.0  # seconds to send a whole request once started, and the TLS handshake
    write_timeout: float = 20.0  # seconds a viewer's connection may refuse to drain before it is dropped


@dataclass(eq=False)
class Session:
    id: str
    connection: Connection
    path: str
    stream: MediaStream
    channels: tuple[int, int]
    principal: Principal
    ssrc: int = field(default_factory=lambda: secrets.randbits(32))
    seq: int = field(default_factory=lambda: secrets.randbits(16))
    ts_offset: int = field(default_factory=lambda: secrets.randbits(32))
    playing: bool = False
    sender: asyncio.Task[None] | None = None
    sent_frames: int = 0
    sent_bytes: int = 0
    latencies_ns: deque[int] = field(default_factory=lambda: deque(maxlen=2048))


@dataclass(eq=False)
class Connection:
    peer: str
    writer: asyncio.StreamWriter
    sessions: dict[str, Session] = field(default_factory=dict)
    last_seen: float = 0.0
    closed: bool = False


class RtspServer:
    """The RTSP server over one or more listeners (TLS; plaintext only under a flaw profile)."""

    def __init__(
        self,
        streams: dict[str, MediaStream],
        authenticator: RtspAuthenticator,
        config: RtspConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.streams = streams
        self.auth = authenticator
        self.config = config
        self.clock = clock
        self.sessions: dict[str, Session] = {}
        self.connections: set[Connection] = set()
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0
        self.plaintext_port: int | None = None

    # -- listeners -----------------------------------------------------------

    async def start(self, ssl_context: ssl.SSLContext, *, port: int | None = None) -> int:
        server = await asyncio.start_server(
            self._serve,
            self.config.host,
            self.config.port if port is None else port,
            ssl=ssl_context,
            ssl_handshake_timeout=self.config.request_timeout,
            limit=2**16,
        )
        self._servers.append(server)
        self.port = int(server.sockets[0].getsockname()[1])
        return self.port

    async def start_plaintext_unsafe(self, port: int) -> int:
        """UNSAFE flaw profile ``rtsp-plaintext``: the same service without TLS (loopback only)."""
        server = await asyncio.start_server(self._serve, self.config.host, port, limit=2**16)
        self._servers.append(server)
        self.plaintext_port = int(server.sockets[0].getsockname()[1])
        return self.plaintext_port

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for connection in list(self.connections):
            self._drop(connection, "server shutting down")
            with contextlib.suppress(Exception):
                connection.writer.close()
        for task in list(self._tasks):
            task.cancel()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        for stream in self.streams.values():
            await stream.close()

    # -- one connection ------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) else "unknown"
        connection = Connection(peer, writer, last_seen=time.monotonic())
        if len(self.connections) >= self.config.max_connections:
            log.warning("RTSP connection from %s refused: %d connections open", peer, len(self.connections))
            writer.close()
            if task is not None:
                self._tasks.discard(task)
            return
        self.connections.add(connection)
        try:
            await self._requests(reader, connection)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client left or stalled: its sessions end below
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("RTSP connection from %s failed", peer)
        finally:
            self._drop(connection, "connection closed")
            self.connections.discard(connection)
            with contextlib.suppress(Exception):
                writer.close()
            if task is not None:
                self._tasks.discard(task)

    async def _requests(self, reader: asyncio.StreamReader, connection: Connection) -> None:
        buffer = bytearray()
        cfg = self.config
        while True:
            idle = cfg.session_timeout if connection.sessions else cfg.request_timeout * 3
            timeout = idle if not buffer else cfg.request_timeout
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                return
            buffer += chunk
            connection.last_seen = time.monotonic()
            while buffer:
                if buffer[0] == 0x24:  # "$": interleaved RTCP from the client (receiver reports)
                    if len(buffer) < 4:
                        break
                    size = 4 + int.from_bytes(buffer[2:4], "big")
                    if len(buffer) < size:
                        break
                    del buffer[:size]
                    continue
                try:
                    length = head_length(buffer)
                    if length is None:
                        break
                    request = parse_request(bytes(buffer[:length]))
                    body_length = content_length(request)
                except RtspError as exc:
                    await self._send(connection, format_response(exc.status, exc.reason, cseq=None, headers=exc.headers))
                    return  # the stream cannot be resynchronised after a bad head
                if len(buffer) < length + body_length:
                    break
                del buffer[: length + body_length]
                await self._answer(connection, request)
                if connection.closed:
                    return

    async def _send(self, connection: Connection, data: bytes) -> None:
        connection.writer.write(data)
        await asyncio.wait_for(connection.writer.drain(), self.config.write_timeout)

    async def _answer(self, connection: Connection, request: Request) -> None:
        try:
            headers, body, content_type = await self._dispatch(connection, request)
            status, reason = 200, "OK"
        except RtspError as exc:
            status, reason, headers = exc.status, exc.reason, exc.headers
            # the reason in a line of text (e.g. "password change required: ..."); never a traceback
            body, content_type = (exc.detail.encode("ascii", "replace") + b"\r\n", "text/plain") if exc.detail != exc.reason else (b"", None)
            if exc.status >= 400:
                log.info("RTSP %s %s from %s: %d %s", request.method, request.path, connection.peer, exc.status, exc.detail)
        except MediaError as exc:
            log.error("RTSP %s: media failure: %s", request.method, exc)
            status, reason, headers, body, content_type = 503, "Service Unavailable", [], b"", None
        await self._send(
            connection,
            format_response(status, reason, cseq=request.cseq, headers=headers, body=body, content_type=content_type),
        )

    async def _dispatch(
        self, connection: Connection, request: Request
    ) -> tuple[list[tuple[str, str]], bytes, str | None]:
        method = request.method
        if method not in METHODS:
            raise RtspError(501, "Not Implemented", headers=[("Public", ", ".join(METHODS))])
        if method == "OPTIONS":
            return [("Public", ", ".join(METHODS))], b"", None
        principal = self.auth.authenticate(request, source=connection.peer, now=self.clock())
        if method == "DESCRIBE":
            return await self._describe(request)
        if method == "SETUP":
            return self._setup(connection, request, principal)
        if method == "GET_PARAMETER" and request.header("session") is None:
            return [], b"", None  # a keep-alive ping outside a session (RFC 2326 10.8)
        session = self._session_of(connection, request)
        if method == "PLAY":
            return self._play(session, request)
        if method == "PAUSE":
            self._pause(session)
            return [("Session", session.id)], b"", None
        if method == "TEARDOWN":
            self._teardown(session, "TEARDOWN")
            return [("Session", session.id)], b"", None
        return [("Session", f"{session.id};timeout={int(self.config.session_timeout)}")], b"", None  # GET_PARAMETER

    def _stream(self, request: Request) -> tuple[str, MediaStream]:
        path = request.path
        stream = self.streams.get(path)
        if stream is None:
            raise RtspError(404, "Not Found", f"no stream at {path[:80]!r}; streams: {', '.join(self.streams)}")
        return path, stream

    async def _describe(self, request: Request) -> tuple[list[tuple[str, str]], bytes, str | None]:
        accept = request.header("accept")
        if accept is not None and "application/sdp" not in accept and "*/*" not in accept:
            raise RtspError(406, "Not Acceptable", "only application/sdp descriptions")
        _path, stream = self._stream(request)
        media = await stream.sdp_media()
        session_id = int.from_bytes(os.urandom(6), "big")
        lines = [
            "v=0",
            f"o=- {session_id} 1 IN IP4 {self.config.host if ':' not in self.config.host else '127.0.0.1'}",
            "s=refcam",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "a=control:*",
            *media,
        ]
        base = request.uri.rstrip("/") + "/"
        body = ("\r\n".join(lines) + "\r\n").encode("ascii")
        return [("Content-Base", base)], body, "application/sdp"

    def _setup(
        self, connection: Connection, request: Request, principal: Principal
    ) -> tuple[list[tuple[str, str]], bytes, str | None]:
        path, stream = self._stream(request)
        transport = parse_transport(request.header("transport"))
        if request.header("session") is not None:
            # one track per stream: a second SETUP in a session is refused
            raise RtspError(459, "Aggregate Operation Not Allowed", "each stream has one track")
        if len(self.sessions) >= self.config.max_sessions:
            raise RtspError(503, "Service Unavailable", f"the camera serves at most {self.config.max_sessions} sessions")
        mine = sum(1 for s in self.sessions.values() if s.connection.peer == connection.peer)
        if mine >= self.config.max_sessions_per_client:
            raise RtspError(
                453, "Not Enough Bandwidth",
                f"at most {self.config.max_sessions_per_client} sessions per client address",
            )
        session = Session(secrets.token_hex(8), connection, path, stream, transport.channels, principal)
        self.sessions[session.id] = session
        connection.sessions[session.id] = session
        a, b = transport.channels
        return [
            ("Transport", f"RTP/AVP/TCP;unicast;interleaved={a}-{b};ssrc={session.ssrc:08X}"),
            ("Session", f"{session.id};timeout={int(self.config.session_timeout)}"),
        ], b"", None

    def _session_of(self, connection: Connection, request: Request) -> Session:
        value = request.header("session")
        if value is None:
            raise RtspError(455, "Method Not Valid in This State", f"{request.method} needs a session (SETUP first)")
        session_id = value.split(";", 1)[0].strip()
        session = connection.sessions.get(session_id)
        if session is None:  # unknown, ended, or another connection's: never taken over
            raise RtspError(454, "Session Not Found")
        return session

    def _play(self, session: Session, request: Request) -> tuple[list[tuple[str, str]], bytes, str | None]:
        if not session.playing:
            session.playing = True
            session.sender = asyncio.create_task(self._pump(session))
        info = f"url={request.uri.rstrip('/')};seq={session.seq & 0xFFFF}"
        return [("Session", session.id), ("Range", "npt=now-"), ("RTP-Info", info)], b"", None

    def _pause(self, session: Session) -> None:
        session.playing = False
        if session.sender is not None:
            session.sender.cancel()
            session.sender = None

    def _teardown(self, session: Session, reason: str) -> None:
        log.debug("RTSP session %s ends: %s", session.id, reason)
        self._pause(session)
        self.sessions.pop(session.id, None)
        session.connection.sessions.pop(session.id, None)

    def _drop(self, connection: Connection, reason: str) -> None:
        connection.closed = True
        for session in list(connection.sessions.values()):
            self._teardown(session, reason)

    async def _pump(self, session: Session) -> None:
        """Send the stream to one session: its own RTP headers around the shared payloads."""
        stream = session.stream
        sub: Subscriber = await stream.subscribe()
        writer = session.connection.writer
        channel = session.channels[0]
        try:
            while session.playing:
                frame = await sub.next()
                if frame is None:  # the stream ended (source gone): the client learns it by the close
                    log.info("RTSP session %s: stream ended (%s)", session.id, sub.closed)
                    writer.close()
                    break
                data = self._packets(session, frame, channel)
                writer.write(data)
                await asyncio.wait_for(writer.drain(), self.config.write_timeout)
                session.sent_frames += 1
                session.sent_bytes += len(data)
                session.latencies_ns.append(time.monotonic_ns() - frame.capture_mono_ns)
        except (ConnectionError, TimeoutError, ssl.SSLError):
            with contextlib.suppress(Exception):
                writer.close()  # a viewer that cannot take its stream is dropped; its reader ends
        finally:
            stream.unsubscribe(sub)

    def _packets(self, session: Session, frame: MediaFrame, channel: int) -> bytes:
        timestamp = (frame.timestamp + session.ts_offset) & 0xFFFFFFFF
        last = len(frame.payloads) - 1
        parts = []
        seq = session.seq
        pt = session.stream.payload_type
        for index, payload in enumerate(frame.payloads):
            header = rtp_header(payload_type=pt, seq=seq, timestamp=timestamp, ssrc=session.ssrc, marker=index == last)
            parts.append(interleaved(channel, header + payload))
            seq = (seq + 1) & 0xFFFF
        session.seq = seq
        return b"".join(parts)

    def stats(self) -> dict[str, Any]:
        return {
            "sessions": len(self.sessions),
            "connections": len(self.connections),
            "viewers": [
                {"id": s.id, "path": s.path, "sent": s.sent_frames, "bytes": s.sent_bytes, "latencies_ns": list(s.latencies_ns)}
                for s in self.sessions.values()
            ],
        }
