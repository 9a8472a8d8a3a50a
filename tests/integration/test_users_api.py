"""Devices, push configuration and app state through the API, stored in the emulator's DynamoDB."""

from __future__ import annotations

import pytest

from tests.conftest import AppContext

TOKEN_A = "a" * 64
TOKEN_B = "b" * 64


@pytest.fixture
def cred_id(app_ctx: AppContext) -> int:
    from tests.certs import p256_pem

    body = {
        "type": "p8",
        "name": "key",
        "environment": "development",
        "p8": p256_pem(),
        "keyId": "ABC123DEFG",
        "teamId": "TEAM123456",
        "bundleId": "com.example.chat",
    }
    resp = app_ctx.api.call("POST", app_ctx.path("/credentials"), body, token=app_ctx.admin)
    return int(resp.data["certificateId"])


def devices(app_ctx: AppContext, user: str) -> list[dict]:
    return app_ctx.api.call("GET", app_ctx.path(f"/users/{user}/devices"), token=app_ctx.admin).data["items"]


# ---- devices ----------------------------------------------------------------------------------


def test_user_registers_device_by_certificate_id(app_ctx: AppContext, cred_id: int) -> None:
    resp = app_ctx.api.call(
        "PUT",
        app_ctx.path(f"/users/bob/devices/{TOKEN_A}"),
        {"certificateId": cred_id},
        token=app_ctx.token("bob"),
    )
    assert resp.status_code == 200, resp.body
    assert resp.data["deviceToken"] == TOKEN_A
    assert resp.data["certificateId"] == cred_id
    assert resp.data["environment"] == "development"
    assert resp.data["pushEnabled"] is True
    assert [d["deviceToken"] for d in devices(app_ctx, "bob")] == [TOKEN_A]


def test_register_by_certificate_name_and_uppercase_token(app_ctx: AppContext, cred_id: int) -> None:
    resp = app_ctx.api.call(
        "PUT",
        app_ctx.path(f"/users/bob/devices/{TOKEN_A.upper()}"),
        {"certificateName": "key"},
        token=app_ctx.admin,
    )
    assert resp.status_code == 200
    assert resp.data["deviceToken"] == TOKEN_A  # normalised to lower case


def test_user_may_have_several_devices(app_ctx: AppContext, cred_id: int) -> None:
    for token in (TOKEN_A, TOKEN_B):
        app_ctx.api.call(
            "PUT",
            app_ctx.path(f"/users/bob/devices/{token}"),
            {"certificateId": cred_id},
            token=app_ctx.admin,
        )
    assert sorted(d["deviceToken"] for d in devices(app_ctx, "bob")) == [TOKEN_A, TOKEN_B]


def test_token_moves_between_users(app_ctx: AppContext, cred_id: int) -> None:
    for user in ("alice", "bob"):
        resp = app_ctx.api.call(
            "PUT",
            app_ctx.path(f"/users/{user}/devices/{TOKEN_A}"),
            {"certificateId": cred_id},
            token=app_ctx.admin,
        )
        assert resp.status_code == 200
    assert devices(app_ctx, "alice") == []
    assert [d["userId"] for d in devices(app_ctx, "bob")] == ["bob"]


def test_push_enabled_false_is_setapns_nil(app_ctx: AppContext, cred_id: int) -> None:
    resp = app_ctx.api.call(
        "PUT",
        app_ctx.path(f"/users/bob/devices/{TOKEN_A}"),
        {"certificateId": cred_id, "pushEnabled": False},
        token=app_ctx.admin,
    )
    assert resp.data["pushEnabled"] is False
    assert devices(app_ctx, "bob")[0]["pushEnabled"] is False


def test_logout_one_device_and_everywhere(app_ctx: AppContext, cred_id: int) -> None:
    for token in (TOKEN_A, TOKEN_B):
        app_ctx.api.call(
            "PUT",
            app_ctx.path(f"/users/bob/devices/{token}"),
            {"certificateId": cred_id},
            token=app_ctx.admin,
        )
    bob = app_ctx.token("bob")
    assert (
        app_ctx.api.call("DELETE", app_ctx.path(f"/users/bob/devices/{TOKEN_A}"), token=bob).status_code
        == 204
    )
    assert [d["deviceToken"] for d in devices(app_ctx, "bob")] == [TOKEN_B]
    assert (
        app_ctx.api.call("DELETE", app_ctx.path(f"/users/bob/devices/{TOKEN_A}"), token=bob).status_code
        == 404
    )
    assert app_ctx.api.call("DELETE", app_ctx.path("/users/bob/devices"), token=bob).status_code == 204
    assert devices(app_ctx, "bob") == []
    # the token is free: someone else can take it without moving it from bob
    resp = app_ctx.api.call(
        "PUT",
        app_ctx.path(f"/users/carol/devices/{TOKEN_B}"),
        {"certificateId": cred_id},
        token=app_ctx.admin,
    )
    assert resp.status_code == 200


@pytest.mark.parametrize(
    "token",
    ["abc", "z" * 64, "a" * 63, "a" * 62 + " b", "a" * 202, "YWJj" * 16],
)
def test_malformed_token_is_400(app_ctx: AppContext, cred_id: int, token: str) -> None:
    resp = app_ctx.api.call(
        "PUT", app_ctx.path(f"/users/bob/devices/{token}"), {"certificateId": cred_id}, token=app_ctx.admin
    )
    assert resp.status_code in (400, 404) if " " in token else resp.status_code == 400
    assert resp.data["error"]["code"] in ("ValidationError", "NotFound")


def test_longer_even_hex_token_is_accepted(app_ctx: AppContext, cred_id: int) -> None:
    resp = app_ctx.api.call(
        "PUT",
        app_ctx.path(f"/users/bob/devices/{'ab' * 50}"),
        {"certificateId": cred_id},
        token=app_ctx.admin,
    )
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({}, 400, "exactly one of certificateId"),
        ({"certificateId": 1, "certificateName": "key"}, 400, "exactly one of"),
        ({"certificateId": "one"}, 400, "certificateId"),
        ({"certificateId": 0}, 400, "certificateId"),
        ({"certificateId": 999}, 404, "no credential 999"),
        ({"certificateName": "nope"}, 404, "no credential named 'nope'"),
        ({"certificateId": 1, "pushEnabled": "maybe"}, 400, "pushEnabled"),
    ],
)
def test_register_bad_bodies(app_ctx: AppContext, cred_id: int, body: dict, status: int, needle: str) -> None:
    resp = app_ctx.api.call("PUT", app_ctx.path(f"/users/bob/devices/{TOKEN_A}"), body, token=app_ctx.admin)
    assert resp.status_code == status, resp.body
    assert needle in resp.body.decode()


def test_device_limit_per_user(app_ctx: AppContext, cred_id: int) -> None:
    from chalicelib import deps

    repo = deps.services().user_repo
    old, repo.max_devices = repo.max_devices, 2
    try:
        for i in range(2):
            app_ctx.api.call(
                "PUT",
                app_ctx.path(f"/users/bob/devices/{f'{i:02x}' * 32}"),
                {"certificateId": cred_id},
                token=app_ctx.admin,
            )
        resp = app_ctx.api.call(
            "PUT",
            app_ctx.path(f"/users/bob/devices/{'ff' * 32}"),
            {"certificateId": cred_id},
            token=app_ctx.admin,
        )
        assert resp.status_code == 409
        assert "log out an old device" in resp.data["error"]["message"]
    finally:
        repo.max_devices = old


# ---- push config ------------------------------------------------------------------------------

DEFAULTS = {
    "openPush": True,
    "c2cSound": None,
    "groupSound": None,
    "displayName": None,
    "displayStyle": "messageSummary",
    "doNotDisturb": {"enabled": False, "startHour": 22, "endHour": 7, "timezone": "UTC"},
    "language": "zh",
    "mutedGroups": [],
    "mutedUsers": [],
}


def config(app_ctx: AppContext, user: str = "bob") -> dict:
    return app_ctx.api.call("GET", app_ctx.path(f"/users/{user}/push-config"), token=app_ctx.token(user)).data


def patch(app_ctx: AppContext, body: dict, user: str = "bob"):
    return app_ctx.api.call(
        "PATCH", app_ctx.path(f"/users/{user}/push-config"), body, token=app_ctx.token(user)
    )


def test_defaults_for_a_user_who_never_set_anything(app_ctx: AppContext) -> None:
    assert config(app_ctx) == DEFAULTS


def test_patch_any_subset(app_ctx: AppContext) -> None:
    resp = patch(
        app_ctx,
        {
            "c2cSound": "ding.caf",
            "displayName": "Bobby",
            "displayStyle": "simpleBanner",
            "language": "en",
            "doNotDisturb": {"enabled": True, "timezone": "Asia/Shanghai"},
        },
    )
    assert resp.status_code == 200, resp.body
    got = config(app_ctx)
    assert got["c2cSound"] == "ding.caf" and got["displayName"] == "Bobby"
    assert got["displayStyle"] == "simpleBanner" and got["language"] == "en"
    assert got["doNotDisturb"] == {
        "enabled": True,
        "startHour": 22,
        "endHour": 7,
        "timezone": "Asia/Shanghai",
    }
    assert got["groupSound"] is None and got["openPush"] is True
    # a second patch merges into do-not-disturb and can reset a field with null
    patch(app_ctx, {"doNotDisturb": {"startHour": 23, "endHour": 24}, "c2cSound": None})
    got = config(app_ctx)
    assert got["doNotDisturb"] == {
        "enabled": True,
        "startHour": 23,
        "endHour": 24,
        "timezone": "Asia/Shanghai",
    }
    assert got["c2cSound"] is None


@pytest.mark.parametrize(("value", "expected"), [(2, False), (1, True), (False, False), (True, True)])
def test_open_push_accepts_tencent_integers(app_ctx: AppContext, value, expected: bool) -> None:
    patch(app_ctx, {"openPush": not expected})
    assert patch(app_ctx, {"openPush": value}).data["openPush"] is expected


def test_open_push_zero_leaves_it_unchanged(app_ctx: AppContext) -> None:
    patch(app_ctx, {"openPush": 2})
    assert patch(app_ctx, {"openPush": 0, "language": "en"}).data["openPush"] is False


def test_muted_groups_and_users(app_ctx: AppContext) -> None:
    bob = app_ctx.token("bob")
    base = app_ctx.path("/users/bob/push-config")
    for path in ("/muted-groups/g1", "/muted-groups/g2", "/muted-users/alice"):
        assert app_ctx.api.call("PUT", base + path, token=bob).status_code == 200
    app_ctx.api.call("PUT", base + "/muted-groups/g1", token=bob)  # idempotent
    got = config(app_ctx)
    assert got["mutedGroups"] == ["g1", "g2"] and got["mutedUsers"] == ["alice"]
    resp = app_ctx.api.call("DELETE", base + "/muted-groups/g1", token=bob)
    assert resp.data["mutedGroups"] == ["g2"]
    assert patch(app_ctx, {"mutedUsers": []}).data["mutedUsers"] == []
    assert patch(app_ctx, {"mutedGroups": ["x", "y", "x"]}).data["mutedGroups"] == ["x", "y"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"openPush": 3}, "openPush"),
        ({"openPush": "on"}, "openPush"),
        ({"c2cSound": "no extension"}, "c2cSound"),
        ({"displayStyle": "full"}, "displayStyle"),
        ({"language": "fr"}, "language"),
        ({"doNotDisturb": {"startHour": 25}}, "doNotDisturb.startHour"),
        ({"doNotDisturb": {"endHour": -1}}, "doNotDisturb.endHour"),
        ({"doNotDisturb": {"timezone": "Mars/Olympus"}}, "doNotDisturb.timezone"),
        ({"doNotDisturb": {"timezone": "CST+8"}}, "doNotDisturb.timezone"),
        ({"mutedGroups": "g1"}, "mutedGroups"),
        ({"mutedGroups": [""]}, "mutedGroups.0"),
        ({"opnPush": True}, "opnPush"),
    ],
)
def test_patch_bad_input_is_400_naming_the_field(app_ctx: AppContext, body: dict, field: str) -> None:
    resp = patch(app_ctx, body)
    assert resp.status_code == 400, resp.body
    assert resp.data["error"]["details"]["errors"][0]["field"] == field
    assert config(app_ctx) == DEFAULTS  # nothing was half-written


def test_dnd_timezone_message_says_how_to_fix(app_ctx: AppContext) -> None:
    resp = patch(app_ctx, {"doNotDisturb": {"timezone": "Beijing"}})
    assert "IANA" in resp.data["error"]["message"]


# ---- app state --------------------------------------------------------------------------------


def state(app_ctx: AppContext, body: dict):
    return app_ctx.api.call("PUT", app_ctx.path("/users/bob/app-state"), body, token=app_ctx.token("bob"))


def test_background_sets_badge_base_and_foreground_resets(app_ctx: AppContext) -> None:
    resp = state(app_ctx, {"state": "background", "unreadCount": 7})
    assert resp.status_code == 200
    assert resp.data["state"] == "background" and resp.data["badge"] == 7
    resp = state(app_ctx, {"state": "foreground"})
    assert resp.data["state"] == "foreground" and resp.data["badge"] == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"state": "asleep"},
        {"state": "background"},
        {"state": "background", "unreadCount": -1},
        {"state": "foreground", "unreadCount": 3},
        {"state": "background", "unreadCount": "7"},
    ],
)
def test_app_state_bad_input(app_ctx: AppContext, body: dict) -> None:
    resp = state(app_ctx, body)
    assert resp.status_code == 400, resp.body
    assert resp.data["error"]["code"] == "ValidationError"


def test_a_device_registered_after_a_racing_logout_is_not_logged_out(
    app_ctx: AppContext, cred_id: int
) -> None:
    """Logout decides "logged out" from an earlier read; a registration landing in between wins."""
    from chalicelib import deps

    repo = deps.services().user_repo
    app_ctx.api.call(
        "PUT", app_ctx.path(f"/users/bob/devices/{TOKEN_B}"), {"certificateId": cred_id}, token=app_ctx.admin
    )
    repo.remove_devices(app_ctx.app_id, "bob", [], logged_out=True)  # the logout's late write
    user = repo.get(app_ctx.app_id, "bob")
    assert [d.device_token for d in user.devices] == [TOKEN_B]
    assert user.logged_out is False
