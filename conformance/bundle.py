"""The evidence bundle a lab files with a report (``refcam probe --report DIR``).

Beside report.json/html, junit.xml and summary.txt the directory gets:

- ``exchanges.har``: every HTTP request and response of the run, HAR 1.2
  (passwords, tokens, cookies and CSRF tokens redacted; each entry's
  ``comment`` names the case that sent it, or ``preflight``);
- ``declaration.json``: the device declaration the run used (or null);
- ``versions.json``: the probe and catalogue versions, and its libraries';
- ``identity.json``: the unit (model, serial, firmware from its info document
  and TLS certificate) and the channel the preflight established;
- ``options.json``: the options, secrets redacted;
- ``MANIFEST.sha256``: SHA-256 of every file above, ``sha256sum -c`` format.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .http import BODY_EXCERPT, Recorded, _redact_body, _redact_headers

if TYPE_CHECKING:
    from .report import ProbeReport

HAR_BODY_LIMIT = 64 * 1024  # bytes of a response body kept in the HAR
_STATUS_TEXT = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
                403: "Forbidden", 404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error"}


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _redacted_text(body: bytes, content_type: str) -> dict[str, Any]:
    content: dict[str, Any] = {"size": len(body), "mimeType": content_type or "application/octet-stream"}
    kept = body[:HAR_BODY_LIMIT]
    try:
        content["text"] = json.dumps(_redact_body(json.loads(body)))
        return content
    except (ValueError, UnicodeDecodeError):
        pass
    try:
        content["text"] = kept.decode("utf-8")
    except UnicodeDecodeError:
        content["text"] = base64.b64encode(kept).decode("ascii")
        content["encoding"] = "base64"
    if len(body) > len(kept):
        content["comment"] = f"first {len(kept)} of {len(body)} bytes"
    return content


def har_entry(recorded: Recorded) -> dict[str, Any]:
    ex = recorded.exchange
    request_headers = _redact_headers(ex.request_headers)
    request: dict[str, Any] = {
        "method": ex.method,
        "url": recorded.url,
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": [{"name": k, "value": v} for k, v in request_headers.items()],
        "queryString": [],
        "headersSize": -1,
        "bodySize": -1,
    }
    if ex.request_body is not None:
        text = json.dumps(_redact_body(ex.request_body))
        request["postData"] = {"mimeType": "application/json", "text": text}
        request["bodySize"] = len(text)
    response_headers = _redact_headers(ex.headers)
    content_type = next((v for k, v in ex.headers.items() if k.lower() == "content-type"), "")
    response: dict[str, Any] = {
        "status": ex.status,
        "statusText": _STATUS_TEXT.get(ex.status, ""),
        "httpVersion": "HTTP/1.1",
        "cookies": [],
        "headers": [{"name": k, "value": v} for k, v in response_headers.items()],
        "content": _redacted_text(ex.body, content_type),
        "redirectURL": ex.header("Location") or "",
        "headersSize": -1,
        "bodySize": len(ex.body),
    }
    if ex.error:
        response["_error"] = ex.error  # HAR 1.2 custom field: no response came back
        response["comment"] = f"no response: {ex.error}"
    elapsed = round(ex.elapsed * 1000, 3)
    return {
        "startedDateTime": recorded.started,
        "time": elapsed,
        "request": request,
        "response": response,
        "cache": {},
        "timings": {"send": 0, "wait": elapsed, "receive": 0},
        "comment": recorded.case_id or "",
    }


def render_har(report: ProbeReport) -> dict[str, Any]:
    from .report import TOOL_VERSION

    return {
        "log": {
            "version": "1.2",
            "creator": {"name": "refcam probe", "version": TOOL_VERSION},
            "pages": [],
            "entries": [har_entry(r) for r in report.exchanges],
            "comment": f"target {report.target}; bodies redacted of secrets; at most {HAR_BODY_LIMIT} bytes "
            f"of each response body (evidence excerpts in report.json: {BODY_EXCERPT} bytes)",
        }
    }


def _write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def write_bundle(report: ProbeReport, directory: Path, *, report_files: list[Path]) -> dict[str, Path]:
    """Write the bundle files and a manifest of them and ``report_files``; returns the new paths."""
    from .report import TOOL_VERSION

    paths = {
        "har": _write_json(directory / "exchanges.har", render_har(report)),
        "declaration": _write_json(directory / "declaration.json", report.declaration),
        "versions": _write_json(
            directory / "versions.json",
            {
                "tool": {"name": "refcam probe", "version": TOOL_VERSION},
                "catalogue_version": report.catalogue.version,
                "python": platform.python_version(),
                "libraries": {d: _version(d) for d in ("cryptography", "sslyze", "zxcvbn", "jsonschema")},
            },
        ),
        "identity": _write_json(directory / "identity.json", {"unit": report.identity, "channel": report.channel}),
        "options": _write_json(directory / "options.json", report.options),
    }
    files = sorted({*report_files, *paths.values()}, key=lambda p: p.name)
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}" for p in files]
    manifest = directory / "MANIFEST.sha256"
    manifest.write_text("\n".join(lines) + "\n", encoding="ascii")
    paths["manifest"] = manifest
    return paths
