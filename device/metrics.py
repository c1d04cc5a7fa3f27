"""``GET /api/v1/metrics``: the unit's Prometheus text metrics (admin only, over TLS).

Values are read when scraped (a custom collector on a registry of this app
alone, never the process-wide default registry: fleet mode runs many units in
one process). prometheus-client renders the text format.

Example::

    app = create_app(config, handoff=handoff, extensions=[add_metrics_route])
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from .access import requires
from .fleetview import snapshot

UPDATE_STATES = ("idle", "checking", "available", "downloading", "installing", "pending-reboot", "error")


class DeviceCollector(Collector):
    def __init__(self, app: web.Application, started: float) -> None:
        self._app = app
        self._started = started

    def collect(self) -> Iterator[InfoMetricFamily | GaugeMetricFamily]:
        view = snapshot(self._app)
        info = InfoMetricFamily("refcam_device", "This unit: serial, firmware and booted slot")
        info.add_metric([], {"serial": view["serial"], "firmware": view["firmware"], "slot": str(view["slot"])})
        yield info
        yield GaugeMetricFamily("refcam_device_uptime_seconds", "Seconds since the firmware started serving",
                                value=max(0.0, time.time() - self._started))
        yield GaugeMetricFamily("refcam_device_trial", "1 while the running firmware is an unconfirmed trial",
                                value=1.0 if view["trial"] else 0.0)
        yield GaugeMetricFamily("refcam_device_logins_refused", "Logins refused (audit log entries)",
                                value=view["logins_refused"])
        yield GaugeMetricFamily("refcam_device_sessions", "Open sessions", value=view["sessions"])
        state = GaugeMetricFamily("refcam_device_update_state", "Update client state (1 for the current one)",
                                  labels=["state"])
        for name in UPDATE_STATES:
            state.add_metric([name], 1.0 if view["update_state"] == name else 0.0)
        yield state
        rollout = view["rollout"] or {}
        yield GaugeMetricFamily("refcam_device_rollout_admitted",
                                "1 when the newest release's signed rollout rule admits this unit",
                                value=1.0 if rollout.get("admitted") else 0.0)


METRICS_REGISTRY_KEY = web.AppKey[CollectorRegistry]("refcam.metrics.registry")


def add_metrics_route(app: web.Application) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeviceCollector(app, time.time()))
    app[METRICS_REGISTRY_KEY] = registry

    @requires("admin")
    async def get_metrics(request: web.Request) -> web.Response:
        body = await asyncio.to_thread(generate_latest, request.config_dict[METRICS_REGISTRY_KEY])
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})

    app.router.add_get("/api/v1/metrics", get_metrics)
