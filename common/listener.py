"""The listening sockets: timeouts for slow clients and a connection cap with a reserve.

aiohttp alone never closes a TLS connection that is idle, that trickles its
request head or its body, and it accepts until the process runs out of file
descriptors (then ``accept`` fails and every client waits). A camera has a
1024-descriptor limit, and the vendor's update and PSIRT server faces anyone
who finds it, so both serve through a :class:`GuardedSite`, which wraps each TCP connection in a
:class:`GuardedConnection` that is counted from ``accept`` to close and goes
through these phases, each with a deadline (:class:`ConnectionLimits`):

``handshake``  TLS by ``loop.start_tls`` within ``handshake_timeout``;
``head``       a complete request head within ``header_timeout`` after the
               handshake (``idle_timeout`` after a previous response: keep-alive);
``request``    the handler runs (:func:`connection_middleware` marks it); while the
               body is not all in, a pause between body bytes longer than
               ``body_timeout`` ends it, and a caller the application has not
               authenticated (``ConnectionGuard(trusted=...)``: on the device, a
               session) must send the whole body within ``body_timeout``.

The caps: at most ``per_source`` connections from one address and
``max_connections`` in all (never more than half the descriptor limit). A new
connection beyond its address's cap evicts that address's oldest connection
the client is slow with (handshake, request head, or an anonymous body still
coming); from ``max_connections - reserve`` on, it evicts the oldest slow
connection of the address holding the most. An address that holds a
quarter of its cap (or any, once the server holds half of its) may open
``new_per_second`` connections a second (bursts of ``per_source``); beyond
that a connection is closed at accept, before any TLS work. So clients holding or churning
connections from a few addresses only ever push out their own, and a new admin
session from elsewhere gets in. When every connection is busy with real work
the last ``reserve`` slots fill, and beyond the cap a new connection is closed
at once. (Clients sharing one address are one client to the server.) Nothing here logs per
connection: closing a slow client is normal work, and counts are in
:meth:`ConnectionGuard.stats`.

Example::

    guard = ConnectionGuard(ConnectionLimits(), trusted=lambda request: USER_KEY in request)
    app[CONNECTIONS_KEY] = guard  # and connection_middleware first in app.middlewares
    site = GuardedSite(runner, "127.0.0.1", 8443, ssl_context=ctx, guard=guard)
    await site.start()
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import resource
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_runner import BaseRunner, BaseSite
from aiohttp.web_server import Server

Phase = Literal["handshake", "head", "request"]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ConnectionLimits:
    """Slow clients and the connection cap."""

    handshake_timeout: float = 10.0  # seconds from accept to an established TLS session
    header_timeout: float = 10.0  # seconds from the handshake to a complete request head
    body_timeout: float = 10.0  # seconds: longest pause between body bytes (whole body if not trusted)
    idle_timeout: float = 15.0  # seconds a kept-alive connection waits for its next request head
    max_connections: int = 256  # connections, at most half the file-descriptor limit
    per_source: int = 32  # connections from one client address
    new_per_second: float = 10.0  # new connections a second from one address (bursts of per_source)
    reserve: int = 16  # connections kept for new sessions once the others are busy
    tick: float = 0.25  # seconds between deadline checks


def descriptor_cap(requested: int) -> int:
    """``requested``, but at most half the soft ``RLIMIT_NOFILE`` (databases and logs need the rest)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested
    return max(8, min(requested, soft // 2))


class GuardedConnection(asyncio.Protocol):
    """One TCP connection: TLS (optional), then the aiohttp request handler, under deadlines."""

    def __init__(self, guard: ConnectionGuard, ssl_context: ssl.SSLContext | None) -> None:
        self.guard = guard
        self.ssl_context = ssl_context
        self.raw: asyncio.Transport | None = None
        self.source = "unknown"  # the client's address
        self.inner: asyncio.Protocol | None = None
        self.phase: Phase = "handshake"
        self.since = guard.now()  # start of the current phase
        self.last_data = self.since
        self.served = 0  # requests handled on this connection
        self.request: web.Request | None = None
        self.closed = False
        self._task: asyncio.Task[None] | None = None
        # bytes that arrive between the handshake and start_tls returning
        self._early: list[bytes] = []
        self._early_eof = False

    # -- asyncio.Protocol -------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.raw = transport
        peer = transport.get_extra_info("peername")
        self.source = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self.guard.admit(self):
            transport.abort()
            return
        if self.ssl_context is None:
            self._serve(transport)
            return
        transport.pause_reading()  # the ClientHello stays in the kernel until start_tls reads it
        self._task = asyncio.get_running_loop().create_task(self._handshake())

    async def _handshake(self) -> None:
        assert self.raw is not None and self.ssl_context is not None
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                self.raw, self, self.ssl_context, server_side=True,
                ssl_handshake_timeout=self.guard.limits.handshake_timeout,
            )
        except (TimeoutError, OSError, ConnectionError, ssl.SSLError, RuntimeError):
            self.guard.count("handshake_failed")
            self.abort()
            return
        if tls is None or self.closed:
            self.abort()
            return
        self._serve(tls)

    def _serve(self, transport: asyncio.BaseTransport) -> None:
        self.inner = self.guard.make_handler()
        self.guard.handlers[self.inner] = self
        self.enter("head")
        self.inner.connection_made(transport)
        early, self._early = self._early, []
        for data in early:
            self.inner.data_received(data)
        if self._early_eof:
            self.inner.eof_received()

    def data_received(self, data: bytes) -> None:
        self.last_data = self.guard.now()
        if self.inner is not None:
            self.inner.data_received(data)
        else:
            self._early.append(data)  # bounded: the TLS layer reads at most its buffer size ahead

    def eof_received(self) -> bool | None:
        if self.inner is None:
            self._early_eof = True
            return None
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed:
            return
        self.closed = True
        self.guard.release(self)
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.inner is not None:
            self.guard.handlers.pop(self.inner, None)
            self.inner.connection_lost(exc)

    # -- state ---------------------------------------------------------------

    def enter(self, phase: Phase) -> None:
        self.phase = phase
        self.since = self.guard.now()

    def abort(self) -> None:
        if self.raw is not None and not self.raw.is_closing():
            self.raw.abort()
        elif self.raw is not None:
            with contextlib.suppress(Exception):
                self.raw.abort()

    def busy(self) -> bool:
        """Doing the server's work (the request is all in, or a trusted caller's): not evicted.

        What is evicted near the cap is a connection the client is slow with: a
        handshake, a request head, or an anonymous request body still coming.
        """
        request = self.request
        if self.phase != "request" or request is None:
            return False
        return request.content.is_eof() or self.guard.trusted(request)

    def overdue(self, now: float) -> str | None:
        """Which deadline this connection missed at ``now``, if any."""
        limits = self.guard.limits
        if self.phase == "handshake":
            return "handshake" if now - self.since > limits.handshake_timeout else None
        if self.phase == "head":
            allowed = limits.header_timeout if self.served == 0 else limits.idle_timeout
            return "head" if now - self.since > allowed else None
        request = self.request
        if request is None or request.content.is_eof():
            return None  # the handler is working or streaming a response: not the client's fault
        if now - self.last_data > limits.body_timeout:
            return "body"
        if not self.guard.trusted(request) and now - self.since > limits.body_timeout:
            return "body"
        return None


class ConnectionGuard:
    """Counts a site's connections, enforces their deadlines and the cap."""

    def __init__(
        self,
        limits: ConnectionLimits,
        *,
        headers: Mapping[str, str] | None = None,
        clock: Callable[[], float] | None = None,
        trusted: Callable[[web.Request], bool] = lambda request: False,
    ) -> None:
        self.limits = limits
        # a caller the application authenticated: its body may take longer than body_timeout
        # in all (only pauses count), and near the cap its connection is never evicted
        self.trusted = trusted
        # on every response, parser-level errors included (which no app middleware sees)
        self.error_headers: dict[str, str] = dict(headers or {"Server": "refcam"})
        self.cap = descriptor_cap(limits.max_connections)
        self.reserve = min(limits.reserve, self.cap // 2)
        self._clock = clock
        self.connections: collections.OrderedDict[GuardedConnection, None] = collections.OrderedDict()
        self.by_source: dict[str, collections.OrderedDict[GuardedConnection, None]] = {}
        self.per_source = max(1, min(limits.per_source, self.cap - self.reserve))
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tokens, when)
        self.handlers: dict[asyncio.Protocol, GuardedConnection] = {}
        self.make_handler: Callable[[], asyncio.Protocol] = _no_handler
        self.stats: collections.Counter[str] = collections.Counter()
        self._ticker: asyncio.TimerHandle | None = None

    def now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def count(self, what: str) -> None:
        self.stats[what] += 1

    def admit(self, conn: GuardedConnection) -> bool:
        """Take ``conn`` in, evicting a slow one of the biggest holder near a cap; False to refuse it."""
        none: Mapping[GuardedConnection, None] = {}
        own = self.by_source.get(conn.source, none)
        pressed = len(own) >= max(2, self.per_source // 4) or len(self.connections) >= self.cap // 2
        if pressed and not self._take_token(conn.source):
            self.count("rate_limited")  # closed before any TLS work: cheap for the server
            return False
        if len(own) >= self.per_source and not self._evict(own):
            self.count("refused")
            return False
        if len(self.connections) >= self.cap - self.reserve:
            biggest = max(self.by_source.values(), key=len, default=none)
            if not self._evict(biggest) and len(self.connections) >= self.cap:
                self.count("refused")
                return False
        self.connections[conn] = None
        self.by_source.setdefault(conn.source, collections.OrderedDict())[conn] = None
        self.count("accepted")
        self._arm()
        return True

    def _take_token(self, source: str) -> bool:
        """New connections per address: a bucket of ``per_source`` refilled at ``new_per_second``."""
        now = self.now()
        rate, burst = self.limits.new_per_second, float(self.per_source)
        tokens, last = self._buckets.get(source, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._buckets[source] = (tokens, now)
            return False
        self._buckets[source] = (tokens - 1.0, now)
        if len(self._buckets) > 4096:  # bounded memory: forget the addresses that are back to full
            full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * rate >= burst]
            for key in full:
                del self._buckets[key]
        return True

    def _evict(self, candidates: Mapping[GuardedConnection, None]) -> bool:
        """Close the oldest connection of ``candidates`` that the client is slow with."""
        victim = next((c for c in candidates if not c.busy()), None)
        if victim is None:
            return False
        self.count("evicted")
        self.release(victim)
        victim.abort()
        return True

    def release(self, conn: GuardedConnection) -> None:
        self.connections.pop(conn, None)
        own = self.by_source.get(conn.source)
        if own is not None:
            own.pop(conn, None)
            if not own:
                del self.by_source[conn.source]

    def _arm(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().call_later(self.limits.tick, self._tick)

    def _tick(self) -> None:
        self._ticker = None
        now = self.now()
        for conn in list(self.connections):
            missed = conn.overdue(now)
            if missed is not None:
                self.count(f"timeout_{missed}")
                self.release(conn)
                conn.abort()
        if self.connections:
            self._arm()

    def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def connection_for(self, request: web.Request) -> GuardedConnection | None:
        protocol = request.protocol
        return self.handlers.get(protocol) if protocol is not None else None


# The guard of the app's site (GuardedSite): connection_middleware finds it here.
CONNECTIONS_KEY: web.AppKey[ConnectionGuard] = web.AppKey("refcam.connections", ConnectionGuard)


def _no_handler() -> asyncio.Protocol:
    raise RuntimeError("ConnectionGuard used before a site started")


@web.middleware
async def connection_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Marks the request phase of the connection (outermost middleware)."""
    guard = request.config_dict.get(CONNECTIONS_KEY)  # also for the routes of a sub-application
    conn = guard.connection_for(request) if guard is not None else None
    if conn is None:  # a connection not made by a GuardedSite (tests, aiohttp test client)
        return await handler(request)
    conn.request = request
    conn.enter("request")
    try:
        return await handler(request)
    finally:
        conn.request = None
        conn.served += 1
        conn.enter("head")


class GuardedRequestHandler(RequestHandler):
    """aiohttp's request handler, but a request its parser refuses gets the server's
    answer: JSON, the guard's ``error_headers`` (``Server`` and the security headers),
    no parser detail, no ``Python/3.x aiohttp/x.y`` (aiohttp's own 400 bypasses every
    app hook)."""

    __slots__ = ("_refcam_headers",)
    _refcam_headers: dict[str, str]

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        if status < 500 and exc is not None:
            # The client's malformed request, which anyone can send: one line, no traceback
            # (one template, so the device's log filter counts them as one message).
            reason = " ".join(str(exc).split())  # aiohttp's parser errors span lines
            self.logger.warning("Error handling request from %s: %s: %s", request.remote, type(exc).__name__, reason)
        else:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        if request.writer.output_size > 0:  # part of a response went out: the connection is broken
            raise ConnectionError("response is sent already, cannot send the error response")
        code = {400: "bad_request", 413: "payload_too_large", 431: "headers_too_large"}.get(status, "http_error")
        text = "malformed HTTP request" if status < 500 else "internal error"
        response = web.json_response({"error": code if status < 500 else "internal", "message": text}, status=status)
        response.headers.update(self._refcam_headers)
        response.force_close()
        return response


def _handler_factory(server: Server, guard: ConnectionGuard) -> Callable[[], asyncio.Protocol]:
    """Request handlers of ``server``'s kind, as :class:`GuardedRequestHandler`."""
    loop, kwargs = getattr(server, "_loop", None), getattr(server, "_kwargs", None)
    if loop is None or kwargs is None:  # a future aiohttp: plain handlers (only the 400s lose our headers)
        return server

    def make() -> asyncio.Protocol:
        handler = GuardedRequestHandler(server, loop=loop, **kwargs)
        handler._refcam_headers = guard.error_headers
        return handler

    return make


class GuardedSite(BaseSite):
    """A TCP site whose connections go through a :class:`ConnectionGuard`."""

    __slots__ = ("_guard", "_host", "_port")

    def __init__(
        self,
        runner: BaseRunner,
        host: str,
        port: int,
        *,
        guard: ConnectionGuard,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 1024,  # SYNs waiting while the loop is busy: dropped ones retry only after 1 s
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port, self._guard = host, port, guard

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def bound_port(self) -> int:
        sockets = getattr(self._server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else self._port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        guard, ctx = self._guard, self._ssl_context
        guard.make_handler = _handler_factory(server, guard)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: GuardedConnection(guard, ctx), self._host, self._port, backlog=self._backlog
        )

    async def stop(self) -> None:
        await super().stop()
        self._guard.close()


def runner_options(limits: ConnectionLimits) -> dict[str, Any]:
    """aiohttp ``AppRunner`` options matching ``limits`` (its own keep-alive timer as a backstop)."""
    backstop = max(limits.idle_timeout, limits.header_timeout, limits.handshake_timeout) + 5.0
    return {"keepalive_timeout": backstop, "access_log": None}
