"""Auth through the API: users touch only their own resources; tokens of another app get 403."""

from __future__ import annotations

from tests.conftest import OPERATOR_KEY, AppContext


def test_user_cannot_read_another_users_config(app_ctx: AppContext) -> None:
    resp = app_ctx.api.call("GET", app_ctx.path("/users/alice/push-config"), token=app_ctx.token("bob"))
    assert resp.status_code == 403
    assert "own user" in resp.data["error"]["message"]


def test_admin_reads_any_user(app_ctx: AppContext) -> None:
    assert (
        app_ctx.api.call("GET", app_ctx.path("/users/alice/push-config"), token=app_ctx.admin).status_code
        == 200
    )


def test_other_apps_token_is_403(app_ctx: AppContext) -> None:
    other = app_ctx.api.call("POST", "/v1/apps", {"name": "Other"}, token=OPERATOR_KEY).data
    from chalicelib.services.auth import mint_token

    token = mint_token(other["secretKey"], other["appId"], "im-server", "admin")
    assert app_ctx.api.call("GET", app_ctx.path("/credentials"), token=token).status_code == 403


def test_token_signed_with_other_apps_key_is_401(app_ctx: AppContext) -> None:
    from chalicelib.services.auth import mint_token

    forged = mint_token("x" * 43, app_ctx.app_id, "im-server", "admin")
    assert app_ctx.api.call("GET", app_ctx.path("/credentials"), token=forged).status_code == 401


def test_expired_token_is_401(app_ctx: AppContext) -> None:
    resp = app_ctx.api.call("GET", app_ctx.path("/users/bob/devices"), token=app_ctx.token("bob", ttl_s=-5))
    assert resp.status_code == 401
    assert "expired" in resp.data["error"]["message"]


def test_operator_key_cannot_touch_app_resources(app_ctx: AppContext) -> None:
    assert app_ctx.api.call("GET", app_ctx.path("/credentials"), token=OPERATOR_KEY).status_code == 403


def test_malformed_user_id_is_404(app_ctx: AppContext) -> None:
    resp = app_ctx.api.call("GET", app_ctx.path(f"/users/{'u' * 129}/devices"), token=app_ctx.admin)
    assert resp.status_code == 404
    assert "userId must be" in resp.data["error"]["message"]


def test_openapi_document_is_served_and_matches_repo(api) -> None:
    import json
    from pathlib import Path

    resp = api.call("GET", "/openapi.json")
    assert resp.status_code == 200
    doc = resp.data
    assert doc["openapi"].startswith("3.1")
    assert "/v1/apps/{appId}/users/{userId}/push-config" in doc["paths"]
    committed = json.loads((Path(__file__).parents[2] / "openapi.json").read_text())
    assert committed == doc, "openapi.json is stale: run `make openapi`"


def test_message_event_json_schema_matches_repo() -> None:
    import json
    from pathlib import Path

    from tools.gen_openapi import message_event_schema

    committed = json.loads((Path(__file__).parents[2] / "docs" / "message-event.schema.json").read_text())
    assert committed == message_event_schema(), "docs/message-event.schema.json is stale: run `make openapi`"
    assert "appId" in committed["required"]
