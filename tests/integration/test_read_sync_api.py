"""Read sync, the API: a read sets the stored badge (202 {badge}), validates its body by field, opens
one read window per burst in the user's state item; presence may carry an online user's unread count."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib import deps
from tests.conftest import AppContext


def _read(app_ctx: AppContext, user: str, body: dict[str, Any], token: str | None = None) -> Any:
    return app_ctx.api.call(
        "POST", app_ctx.path(f"/users/{user}/read"), body, token=token or app_ctx.token(user)
    )


def _badge(app_ctx: AppContext, user: str) -> int:
    resp = app_ctx.api.call("GET", app_ctx.path(f"/users/{user}/app-state"), token=app_ctx.admin)
    assert resp.status_code == 200, resp.body
    return int(resp.data["badge"])


def _user_item(app_ctx: AppContext, user: str) -> dict[str, Any]:
    svc = deps.services()
    key = {"pk": {"S": f"U#{app_ctx.app_id}#{user}"}, "sk": {"S": "U"}}  # the folded user item
    item = svc.read_marks.client.get_item(TableName=svc.settings.table_name, Key=key, ConsistentRead=True)
    return dict(item.get("Item") or {})


def test_a_read_makes_the_unread_count_the_stored_badge(app_ctx: AppContext) -> None:
    # Given bob with a badge of 7
    app_ctx.api.call(
        "PUT",
        app_ctx.path("/users/bob/app-state"),
        {"state": "background", "unreadCount": 7},
        token=app_ctx.token("bob"),
    )
    # When he reads on the desktop, leaving 2 unread
    resp = _read(app_ctx, "bob", {"unreadCount": 2, "conversation": {"kind": "group", "id": "g1"}})
    # Then 202 with the new badge, and the stored badge is 2
    assert resp.status_code == 202, resp.body
    assert resp.data == {"badge": 2}
    assert _badge(app_ctx, "bob") == 2


def test_an_admin_may_report_a_users_read(app_ctx: AppContext) -> None:
    resp = _read(app_ctx, "carol", {"unreadCount": 0}, token=app_ctx.admin)
    assert resp.status_code == 202, resp.body
    assert _badge(app_ctx, "carol") == 0


def test_a_user_cannot_report_another_users_read(app_ctx: AppContext) -> None:
    resp = _read(app_ctx, "bob", {"unreadCount": 0}, token=app_ctx.token("mallory"))
    assert resp.status_code == 403, resp.body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "unreadCount"),
        ({"unreadCount": -1}, "unreadCount"),
        ({"unreadCount": 1, "conversation": {"kind": "channel", "id": "x"}}, "conversation.kind"),
        ({"unreadCount": 1, "conversation": {"kind": "c2c"}}, "conversation.id"),
        ({"unreadCount": 1, "readUpTo": "has space"}, "readUpTo"),
        ({"unreadCount": 1, "extra": True}, "extra"),
    ],
)
def test_a_bad_read_is_a_400_naming_the_field(app_ctx: AppContext, body: dict[str, Any], field: str) -> None:
    resp = _read(app_ctx, "bob", body)
    assert resp.status_code == 400, resp.body
    assert field in resp.body.decode()


def test_a_burst_of_reads_opens_one_window_that_names_each_conversation(app_ctx: AppContext) -> None:
    # Given an app that clears read conversations
    app_ctx.api.call("PATCH", app_ctx.path("/settings"), {"readSync": "badgeAndClear"}, token=app_ctx.admin)
    # When bob reads three conversations in a row
    for n, conv in ((5, "g1"), (3, "g2"), (1, "g3")):
        resp = _read(app_ctx, "bob", {"unreadCount": n, "conversation": {"kind": "group", "id": conv}})
        assert resp.status_code == 202, resp.body
    # Then his user item holds one window (opened by the first read) naming all three, and the badge
    item = _user_item(app_ctx, "bob")
    assert "readHeld" in item
    assert [c["M"]["id"]["S"] for c in item["readConvs"]["L"]] == ["g1", "g2", "g3"]
    assert item["badge"] == {"N": "1"}


def test_with_read_sync_off_a_read_changes_only_the_stored_badge(app_ctx: AppContext) -> None:
    app_ctx.api.call("PATCH", app_ctx.path("/settings"), {"readSync": "off"}, token=app_ctx.admin)
    resp = _read(app_ctx, "bob", {"unreadCount": 4, "conversation": {"kind": "c2c", "id": "alice"}})
    assert resp.status_code == 202, resp.body
    item = _user_item(app_ctx, "bob")
    assert item["badge"] == {"N": "4"}
    assert "readHeld" not in item and "readConvs" not in item


def test_presence_may_give_an_online_users_unread_count(app_ctx: AppContext) -> None:
    # When the IM server reports bob online with 3 unread, and dave online without a count
    resp = app_ctx.api.call(
        "PUT",
        app_ctx.path("/presence"),
        {
            "users": [
                {"userId": "bob", "state": "foreground", "unreadCount": 3},
                {"userId": "dave", "state": "foreground"},
            ]
        },
        token=app_ctx.admin,
    )
    # Then bob's badge base is 3, dave's 0, and no read window is opened (no read-sync push)
    assert resp.status_code == 200, resp.body
    assert _badge(app_ctx, "bob") == 3
    assert _badge(app_ctx, "dave") == 0
    assert "readHeld" not in _user_item(app_ctx, "bob")


def test_the_apps_own_foreground_report_still_refuses_an_unread_count(app_ctx: AppContext) -> None:
    resp = app_ctx.api.call(
        "PUT",
        app_ctx.path("/users/bob/app-state"),
        {"state": "foreground", "unreadCount": 3},
        token=app_ctx.token("bob"),
    )
    assert resp.status_code == 400, resp.body
