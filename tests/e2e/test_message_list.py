"""The message list (GET /v1/apps/{appId}/messages): the app's messages newest first, paged with
cursors that carry nothing personal, and one user's messages found from the messages' recipient
ranges (a user inside a group's range but not a member is not listed)."""

from __future__ import annotations

import base64
import re
from typing import Any

from tests.conftest import OPERATOR_KEY
from tests.e2e.conftest import PushApp, Stack

TOKEN_LIKE = re.compile(r"[0-9a-fA-F]{16,}")


def listed(push_app: PushApp, query: str = "", token: str | None = None) -> tuple[list[Any], list[str]]:
    """Every page of the list, following nextCursor; and the cursors seen."""
    items: list[Any] = []
    cursors: list[str] = []
    cursor = None
    while True:
        qs = query + (f"&cursor={cursor}" if cursor else "")
        resp = push_app.ctx.api.call(
            "GET", push_app.ctx.path(f"/messages?{qs}"), token=token or push_app.ctx.admin
        )
        assert resp.status_code == 200, resp.body
        items += resp.data["items"]
        cursor = resp.data["nextCursor"]
        if cursor is None:
            return items, cursors
        cursors.append(cursor)


def test_the_apps_messages_are_listed_newest_first_in_pages(stack: Stack, push_app: PushApp) -> None:
    # Given five messages sent one after the other, one of them to a group
    bob = push_app.device("bob")
    sent = []
    for i in range(5):
        to = {"groupId": "g1", "members": ["alice", "bob", "carol"]} if i == 2 else {"userId": "bob"}
        body = push_app.message(to)
        assert push_app.call("POST", "/messages", body).status_code == 202
        stack.pump()
        sent.append(body)
    # When the list is read two at a time (by the operator key too)
    items, cursors = listed(push_app, "limit=2")
    operator_items, _ = listed(push_app, "limit=50", token=OPERATOR_KEY)
    # Then every message is there once, newest first, with its summary and target
    assert [i["messageId"] for i in items] == [b["messageId"] for b in reversed(sent)]
    assert operator_items == items
    assert len(cursors) >= 2
    group = items[2]
    assert group["to"] == {"groupId": "g1"} and group["recipientCount"] == 2
    assert group["summary"]["sent"] == 1 and group["summary"]["skipped"] == {"noDevice": 1}
    assert items[0]["to"] == {"userId": "bob"} and items[0]["summary"]["sent"] == 1
    assert items[0]["senderId"] == "alice" and items[0]["kind"] == "message"
    # And the cursors name no device token (nor the user)
    for cursor in cursors:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        assert not TOKEN_LIKE.search(decoded) and bob not in decoded and "bob" not in decoded


def test_a_users_messages_are_found_from_the_recipient_ranges(stack: Stack, push_app: PushApp) -> None:
    # Given a group of 600 (three chunks) with bob in the last one, a group whose recipient range
    # holds bob but not bob himself, a message to bob and one to someone else
    push_app.device("bob")
    big = [f"a{i:04d}" for i in range(600)] + ["bob"]
    to_bob = push_app.message({"userId": "bob"})
    in_group = push_app.message({"groupId": "big", "members": big})
    not_member = push_app.message({"groupId": "near", "members": ["a0001", "bz"]})
    to_other = push_app.message({"userId": "carol"})
    for body in (to_bob, in_group, not_member, to_other):
        assert push_app.call("POST", "/messages", body).status_code == 202
        stack.pump(timeout_s=60)
    # When bob's messages are listed, one per page
    items, _ = listed(push_app, "userId=bob&limit=1")
    # Then exactly the two bob received, newest first, each with bob's own outcome
    assert [i["messageId"] for i in items] == [in_group["messageId"], to_bob["messageId"]]
    assert items[0]["recipientCount"] == 601
    assert items[0]["summary"] == {
        "sent": 1,
        "pending": 0,
        "skipped": {},
        "failed": {},
        "delivered": 0,
        "opened": 0,
    }
    # And a user who received nothing has an empty list
    assert listed(push_app, "userId=nobody-at-all")[0] == []


def test_a_cursor_that_was_not_answered_is_refused(stack: Stack, push_app: PushApp) -> None:
    for cursor in ("not-a-cursor", base64.urlsafe_b64encode(b'{"d":"2026-01-01","k":"x"}').decode()):
        resp = push_app.call("GET", f"/messages?cursor={cursor}")
        assert resp.status_code == 400, resp.body
        assert "nextCursor" in resp.data["error"]["message"]
    assert push_app.call("GET", "/messages?limit=0").status_code == 400


def test_a_user_token_cannot_list_messages(stack: Stack, push_app: PushApp) -> None:
    resp = push_app.call("GET", "/messages", user="bob")
    assert resp.status_code == 403, resp.body
