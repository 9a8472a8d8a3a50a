"""The OpenAPI 3.1 document, generated from the declared operations and their pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from chalicelib.api.routing import ID_PATTERN, OPERATIONS, PATH_PARAMS, Operation
from chalicelib.services.auth import Access

_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable, e.g. ValidationError."},
                "message": {"type": "string", "description": "What was wrong and how to fix it."},
                "details": {"type": "object"},
            },
        }
    },
}
_STATUS_TEXT = {
    400: "Invalid input: the message says which field and how to fix it",
    401: "Missing, expired or badly signed token",
    403: "The token may not touch this resource",
    404: "Unknown resource",
    409: "Conflict with the current state",
    413: "Body too large",
    415: "The body must be sent as JSON (Content-Type: application/json)",
    503: "AWS kept throttling: send the request again unchanged after the Retry-After header's "
    "seconds (code TryLater); or the deployment is missing a setting this request needs (NotConfigured)",
}
_PARAM_SCHEMAS: dict[str, dict[str, Any]] = {
    "deviceToken": {"type": "string", "pattern": "^([0-9a-fA-F]{2}){32,100}$"},
    "certificateId": {"type": "integer", "minimum": 1},
    "kind": {
        "type": "string",
        "enum": ["group", "c2c"],
        "description": "group: conversationId is the group ID; c2c: it is the other user's ID.",
    },
}


def build_openapi() -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "APNs offline push for IM apps",
            "version": "1.0.0",
            "description": "Control plane of the self-hosted APNs offline-push backend. "
            'Errors are {"error": {"code", "message"}}.',
        },
        "servers": [{"url": "http://127.0.0.1:8000", "description": "make run"}],
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The operator key, or an HS256 app token (claims app, sub, exp, role).",
                }
            },
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _schema_ref(model: Any, components: dict[str, Any], mode: JsonSchemaMode) -> dict[str, Any]:
    if isinstance(model, type):
        _, defs = models_json_schema(
            [(model, mode)], by_alias=True, ref_template="#/components/schemas/{model}"
        )
        components.update(defs.get("$defs", {}))
        return {"$ref": f"#/components/schemas/{model.__name__}"}
    schema = TypeAdapter(model).json_schema(
        by_alias=True, mode=mode, ref_template="#/components/schemas/{model}"
    )
    components.update(schema.pop("$defs", {}))
    return schema


def _operation(op: Operation, components: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "tags": [op.tag],
        "description": _access_text(op.access),
        "parameters": [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": _PARAM_SCHEMAS.get(name, {"type": "string", "pattern": ID_PATTERN}),
            }
            for name in re.findall(r"{(\w+)}", op.path)
            if name in PATH_PARAMS
        ],
    }
    if op.query is not None:
        for name, f in op.query.model_fields.items():
            out["parameters"].append(
                {
                    "name": f.alias or name,
                    "in": "query",
                    "required": f.is_required(),
                    "schema": {"type": "string"},
                    **({"description": f.description} if f.description else {}),
                }
            )
    if op.body is not None:
        out["requestBody"] = {
            "required": op.body_required,
            "content": {"application/json": {"schema": _schema_ref(op.body, components, "validation")}},
        }
    ok: dict[str, Any] = {"description": "OK" if op.status < 300 else "Done"}
    if op.response is not None and op.status != 204:
        ok["content"] = {
            "application/json": {"schema": _schema_ref(op.response, components, "serialization")}
        }
    responses: dict[str, Any] = {str(op.status): ok}
    statuses = {401, 403, 400, 415, 503, *op.errors}
    if re.search(r"{\w+}", op.path):
        statuses.add(404)  # routing._path_params answers 404 for a malformed ID in the path
    for status in sorted(statuses):
        responses[str(status)] = {
            "description": _STATUS_TEXT.get(status, "Error"),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        if status == 503:
            responses[str(status)]["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before sending again",
                    "schema": {"type": "integer"},
                }
            }
    out["responses"] = responses
    return out


def _access_text(access: Access) -> str:
    return {
        Access.OPERATOR: "Needs the operator key.",
        Access.ADMIN: "Needs an admin token of the app in the path.",
        Access.USER: "Needs a user token for the user in the path, or an admin token of the app.",
        Access.APP_ADMIN: "Needs an admin token of the app in the path, or the operator key.",
    }[access]
