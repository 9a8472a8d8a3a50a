"""Declarative routes: one decorator states path, access, body, answer and status, and does the rest.

Each operation is registered on a Chalice blueprint *and* in ``OPERATIONS``,
from which the OpenAPI document is generated, so the two cannot drift. The
wrapper authenticates, authorizes, validates path/query/body with pydantic,
maps ServiceError to the JSON error body, and never lets bad input become a 500.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalice.app import Blueprint, Response
from pydantic import BaseModel, TypeAdapter, ValidationError

from chalicelib.errors import NotFound, PayloadTooLarge, ServiceError, TryLater, ValidationFailed
from chalicelib.models.base import ENTITY_ID_PATTERN
from chalicelib.models.devices import normalize_token
from chalicelib.services.auth import Access, Principal, authorize
from chalicelib.store import retry

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
# AWS calls of one request stop retrying within this (the API function's timeout is 10 s): a 503
# with Retry-After, never Lambda's timeout (a 502/504 from the gateway).
API_BUDGET_S = 8.0
ID_PATTERN = ENTITY_ID_PATTERN
_ID_RE = re.compile(ID_PATTERN)
_ID_HELP = '1-128 visible characters, no "/" and no whitespace'


def _id(name: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not _ID_RE.match(value):
            raise ValueError(f"{name} must be {_ID_HELP}")
        return value

    return check


def _certificate_id(value: str) -> int:
    if not value.isdigit() or not 0 < int(value) < 2**53:
        raise ValueError("certificateId must be the positive integer the credentials API answered")
    return int(value)


def _conversation_kind(value: str) -> str:
    if value not in ("group", "c2c"):
        raise ValueError(
            "kind must be 'group' (conversationId = the group ID) or 'c2c' (conversationId = the other "
            "user's ID)"
        )
    return value


PATH_PARAMS: dict[str, Callable[[str], Any]] = {
    "appId": _id("appId"),
    "userId": _id("userId"),
    "otherUserId": _id("otherUserId"),
    "groupId": _id("groupId"),
    "messageId": _id("messageId"),
    "deviceToken": normalize_token,
    "certificateId": _certificate_id,
    "kind": _conversation_kind,
    "conversationId": _id("conversationId"),
}


@dataclass(frozen=True)
class ApiRequest:
    principal: Principal
    params: dict[str, Any]
    body: Any = None
    query: Any = None


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    name: str
    summary: str
    tag: str
    access: Access
    body: Any = None  # a model class or an Annotated union
    response: type[BaseModel] | None = None
    status: int = 200
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    body_required: bool = True  # False: an empty body means {} (every field has a default)
    _adapter: TypeAdapter[Any] | None = field(default=None, compare=False, repr=False)


OPERATIONS: list[Operation] = []
ANONYMOUS = Principal(kind="anonymous")

Authenticator = Callable[[str | None], Principal]


class Router:
    """Registers operations on one blueprint; ``authenticator`` is resolved per request (tests swap it)."""

    def __init__(self, blueprint: Blueprint, authenticator: Callable[[], Authenticator]) -> None:
        self.blueprint = blueprint
        self._authenticator = authenticator

    def operation(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tag: str,
        access: Access,
        body: Any = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        query: type[BaseModel] | None = None,
        errors: tuple[int, ...] = (),
        body_required: bool = True,
    ) -> Callable[[Callable[[ApiRequest], Any]], Callable[[ApiRequest], Any]]:
        def register(func: Callable[[ApiRequest], Any]) -> Callable[[ApiRequest], Any]:
            op = Operation(
                method=method,
                path=path,
                name=func.__name__,
                summary=summary,
                tag=tag,
                access=access,
                body=body,
                response=response,
                status=status,
                query=query,
                errors=errors,
                body_required=body_required,
                _adapter=TypeAdapter(body) if body is not None else None,
            )
            OPERATIONS.append(op)

            def view(**path_params: str) -> Response:
                return self._handle(op, func, path_params)

            view.__name__ = func.__name__
            self.blueprint.route(path, methods=[method], content_types=["application/json"])(view)
            return func

        return register

    def _handle(
        self, op: Operation, func: Callable[[ApiRequest], Any], raw_params: dict[str, str]
    ) -> Response:
        request = self.blueprint.current_request
        try:
            with retry.deadline_scope(API_BUDGET_S):
                principal = (
                    ANONYMOUS
                    if op.access is Access.PUBLIC  # whatever Authorization says: nothing to check
                    else self._authenticator()(request.headers.get("authorization"))
                )
                params = _path_params(raw_params)
                authorize(principal, op.access, params.get("appId"), params.get("userId"))
                body = _body(op, _as_bytes(request.raw_body)) if op._adapter is not None else None
                query = _query(op.query, request.query_params) if op.query is not None else None
                result = func(ApiRequest(principal=principal, params=params, body=body, query=query))
        except ServiceError as exc:
            if exc.status >= 500:
                log.error("request failed: %s %s: %s", op.method, op.path, exc.code)
            return error_response(exc)
        except Exception as exc:
            if retry.is_retryable(exc):
                log.warning("request gave up: %s %s: %s", op.method, op.path, retry.error_code(exc) or exc)
                return error_response(TryLater(retry.RETRY_AFTER_S))
            log.exception("unhandled error in %s %s", op.method, op.path)
            return error_response(ServiceError("an internal error occurred; it has been logged"))
        if result is None:
            return Response(body="", status_code=204 if op.status == 200 else op.status)
        payload = result.dump() if hasattr(result, "dump") else result
        return Response(body=payload, status_code=op.status, headers={"Content-Type": "application/json"})


def error_response(exc: ServiceError) -> Response:
    headers: dict[str, str | list[str]] = {"Content-Type": "application/json"}
    if isinstance(exc, TryLater):
        headers["Retry-After"] = str(exc.retry_after_s)
    return Response(body=exc.body(), status_code=exc.status, headers=headers)


def _path_params(raw: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in raw.items():
        try:
            out[name] = PATH_PARAMS.get(name, str)(value)
        except ValueError as exc:
            # A malformed ID can name nothing that exists: 404 for resources, but say why.
            if name in ("deviceToken", "certificateId", "kind"):
                raise ValidationFailed(str(exc), details={"field": name}) from None
            raise NotFound(str(exc), details={"field": name}) from None
    return out


def _body(op: Operation, raw: bytes | None) -> Any:
    if (raw is None or not raw.strip()) and not op.body_required:
        raw = b"{}"
    if raw is None or not raw.strip():
        raise ValidationFailed("this request needs a JSON body (Content-Type: application/json)")
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValidationFailed(
            f"the body is not valid JSON: {exc}", details={"code": "InvalidJson"}
        ) from None
    if not isinstance(data, dict):
        raise ValidationFailed("the body must be a JSON object")
    assert op._adapter is not None
    try:
        # JSON-mode strict: "7" is not an int and 1 is not a bool, as a typed client would expect.
        return op._adapter.validate_json(raw, strict=True)
    except ValidationError as exc:
        tag = data.get("type")
        raise validation_failed(exc, union_tag=tag if isinstance(tag, str) else None) from None


def _as_bytes(raw: str | bytes | None) -> bytes | None:
    return raw.encode() if isinstance(raw, str) else raw


def _query(model: type[BaseModel], raw: Any) -> BaseModel:
    try:
        return model.model_validate(dict(raw or {}))
    except ValidationError as exc:
        raise validation_failed(exc) from None


def validation_failed(exc: ValidationError, union_tag: str | None = None) -> ValidationFailed:
    """Turn pydantic's errors into one readable message plus per-field details (inputs never echoed)."""
    problems = []
    for err in exc.errors(include_url=False, include_input=False):
        path = list(err["loc"])
        if union_tag is not None and path and path[0] == union_tag:
            path = path[1:]  # a discriminated union puts the tag first: not a field name
        loc = ".".join(str(p) for p in path)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown field: check its spelling against the API reference (fields are camelCase)"
        elif err["type"] == "missing":
            msg = "this field is required"
        elif err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = str(err.get("ctx", {}).get("discriminator", "type")).strip("'")
        problems.append({"field": loc or "(body)", "message": msg})
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems[:5])
    return ValidationFailed(f"invalid request: {summary}", details={"errors": problems})


_CHALICE_ERROR_HINTS = {
    "UnsupportedMediaType": "send the body as JSON with 'Content-Type: application/json'",
    "MethodNotAllowedError": "this path does not take that method: see /openapi.json",
}


def conform_chalice_errors(event: Any, get_response: Callable[[Any], Response]) -> Response:
    """Middleware: errors Chalice answers itself (415, 405) get the same body as ours."""
    response = get_response(event)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and set(body) == {"Code", "Message"}:
        code = str(body["Code"])
        hint = _CHALICE_ERROR_HINTS.get(code)
        # Chalice quotes the request (e.g. the Content-Type header) in its message: cut it short.
        text = str(body["Message"])
        text = text if len(text) <= 80 else text[:80] + "..."
        message = f"{text}: {hint}" if hint else text
        response.body = {"error": {"code": code.removesuffix("Error") or code, "message": message}}
        response.headers["Content-Type"] = "application/json"
    return response
