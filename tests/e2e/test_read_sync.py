"""Read sync through the stack: API -> read window -> delayed job on the send queue -> send -> sandbox.

A burst of reads makes one badge-only push with the last count; a foreground user gets none;
badgeAndClear adds a background push with the right headers; off changes only the stored badge; the
next message's badge counts from the read."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.e2e.conftest import PushApp, Stack, payloads

READ = "/users/bob/read"


def _read(push_app: PushApp, unread: int, conversation: str | None = None, up_to: str | None = None) -> None:
    body: dict[str, Any] = {"unreadCount": unread}
    if conversation:
        body["conversation"] = {"kind": "group", "id": conversation}
    if up_to:
        body["readUpTo"] = up_to
    resp = push_app.call("POST", READ, body, user="bob")
    assert resp.status_code == 202, resp.body
    assert resp.data == {"badge": unread}


def _settings(push_app: PushApp, **values: Any) -> None:
    resp = push_app.call("PATCH", "/settings", values)
    assert resp.status_code == 200, resp.body


def _badge(push_app: PushApp) -> int:
    return int(push_app.call("GET", "/users/bob/app-state").data["badge"])


def test_a_burst_of_reads_makes_one_badge_only_push_with_the_last_count(
    stack: Stack, push_app: PushApp
) -> None:
    # Given bob's phone in the background with 9 unread
    phone = push_app.device("bob")
    push_app.call("PUT", "/users/bob/app-state", {"state": "background", "unreadCount": 9})
    # When he reads four conversations on the desktop in quick succession
    for unread in (7, 4, 2, 1):
        _read(push_app, unread, "g1")
    stack.pump()
    # Then the phone gets one push: the badge 1, nothing shown or played, at priority 5
    [note] = stack.sandbox.notifications(phone)
    assert note["payload"] == {"aps": {"badge": 1}, "op": "badge"}
    assert note["headers"]["apns-push-type"] == "alert"
    assert note["headers"]["apns-priority"] == "5"
    assert note["headers"]["apns-expiration"] == "0"  # never stored in place of a message's alert
    assert _badge(push_app) == 1


def test_a_user_in_the_foreground_gets_no_read_sync_push(stack: Stack, push_app: PushApp) -> None:
    phone = push_app.device("bob")
    push_app.call("PUT", "/users/bob/app-state", {"state": "foreground"})
    _read(push_app, 3)
    stack.pump()
    assert payloads(stack.sandbox, phone) == []
    assert _badge(push_app) == 3


@pytest.mark.parametrize("how", ["logged out", "openPush off"])
def test_a_user_logged_out_or_with_push_off_gets_none(stack: Stack, push_app: PushApp, how: str) -> None:
    phone = push_app.device("bob")
    if how == "logged out":
        push_app.call("DELETE", "/users/bob/devices")
    else:
        push_app.call("PATCH", "/users/bob/push-config", {"openPush": False})
    _read(push_app, 2)
    stack.pump()
    assert payloads(stack.sandbox, phone) == []


def test_badge_and_clear_adds_a_background_push_naming_the_conversations(
    stack: Stack, push_app: PushApp
) -> None:
    # Given an app that clears read conversations, and bob's two phones
    _settings(push_app, readSync="badgeAndClear")
    phones = [push_app.device("bob"), push_app.device("bob", "development")]
    # When he reads two groups
    _read(push_app, 5, "g1", "m-10")
    _read(push_app, 2, "g2", "m-20")
    stack.pump()
    # Then each phone gets the badge, and a background push (priority 5) naming both, g2 last
    for phone in phones:
        badge, clear = stack.sandbox.notifications(phone)
        assert badge["payload"] == {"aps": {"badge": 2}, "op": "badge"}
        assert clear["headers"]["apns-push-type"] == "background"
        assert clear["headers"]["apns-priority"] == "5"
        assert clear["payload"] == {
            "aps": {"content-available": 1},
            "op": "read",
            "conversation": {"kind": "group", "id": "g2"},
            "readUpTo": "m-20",
            "conversations": [
                {"kind": "group", "id": "g1", "readUpTo": "m-10"},
                {"kind": "group", "id": "g2", "readUpTo": "m-20"},
            ],
        }


def test_with_read_sync_off_only_the_stored_badge_changes(stack: Stack, push_app: PushApp) -> None:
    _settings(push_app, readSync="off")
    phone = push_app.device("bob")
    push_app.call("PUT", "/users/bob/app-state", {"state": "background", "unreadCount": 6})
    _read(push_app, 1, "g1")
    stack.pump()
    assert payloads(stack.sandbox, phone) == []
    assert _badge(push_app) == 1


def test_the_next_messages_badge_counts_from_the_read(stack: Stack, push_app: PushApp) -> None:
    # Given bob had 5 unread and read all but one on the desktop
    phone = push_app.device("bob")
    push_app.call("PUT", "/users/bob/app-state", {"state": "background", "unreadCount": 5})
    _read(push_app, 1)
    stack.pump()
    # When alice writes to him
    push_app.call("POST", "/messages", push_app.message({"userId": "bob"}))
    stack.pump()
    # Then the message's badge is 2
    sync, message = payloads(stack.sandbox, phone)
    assert sync["aps"] == {"badge": 1}
    assert message["aps"]["badge"] == 2


def test_a_state_report_after_the_read_closes_the_window_without_a_push(
    stack: Stack, push_app: PushApp
) -> None:
    phone = push_app.device("bob")
    _read(push_app, 4)
    push_app.call("PUT", "/users/bob/app-state", {"state": "background", "unreadCount": 4})
    stack.pump()
    assert payloads(stack.sandbox, phone) == []
    assert _badge(push_app) == 4


def test_a_continuous_stream_of_reads_still_updates_the_phone_and_ends_on_the_last_count(
    stack: Stack, push_app: PushApp
) -> None:
    # Given bob reading steadily on the desktop for about five seconds (a read every ~0.6 s)
    phone = push_app.device("bob")
    counts = list(range(16, 0, -2))
    for unread in counts:
        _read(push_app, unread)
        time.sleep(0.6)
        stack.send_poller.poll_once()  # the send function runs meanwhile, as on Lambda
    stack.pump()
    # Then the phone was not left stale until the stream ended: more than one push, fewer than reads,
    # the badge never going up again, and the last one the final count
    badges = [p["aps"]["badge"] for p in payloads(stack.sandbox, phone)]
    assert 2 <= len(badges) < len(counts)
    assert badges == sorted(badges, reverse=True)
    assert badges[-1] == counts[-1]
