"""The web UI's static files: strict-CSP friendly, same-origin only, served from an allow-list."""

from __future__ import annotations

import importlib
import re
import sys
import zipfile
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient
from yarl import URL

import device.webui as webui
from device.access import access_middleware, requirement_of
from device.appkeys import CLOCK_KEY

STATIC_DIR = Path(webui.__file__).parent / "static"
DEVICE_DIR = Path(webui.__file__).parent.parent


class _Collector(HTMLParser):
    """Every tag with its attributes, and the text inside <script>/<style>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[tuple[str, str]] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("script", "style"):
            self._open = tag

    def handle_endtag(self, tag: str) -> None:
        if tag == self._open:
            self._open = None

    def handle_data(self, data: str) -> None:
        if self._open is not None and data.strip():
            self.inline.append((self._open, data))


def _index() -> _Collector:
    parser = _Collector()
    parser.feed((STATIC_DIR / "index.html").read_text("utf-8"))
    return parser


def _referenced_urls() -> list[str]:
    return [
        value
        for _, attrs in _index().tags
        for name, value in attrs.items()
        if name in ("src", "href", "action", "srcset", "poster", "data") and value is not None
    ]


@pytest.fixture
def app() -> web.Application:
    # The real access middleware: a route that forgot requires() would be refused.
    app = web.Application(middlewares=[access_middleware])
    app[CLOCK_KEY] = lambda: 1_800_000_000.0
    webui.add_webui_routes(app)
    return app


def test_index_references_only_same_origin_files() -> None:
    urls = _referenced_urls()
    assert "/static/app.js" in urls and "/static/app.css" in urls
    for url in urls:
        assert url.startswith(("/static/", "#/", "/api/v1/")), (
            f"{url!r} is not a same-origin UI file, view or API route"
        )
    for name in webui.STATIC_FILES:
        text = (STATIC_DIR / name).read_text("utf-8")
        # The only absolute URL allowed anywhere is the SVG namespace name (never fetched).
        text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"(https?:|wss?:)?//[\w.-]+\.\w", text), f"{name} has an external URL"
        assert "@import" not in text and "@font-face" not in text, name


def test_index_has_no_inline_script_style_or_handlers() -> None:
    parser = _index()
    assert parser.inline == [], "inline <script>/<style> would need 'unsafe-inline' in the CSP"
    for tag, attrs in parser.tags:
        assert tag != "style", "<style> element"
        if tag == "script":
            assert (attrs.get("src") or "").startswith("/static/"), attrs
        for name, value in attrs.items():
            assert name != "style", f"style attribute on <{tag}>"
            assert not name.startswith("on"), f"inline event handler {name} on <{tag}>"
            assert "javascript:" not in (value or "").lower(), f"javascript: URL on <{tag}>"


def test_app_js_never_writes_markup_or_stores_secrets() -> None:
    source = (STATIC_DIR / "app.js").read_text("utf-8")
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("//"))
    for forbidden in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        "localStorage",
        "sessionStorage",
        "document.cookie",
        ".style.",
        'setAttribute("style',
    ):
        assert forbidden not in code, f"app.js uses {forbidden}"
    # The CSRF token only travels in the header, never in a URL.
    assert 'headers["X-CSRF-Token"] = state.csrf' in code
    assert not re.search(r"[?&]csrf", code)


def test_every_element_app_js_looks_up_exists_in_the_index() -> None:
    source = (STATIC_DIR / "app.js").read_text("utf-8")
    ids = {attrs["id"] for _, attrs in _index().tags if attrs.get("id")}
    wanted = set(re.findall(r'\$\("([\w-]+)"\)', source))
    views = re.search(r"const VIEWS = \[([^\]]*)\]", source)
    assert views is not None
    wanted |= {f"view-{name}" for name in re.findall(r'"([\w-]+)"', views.group(1))}
    assert wanted, "the id pattern found nothing"
    assert wanted - ids == set()
    # The documented hooks for the stream and update helpers.
    assert {"view-live", "live-image", "view-update", "update-progress"} <= ids


def test_static_directory_matches_the_allow_list() -> None:
    on_disk = {p.name for p in STATIC_DIR.iterdir() if p.is_file()}
    assert on_disk == set(webui.STATIC_FILES)


def test_asset_outside_the_allow_list_is_refused() -> None:
    with pytest.raises(ValueError, match=r"'server.py' is not a web UI file"):
        webui.StaticAsset.from_bytes("server.py", b"")


async def test_index_and_every_referenced_file_are_served_with_their_type(
    app: web.Application, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(app)
    response = await client.get("/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert await response.read() == (STATIC_DIR / "index.html").read_bytes()
    referenced = {u for u in _referenced_urls() if u.startswith("/static/")}
    assert referenced == {f"/static/{n}" for n in webui.STATIC_FILES if n != "index.html"}
    for url in sorted(referenced):
        name = url.removeprefix("/static/")
        response = await client.get(url)
        assert response.status == 200, url
        assert response.headers["Content-Type"] == webui.STATIC_FILES[name]
        assert await response.read() == (STATIC_DIR / name).read_bytes()


async def test_etag_revalidation_answers_304(
    app: web.Application, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(app)
    first = await client.get("/static/app.js")
    etag = first.headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{64}"', etag)
    again = await client.get("/static/app.js", headers={"If-None-Match": f'"other", {etag}'})
    assert again.status == 304
    assert await again.read() == b""
    changed = await client.get("/static/app.js", headers={"If-None-Match": '"other"'})
    assert changed.status == 200


@pytest.mark.parametrize(
    "raw_path",
    [
        "/static/server.py",
        "/static/__init__.py",
        "/static/app.JS",
        "/static/..%2F__init__.py",
        "/static/..%2f..%2faccess.py",
        "/static/%2e%2e%2f__init__.py",
        "/static/%2e%2e",
        "/static/.hidden",
        "/static/app.js%00.png",
        "/static/",
        "/static/static/app.js",
    ],
)
async def test_unknown_or_traversing_names_are_404(
    app: web.Application, aiohttp_client: AiohttpClient, raw_path: str
) -> None:
    client = await aiohttp_client(app)
    response = await client.get(URL(raw_path, encoded=True))
    assert response.status == 404
    body = await response.read()
    assert b"import" not in body and b"def " not in body


def test_routes_declare_public_access(app: web.Application) -> None:
    handlers = {
        r.resource.canonical: r.handler
        for r in app.router.routes()
        if r.method == "GET" and r.resource is not None
    }
    assert set(handlers) == {"/", "/static/{name}"}
    assert {requirement_of(h) for h in handlers.values()} == {"public"}


@pytest.fixture
def zipped_webui(tmp_path: Path) -> Iterator[str]:
    """The device package inside a zip under another name, as the boot chain imports it."""
    alias = "refcam_webui_zip_test"
    archive = tmp_path / "firmware.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(DEVICE_DIR.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, f"{alias}/{path.relative_to(DEVICE_DIR).as_posix()}")
    sys.path.insert(0, str(archive))
    try:
        yield alias
    finally:
        sys.path.remove(str(archive))
        for name in [m for m in sys.modules if m == alias or m.startswith(alias + ".")]:
            del sys.modules[name]


async def test_files_load_through_importlib_resources_from_a_zip(
    zipped_webui: str, aiohttp_client: AiohttpClient
) -> None:
    module = importlib.import_module(f"{zipped_webui}.webui")
    assert ".zip" in (module.__file__ or "")
    assets = module.load_assets()
    for name in webui.STATIC_FILES:
        assert assets[name].body == (STATIC_DIR / name).read_bytes()
    access = importlib.import_module(f"{zipped_webui}.access")
    app = web.Application(middlewares=[access.access_middleware])
    app[importlib.import_module(f"{zipped_webui}.appkeys").CLOCK_KEY] = lambda: 0.0
    module.add_webui_routes(app)
    client = await aiohttp_client(app)
    response = await client.get("/static/app.css")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/css; charset=utf-8"
