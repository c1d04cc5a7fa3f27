"""``GET /api/v1/metrics`` (issue 14): Prometheus text, admin only, one registry per unit."""

from __future__ import annotations

from device_fixtures import StartDevice

from device.metrics import add_metrics_route


async def test_metrics_are_admin_only_and_per_unit(start_device: StartDevice) -> None:
    first = await start_device(extensions=[add_metrics_route])
    second = await start_device(extensions=[add_metrics_route])  # two units in one process
    async with first.client() as s, s.get(first.url("/api/v1/metrics")) as r:
        assert r.status == 401
    async with first.client() as s, s.post(first.url("/api/v1/session"),
                                           json={"username": "admin", "password": "wrong password 1"}) as r:
        assert r.status == 401
    first.clock.advance(5)
    token = await first.admin_token()
    async with first.client() as s, s.get(first.url("/api/v1/metrics"),
                                          headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200 and r.content_type == "text/plain"
        text = await r.text()
    assert f'serial="{first.handoff.identity.serial}"' in text
    assert "refcam_device_logins_refused 1.0" in text
    assert 'refcam_device_update_state{state="idle"} 0.0' in text  # no update client in this build
    assert "refcam_device_rollout_admitted 0.0" in text
    assert second.app is not first.app
