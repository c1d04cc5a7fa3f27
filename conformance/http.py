"""The probe's HTTP(S) client: validated TLS, bounded request counts, evidence for every exchange.

Every request the probe sends goes through :class:`ProbeHTTP`, which

- validates the server chain against the operator's root (``--ca``) and the
  host name (no "insecure" switch exists);
- counts requests against the running case's budget and raises
  :class:`~conformance.errors.ProbeBudgetExceeded` past it;
- returns an :class:`Exchange` that renders itself as evidence, with
  passwords, tokens and cookies redacted.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from .errors import ProbeBudgetExceeded, ProbeError
from .i18n import msg
from .model import Evidence

BODY_EXCERPT = 2048  # bytes of a response body kept as evidence
_SECRET_FIELDS = {"password", "current_password", "new_password", "token", "csrf_token"}
_SECRET_HEADERS = {"authorization", "cookie", "set-cookie", "x-csrf-token"}


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ProbeError(f"target {url!r} is not an http(s)://HOST:PORT URL")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise ProbeError(f"target {url!r} has a bad port") from exc
        return cls(parts.scheme, parts.hostname, port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _redact_body(body: Any) -> Any:
    if isinstance(body, dict):
        return {k: ("<redacted>" if k in _SECRET_FIELDS else _redact_body(v)) for k, v in body.items()}
    if isinstance(body, list):
        return [_redact_body(v) for v in body]
    return body


def _redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("<redacted>" if k.lower() in _SECRET_HEADERS else v) for k, v in headers.items()}


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    request_headers: Mapping[str, str]
    request_body: Any
    status: int  # 0 when no HTTP response came back
    headers: Mapping[str, str]
    body: bytes
    elapsed: float  # seconds
    error: str | None = None
    set_cookies: tuple[str, ...] = field(default_factory=tuple)

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def evidence(self, note: str = "") -> Evidence:
        outcome = f"{self.status}" if not self.error else f"no response ({self.error})"
        summary = f"{self.method} {self.path} -> {outcome}" + (f" ({note})" if note else "")
        excerpt = self.body[:BODY_EXCERPT]
        parsed = self.json()
        return Evidence(
            "http",
            summary,
            {
                "request": {
                    "method": self.method,
                    "path": self.path,
                    "headers": _redact_headers(self.request_headers),
                    "body": _redact_body(self.request_body),
                },
                "response": {
                    "status": self.status,
                    "headers": _redact_headers(self.headers),
                    "body": _redact_body(parsed) if parsed is not None else excerpt.decode("utf-8", "replace"),
                    "bytes": len(self.body),
                },
                "elapsed_ms": round(self.elapsed * 1000, 1),
            },
        )


@dataclass(frozen=True)
class RawResponse:
    """What a transport got back for one request."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class Transport(Protocol):
    """Sends one request; raises OSError/TimeoutError/HTTPException/SSLError when no answer came.

    The real one is :class:`HTTPTransport`; verdict-rule tests hand in a fake one.
    """

    def __call__(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> RawResponse: ...


class HTTPTransport:
    """One connection per request, validated TLS for https targets."""

    def __init__(self, target: Target, ssl_context: ssl.SSLContext | None, timeout: float) -> None:
        self.target, self.ssl_context, self.timeout = target, ssl_context, timeout

    def __call__(self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]) -> RawResponse:
        if self.target.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self.target.host, self.target.port, timeout=self.timeout, context=self.ssl_context
            )
        else:
            conn = http.client.HTTPConnection(self.target.host, self.target.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=dict(headers))
            resp = conn.getresponse()
            data = resp.read()
            return RawResponse(resp.status, tuple(resp.getheaders()), data)
        finally:
            conn.close()


@dataclass(frozen=True)
class Recorded:
    """One exchange as sent and received, for the evidence bundle (HAR)."""

    started: str  # ISO 8601 UTC
    url: str
    exchange: Exchange
    case_id: str


class ProbeHTTP:
    """One client per target; ``budget`` bounds the requests of the current case.

    ``transport``, ``clock`` and ``sleep`` are injectable so the verdict rules can
    be tested against a fake device; every exchange is appended to ``recorder``
    when one is given (the evidence bundle's HAR file).
    """

    def __init__(
        self,
        target: Target,
        *,
        ssl_context: ssl.SSLContext | None,
        timeout: float = 10.0,
        transport: Transport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        recorder: list[Recorded] | None = None,
    ) -> None:
        self.target = target
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.transport: Transport = transport or HTTPTransport(target, ssl_context, timeout)
        self.clock = clock
        self.sleep = sleep
        self.recorder = recorder
        self.case_id = ""
        self.sent = 0
        self.budget = 0

    def start_case(self, budget: int, case_id: str | None = None) -> None:
        self.sent = 0
        self.budget = budget
        if case_id is not None:
            self.case_id = case_id

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        raw_body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
    ) -> Exchange:
        if self.sent >= self.budget:
            raise ProbeBudgetExceeded(msg("case exceeded its budget of {budget} requests", budget=self.budget))
        self.sent += 1
        sent_headers = {"Accept": "application/json", **(headers or {})}
        if token is not None:
            sent_headers["Authorization"] = f"Bearer {token}"
        body = raw_body
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent_headers.setdefault("Content-Type", "application/json")
        started = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        start = time.perf_counter()
        try:
            raw = self.transport(method, path, body, sent_headers)
            exchange = Exchange(
                method, path, sent_headers, json_body if json_body is not None else None,
                raw.status, dict(raw.headers), raw.body, time.perf_counter() - start,
                set_cookies=tuple(v for k, v in raw.headers if k.lower() == "set-cookie"),
            )
        except ssl.SSLCertVerificationError as exc:
            # No verdict can be earned over a channel that does not authenticate the device;
            # the TLS cases report the chain itself (TLS-03).
            raise ProbeError(f"TLS certificate validation failed for {self.target.url}: {exc.verify_message}") from exc
        except (TimeoutError, OSError, http.client.HTTPException, ssl.SSLError) as exc:
            exchange = Exchange(
                method, path, sent_headers, json_body, 0, {}, b"", time.perf_counter() - start,
                error=f"{type(exc).__name__}: {exc}",
            )
        if self.recorder is not None:
            self.recorder.append(Recorded(started, self.target.url + path, exchange, self.case_id))
        return exchange


def client_context(ca_file: str | None) -> ssl.SSLContext:
    """Validate chain and host name against the operator's root; TLS 1.2 minimum."""
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def raw_exchange(host: str, port: int, request: bytes, *, answer: bytes, limit: int, head_only: bool = False) -> tuple[str, bytes]:
    """Send ``request`` as plaintext bytes (no TLS) and read the reply, up to ``limit`` bytes
    (only its head with ``head_only``). The state is "answered" (the reply starts with
    ``answer``), "closed", "refused" or "unreachable (why)"; the plaintext checks judge it."""
    data = b""
    try:
        with socket.create_connection((host, port), timeout=3) as sock:
            sock.sendall(request)
            try:
                while len(data) < limit and not (head_only and b"\r\n\r\n" in data):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except (TimeoutError, ConnectionResetError):
                pass  # what arrived before the silence or the reset is the answer
    except ConnectionRefusedError:
        return "refused", b""
    except OSError as exc:
        return f"unreachable ({exc})", b""
    return ("answered" if data.startswith(answer) else "closed"), data
