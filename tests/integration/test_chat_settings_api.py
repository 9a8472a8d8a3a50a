"""Conversation settings, the mute lists as their views, and presence, through the API, stored in the
emulator's DynamoDB (API.md "Version 2 additions": Conversation settings, Presence)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import AppContext

DAY = 86_400


def call(app_ctx: AppContext, method: str, suffix: str, body: Any = None, user: str = "bob") -> Any:
    return app_ctx.api.call(method, app_ctx.path(suffix), body, token=app_ctx.token(user))


def conv(app_ctx: AppContext, kind: str, cid: str, body: Any = None, method: str = "PUT") -> Any:
    return call(app_ctx, method, f"/users/bob/push-config/conversations/{kind}/{cid}", body)


def listed(app_ctx: AppContext) -> list[dict[str, Any]]:
    resp = call(app_ctx, "GET", "/users/bob/push-config/conversations")
    assert resp.status_code == 200, resp.body
    return list(resp.data["items"])


def config(app_ctx: AppContext) -> dict[str, Any]:
    return dict(call(app_ctx, "GET", "/users/bob/push-config").data)


# ---- conversation settings ----------------------------------------------------------------------


def test_set_read_list_and_clear_conversation_settings(app_ctx: AppContext) -> None:
    until = int(time.time()) + 8 * 3600
    # Given bob sets a group to mentionOnly for 8 hours and mutes carol
    resp = conv(app_ctx, "group", "@TGS-2J4SZEAEL", {"remindType": "mentionOnly", "until": until})
    assert resp.status_code == 200, resp.body
    assert resp.data == {
        "kind": "group",
        "conversationId": "@TGS-2J4SZEAEL",
        "remindType": "mentionOnly",
        "until": until,
    }
    assert conv(app_ctx, "c2c", "carol", {"remindType": "none"}).status_code == 200
    # Then both are listed, and each can be read
    assert listed(app_ctx) == [
        {"kind": "c2c", "conversationId": "carol", "remindType": "none", "until": None},
        {"kind": "group", "conversationId": "@TGS-2J4SZEAEL", "remindType": "mentionOnly", "until": until},
    ]
    got = conv(app_ctx, "group", "@TGS-2J4SZEAEL", method="GET").data
    assert got["remindType"] == "mentionOnly"
    # An unset conversation reads as `all`
    assert conv(app_ctx, "group", "g9", method="GET").data == {
        "kind": "group",
        "conversationId": "g9",
        "remindType": "all",
        "until": None,
    }
    # And the c2c `none` is the mute list's view
    assert config(app_ctx)["mutedUsers"] == ["carol"]
    # When `all` is set, or the setting deleted, Then it is gone
    cleared = conv(app_ctx, "group", "@TGS-2J4SZEAEL", {"remindType": "all"})
    assert cleared.status_code == 200 and cleared.data["remindType"] == "all"
    assert conv(app_ctx, "c2c", "carol", method="DELETE").status_code == 204
    assert conv(app_ctx, "c2c", "carol", method="DELETE").status_code == 204  # idempotent
    assert listed(app_ctx) == []
    assert config(app_ctx)["mutedUsers"] == []


def test_mute_lists_are_views_of_none(app_ctx: AppContext) -> None:
    until = int(time.time()) + 3600
    # Given a timed `none`, a permanent one through the old path, and a mentionOnly
    conv(app_ctx, "group", "g1", {"remindType": "none", "until": until})
    assert call(app_ctx, "PUT", "/users/bob/push-config/muted-groups/g2").status_code == 200
    conv(app_ctx, "group", "g3", {"remindType": "mentionOnly"})
    # Then mutedGroups lists the `none` settings in force, the timed one included
    assert config(app_ctx)["mutedGroups"] == ["g1", "g2"]
    # And the old path created a permanent `none` setting
    assert {"kind": "group", "conversationId": "g2", "remindType": "none", "until": None} in listed(app_ctx)
    # Unmuting through the old path leaves a mentionOnly alone
    assert call(app_ctx, "DELETE", "/users/bob/push-config/muted-groups/g3").data["mutedGroups"] == [
        "g1",
        "g2",
    ]
    assert conv(app_ctx, "group", "g3", method="GET").data["remindType"] == "mentionOnly"
    # PATCH replaces the permanent `none` settings: g2 goes, g4 comes; timed g1 and g3 stay
    resp = call(app_ctx, "PATCH", "/users/bob/push-config", {"mutedGroups": ["g4", "g4"]})
    assert resp.status_code == 200, resp.body
    assert resp.data["mutedGroups"] == ["g1", "g4"]
    kinds = {(s["conversationId"], s["remindType"], s["until"]) for s in listed(app_ctx)}
    assert kinds == {("g1", "none", until), ("g3", "mentionOnly", None), ("g4", "none", None)}


def test_mutes_stored_the_old_way_still_count(app_ctx: AppContext) -> None:
    """Before conversation settings, mutes were string sets on the user item."""
    from chalicelib import deps

    repo = deps.services().user_repo
    repo.write_config(app_ctx.app_id, "bob", {"mutedGroups": ["old-g"], "mutedUsers": ["old-u"]})
    # Then they show as permanent `none`
    assert (config(app_ctx)["mutedGroups"], config(app_ctx)["mutedUsers"]) == (["old-g"], ["old-u"])
    assert conv(app_ctx, "c2c", "old-u", method="GET").data["remindType"] == "none"
    # And unmuting or resetting removes them for good
    call(app_ctx, "DELETE", "/users/bob/push-config/muted-users/old-u")
    conv(app_ctx, "group", "old-g", {"remindType": "mentionOnly"})
    assert (config(app_ctx)["mutedGroups"], config(app_ctx)["mutedUsers"]) == ([], [])
    assert conv(app_ctx, "group", "old-g", method="GET").data["remindType"] == "mentionOnly"


@pytest.mark.parametrize(
    ("kind", "body", "field", "fragment"),
    [
        ("group", {"remindType": "mute"}, "remindType", "'all', 'mentionOnly' or 'none'"),
        ("group", {}, "remindType", "required"),
        ("group", {"remindType": "none", "until": "tomorrow"}, "until", "integer"),
        ("group", {"remindType": "none", "until": 1.5}, "until", "integer"),
        ("group", {"remindType": "all", "until": 4102444800}, "(body)", "no meaning with remindType 'all'"),
        ("group", {"remindType": "none", "extra": 1}, "extra", "unknown field"),
    ],
    ids=["unknown-remind-type", "missing", "until-string", "until-float", "until-with-all", "unknown-field"],
)
def test_conversation_setting_bad_body(
    app_ctx: AppContext, kind: str, body: dict[str, Any], field: str, fragment: str
) -> None:
    resp = conv(app_ctx, kind, "g1", body)
    assert resp.status_code == 400, resp.body
    error = resp.data["error"]
    assert error["details"]["errors"][0]["field"] == field
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("until", "fragment"),
    [
        (lambda now: now - 60, "is not in the future"),
        (lambda now: now, "is not in the future"),
        (lambda now: now + 367 * DAY, "more than 366 days ahead"),
        (lambda now: (now + 3600) * 1000, "looks like milliseconds"),
    ],
    ids=["past", "now", "too-far", "milliseconds"],
)
def test_until_must_be_in_the_next_366_days(app_ctx: AppContext, until: Any, fragment: str) -> None:
    resp = conv(app_ctx, "group", "g1", {"remindType": "none", "until": until(int(time.time()))})
    assert resp.status_code == 400, resp.body
    assert fragment in resp.data["error"]["message"]
    assert listed(app_ctx) == []  # nothing was written
    ok = conv(app_ctx, "group", "g1", {"remindType": "none", "until": int(time.time()) + 365 * DAY})
    assert ok.status_code == 200, ok.body


def test_bad_kind_is_a_400_that_names_the_kinds(app_ctx: AppContext) -> None:
    for method in ("GET", "PUT", "DELETE"):
        resp = conv(app_ctx, "channel", "g1", {"remindType": "none"}, method=method)
        assert resp.status_code == 400, resp.body
        assert "'group'" in resp.data["error"]["message"] and "'c2c'" in resp.data["error"]["message"]


def test_another_user_cannot_read_or_change_bobs_settings(app_ctx: AppContext) -> None:
    path = "/users/bob/push-config/conversations/group/g1"
    assert call(app_ctx, "PUT", path, {"remindType": "none"}, user="mallory").status_code == 403
    assert call(app_ctx, "GET", "/users/bob/push-config/conversations", user="mallory").status_code == 403


# ---- presence -----------------------------------------------------------------------------------


def state(app_ctx: AppContext, body: dict[str, Any]) -> Any:
    return call(app_ctx, "PUT", "/users/bob/app-state", body)


def test_foreground_answers_its_lease(app_ctx: AppContext) -> None:
    before = int(time.time() * 1000)
    resp = state(app_ctx, {"state": "foreground", "leaseSeconds": 60})
    assert resp.status_code == 200, resp.body
    after = int(time.time() * 1000)
    assert resp.data["state"] == "foreground" and resp.data["badge"] == 0
    assert before + 60_000 <= resp.data["foregroundUntil"] <= after + 60_000
    # the default lease is FOREGROUND_LEASE_DEFAULT_S (300 s unless configured)
    resp = state(app_ctx, {"state": "foreground"})
    assert resp.data["foregroundUntil"] - resp.data["updatedAt"] == 300_000
    # background has no lease
    resp = state(app_ctx, {"state": "background", "unreadCount": 3})
    assert resp.data["foregroundUntil"] is None and resp.data["badge"] == 3


@pytest.mark.parametrize(
    "body",
    [
        {"state": "foreground", "leaseSeconds": 9},
        {"state": "foreground", "leaseSeconds": 86_401},
        {"state": "foreground", "leaseSeconds": "60"},
        {"state": "background", "unreadCount": 1, "leaseSeconds": 60},
    ],
    ids=["too-short", "too-long", "string", "with-background"],
)
def test_lease_bad_input(app_ctx: AppContext, body: dict[str, Any]) -> None:
    resp = state(app_ctx, body)
    assert resp.status_code == 400, resp.body
    assert "leaseSeconds" in resp.data["error"]["message"]


def presence(app_ctx: AppContext, users: list[dict[str, Any]], token: str | None = None) -> Any:
    return app_ctx.api.call("PUT", app_ctx.path("/presence"), {"users": users}, token=token or app_ctx.admin)


def test_bulk_presence_writes_each_users_state(app_ctx: AppContext) -> None:
    resp = presence(
        app_ctx,
        [
            {"userId": "bob", "state": "background", "unreadCount": 5},
            {"userId": "carol", "state": "foreground", "leaseSeconds": 30},
            {"userId": "dave", "state": "foreground"},
        ],
    )
    assert resp.status_code == 200, resp.body
    assert resp.data == {"updated": 3}
    from chalicelib import deps

    repo = deps.services().user_repo
    users = repo.batch_get(app_ctx.app_id, ["bob", "carol", "dave"])
    assert (users["bob"].state.state, users["bob"].state.badge) == ("background", 5)
    carol = users["carol"].state
    assert carol.state == "foreground" and carol.foreground_until == (carol.updated_at or 0) + 30_000
    dave = users["dave"].state
    assert dave.foreground_until == (dave.updated_at or 0) + 300_000


@pytest.mark.parametrize(
    ("users", "fragment"),
    [
        ([], "at least 1 item"),
        ([{"userId": f"u{i}", "state": "foreground"} for i in range(501)], "at most 500 items"),
        (
            [{"userId": "bob", "state": "foreground"}, {"userId": "bob", "state": "foreground"}],
            "repeats userId 'bob'",
        ),
        ([{"userId": "bob", "state": "background"}], "needs unreadCount"),
        ([{"userId": "a b", "state": "foreground"}], "users.0.userId"),
        ([{"userId": "bob", "state": "foreground", "leaseSeconds": 5}], "leaseSeconds"),
    ],
    ids=["empty", "501", "duplicate", "background-without-count", "bad-user-id", "short-lease"],
)
def test_bulk_presence_bad_input(app_ctx: AppContext, users: list[dict[str, Any]], fragment: str) -> None:
    resp = presence(app_ctx, users)
    assert resp.status_code == 400, resp.body
    assert fragment in resp.data["error"]["message"]


def test_bulk_presence_is_for_the_im_server(app_ctx: AppContext) -> None:
    users = [{"userId": "bob", "state": "foreground"}]
    assert presence(app_ctx, users, token=app_ctx.token("bob")).status_code == 403
