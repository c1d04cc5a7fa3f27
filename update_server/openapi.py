"""OpenAPI 3.1 description of the vendor's JSON API: PSIRT intake, reporter, PSIRT desk, SLA.

Written from ``update_server.psirt.web`` and ``psirt.model`` (the bounds are
``IntakeLimits``'); the test suite fuzzes the routes with schemathesis against
it, so a drift between the two fails there. Served at ``/api/v1/openapi.json``
by :func:`add_openapi_route`. The TUF files and CSAF documents have their own
specifications and are not described here.

Example::

    doc = vendor_openapi()
    assert "/api/v1/reports" in doc["paths"]
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .psirt.model import ACTIONS, IntakeLimits

_STR = {"type": "string"}
_OPT_STR = {"type": ["string", "null"]}
_ERROR = {"$ref": "#/components/schemas/Error"}
_ID = [{"name": "report_id", "in": "path", "required": True, "schema": {"type": "string", "maxLength": 40}}]
_REPORTER: list[dict[str, list[str]]] = [{"reporter": []}]
_OPERATOR: list[dict[str, list[str]]] = [{"operator": []}]


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None, *, closed: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object", "required": list(required), "properties": {**required, **(optional or {})},
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, responses: dict[str, Any], *, security: list[Any] | None = None,
        body: dict[str, Any] | None = None, params: list[Any] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "security": security or [],
        "responses": {**responses, "default": _json(_ERROR, "error")},
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def vendor_openapi(limits: IntakeLimits | None = None) -> dict[str, Any]:
    limits = limits or IntakeLimits()
    event = _object({"at": _STR, "state": _STR}, {"detail": {}})
    message = _object({"at": _STR, "author": _STR, "body": _STR})
    reporter_view = _object({
        "tracking_id": _STR, "state": _STR, "received_at": _STR, "acknowledge_by": _STR,
        "severity": _OPT_STR, "fixed_in": _OPT_STR, "advisory_id": _OPT_STR,
        "history": {"type": "array", "items": event}, "messages": {"type": "array", "items": message},
    })
    report = _object({
        "report_id": _STR, "received_at": _STR, "state": _STR, "title": _STR, "description": _STR,
        "product": _STR, "version": _STR, "reporter_contact": _OPT_STR, "cvss_vector": _OPT_STR,
        "attachments": {"type": "array", "items": _object(
            {"filename": _STR, "content_type": _STR, "size": {"type": "integer"}, "sha256": _STR})},
        "history": {"type": "array", "items": _object({"at": _STR, "kind": _STR, "actor": _STR}, {"detail": {}})},
        "messages": {"type": "array", "items": message},
        "score": {"type": ["object", "null"]}, "fixed_in": _OPT_STR, "duplicate_of": _OPT_STR,
        "advisory_id": _OPT_STR, "exploited_at": _OPT_STR, "cra_submitted": {"type": "object"},
    })
    submission = _object(
        {
            "title": {"type": "string", "minLength": 1, "maxLength": limits.max_title},
            "description": {"type": "string", "minLength": 1, "maxLength": limits.max_description},
            "product": {"type": "string", "minLength": 1, "maxLength": limits.max_product},
            "version": {"type": "string", "pattern": "^[0-9][A-Za-z0-9.+_-]*$", "maxLength": limits.max_version},
        },
        {
            "reporter_contact": {"type": "string", "maxLength": limits.max_contact},
            "cvss_vector": {"type": "string", "maxLength": 512},
            "attachments": {"type": "array", "maxItems": limits.max_attachments, "items": _object(
                {"filename": {"type": "string", "maxLength": limits.max_filename}, "content_type": _STR,
                 "data_base64": _STR}, closed=True)},
        },
        closed=True,
    )
    message_body = _object({"body": {"type": "string", "minLength": 1, "maxLength": limits.max_message}},
                           closed=True)
    action = _object({"action": {"enum": [*ACTIONS, "publish"]}})
    return {
        "openapi": "3.1.0",
        "info": {"title": "refcam vendor API: vulnerability disclosure and PSIRT", "version": "1"},
        "paths": {
            "/api/v1/reports": {"post": _op(
                "Submit a vulnerability report (anonymous, rate limited per source)",
                {"201": _json(_object({"tracking_id": _STR, "reporter_token": _STR, "status_url": _STR,
                                       "acknowledge_by": _STR}), "received")},
                body=submission)},
            "/api/v1/reports/{report_id}": {"get": _op(
                "The reporter's view of their report", {"200": _json(reporter_view)},
                security=_REPORTER, params=_ID)},
            "/api/v1/reports/{report_id}/messages": {"post": _op(
                "The reporter writes to the PSIRT", {"201": _json(reporter_view, "sent")},
                security=_REPORTER, params=_ID, body=message_body)},
            "/api/v1/psirt/reports": {"get": _op(
                "Every report (PSIRT operator)",
                {"200": _json({"type": "array", "items": _object(
                    {"report_id": _STR, "state": _STR, "title": _STR, "severity": _OPT_STR,
                     "received_at": _STR})})},
                security=_OPERATOR)},
            "/api/v1/psirt/reports/{report_id}": {"get": _op(
                "One report in full (PSIRT operator)", {"200": _json(report)}, security=_OPERATOR, params=_ID)},
            "/api/v1/psirt/reports/{report_id}/messages": {"post": _op(
                "The PSIRT writes to the reporter", {"201": _json(report, "sent")},
                security=_OPERATOR, params=_ID, body=message_body)},
            "/api/v1/psirt/reports/{report_id}/actions": {"post": _op(
                "A workflow action on a report (PSIRT operator)", {"200": _json(report)},
                security=_OPERATOR, params=_ID, body=action)},
            "/api/v1/psirt/sla": {"get": _op(
                "SLA figures and deadlines (PSIRT operator)", {"200": _json({"type": "object"})},
                security=_OPERATOR)},
            "/api/v1/sla": {"get": _op(
                "The published SLA: policy, figures, breached deadlines",
                {"200": _json(_object({"policy": {"type": "object"}, "figures": {"type": "object"},
                                       "breached": {"type": "array", "items": _object(
                                           {"report": _STR, "deadline": _STR, "due": _STR})}}))})},
        },
        "components": {
            "schemas": {"Error": _object({"error": _STR})},
            "securitySchemes": {
                "reporter": {"type": "http", "scheme": "bearer", "description": "the report's reporter token"},
                "operator": {"type": "http", "scheme": "bearer", "description": "the PSIRT operator token"},
            },
        },
    }


async def _get_openapi(request: web.Request) -> web.Response:
    return web.json_response(vendor_openapi())


def add_openapi_route(app: web.Application) -> None:
    app.router.add_get("/api/v1/openapi.json", _get_openapi)
