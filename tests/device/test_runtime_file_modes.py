"""issue 13 defect 6: every secret or state file is 0600 and every directory 0700."""

from __future__ import annotations

from device_fixtures import StartDevice

from tests.filemodes import loose_modes


async def test_running_device_databases_and_settings_are_private(start_device: StartDevice) -> None:
    device = await start_device()
    token = await device.admin_token()
    async with device.client() as s, s.patch(
        device.url("/api/v1/settings"), json={"password_policy": "kr-terminal"},
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        assert r.status == 200
    runtime = device.handoff.data_dir / "runtime"
    for name in ("users.sqlite3", "sessions.sqlite3", "audit.sqlite3", "settings.json"):
        assert (runtime / name).is_file(), name
    assert (runtime / "users.sqlite3-wal").is_file()
    assert loose_modes(runtime) == []
