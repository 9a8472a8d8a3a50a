"""What API Gateway itself answers, in our error shape: one table for the deployed stage's gateway
responses (infra/stack.py writes them into the template) and for the local stack, which answers the
same where `chalice local` (and chalice's test client) would otherwise answer differently.

API Gateway answers some requests without calling the function: no route for the path and method
(``MISSING_AUTHENTICATION_TOKEN``, a 403 by default whose text mentions SigV4 signatures), a body
over 10 MB (``REQUEST_TOO_LARGE``), throttling, a function that failed or timed out. Each gets a
fixed message: nothing from the request is echoed back.
"""

from __future__ import annotations

import http
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GatewayAnswer:
    status: int
    code: str
    message: str

    def body(self) -> bytes:
        return json.dumps({"error": {"code": self.code, "message": self.message}}).encode()


NO_ROUTE = GatewayAnswer(
    404,
    "NotFound",
    "there is no such path, or the path does not take that method: the API is described at /openapi.json",
)
GATEWAY_RESPONSES: dict[str, GatewayAnswer] = {
    "MISSING_AUTHENTICATION_TOKEN": NO_ROUTE,
    "REQUEST_TOO_LARGE": GatewayAnswer(
        413, "PayloadTooLarge", "the request is larger than API Gateway accepts (10 MB)"
    ),
    "THROTTLED": GatewayAnswer(429, "Throttled", "too many requests: slow down and retry with back-off"),
    "INTEGRATION_TIMEOUT": GatewayAnswer(
        504, "GatewayTimeout", "the API did not answer in time; retry (the request may have taken effect)"
    ),
    "DEFAULT_4XX": GatewayAnswer(
        400, "BadRequest", "API Gateway refused the request before it reached the API: check its headers"
    ),
    "DEFAULT_5XX": GatewayAnswer(
        502, "BadGateway", "the API failed to answer; retry later (the request may have taken effect)"
    ),
}
# DEFAULT_4XX / DEFAULT_5XX keep the status API Gateway chose; the others set theirs.
KEEP_STATUS = frozenset({"DEFAULT_4XX", "DEFAULT_5XX"})


def sam_gateway_responses() -> dict[str, Any]:
    """The ``GatewayResponses`` property of the stage's ``AWS::Serverless::Api``."""
    out: dict[str, Any] = {}
    for kind, answer in GATEWAY_RESPONSES.items():
        response: dict[str, Any] = {
            "ResponseParameters": {
                "Headers": {"Content-Type": "'application/json'", "X-Content-Type-Options": "'nosniff'"}
            },
            "ResponseTemplates": {"application/json": answer.body().decode()},
        }
        if kind not in KEEP_STATUS:
            response["StatusCode"] = answer.status
        out[kind] = response
    return out


def _local_message(status: int) -> str:
    if status == 431:
        return "the request headers are too large (API Gateway accepts 10,240 bytes of headers)"
    if status == 414:
        return "the URL is too long (API Gateway accepts 8,192 bytes in the request line)"
    try:
        return f"the request could not be handled: {http.HTTPStatus(status).phrase}"
    except ValueError:
        return "the request could not be handled"


def emulate_locally() -> None:
    """Make `chalice local` and chalice's test client answer like the deployed stage: no route ->
    NO_ROUTE (instead of a 403 that echoes the Authorization header); errors its HTTP server answers
    itself (431 headers too large, 414, 400 ...) -> JSON in our shape instead of an HTML page.
    Only ever called when chalice.local is already imported (never inside Lambda)."""
    from chalice import local

    if getattr(local.LocalGateway, "_conformed", False):
        return

    class NoRoute(local.LocalGatewayException):
        CODE = NO_ROUTE.status

    original = local.LocalGateway.handle_request

    def handle_request(self: Any, method: str, path: str, headers: Any, body: bytes | None) -> Any:
        try:
            return original(self, method, path, headers, body)
        except local.ForbiddenError as exc:  # the app has no authorizers: this is "no such route"
            raise NoRoute(
                {"Content-Type": "application/json", "x-amzn-ErrorType": "NotFoundException"},
                NO_ROUTE.body(),
            ) from exc

    def send_error(self: Any, code: int, message: str | None = None, explain: str | None = None) -> None:
        body = GatewayAnswer(code, http.HTTPStatus(code).phrase.replace(" ", ""), _local_message(code)).body()
        self.log_error("code %d", code)
        self.send_response(code)
        self.send_header("Connection", "close")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if getattr(self, "command", None) != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    local.LocalGateway.handle_request = handle_request  # type: ignore[method-assign]
    local.ChaliceRequestHandler.send_error = send_error
    local.LocalGateway._conformed = True  # type: ignore[attr-defined]
