"""Chat semantics end to end (API.md "Version 2 additions"): mentions, conversation settings that lapse
by themselves, the foreground lease and bulk presence, through API -> SQS -> send -> sandbox.

The lapse tests wait for the wall clock to pass a setting's end (no job runs in between); what they
assert does not depend on how fast the stack is, as long as the first send comes within the margin.
"""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.conftest import PushApp, Stack, payloads

MEMBERS = ["bob", "carol", "dave"]
DEV = {"groupId": "g1", "groupName": "Dev", "members": MEMBERS}
LEAD = {"userId": "alice", "nickname": "Alice", "nameCard": "Lead"}
MARGIN_S = 10  # the first send of a lapse test must happen within this many seconds


def send(stack: Stack, app: PushApp, to: dict[str, Any], **extra: Any) -> str:
    body = app.message(to, sender=LEAD, **extra)
    resp = app.call("POST", "/messages", body)
    assert resp.status_code == 202, resp.body
    stack.pump()
    return str(body["messageId"])


def outcome(app: PushApp, message_id: str) -> dict[str, tuple[str, str | None]]:
    return {d["userId"]: (d["status"], d["reason"]) for d in app.deliveries(message_id)}


def bodies(stack: Stack, token: str) -> list[str]:
    return [p["aps"]["alert"]["body"] for p in payloads(stack.sandbox, token)]


def wait_past(epoch_ms: int) -> None:
    """Until the wall clock has passed ``epoch_ms``: the setting has lapsed for any send after this."""
    while time.time() * 1000 <= epoch_ms:
        time.sleep(0.2)


def set_conversation(app: PushApp, user: str, kind: str, cid: str, body: dict[str, Any]) -> Any:
    resp = app.call("PUT", f"/users/{user}/push-config/conversations/{kind}/{cid}", body, user=user)
    assert resp.status_code == 200, resp.body
    return resp.data


def test_mention_prefixes_in_zh_and_en(stack: Stack, push_app: PushApp) -> None:
    # Given bob reads Chinese, carol English, dave Chinese
    tokens = {u: push_app.device(u) for u in MEMBERS}
    push_app.call("PATCH", "/users/carol/push-config", {"language": "en"}, user="carol")
    # When Lead mentions bob and carol, then @all naming bob only
    send(stack, push_app, DEV, mentions={"userIds": ["bob", "carol"]})
    send(stack, push_app, DEV, mentions={"userIds": ["bob"], "all": True})
    # Then each reads the prefix in their language before the usual body
    assert bodies(stack, tokens["bob"]) == ["[有人@我]Lead(Dev):hi", "[有人@我]Lead(Dev):hi"]
    assert bodies(stack, tokens["carol"]) == ["[@Me]Lead (Dev): hi", "[@All]Lead (Dev): hi"]
    assert bodies(stack, tokens["dave"]) == ["Lead(Dev):hi", "[@所有人]Lead(Dev):hi"]


def test_mentions_are_ignored_one_to_one(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    send(stack, push_app, {"userId": "bob"}, mentions={"userIds": ["bob"], "all": True})
    assert bodies(stack, token) == ["Alice:hi"]


def test_mention_only_lets_mentions_through_and_none_does_not(stack: Stack, push_app: PushApp) -> None:
    tokens = {u: push_app.device(u) for u in MEMBERS}
    # Given bob set g1 to mentionOnly, carol to none, dave left it at all
    set_conversation(push_app, "bob", "group", "g1", {"remindType": "mentionOnly"})
    set_conversation(push_app, "carol", "group", "g1", {"remindType": "none"})
    # When a message mentions nobody, then one mentions bob and carol, then one mentions @all
    plain = send(stack, push_app, DEV)
    named = send(stack, push_app, DEV, mentions={"userIds": ["bob", "carol"]})
    everyone = send(stack, push_app, DEV, mentions={"all": True})
    # Then bob gets only the mentions, carol nothing, dave everything
    assert outcome(push_app, plain) == {
        "bob": ("skipped", "mentionOnly"),
        "carol": ("skipped", "mutedGroup"),
        "dave": ("sent", None),
    }
    assert outcome(push_app, named)["carol"] == ("skipped", "mutedGroup")
    assert outcome(push_app, everyone)["carol"] == ("skipped", "mutedGroup")
    assert bodies(stack, tokens["bob"]) == ["[有人@我]Lead(Dev):hi", "[@所有人]Lead(Dev):hi"]
    assert bodies(stack, tokens["carol"]) == []
    assert len(bodies(stack, tokens["dave"])) == 3
    # And a skipped message does not count towards the badge
    assert [p["aps"]["badge"] for p in payloads(stack.sandbox, tokens["bob"])] == [1, 2]


def test_a_timed_setting_lapses_while_the_stack_runs(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    # Given bob muted g1 until MARGIN_S seconds from now
    until = int(time.time()) + MARGIN_S
    set_conversation(push_app, "bob", "group", "g1", {"remindType": "none", "until": until})
    group = {"groupId": "g1", "groupName": "Dev", "members": ["bob"]}
    muted = send(stack, push_app, group)
    config = push_app.call("GET", "/users/bob/push-config", user="bob").data
    assert config["mutedGroups"] == ["g1"]  # a timed none is in the list while in force
    # When that time passes, with nothing run in between
    wait_past(until * 1000)
    # Then the setting is gone from every view and the next message is pushed
    assert push_app.call("GET", "/users/bob/push-config", user="bob").data["mutedGroups"] == []
    items = push_app.call("GET", "/users/bob/push-config/conversations", user="bob").data["items"]
    assert items == []
    pushed = send(stack, push_app, group)
    assert outcome(push_app, muted) == {"bob": ("skipped", "mutedGroup")}
    assert outcome(push_app, pushed) == {"bob": ("sent", None)}
    assert bodies(stack, token) == ["Lead(Dev):hi"]


def test_a_foreground_lease_lapses(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    # Given bob's app reported foreground for MARGIN_S seconds, then was killed (it never reports again)
    resp = push_app.call(
        "PUT", "/users/bob/app-state", {"state": "foreground", "leaseSeconds": MARGIN_S}, user="bob"
    )
    assert resp.status_code == 200, resp.body
    held = send(stack, push_app, {"userId": "bob"})
    # When the lease passes
    wait_past(resp.data["foregroundUntil"])
    # Then bob counts as offline and is pushed, badge counted from the foreground's 0
    lapsed = send(stack, push_app, {"userId": "bob"})
    assert outcome(push_app, held) == {"bob": ("skipped", "foreground")}
    assert outcome(push_app, lapsed) == {"bob": ("sent", None)}
    [payload] = payloads(stack.sandbox, token)
    assert payload["aps"]["badge"] == 1


def test_bulk_presence_sets_badge_bases_and_foreground(stack: Stack, push_app: PushApp) -> None:
    tokens = {u: push_app.device(u) for u in MEMBERS}
    # Given the IM server reports three users in one call
    resp = push_app.call(
        "PUT",
        "/presence",
        {
            "users": [
                {"userId": "bob", "state": "background", "unreadCount": 5},
                {"userId": "carol", "state": "background", "unreadCount": 0},
                {"userId": "dave", "state": "foreground", "leaseSeconds": 3600},
            ]
        },
    )
    assert resp.status_code == 200 and resp.data == {"updated": 3}
    # When two group messages come
    first = send(stack, push_app, DEV)
    send(stack, push_app, DEV)
    # Then the unread counts are the badge bases, and the foreground user is not pushed
    assert [p["aps"]["badge"] for p in payloads(stack.sandbox, tokens["bob"])] == [6, 7]
    assert [p["aps"]["badge"] for p in payloads(stack.sandbox, tokens["carol"])] == [1, 2]
    assert payloads(stack.sandbox, tokens["dave"]) == []
    assert outcome(push_app, first)["dave"] == ("skipped", "foreground")
    # And the IM server can say dave went background with 4 unread
    push_app.call(
        "PUT", "/presence", {"users": [{"userId": "dave", "state": "background", "unreadCount": 4}]}
    )
    send(stack, push_app, DEV)
    assert [p["aps"]["badge"] for p in payloads(stack.sandbox, tokens["dave"])] == [5]
