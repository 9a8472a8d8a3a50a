"""The error shape over real HTTP, as `make run` serves it: unknown paths, and what chalice local's
HTTP server answers itself (headers too large) — JSON {"error": {"code", "message"}}, never HTML."""

from __future__ import annotations

import json

from .conftest import LocalStack, raw_request


def _error(status: int, headers: dict[str, str], body: bytes) -> dict[str, str]:
    assert headers.get("Content-Type", "").startswith("application/json"), (status, headers, body[:200])
    data = json.loads(body)
    assert set(data) == {"error"} and {"code", "message"} <= set(data["error"]), data
    return dict(data["error"])


def test_get_v1_nope_answers_the_json_error_body(local_stack: LocalStack) -> None:
    status, headers, body = raw_request(
        local_stack.api + "/v1/nope", headers={"Authorization": f"Bearer {local_stack.operator_key}"}
    )

    assert status == 404
    assert _error(status, headers, body)["code"] == "NotFound"
    assert local_stack.operator_key.encode() not in body  # chalice local used to echo the header


def test_unknown_method_answers_the_json_error_body(local_stack: LocalStack) -> None:
    status, headers, body = raw_request(local_stack.api + "/v1/apps", method="DELETE")

    assert status == 405
    assert _error(status, headers, body)["code"] == "MethodNotAllowed"


def test_a_header_line_over_64_kib_is_431_json(local_stack: LocalStack) -> None:
    status, headers, body = raw_request(local_stack.api + "/v1/apps", headers={"X-Big": "a" * 70_000})

    assert status == 431
    error = _error(status, headers, body)
    assert error["code"] == "RequestHeaderFieldsTooLarge"
    assert "aaaa" not in body.decode() and len(body) < 500


def test_too_many_headers_is_431_json(local_stack: LocalStack) -> None:
    status, headers, body = raw_request(
        local_stack.api + "/v1/apps", headers={f"X-H{i}": "1" for i in range(150)}
    )

    assert status == 431
    assert _error(status, headers, body)["code"] == "RequestHeaderFieldsTooLarge"


def test_oversized_body_is_413_json(local_stack: LocalStack) -> None:
    status, headers, body = raw_request(
        local_stack.api + "/v1/apps",
        method="POST",
        headers={"Authorization": f"Bearer {local_stack.operator_key}", "Content-Type": "application/json"},
        body=json.dumps({"name": "x" * (512 * 1024)}).encode(),
    )

    assert status == 413
    assert _error(status, headers, body)["code"] == "PayloadTooLarge"
    assert len(body) < 500
