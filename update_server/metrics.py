"""``GET /metrics`` on the vendor server: Prometheus text (prometheus-client), operator only.

Counts what a fleet asks of the repository: requests by kind (TUF metadata,
targets, other) and status, and bytes of targets served, on a registry of this
app alone. The route needs the PSIRT operator token (``Authorization: Bearer``),
like the other vendor-side operator routes.

Example::

    app = create_app(config, extensions=[metrics_extension(operator_token)])
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

METRICS_KEY = web.AppKey["VendorMetrics"]("refcam.vendor.metrics")


class VendorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("refcam_vendor_requests", "Requests answered, by kind and status",
                                ["kind", "status"], registry=self.registry)
        self.target_bytes = Counter("refcam_vendor_target_bytes", "Bytes of targets (firmware, SBOM) announced "
                                    "in Content-Length of 200 answers", registry=self.registry)


def _kind(path: str) -> str:
    if path.startswith("/metadata/"):
        return "metadata"
    if path.startswith("/targets/"):
        return "targets"
    return "other"


async def _count(request: web.Request, response: web.StreamResponse) -> None:
    metrics = request.app[METRICS_KEY]
    kind = _kind(request.path)
    metrics.requests.labels(kind=kind, status=str(response.status)).inc()
    if kind == "targets" and response.status == 200 and response.content_length:
        metrics.target_bytes.inc(response.content_length)


def metrics_extension(operator_token: str) -> Callable[[web.Application], None]:
    def extend(app: web.Application) -> None:
        app[METRICS_KEY] = VendorMetrics()
        app.on_response_prepare.append(_count)

        async def get_metrics(request: web.Request) -> web.Response:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), operator_token.encode()):
                return web.json_response(
                    {"error": "unauthorized", "message": "the operator token is required (Authorization: Bearer)"},
                    status=401, headers={"WWW-Authenticate": 'Bearer realm="refcam-vendor"'},
                )
            body = generate_latest(request.app[METRICS_KEY].registry)
            return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})

        app.router.add_get("/metrics", get_metrics)

    return extend
