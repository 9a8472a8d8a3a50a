"""A message goes API -> intake queue -> fan-out -> send queue -> send -> sandbox, and is reported."""

from __future__ import annotations

from tests.e2e.conftest import PushApp, Stack, payloads


def test_one_to_one_message_reaches_the_phone(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    push_app.call("PUT", "/users/bob/app-state", {"state": "background", "unreadCount": 4})
    body = push_app.message(
        {"userId": "bob"}, offlinePushInfo={"title": "Chat", "ext": '{"k":1}', "sound": "ding.caf"}
    )
    resp = push_app.call("POST", "/messages", body)
    assert resp.status_code == 202
    assert resp.data == {"messageId": body["messageId"]}
    stack.pump()

    [payload] = payloads(stack.sandbox, token)
    assert payload["aps"]["alert"] == {"title": "Chat", "body": "Alice:hi"}
    assert payload["aps"]["badge"] == 5
    assert payload["aps"]["sound"] == "ding.caf"
    assert payload["aps"]["thread-id"] == "c2c_alice"
    assert payload["ext"] == payload["e"] == '{"k":1}'
    assert (payload["f"], payload["t"], payload["m"]) == ("alice", "bob", body["messageId"])
    [delivery] = push_app.deliveries(body["messageId"])
    assert delivery["status"] == "sent" and delivery["deviceToken"] == token and delivery["apnsId"]
    [note] = stack.sandbox.notifications(token)
    assert note["headers"]["apns-topic"] == "com.example.chat"
    assert note["headers"]["apns-push-type"] == "alert"


def test_group_message_with_inline_members_skips_the_sender(stack: Stack, push_app: PushApp) -> None:
    tokens = {u: push_app.device(u) for u in ("alice", "bob", "carol")}
    body = push_app.message(
        {"groupId": "g1", "groupName": "Dev", "members": ["alice", "bob", "carol"]},
        sender={"userId": "alice", "nickname": "Alice", "nameCard": "Lead"},
    )
    push_app.call("POST", "/messages", body)
    stack.pump()
    assert payloads(stack.sandbox, tokens["alice"]) == []
    for user in ("bob", "carol"):
        [p] = payloads(stack.sandbox, tokens[user])
        assert p["aps"]["alert"]["body"] == "Lead(Dev):hi"
        assert p["aps"]["thread-id"] == "group_g1"
        assert p["g"] == "g1" and p["t"] == user
    assert sorted(d["userId"] for d in push_app.deliveries(body["messageId"])) == ["bob", "carol"]


def test_stored_group_of_250_in_three_chunks(stack: Stack, push_app: PushApp) -> None:
    members = [f"u{i:03d}" for i in range(250)]
    for start in range(0, 250, 100):
        resp = push_app.call(
            "PUT", "/groups/big/members", {"add": [{"userId": u} for u in members[start : start + 100]]}
        )
        assert resp.status_code == 204
    push_app.call("PUT", "/groups/big/members", {"add": [{"userId": "alice", "nameCard": "Boss"}]})
    tokens = {u: push_app.device(u) for u in members[::50]}
    body = push_app.message({"groupId": "big", "groupName": "All"})
    push_app.call("POST", "/messages", body)
    stack.pump()
    for token in tokens.values():
        [p] = payloads(stack.sandbox, token)
        assert p["aps"]["alert"]["body"] == "Boss(All):hi"  # the name card came from the stored membership
    report = push_app.call("GET", f"/messages/{body['messageId']}/deliveries?limit=1000").data
    assert report["recipientCount"] == 250
    statuses = {}
    for d in report["items"]:
        statuses[d["userId"]] = (d["status"], d["reason"])
    assert len(statuses) == 250
    assert all(statuses[u] == ("sent", None) for u in tokens)
    assert statuses["u001"] == ("skipped", "noDevice")


def test_badge_counts_up_and_ignore_badge_does_not_count(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    push_app.call("PUT", "/users/bob/app-state", {"state": "background", "unreadCount": 1})
    for extra in ({}, {"offlinePushInfo": {"ignoreBadge": True}}, {}):
        push_app.call("POST", "/messages", push_app.message({"userId": "bob"}, **extra))
        stack.pump()
    badges = [p["aps"].get("badge") for p in payloads(stack.sandbox, token)]
    assert badges == [2, None, 3]


def test_deliveries_filter_by_user_answers_why(stack: Stack, push_app: PushApp) -> None:
    push_app.device("bob")
    push_app.call("PATCH", "/users/carol/push-config", {"openPush": 2}, user="carol")
    push_app.device("carol")
    body = push_app.message({"groupId": "g2", "members": ["bob", "carol"]})
    push_app.call("POST", "/messages", body)
    stack.pump()
    [carol] = push_app.deliveries(body["messageId"], userId="carol")
    assert (carol["status"], carol["reason"]) == ("skipped", "openPushOff")


def test_unknown_message_deliveries_is_404(push_app: PushApp) -> None:
    resp = push_app.call("GET", "/messages/nope/deliveries")
    assert resp.status_code == 404
    assert "unknown" in resp.data["error"]["message"]
