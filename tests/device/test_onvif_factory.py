"""SetSystemFactoryDefault: admin only, recorded first, back to the label password with the forced change."""

from __future__ import annotations

import pytest
from device_fixtures import INITIAL_PASSWORD, NEW_PASSWORD, RunningDevice, StartDevice
from onvif_client import NS, el, fault, parse, tt
from test_onvif import audit_events, call, change_password

from device.appkeys import CONFIG_KEY, CREDENTIALS_KEY
from device.onvif import add_onvif_routes

LEVELS = {"Operator": ("opal", "she keeps the lighthouse lamp burning"), "User": ("ursa", "he counts the boats in the quiet bay")}


@pytest.fixture
async def onvif(start_device: StartDevice) -> RunningDevice:
    device: RunningDevice = await start_device(extensions=[add_onvif_routes])
    return device


async def factory_default(device: RunningDevice, kind: str, **kw: str) -> tuple[int, bytes]:
    return await call(device, "tds", "SetSystemFactoryDefault", el("tds", "FactoryDefault", kind), **kw)  # type: ignore[arg-type]


async def add_users(device: RunningDevice) -> dict[str, str]:
    """Operator and User level users who have made their own passwords; returns name -> password."""
    passwords = {}
    for level, (name, pw) in LEVELS.items():
        status, body = await call(
            device, "tds", "CreateUsers",
            el("tds", "User", tt("Username", name), tt("Password", pw), tt("UserLevel", level)), password=NEW_PASSWORD,
        )
        assert status == 200, body
        status, body = await call(
            device, "tds", "SetUser",
            el("tds", "User", tt("Username", name), tt("Password", pw + " twice"), tt("UserLevel", level)),
            user=name, password=pw,
        )
        assert status == 200, body
        passwords[name] = pw + " twice"
    return passwords


async def test_before_the_forced_change_the_label_password_cannot_reset(onvif: RunningDevice) -> None:
    _, body = await factory_default(onvif, "Hard")
    codes, reason = fault(body) or ([], "")
    assert codes == ["env:Sender", "ter:NotAuthorized"] and "password must be changed" in reason
    assert not [e for e in audit_events(onvif) if e.event.startswith("factory_default")]


async def test_operator_and_user_levels_are_refused(onvif: RunningDevice) -> None:
    await change_password(onvif)
    passwords = await add_users(onvif)
    for name, pw in passwords.items():
        for kind in ("Hard", "Soft"):
            _, body = await factory_default(onvif, kind, user=name, password=pw)
            codes, reason = fault(body) or ([], "")
            assert codes == ["env:Sender", "ter:NotAuthorized"] and "Administrator" in reason, (name, kind)
    assert not [e for e in audit_events(onvif) if e.event.startswith("factory_default")]
    assert {u.name for u in onvif.app[CREDENTIALS_KEY].list_users()} == {"admin", "opal", "ursa"}


async def test_a_bad_kind_is_refused_without_effect(onvif: RunningDevice) -> None:
    await change_password(onvif)
    status, body = await factory_default(onvif, "Everything", password=NEW_PASSWORD)
    assert status == 400 and (fault(body) or ([], ""))[0][-1] == "ter:InvalidArgVal"
    status, _ = await call(onvif, "tds", "GetDeviceInformation", password=NEW_PASSWORD)
    assert status == 200


@pytest.mark.parametrize("kind", ["Hard", "Soft"])
async def test_admin_resets_to_the_label_password_with_the_forced_change(onvif: RunningDevice, kind: str) -> None:
    await change_password(onvif)
    passwords = await add_users(onvif)
    settings = onvif.app[CONFIG_KEY].settings_file
    settings.write_text('{"password_policy": "kr-terminal", "update_url": null}')
    serial_before = parse((await call(onvif, "tds", "GetDeviceInformation", password=NEW_PASSWORD))[1]).findtext(
        ".//tds:SerialNumber", namespaces=NS
    )
    status, body = await factory_default(onvif, kind, password=NEW_PASSWORD)
    assert status == 200, body
    assert parse(body).find(".//tds:SetSystemFactoryDefaultResponse", NS) is not None
    # recorded before any effect, then the reset itself with its transaction
    events = [e for e in audit_events(onvif) if e.event.startswith("factory_default")]
    assert [(e.event, e.actor, e.detail["kind"]) for e in events] == [
        ("factory_default_requested", "admin", kind), ("factory_default", "admin", kind)
    ]
    # the device keeps serving; no old password works, the other users are gone
    for user, pw in (("admin", NEW_PASSWORD), *passwords.items()):
        status, body = await call(onvif, "tds", "GetDeviceInformation", user=user, password=pw)
        assert status in (400, 401) and (fault(body) or ([], ""))[0][-1] == "ter:NotAuthorized", user
        onvif.clock.advance(10)  # past the back-off each failure earns (the throttle survives the reset)
    assert [u.name for u in onvif.app[CREDENTIALS_KEY].list_users()] == ["admin"]
    assert not settings.exists()
    # the label password works, with the forced change: never an anonymous or shared default
    status, body = await call(onvif, "tds", "GetDeviceInformation", user=None)
    assert status in (400, 401)
    status, body = await call(onvif, "tds", "GetDeviceInformation", user="admin", password="admin")
    assert status in (400, 401)
    onvif.clock.advance(10)
    status, body = await call(onvif, "tds", "GetDeviceInformation", password=INITIAL_PASSWORD)
    assert "password must be changed" in (fault(body) or ([], ""))[1]
    again = "a brand new harbour passphrase for the owner"
    status, body = await call(
        onvif, "tds", "SetUser",
        el("tds", "User", tt("Username", "admin"), tt("Password", again), tt("UserLevel", "Administrator")),
    )
    assert status == 200, body
    status, body = await call(onvif, "tds", "GetDeviceInformation", password=again)
    assert status == 200, body
    assert parse(body).findtext(".//tds:SerialNumber", namespaces=NS) == serial_before  # the identity stays
