"""An OpenAPI 3.1 description generated from the live route table.

Nothing is written by hand twice: paths and methods come from
``app.router``, the summary from each handler's docstring, and the security
requirement from ``access.requires``; request and answer schemas of the core
API come from ``apischema.OPERATIONS`` (what the schemathesis run checks). Routes added by extensions (web UI,
stream, update) appear automatically.

Example::

    doc = build_openapi(app)
    assert doc["openapi"] == "3.1.0"
"""

from __future__ import annotations

import inspect
from typing import Any

from aiohttp import web

from .access import requirement_of, requires
from .apischema import OPERATIONS
from .appkeys import HANDOFF_KEY

OPENAPI_VERSION = "3.1.0"
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "retry_after": {"type": "integer"},  # throttled
        "reasons": {"type": "array", "items": {"type": "string"}},  # password_policy
    },
}


def _operation(route: web.AbstractRoute, method: str, path: str) -> dict[str, Any]:
    handler = route.handler
    requirement = requirement_of(handler) or "undeclared"
    doc = inspect.getdoc(handler) or ""
    summary = doc.splitlines()[0] if doc else handler.__name__
    op: dict[str, Any] = {
        "operationId": f"{route.method.lower()}_{handler.__name__}",
        "summary": summary,
        "x-refcam-access": requirement,
        "responses": {
            "default": {
                "description": "error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        },
    }
    if requirement == "public":
        op["security"] = []
    else:
        op["security"] = [{"bearer": []}, {"cookie": []}]
        for status, text in (("401", "authentication_required"), ("403", "forbidden / password_change_required / csrf")):
            op["responses"][status] = {
                "description": text,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
    spec = OPERATIONS.get((method, path))
    if spec is not None:
        op["responses"].update(spec["responses"])
        if "requestBody" in spec:
            op["requestBody"] = spec["requestBody"]
        if "parameters" in spec:
            op["parameters"] = spec["parameters"]
    return op


def build_openapi(app: web.Application) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in app.router.routes():
        if route.method == "HEAD" or route.resource is None:
            continue
        path = route.resource.canonical
        item = paths.setdefault(path, {})
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_params(path)
        ]
        if params:
            item["parameters"] = params
        methods = ["get", "post", "put", "patch", "delete"] if route.method == "*" else [route.method.lower()]
        for method in methods:
            item[method] = _operation(route, method, path)
    handoff = app.get(HANDOFF_KEY)
    version = handoff.firmware.version if handoff is not None else "unknown"
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "refcam camera management API", "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": _ERROR_SCHEMA},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "refcam_session"},
            },
        },
    }


def _path_params(path: str) -> list[str]:
    names = []
    for part in path.split("/"):
        if part.startswith("{") and part.endswith("}"):
            names.append(part[1:-1].split(":", 1)[0])
    return names


@requires("public")
async def get_openapi(request: web.Request) -> web.Response:
    """This API's OpenAPI 3.1 description, generated from the route table."""
    return web.json_response(build_openapi(request.app))
