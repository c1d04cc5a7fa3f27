"""Access control walks the live route table, so a new route cannot slip through."""

from __future__ import annotations

import re

import pytest
from aiohttp import web
from device_fixtures import RunningDevice, StartDevice

from common.handoff import BootHandoff
from device.access import REQUIREMENTS, requirement_of, requires
from device.server import builtin_extensions

PASSWORD_CHANGE_ROUTES = {
    ("POST", "/api/v1/session/password"),
    ("DELETE", "/api/v1/session"),
    ("GET", "/api/v1/session"),
}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "admin", path)


def routes(app: web.Application) -> list[tuple[str, str, str]]:
    found = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        requirement = requirement_of(route.handler)
        assert requirement in REQUIREMENTS, f"{route.method} {route.resource.canonical} declares nothing"
        found.append((route.method, route.resource.canonical, requirement))
    return found


async def test_every_route_declares_an_access_requirement(start_device: StartDevice) -> None:
    device = await start_device(extensions=builtin_extensions())
    table = routes(device.app)
    assert ("DELETE", "/api/v1/users/{name}", "admin") in table
    assert ("POST", "/api/v1/session", "public") in table
    assert {(m, p) for m, p, r in table if r == "password-change"} == PASSWORD_CHANGE_ROUTES


async def test_undeclared_route_is_refused(start_device: StartDevice) -> None:
    async def sneaky(request: web.Request) -> web.Response:
        return web.json_response({"secret": 1})

    def add(app: web.Application) -> None:
        app.router.add_get("/api/v1/sneaky", sneaky)

    device = await start_device(extensions=[add])
    token = await device.admin_token()
    async with device.client() as s, s.get(
        device.url("/api/v1/sneaky"), headers={"Authorization": f"Bearer {token}"}
    ) as r:
        assert r.status == 403
        assert (await r.json())["error"] == "forbidden"


def test_requires_rejects_unknown_requirements() -> None:
    with pytest.raises(ValueError, match="unknown access requirement 'root'"):
        requires("root")  # type: ignore[arg-type]


async def test_every_route_refuses_before_password_change(start_device: StartDevice) -> None:
    device = await start_device(extensions=builtin_extensions())
    first = await device.login()
    headers = {"Authorization": f"Bearer {first['token']}"}
    async with device.client() as s:
        for method, path, requirement in routes(device.app):
            if requirement in ("public", "password-change"):
                continue
            async with s.request(method, device.url(concrete(path)), json={}, headers=headers) as r:
                assert r.status == 403, (method, path)
                assert (await r.json())["error"] == "password_change_required", (method, path)


async def test_anonymous_callers_get_401_on_every_protected_route(device: RunningDevice) -> None:
    async with device.client() as s:
        for method, path, requirement in routes(device.app):
            if requirement == "public":
                continue
            async with s.request(method, device.url(concrete(path)), json={}) as r:
                assert r.status == 401, (method, path)
                assert (await r.json())["error"] == "authentication_required"


async def test_viewer_is_refused_on_admin_routes_and_operator_routes(device: RunningDevice) -> None:
    token = await device.admin_token()
    async with device.client() as s, s.post(
        device.url("/api/v1/users"),
        json={"username": "vic", "role": "viewer", "password": "amber walrus juggles nine plums"},
        headers={"Authorization": f"Bearer {token}"},
    ) as r:
        assert r.status == 201
    vic = await device.login("vic", "amber walrus juggles nine plums")
    async with device.client() as s:
        async with s.post(
            device.url("/api/v1/session/password"),
            json={"current_password": "amber walrus juggles nine plums", "new_password": "fourteen purple owls dance"},
            headers={"Authorization": f"Bearer {vic['token']}"},
        ) as r:
            assert r.status == 204
        for method, path, requirement in routes(device.app):
            if requirement not in ("admin", "operator"):
                continue
            async with s.request(
                method, device.url(concrete(path)), json={}, headers={"Authorization": f"Bearer {vic['token']}"}
            ) as r:
                assert r.status == 403, (method, path)
                assert (await r.json())["error"] == "forbidden"


async def test_cookie_session_needs_the_csrf_token_on_state_changes(device: RunningDevice) -> None:
    async with device.client() as s:
        async with s.post(
            device.url("/api/v1/session"), json={"username": "admin", "password": "k7QmZ-2xR9p-Abcde-Fgh23"}
        ) as r:
            assert r.status == 200
            body = await r.json()
            cookie = r.headers["Set-Cookie"]
        for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
            assert attribute in cookie
        change = {"current_password": "k7QmZ-2xR9p-Abcde-Fgh23", "new_password": "violet tractor measures the quiet harbour"}
        async with s.get(device.url("/api/v1/session")) as r:  # safe method: cookie alone is enough
            assert r.status == 200
            # a reloaded page gets the same CSRF token again; a bearer client gets none
            assert (await r.json())["csrf_token"] == body["csrf_token"]
        async with device.client() as other, other.get(
            device.url("/api/v1/session"), headers={"Authorization": f"Bearer {body['token']}"}
        ) as r:
            assert "csrf_token" not in await r.json()
        second = await device.login()  # another session's CSRF token is no good here
        async with s.post(
            device.url("/api/v1/session/password"), json={}, headers={"X-CSRF-Token": second["csrf_token"]}
        ) as r:
            assert r.status == 403 and (await r.json())["error"] == "csrf"
        async with s.post(device.url("/api/v1/session/password"), json=change) as r:
            assert r.status == 403 and (await r.json())["error"] == "csrf"
        async with s.post(
            device.url("/api/v1/session/password"), json=change, headers={"X-CSRF-Token": "wrong"}
        ) as r:
            assert r.status == 403 and (await r.json())["error"] == "csrf"
        async with s.post(
            device.url("/api/v1/session/password"), json=change, headers={"X-CSRF-Token": body["csrf_token"]}
        ) as r:
            assert r.status == 204
        async with s.delete(device.url("/api/v1/session")) as r:
            assert r.status == 403 and (await r.json())["error"] == "csrf"
        async with s.delete(device.url("/api/v1/session"), headers={"X-CSRF-Token": body["csrf_token"]}) as r:
            assert r.status == 204
        async with s.get(device.url("/api/v1/session"), headers={"Authorization": f"Bearer {body['token']}"}) as r:
            assert r.status == 401


async def test_every_route_of_a_full_device_declares_and_enforces_access(
    start_device: StartDevice, handoff: BootHandoff
) -> None:
    """All extensions mounted as `refcam device run` mounts them: web UI, stream, update, security.txt."""
    from device.main import extensions_for, parse_args

    args = parse_args([
        "--stream-source", "synthetic:64x48@5", "--update-url", "https://127.0.0.1:9",
        "--update-check-interval", "0", "--vendor-url", "https://vendor.example",
    ])
    device = await start_device(extensions=extensions_for(handoff, args))
    table = routes(device.app)
    paths = {p for _, p, _ in table}
    assert {"/api/v1/stream/stats", "/api/v1/update/status", "/.well-known/security.txt", "/"} <= paths
    first = await device.login()
    async with device.client() as s:
        for method, path, requirement in table:
            if requirement in ("public", "password-change"):
                continue
            async with s.request(method, device.url(concrete(path)), json={}) as r:
                assert r.status == 401, (method, path)
            async with s.request(
                method, device.url(concrete(path)), json={},
                headers={"Authorization": f"Bearer {first['token']}"},
            ) as r:
                assert r.status == 403, (method, path)
                assert (await r.json())["error"] == "password_change_required", (method, path)


# -- issue 13 defect 9: `device run` input is checked before anything starts ------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--update-url", "http://127.0.0.1:9443"], "must be an https:// URL with a host"),
        (["--update-url", "https://[::1"], "--update-url"),
        (["--update-check-interval", "-5"], "must be a number of seconds >= 0"),
        (["--update-check-interval", "nan"], "must be a number of seconds >= 0"),
        (["--source", "file:/nonexistent/clip.mp4"], "no such video file"),
    ],
)
def test_device_run_refuses_bad_inputs_with_one_line(argv: list[str], message: str) -> None:
    from device.errors import ConfigError
    from device.main import parse_args

    with pytest.raises(ConfigError) as info:
        parse_args(argv)
    assert message in str(info.value) and "\n" not in str(info.value)
