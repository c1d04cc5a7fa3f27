"""JSON Schemas of the core API's request bodies, query parameters and answers.

``openapi.build_openapi`` merges them into the generated document, so a fuzzer
(schemathesis, in the test suite) knows what to send and checks every answer
against them. Keyed by (method, canonical path); a route without an entry is
described by its path, access and summary only. Errors (any 4xx/5xx) are the
shared ``Error`` schema: ``{"error": code, "message": text}`` plus, for some
codes, ``retry_after`` (throttled), ``reasons`` (password_policy) or ``seq``
(audit_chain).

Example::

    spec = OPERATIONS[("post", "/api/v1/session")]
    spec["requestBody"]["content"]["application/json"]["schema"]["required"]
"""

from __future__ import annotations

from typing import Any

from .config import PASSWORD_POLICIES

ROLES = ["viewer", "operator", "admin"]
P = "/api/v1"

_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}  # null: no limit (a flaw profile)
_BOOL = {"type": "boolean"}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": list(required), "properties": {**required, **(optional or {})}}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


USER = _object(
    {"username": _STR, "role": {"enum": ROLES}, "password_change_required": _BOOL, "created": _NUM,
     "password_changed": _NUM}
)
SETTINGS = _object(
    {"password_policy": {"enum": list(PASSWORD_POLICIES)}, "update_url": {"type": ["string", "null"]}}
)
AUDIT_ENTRY = _object(
    {"seq": _INT, "time": _NUM, "event": _STR, "actor": _STR, "source": _STR, "detail": {"type": "object"},
     "prev_hash": _STR, "hash": _STR}
)
HEAD = _object({"seq": _INT, "hash": _STR})
_SLOT = _object(
    {"slot": _STR, "state": _STR},
    {"version": {"type": ["string", "null"]}, "security_counter": {"type": ["integer", "null"]},
     "reason": {"type": ["string", "null"]}},
)
_STATUS = _object(
    {"booted_slot": _STR, "firmware_version": _STR, "security_counter": _INT, "trial": _BOOL,
     "slots": {"type": "array", "items": _SLOT}, "fuses": {"type": "object"}, "lifecycle": _STR,
     "measurement_register": _STR, "measurements": {"type": "array", "items": {"type": "object"}},
     "tls_profile": _STR, "password_policy": _STR}
)
_PASSWORD_FIELD = {"type": "string", "maxLength": 1024}
_NAME_FIELD = {"type": "string", "maxLength": 64}

NO_CONTENT = {"description": "done, no body"}

OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("get", f"{P}/info"): {
        "responses": {"200": _json(_object(
            {"vendor": _STR, "model": _STR, "support_end": _STR, "password_policy": _STR},
            {"serial": _STR, "hardware_id": _STR, "firmware_version": _STR,
             "unsafe_flaws": {"type": "array", "items": _STR}},
        ))},
    },
    ("get", f"{P}/status"): {"responses": {"200": _json(_STATUS)}},
    ("post", f"{P}/attestation"): {
        "requestBody": _body(_object({"nonce": {"type": "string", "maxLength": 128}})),
        "responses": {"200": _json(_object({"nonce": _STR, "evidence": _STR}))},
    },
    ("post", f"{P}/session"): {
        "requestBody": _body(_object({"username": _NAME_FIELD, "password": _PASSWORD_FIELD})),
        "responses": {"200": _json(_object(
            {"token": _STR, "csrf_token": _STR, "username": _STR, "role": {"enum": ROLES},
             "password_change_required": _BOOL, "password_policy": _STR, "idle_timeout": _NUM_OR_NULL,
             "absolute_timeout": _NUM_OR_NULL}
        ))},
    },
    ("get", f"{P}/session"): {
        "responses": {"200": _json(_object(
            {"username": _STR, "role": {"enum": ROLES}, "password_change_required": _BOOL,
             "password_policy": _STR, "via": {"enum": ["cookie", "bearer"]}},
            {"csrf_token": _STR},
        ))},
    },
    ("delete", f"{P}/session"): {"responses": {"204": NO_CONTENT}},
    ("post", f"{P}/session/password"): {
        "requestBody": _body(_object({"current_password": _PASSWORD_FIELD, "new_password": _PASSWORD_FIELD})),
        "responses": {"204": NO_CONTENT},
    },
    ("get", f"{P}/users"): {
        "responses": {"200": _json(_object({"users": {"type": "array", "items": USER}}))},
    },
    ("post", f"{P}/users"): {
        "requestBody": _body(_object({"username": _NAME_FIELD, "role": {"enum": ROLES},
                                      "password": _PASSWORD_FIELD})),
        "responses": {"201": _json(USER, "created")},
    },
    ("get", f"{P}/users/{{name}}"): {"responses": {"200": _json(USER)}},
    ("patch", f"{P}/users/{{name}}"): {
        "requestBody": _body(_object({"role": {"enum": ROLES}})),
        "responses": {"200": _json(USER)},
    },
    ("delete", f"{P}/users/{{name}}"): {"responses": {"204": NO_CONTENT}},
    ("post", f"{P}/users/{{name}}/password"): {
        "requestBody": _body(_object({"password": _PASSWORD_FIELD})),
        "responses": {"204": NO_CONTENT},
    },
    ("get", f"{P}/settings"): {"responses": {"200": _json(SETTINGS)}},
    ("patch", f"{P}/settings"): {
        "requestBody": _body({
            "type": "object", "minProperties": 1, "additionalProperties": False,
            "properties": {"password_policy": {"enum": list(PASSWORD_POLICIES)},
                           "update_url": {"type": ["string", "null"], "maxLength": 256}},
        }),
        "responses": {"200": _json(SETTINGS)},
    },
    ("get", f"{P}/audit"): {
        "parameters": [
            {"name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
        ],
        "responses": {"200": _json(_object(
            {"entries": {"type": "array", "items": AUDIT_ENTRY}, "next_after": {"type": ["integer", "null"]},
             "head": HEAD}
        ))},
    },
    ("get", f"{P}/audit/export"): {
        "responses": {"200": {"description": "JSON lines, oldest first",
                              "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
    },
    ("get", f"{P}/audit/verify"): {
        "responses": {
            "200": _json(_object({"entries": _INT, "head": HEAD})),
            "409": _json(_object({"error": {"const": "audit_chain"}, "message": _STR, "seq": _INT}), "tampered"),
        },
    },
    ("get", f"{P}/openapi.json"): {"responses": {"200": _json({"type": "object", "required": ["openapi", "paths"]})}},
}
