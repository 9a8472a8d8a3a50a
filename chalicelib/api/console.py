"""GET /console: the operator console, plain HTML/CSS/JS files served by the API function itself.

The page holds the operator key in the tab's memory only and exchanges it for short-lived admin
tokens (POST /v1/apps/{appId}/tokens); it loads nothing but the files below, under a strict
Content-Security-Policy (no inline script or style, no other origin, no framing).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from chalice.app import Blueprint, Response

from chalicelib.errors import NotFound

console_blueprint = Blueprint(__name__)
FILES = Path(__file__).resolve().parent.parent / "console"
ASSETS = {
    "console.js": "text/javascript; charset=utf-8",
    "insight.js": "text/javascript; charset=utf-8",
    "webhook.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: dict[str, str | list[str]] = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@cache
def _read(name: str) -> str:
    return (FILES / name).read_text(encoding="utf-8")


@console_blueprint.route("/console", methods=["GET"])
def console_page() -> Response:
    headers: dict[str, str | list[str]] = {
        **SECURITY_HEADERS,
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
    }
    return Response(body=_read("index.html"), status_code=200, headers=headers)


@console_blueprint.route("/console/{asset}", methods=["GET"])
def console_asset(asset: str) -> Response:
    if asset not in ASSETS:
        error = NotFound("the console has no such file")
        return Response(body=error.body(), status_code=404, headers={"Content-Type": "application/json"})
    headers: dict[str, str | list[str]] = {
        **SECURITY_HEADERS,
        "Content-Type": ASSETS[asset],
        "Cache-Control": "no-cache",
    }
    return Response(body=_read(asset), status_code=200, headers=headers)
