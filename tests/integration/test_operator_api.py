"""Operator access (API.md "Operator access (operator key) and console"): listing apps, short-lived
admin tokens for the console, signing-key rotation with a grace period, the limits on app tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import jwt
import pytest

from chalicelib.deps import services
from chalicelib.services.auth import mint_token
from tests.conftest import OPERATOR_KEY, Api, AppContext


def _at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---- GET /v1/apps ----------------------------------------------------------------------------------


def test_list_apps_shows_every_app_with_its_name_and_creation_time(api: Api) -> None:
    created = [
        api.call("POST", "/v1/apps", {"name": name}, token=OPERATOR_KEY).data for name in ("Alpha", "Beta")
    ]

    resp = api.call("GET", "/v1/apps", token=OPERATOR_KEY)

    assert resp.status_code == 200, resp.body
    listed = {a["appId"]: a for a in resp.data["items"]}
    for app in created:
        assert listed[app["appId"]]["name"] == app["name"]
        assert abs(_at(listed[app["appId"]]["createdAt"]) - time.time()) < 3600
        assert set(listed[app["appId"]]) == {"appId", "name", "createdAt"}  # never the secret key


def test_list_apps_needs_the_operator_key(app_ctx: AppContext) -> None:
    resp = app_ctx.api.call("GET", "/v1/apps", token=app_ctx.admin)
    assert resp.status_code == 403
    assert resp.data["error"]["code"] == "Forbidden"


# ---- POST /v1/apps/{appId}/tokens --------------------------------------------------------------------


def test_console_token_is_a_short_lived_admin_token_of_the_app(app_ctx: AppContext) -> None:
    resp = app_ctx.api.call("POST", app_ctx.path("/tokens"), {"role": "admin"}, token=OPERATOR_KEY)

    assert resp.status_code == 201, resp.body
    token = resp.data["token"]
    claims = jwt.decode(token, app_ctx.secret_key, algorithms=["HS256"])
    assert claims["app"] == app_ctx.app_id and claims["role"] == "admin"
    assert 3500 < claims["exp"] - time.time() <= 3600  # default: 1 hour
    assert abs(_at(resp.data["expiresAt"]) - claims["exp"]) < 1
    used = app_ctx.api.call("GET", app_ctx.path("/credentials"), token=token)
    assert used.status_code == 200, used.body


def test_console_token_lifetime_is_at_most_12_hours(app_ctx: AppContext) -> None:
    ok = app_ctx.api.call(
        "POST", app_ctx.path("/tokens"), {"role": "admin", "ttlSeconds": 43200}, token=OPERATOR_KEY
    )
    too_long = app_ctx.api.call(
        "POST", app_ctx.path("/tokens"), {"role": "admin", "ttlSeconds": 43201}, token=OPERATOR_KEY
    )

    assert ok.status_code == 201
    assert too_long.status_code == 400
    assert too_long.data["error"]["details"]["errors"][0]["field"] == "ttlSeconds"


@pytest.mark.parametrize("body", [{"role": "user"}, {}, {"role": "admin", "ttlSeconds": "60"}])
def test_console_token_request_is_validated(app_ctx: AppContext, body: dict[str, object]) -> None:
    resp = app_ctx.api.call("POST", app_ctx.path("/tokens"), body, token=OPERATOR_KEY)
    assert resp.status_code == 400, resp.body
    assert resp.data["error"]["code"] == "ValidationError"


def test_console_token_of_an_unknown_app_is_404(api: Api) -> None:
    resp = api.call("POST", "/v1/apps/app-000000000000/tokens", {"role": "admin"}, token=OPERATOR_KEY)
    assert resp.status_code == 404
    assert resp.data["error"]["code"] == "NotFound"


def test_an_admin_token_cannot_mint_tokens(app_ctx: AppContext) -> None:
    resp = app_ctx.api.call("POST", app_ctx.path("/tokens"), {"role": "admin"}, token=app_ctx.admin)
    assert resp.status_code == 403


# ---- POST /v1/apps/{appId}/secret-key/rotate -----------------------------------------------------------


@pytest.fixture
def pinned_clock() -> Iterator[list[int]]:
    """The app service's clock, movable by the test (the API runs in this process)."""
    apps = services().apps
    offset = [0]
    original = apps.clock_ms
    apps.clock_ms = lambda: original() + offset[0]
    yield offset
    apps.clock_ms = original


def _credentials(ctx: AppContext, token: str) -> int:
    return int(ctx.api.call("GET", ctx.path("/credentials"), token=token).status_code)


def test_rotation_answers_a_new_key_and_keeps_the_previous_one_for_an_hour(app_ctx: AppContext) -> None:
    old_token = app_ctx.admin

    resp = app_ctx.api.call("POST", app_ctx.path("/secret-key/rotate"), token=OPERATOR_KEY)  # no body

    assert resp.status_code == 200, resp.body
    new_key = resp.data["secretKey"]
    assert new_key != app_ctx.secret_key
    assert 3590 < _at(resp.data["previousValidUntil"]) - time.time() <= 3600
    new_token = mint_token(new_key, app_ctx.app_id, "im-server", "admin")
    assert _credentials(app_ctx, new_token) == 200
    assert _credentials(app_ctx, old_token) == 200  # within the grace period


def test_previous_key_is_refused_after_previous_valid_until(
    app_ctx: AppContext, pinned_clock: list[int]
) -> None:
    old_token = app_ctx.admin
    resp = app_ctx.api.call(
        "POST", app_ctx.path("/secret-key/rotate"), {"graceSeconds": 600}, token=OPERATOR_KEY
    )
    new_token = mint_token(resp.data["secretKey"], app_ctx.app_id, "im-server", "admin")
    until_ms = int(_at(resp.data["previousValidUntil"]) * 1000)

    pinned_clock[0] = until_ms - int(time.time() * 1000) - 5_000  # 5 s before the end of the grace
    assert _credentials(app_ctx, old_token) == 200

    pinned_clock[0] = until_ms - int(time.time() * 1000) + 1_000  # 1 s after it
    refused = app_ctx.api.call("GET", app_ctx.path("/credentials"), token=old_token)
    assert refused.status_code == 401
    assert "previous key" in refused.data["error"]["message"]
    assert _credentials(app_ctx, new_token) == 200


def test_rotation_with_no_grace_revokes_the_previous_key_at_once(app_ctx: AppContext) -> None:
    old_token = app_ctx.admin

    resp = app_ctx.api.call(
        "POST", app_ctx.path("/secret-key/rotate"), {"graceSeconds": 0}, token=OPERATOR_KEY
    )

    assert resp.status_code == 200
    assert _credentials(app_ctx, old_token) == 401


def test_a_second_rotation_ends_the_first_keys_grace(app_ctx: AppContext) -> None:
    first_token = app_ctx.admin
    second = app_ctx.api.call("POST", app_ctx.path("/secret-key/rotate"), token=OPERATOR_KEY).data
    second_token = mint_token(second["secretKey"], app_ctx.app_id, "im-server", "admin")

    app_ctx.api.call("POST", app_ctx.path("/secret-key/rotate"), token=OPERATOR_KEY)

    assert _credentials(app_ctx, second_token) == 200  # the previous key, in its grace period
    assert _credentials(app_ctx, first_token) == 401  # only one previous key is kept


def test_console_tokens_are_signed_with_the_new_key_after_rotation(app_ctx: AppContext) -> None:
    rotated = app_ctx.api.call("POST", app_ctx.path("/secret-key/rotate"), token=OPERATOR_KEY).data

    issued = app_ctx.api.call("POST", app_ctx.path("/tokens"), {"role": "admin"}, token=OPERATOR_KEY).data

    jwt.decode(issued["token"], rotated["secretKey"], algorithms=["HS256"])


@pytest.mark.parametrize("grace", [-1, 7 * 86400 + 1, "60", 1.5])
def test_rotation_grace_is_validated(app_ctx: AppContext, grace: object) -> None:
    resp = app_ctx.api.call(
        "POST", app_ctx.path("/secret-key/rotate"), {"graceSeconds": grace}, token=OPERATOR_KEY
    )
    assert resp.status_code == 400
    assert _credentials(app_ctx, app_ctx.admin) == 200  # nothing rotated


def test_rotation_of_an_unknown_app_is_404(api: Api) -> None:
    resp = api.call("POST", "/v1/apps/app-000000000000/secret-key/rotate", token=OPERATOR_KEY)
    assert resp.status_code == 404


def test_only_the_operator_rotates(app_ctx: AppContext) -> None:
    resp = app_ctx.api.call("POST", app_ctx.path("/secret-key/rotate"), token=app_ctx.admin)
    assert resp.status_code == 403
    assert _credentials(app_ctx, app_ctx.admin) == 200


# ---- exp limits through the API --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exp", "says"),
    [
        (253402300799, "more than 30 days ahead"),  # 9999-12-31
        (int(time.time()) + 31 * 86400, "more than 30 days ahead"),
        (str(int(time.time()) + 600), "integer"),
        (int(time.time()) + 600.5, "integer"),
    ],
    ids=["year-9999", "31-days", "string", "fraction"],
)
def test_app_tokens_with_a_bad_exp_are_401(app_ctx: AppContext, exp: object, says: str) -> None:
    token = jwt.encode(
        {"app": app_ctx.app_id, "sub": "im-server", "role": "admin", "exp": exp}, app_ctx.secret_key, "HS256"
    )

    resp = app_ctx.api.call("GET", app_ctx.path("/credentials"), token=token)

    assert resp.status_code == 401
    assert resp.data["error"]["code"] == "Unauthorized"
    assert says in resp.data["error"]["message"]


def test_app_token_with_29_days_left_works(app_ctx: AppContext) -> None:
    assert _credentials(app_ctx, app_ctx.token("im-server", "admin", ttl_s=29 * 86400)) == 200
