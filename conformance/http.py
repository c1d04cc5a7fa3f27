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
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import ProbeBudgetExceeded, ProbeError
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


class ProbeHTTP:
    """One client per target; ``budget`` bounds the requests of the current case."""

    def __init__(self, target: Target, *, ssl_context: ssl.SSLContext | None, timeout: float = 10.0) -> None:
        self.target = target
        self.ssl_context = ssl_context
        self.timeout = timeout
        self.sent = 0
        self.budget = 0

    def start_case(self, budget: int) -> None:
        self.sent = 0
        self.budget = budget

    def _connection(self) -> http.client.HTTPConnection:
        if self.target.scheme == "https":
            return http.client.HTTPSConnection(
                self.target.host, self.target.port, timeout=self.timeout, context=self.ssl_context
            )
        return http.client.HTTPConnection(self.target.host, self.target.port, timeout=self.timeout)

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
            raise ProbeBudgetExceeded(f"case exceeded its budget of {self.budget} requests")
        self.sent += 1
        sent_headers = {"Accept": "application/json", **(headers or {})}
        if token is not None:
            sent_headers["Authorization"] = f"Bearer {token}"
        body = raw_body
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent_headers.setdefault("Content-Type", "application/json")
        conn = self._connection()
        start = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=sent_headers)
            resp = conn.getresponse()
            data = resp.read()
            elapsed = time.perf_counter() - start
            return Exchange(
                method, path, sent_headers, json_body if json_body is not None else None,
                resp.status, dict(resp.getheaders()), data, elapsed,
                set_cookies=tuple(v for k, v in resp.getheaders() if k.lower() == "set-cookie"),
            )
        except ssl.SSLCertVerificationError as exc:
            # No verdict can be earned over a channel that does not authenticate the device;
            # the TLS cases report the chain itself (TLS-03).
            raise ProbeError(f"TLS certificate validation failed for {self.target.url}: {exc.verify_message}") from exc
        except (TimeoutError, OSError, http.client.HTTPException, ssl.SSLError) as exc:
            return Exchange(
                method, path, sent_headers, json_body, 0, {}, b"", time.perf_counter() - start,
                error=f"{type(exc).__name__}: {exc}",
            )
        finally:
            conn.close()


def client_context(ca_file: str | None) -> ssl.SSLContext:
    """Validate chain and host name against the operator's root; TLS 1.2 minimum."""
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
