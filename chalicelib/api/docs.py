"""GET /openapi.json: the API's own description, no token needed."""

from typing import Any

from chalice.app import Blueprint

from chalicelib.api.openapi import build_openapi

docs_blueprint = Blueprint(__name__)
_cache: dict[str, Any] = {}


@docs_blueprint.route("/openapi.json", methods=["GET"])
def openapi_document() -> dict[str, Any]:
    if "doc" not in _cache:
        _cache["doc"] = build_openapi()
    doc: dict[str, Any] = _cache["doc"]
    return doc
