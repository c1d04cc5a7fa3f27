"""The vendor server's Prometheus endpoint (issue 14): operator token only, counts the fleet's requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from update_fixtures import make_vendor

from update_server.metrics import metrics_extension
from update_server.server import UpdateServerConfig, create_app

TOKEN = "operator-token-0123456789"


async def test_metrics_need_the_operator_token_and_count_requests(tmp_path: Path, aiohttp_client: Any) -> None:
    vendor = make_vendor(tmp_path)
    config = UpdateServerConfig(repo_dir=vendor.repo_dir, keys_dir=vendor.keys_dir, refresh_interval=0)
    client = await aiohttp_client(create_app(config, extensions=[metrics_extension(TOKEN)]))
    assert (await client.get("/metadata/timestamp.json")).status == 200
    assert (await client.get("/metadata/99.root.json")).status == 404
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await client.get("/metrics", headers=headers)
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"
    response = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 200 and response.content_type == "text/plain"
    text = await response.text()
    assert 'refcam_vendor_requests_total{kind="metadata",status="200"} 1.0' in text
    assert 'refcam_vendor_requests_total{kind="metadata",status="404"} 1.0' in text
    assert 'refcam_vendor_requests_total{kind="other",status="401"} 3.0' in text
