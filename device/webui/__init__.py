"""The camera's web UI: a small single-page app served from the firmware image.

The UI is static files (``static/``: ``index.html``, ``app.js``, ``app.css``,
``favicon.svg``) that talk to the JSON API (``/api/v1/...``) with the session
cookie and an ``X-CSRF-Token`` header. Nothing is loaded from anywhere else and
nothing is inline, so the server's Content-Security-Policy can be strict
(``default-src 'self'; script-src 'self'; style-src 'self'; ...``).

Two routes, both ``requires("public")`` (the files hold no secrets; every
piece of data comes from the API, which checks the session):

* ``GET /``: ``index.html``;
* ``GET /static/{name}``: one of :data:`STATIC_FILES`, a fixed allow-list;
  any other name is a 404, so no path can reach another file.

:func:`add_language_routes` adds the UI's languages (``device/i18n.py``):
``GET /api/v1/i18n`` (public: the catalogue for ``?lang=`` or the browser's
``Accept-Language``) and ``GET|PUT /api/v1/session/language`` (the account's
choice, after the forced password change; the PUT is audited as
``preference_change``).

Files are read with ``importlib.resources`` from this package, which also
works when the boot chain imports the firmware from its verified zip. They are
read once, when the routes are added, and served with a strong ``ETag``
(SHA-256 of the bytes) and ``Cache-Control: no-cache`` (the browser keeps a
copy but revalidates it, so a firmware update is picked up at once).

Hooks for later views (filled by the stream and update code, see
``static/app.js``): ``<section id="view-live">`` holds the live view
(``GET /api/v1/stream.mjpeg``), ``<section id="view-update">`` the update
panel with its ``<progress id="update-progress">`` (``GET /api/v1/update/status``).

Example::

    app = web.Application(middlewares=[access_middleware])
    add_webui_routes(app)
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from aiohttp import web

from ..access import requires
from ..api import _audit_hook, _now, field, read_json
from ..appkeys import CONFIG_KEY, USER_KEY
from ..errors import RequestError
from ..i18n import LANGUAGES, PreferenceStore, load_messages, msg, negotiate

PREFERENCES_KEY: web.AppKey[PreferenceStore] = web.AppKey("refcam.preferences")

# The allow-list: file name in static/ -> Content-Type. Nothing else is served.
STATIC_FILES: Mapping[str, str] = MappingProxyType(
    {
        "index.html": "text/html; charset=utf-8",
        "app.js": "text/javascript; charset=utf-8",
        "app.css": "text/css; charset=utf-8",
        "favicon.svg": "image/svg+xml",
    }
)
INDEX = "index.html"
# Cached, but revalidated on every use: a firmware update changes the ETag.
CACHE_CONTROL = "no-cache"


@dataclass(frozen=True)
class StaticAsset:
    """One static file, ready to serve."""

    name: str
    content_type: str
    body: bytes
    etag: str  # strong ETag, quoted: '"<hex SHA-256 of body>"'

    @classmethod
    def from_bytes(cls, name: str, body: bytes) -> StaticAsset:
        if name not in STATIC_FILES:
            raise ValueError(
                f"{name!r} is not a web UI file; expected one of {sorted(STATIC_FILES)}"
            )
        return cls(
            name=name,
            content_type=STATIC_FILES[name],
            body=body,
            etag='"' + hashlib.sha256(body).hexdigest() + '"',
        )


def load_assets() -> dict[str, StaticAsset]:
    """Read every allow-listed file from this package's ``static/`` (disk or zip)."""
    static = importlib.resources.files(__package__) / "static"
    return {
        name: StaticAsset.from_bytes(name, (static / name).read_bytes()) for name in STATIC_FILES
    }


def _etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison against a list of entity tags, or ``*``."""
    if if_none_match is None:
        return False
    candidates = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in candidates or any(tag.removeprefix("W/") == etag for tag in candidates)


def _serve(request: web.Request, asset: StaticAsset) -> web.Response:
    headers = {
        "ETag": asset.etag,
        "Cache-Control": CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",
    }
    if _etag_matches(request.headers.get("If-None-Match"), asset.etag):
        return web.Response(status=304, headers=headers)
    response = web.Response(body=asset.body, headers=headers)
    response.headers["Content-Type"] = asset.content_type
    return response


def add_webui_routes(app: web.Application) -> None:
    """Register ``GET /`` and ``GET /static/{name}`` (both public) on ``app``."""
    assets = load_assets()

    @requires("public")
    async def index(request: web.Request) -> web.Response:
        return _serve(request, assets[INDEX])

    @requires("public")
    async def static_file(request: web.Request) -> web.Response:
        asset = assets.get(request.match_info["name"])
        if asset is None:
            return web.json_response(
                {"error": "not_found", "message": "no such web UI file"}, status=404
            )
        return _serve(request, asset)

    app.router.add_get("/", index, name="webui-index")
    app.router.add_get("/static/{name}", static_file, name="webui-static")


async def _preferences_ctx(app: web.Application) -> AsyncIterator[None]:
    store = PreferenceStore.open(app[CONFIG_KEY].runtime_dir / "preferences.sqlite3")
    app[PREFERENCES_KEY] = store
    yield
    store.close()


def add_language_routes(app: web.Application) -> None:
    """``GET /api/v1/i18n`` (public) and ``GET|PUT /api/v1/session/language``."""
    app.cleanup_ctx.append(_preferences_ctx)

    @requires("public")
    async def get_i18n(request: web.Request) -> web.Response:
        """The web UI's catalogue: ?lang=ko|en, else the browser's Accept-Language (strings are not secret)."""
        wanted = request.query.get("lang")
        if wanted is not None and wanted not in LANGUAGES:
            raise RequestError("bad_value", msg("lang must be one of {known}, found {found!r}", known=sorted(LANGUAGES), found=wanted[:16]))
        language = negotiate(request.headers.get("Accept-Language"), preferred=wanted)
        return web.json_response(
            {"language": language, "languages": dict(LANGUAGES), "messages": dict(load_messages(language))}
        )

    @requires("viewer")  # not before the forced change: then only the change itself works
    async def get_language(request: web.Request) -> web.Response:
        """The language this user chose for the web UI (null: follow the browser)."""
        user = request[USER_KEY]
        return web.json_response({"language": request.config_dict[PREFERENCES_KEY].language(user.name)})

    @requires("viewer")
    async def put_language(request: web.Request) -> web.Response:
        """Remember the web UI language for this user {"language": "ko"|"en"}; audited."""
        body = await read_json(request)
        unknown = sorted(set(body) - {"language"})
        if unknown:
            raise RequestError("unknown_field", msg("unknown fields {unknown}; known: {known}", unknown=unknown, known=["language"]))
        language = field(body, "language", str, max_len=16)
        if language not in LANGUAGES:
            raise RequestError("bad_value", msg("language must be one of {known}, found {found!r}", known=sorted(LANGUAGES), found=language))
        user = request[USER_KEY]
        store = request.config_dict[PREFERENCES_KEY]
        before = store.language(user.name)
        store.set_language(
            user.name,
            language,
            commit_hook=_audit_hook(
                request, "preference_change", user.name, {"language": [before, language]}, _now(request)
            ),
        )
        return web.json_response({"language": language})

    app.router.add_get("/api/v1/i18n", get_i18n)
    app.router.add_get("/api/v1/session/language", get_language)
    app.router.add_put("/api/v1/session/language", put_language)
