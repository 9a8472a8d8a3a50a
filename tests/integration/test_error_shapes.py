"""Errors in one shape everywhere ({"error": {"code", "message"}}), inputs never echoed beyond a
short excerpt; the console page and its files. Through chalice's test client (the same local
gateway as `chalice local`); the HTTP server's own answers (431 ...) are in tests/console/."""

from __future__ import annotations

import json
import re

import pytest

from chalicelib.api.gateway import GATEWAY_RESPONSES, NO_ROUTE, sam_gateway_responses
from tests.conftest import OPERATOR_KEY, Api, AppContext


def _error(resp: object) -> dict[str, str]:
    body = json.loads(resp.body)  # type: ignore[attr-defined]
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    return dict(body["error"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nope"),
        ("GET", "/"),
        ("POST", "/v1/apps/app-000000000000/nope/deeper"),
        ("GET", "/console/x/y"),
    ],
)
def test_unknown_path_answers_the_json_error_body(api: Api, method: str, path: str) -> None:
    resp = api.call(method, path, token="")

    assert resp.status_code == 404
    assert _error(resp) == {"code": "NotFound", "message": NO_ROUTE.message}
    assert resp.headers["Content-Type"] == "application/json"


def test_unknown_path_does_not_echo_the_authorization_header(api: Api) -> None:
    resp = api.call("GET", "/v1/nope", token=OPERATOR_KEY)

    assert resp.status_code == 404
    assert OPERATOR_KEY not in resp.body.decode()
    assert _error(resp)["code"] == "NotFound"


def test_unknown_method_on_a_known_path_is_405_in_the_same_shape(api: Api) -> None:
    resp = api.call("DELETE", "/v1/apps", token=OPERATOR_KEY)

    assert resp.status_code == 405
    assert _error(resp)["code"] == "MethodNotAllowed"


def test_wrong_content_type_is_cut_short(api: Api) -> None:
    long_type = "application/" + "x" * 5000
    resp = api.call(
        "POST", "/v1/apps", raw=b'{"name": "x"}', token=OPERATOR_KEY, headers={"Content-Type": long_type}
    )

    assert resp.status_code == 415
    assert _error(resp)["code"] == "UnsupportedMediaType"
    assert len(resp.body) < 500


def test_oversized_body_is_413_in_the_same_shape(app_ctx: AppContext) -> None:
    raw = json.dumps({"openPush": True, "displayName": "x" * (300 * 1024)}).encode()
    resp = app_ctx.api.call("PATCH", app_ctx.path("/users/bob/push-config"), raw=raw, token=app_ctx.admin)

    assert resp.status_code == 413
    assert _error(resp)["code"] == "PayloadTooLarge"
    assert len(resp.body) < 500


def test_a_huge_time_zone_is_quoted_as_a_short_excerpt(app_ctx: AppContext) -> None:
    zone = "Europe/" + "A" * 250_000
    raw = json.dumps({"doNotDisturb": {"enabled": True, "timezone": zone[:200_000]}}).encode()  # < 256 KiB

    resp = app_ctx.api.call("PATCH", app_ctx.path("/users/bob/push-config"), raw=raw, token=app_ctx.admin)

    assert resp.status_code == 400
    error = _error(resp)
    assert "unknown time zone 'Europe/AAAA" in error["message"]
    assert "(200000 characters)" in error["message"]
    assert len(resp.body) < 1000  # was ~400 KB: the input twice


def test_a_huge_string_send_time_is_not_echoed(app_ctx: AppContext) -> None:
    body = {
        "messageId": "m-1",
        "sendTime": "1" * 100_000,
        "sender": {"userId": "alice"},
        "to": {"userId": "bob"},
        "elems": [{"type": "text", "text": "hi"}],
    }
    resp = app_ctx.api.call("POST", app_ctx.path("/messages"), body, token=app_ctx.admin)

    assert resp.status_code == 400
    assert len(resp.body) < 1000


def test_every_gateway_response_is_in_our_shape() -> None:
    responses = sam_gateway_responses()
    assert set(responses) == set(GATEWAY_RESPONSES)
    assert {"MISSING_AUTHENTICATION_TOKEN", "REQUEST_TOO_LARGE", "DEFAULT_4XX", "DEFAULT_5XX"} <= set(
        responses
    )
    for kind, response in responses.items():
        body = json.loads(response["ResponseTemplates"]["application/json"])
        assert set(body["error"]) == {"code", "message"}, kind
        assert "$" not in response["ResponseTemplates"]["application/json"], kind  # nothing echoed
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == 404


# ---- the console's files ---------------------------------------------------------------------------


def test_console_page_is_served_without_a_token_under_a_strict_policy(api: Api) -> None:
    resp = api.client.http.get("/console")

    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "http" not in csp
    html = resp.body.decode()
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S)
    assert scripts and all(s.strip() == "" for s in scripts)  # no inline script
    assert not re.search(r"\son[a-z]+\s*=", html)  # no inline event handlers
    assert "style=" not in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from another origin


@pytest.mark.parametrize(("name", "kind"), [("console.js", "text/javascript"), ("console.css", "text/css")])
def test_console_files(api: Api, name: str, kind: str) -> None:
    resp = api.client.http.get(f"/console/{name}")

    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith(kind)
    assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_console_script_keeps_secrets_out_of_storage_and_html() -> None:
    from chalicelib.api.console import FILES

    lines = (FILES / "console.js").read_text().splitlines()
    script = "\n".join(line for line in lines if not line.lstrip().startswith("//"))  # code, not comments
    for forbidden in ("localStorage", "sessionStorage", "document.cookie", "innerHTML", "outerHTML", "eval("):
        assert forbidden not in script, forbidden
    assert "insertAdjacentHTML" not in script and "document.write" not in script


def test_unknown_console_file_is_404_json(api: Api) -> None:
    resp = api.call("GET", "/console/secrets.txt", token="")
    assert resp.status_code == 404
    assert _error(resp)["code"] == "NotFound"
