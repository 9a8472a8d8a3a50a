"""Recall and edit through the local stack: API -> replacement jobs on the send queue -> sandbox.

Each device that was sent a message gets a replacement with the same apns-collapse-id (the phone
replaces the notification), the badge one lower where the original counted; recipients not sent yet
are never sent the original; the delivery report shows each device's replacement.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import boto3

from devstack.seed import bulk_devices, seed_users
from tests.e2e.conftest import BUNDLE, Poller, PushApp, Stack, payloads


def _seed(stack: Stack, push_app: PushApp, n: int, prefix: str) -> tuple[list[str], dict[str, str]]:
    tokens = bulk_devices(stack.sandbox, BUNDLE, n)
    ddb = boto3.client("dynamodb", endpoint_url=stack.env["AWS_ENDPOINT_OVERRIDE"], region_name="us-east-1")
    users = seed_users(
        ddb, stack.env["TABLE_NAME"], push_app.ctx.app_id, push_app.prod_cert, BUNDLE, tokens, prefix
    )
    return users, dict(zip(users, tokens, strict=True))


def _report(push_app: PushApp, message_id: str) -> list[dict[str, Any]]:
    return push_app.deliveries(message_id, limit="1000")


def test_recall_of_a_delivered_c2c_message(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    push_app.call("PUT", "/users/bob/app-state", {"state": "background", "unreadCount": 4})
    body = push_app.message(
        {"userId": "bob"}, offlinePushInfo={"title": "Chat", "ext": '{"k":1}', "sound": "ding.caf"}
    )
    push_app.call("POST", "/messages", body)
    stack.pump()
    [original] = stack.sandbox.notifications(token)
    assert original["payload"]["aps"]["badge"] == 5

    custom = {"elems": [{"type": "custom", "data": "{}"}]}  # nothing a notification could show
    refused = push_app.call("POST", f"/messages/{body['messageId']}/edit", custom)
    assert refused.status_code == 400 and "desc" in refused.data["error"]["message"]

    resp = push_app.call("POST", f"/messages/{body['messageId']}/recall")
    assert resp.status_code == 202, resp.body
    assert resp.data == {"messageId": body["messageId"], "op": "recall", "changed": True, "stopped": True}
    stack.pump()
    first, second = stack.sandbox.notifications(token)
    assert first == original
    assert (
        second["headers"]["apns-collapse-id"] == original["headers"]["apns-collapse-id"] == body["messageId"]
    )
    assert second["headers"]["apns-id"] != original["headers"]["apns-id"]
    assert second["headers"]["apns-push-type"] == "alert"
    p = second["payload"]
    assert p["aps"]["alert"] == {"title": "Chat", "body": "Alice:[消息已撤回]"}
    assert p["aps"]["badge"] == 4  # one lower than the original's
    assert "sound" not in p["aps"]
    assert p["op"] == "recall"
    assert (p["f"], p["t"], p["m"], p["ext"], p["e"]) == (
        "alice",
        "bob",
        body["messageId"],
        '{"k":1}',
        '{"k":1}',
    )
    assert push_app.call("GET", "/users/bob/app-state").data["badge"] == 4

    [row] = push_app.deliveries(body["messageId"])
    assert row["status"] == "sent"
    assert row["recall"]["status"] == "sent"
    assert row["recall"]["apnsId"] == second["headers"]["apns-id"]

    # A second recall changes nothing and sends nothing; an edit of a recalled message is refused.
    again = push_app.call("POST", f"/messages/{body['messageId']}/recall")
    assert again.status_code == 202 and again.data["changed"] is False
    assert (
        push_app.call(
            "POST", f"/messages/{body['messageId']}/edit", {"elems": [{"type": "text", "text": "x"}]}
        ).status_code
        == 409
    )
    stack.pump()
    assert len(stack.sandbox.notifications(token)) == 2
    assert push_app.call("GET", "/users/bob/app-state").data["badge"] == 4


def test_recall_of_an_unknown_message_is_404(stack: Stack, push_app: PushApp) -> None:
    resp = push_app.call("POST", "/messages/never-sent/recall")
    assert resp.status_code == 404
    assert resp.data["error"]["code"] == "NotFound"
    resp = push_app.call("POST", "/messages/never-sent/edit", {"elems": [{"type": "text", "text": "x"}]})
    assert resp.status_code == 404


def test_recall_of_a_300_member_group_message(stack: Stack, push_app: PushApp) -> None:
    users, tokens = _seed(stack, push_app, 300, "rc")
    english, banner, ignored = users[10], users[260], users[20]
    push_app.call("PATCH", f"/users/{english}/push-config", {"language": "en"})
    push_app.call("PATCH", f"/users/{banner}/push-config", {"displayStyle": "simpleBanner"})
    push_app.call("PUT", f"/users/{ignored}/app-state", {"state": "foreground"}, user=ignored)  # not pushed
    body = push_app.message(
        {"groupId": "g300", "groupName": "Dev", "members": ["alice", *users]},
        sender={"userId": "alice", "nickname": "Alice", "nameCard": "Lead"},
    )
    push_app.call("POST", "/messages", body)
    stack.pump(timeout_s=120)
    assert payloads(stack.sandbox, tokens[ignored]) == []

    resp = push_app.call("POST", f"/messages/{body['messageId']}/recall")
    assert resp.status_code == 202 and resp.data["changed"] is True
    stack.pump(timeout_s=120)
    for user in users:
        notes = stack.sandbox.notifications(tokens[user])
        if user == ignored:
            assert notes == []
            continue
        original, replacement = notes
        assert replacement["headers"]["apns-collapse-id"] == original["headers"]["apns-collapse-id"]
        assert original["payload"]["aps"]["badge"] == 4  # seeded badge 3, +1
        assert replacement["payload"]["aps"]["badge"] == 3
        assert replacement["payload"]["op"] == "recall" and "sound" not in replacement["payload"]["aps"]
        assert replacement["payload"]["g"] == "g300" and replacement["payload"]["t"] == user
    body_of = {
        u: payloads(stack.sandbox, tokens[u])[-1]["aps"]["alert"]["body"] for u in users if u != ignored
    }
    assert body_of[users[0]] == "Lead(Dev):[消息已撤回]"
    assert body_of[english] == "Lead (Dev): [Message recalled]"
    assert body_of[banner] == "[消息已撤回]"

    rows = _report(push_app, body["messageId"])
    recall = Counter(r["recall"]["status"] for r in rows if r.get("recall"))
    assert recall == Counter({"sent": 299})
    [skipped] = [r for r in rows if r["userId"] == ignored]
    assert skipped["status"] == "skipped" and skipped.get("recall") is None


def test_recall_while_the_group_is_being_sent(stack: Stack, push_app: PushApp) -> None:
    """Chunk 0 sent, chunk 1 being sent (slowly), chunk 2 queued when the recall comes: after its
    202 no original leaves, each device that got one gets its replacement after it, the rest are
    skipped `recalled` and get nothing."""
    users, tokens = _seed(stack, push_app, 600, "race")
    body = push_app.message({"groupId": "race", "groupName": "R", "members": users})
    push_app.call("POST", "/messages", body)
    assert stack.intake.poll_once() == 1  # fan-out: 3 chunks queued
    one_at_a_time = replace(stack.send_poller, batch_size=1)
    assert one_at_a_time.poll_once() == 1  # chunk 0 (or any one of them) sent whole
    first_chunk = {
        n["deviceToken"]
        for n in stack.sandbox.notifications(limit=5000)
        if n["payload"].get("m") == body["messageId"]
    }
    assert len(first_chunk) in (250, 100)

    stack.sandbox.add_fault(latencyMs=150)  # the next chunk sends slowly: ~20 requests in flight
    sending = threading.Thread(target=one_at_a_time.poll_once)
    sending.start()
    deadline = time.monotonic() + 60
    while len(_originals(stack, body["messageId"])) < len(first_chunk) + 30:
        assert time.monotonic() < deadline, "the second chunk did not start"
        time.sleep(0.05)
    resp = push_app.call("POST", f"/messages/{body['messageId']}/recall")
    assert resp.status_code == 202 and resp.data["stopped"] is True
    at_202 = _originals(stack, body["messageId"])
    sending.join(60)
    stack.sandbox.clear_faults()
    stack.pump(timeout_s=120)

    originals = _originals(stack, body["messageId"])
    assert originals == at_202  # nothing of the original arrived after the recall's 202
    assert len(first_chunk) + 30 <= len(originals) < 600  # the chunk being sent stopped part way
    for token in tokens.values():
        notes = [n for n in stack.sandbox.notifications(token) if n["payload"].get("m") == body["messageId"]]
        if token in originals:
            original, replacement = notes  # the replacement after the original
            assert "op" not in original["payload"] and replacement["payload"]["op"] == "recall"
        else:
            assert notes == []
    rows = _report(push_app, body["messageId"])
    assert Counter(r["status"] for r in rows) == Counter(
        {"sent": len(originals), "skipped": 600 - len(originals)}
    )
    assert {r["code"] for r in rows if r["status"] == "skipped"} == {"recalled"}
    assert all(r["recall"]["status"] == "sent" for r in rows if r["status"] == "sent")
    status = {r["userId"]: r["status"] for r in rows}
    mixed = [i for i in range(3) if len({status[u] for u in users[250 * i : 250 * (i + 1)]}) == 2]
    assert len(mixed) == 1, "the chunk being sent when the recall came stopped part way"


def _originals(stack: Stack, message_id: str) -> set[str]:
    return {
        n["deviceToken"]
        for n in stack.sandbox.notifications(limit=10_000)
        if n["payload"].get("m") == message_id and "op" not in n["payload"]
    }


def test_edit_replaces_what_was_sent_and_is_what_the_rest_get(stack: Stack, push_app: PushApp) -> None:
    users, tokens = _seed(stack, push_app, 300, "ed")
    body = push_app.message(
        {"groupId": "ged", "groupName": "Dev", "members": users},
        mentions={"userIds": [users[0]]},
        offlinePushInfo={"ext": "x1"},
    )
    push_app.call("POST", "/messages", body)
    assert stack.intake.poll_once() == 1
    assert replace(stack.send_poller, batch_size=1).poll_once() == 1  # one chunk sent, one still queued
    sent_first = {u for u in users if payloads(stack.sandbox, tokens[u])}
    assert len(sent_first) in (250, 50)

    edit = {"elems": [{"type": "text", "text": "lunch at 1?"}], "offlinePushInfo": {"ext": "x2"}}
    resp = push_app.call("POST", f"/messages/{body['messageId']}/edit", edit)
    assert resp.status_code == 202 and resp.data["op"] == "edit"
    stack.pump(timeout_s=120)
    for user in users:
        notes = payloads(stack.sandbox, tokens[user])
        if user in sent_first:
            original, replacement = notes
            assert replacement["op"] == "edit" and replacement["ext"] == replacement["e"] == "x2"
            assert "sound" not in replacement["aps"] and "badge" not in replacement["aps"]  # badge unchanged
            assert original["aps"]["badge"] == 4
        else:
            [replacement] = notes  # never got the original: the edited message, as a message
            assert "op" not in replacement and replacement["aps"]["badge"] == 4
            assert replacement["aps"]["sound"] == "default"
        expected = "Alice(Dev):lunch at 1?"
        assert replacement["aps"]["alert"]["body"] == ("[有人@我]" if user == users[0] else "") + expected
    rows = _report(push_app, body["messageId"])
    edits = Counter((r["edit"] or {}).get("status") for r in rows)
    assert edits == Counter({"sent": len(sent_first), None: 300 - len(sent_first)})
    assert {r["code"] for r in rows if r["userId"] not in sent_first} == {"edit1"}


def test_edit_twice_then_recall_one_to_one(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("dora")
    push_app.call("PATCH", "/users/dora/push-config", {"language": "en"})
    push_app.call("PUT", "/users/dora/app-state", {"state": "background", "unreadCount": 0})
    body = push_app.message({"userId": "dora"})
    push_app.call("POST", "/messages", body)
    stack.pump()
    for text in ("hi!", "hi!!"):
        resp = push_app.call(
            "POST", f"/messages/{body['messageId']}/edit", {"elems": [{"type": "text", "text": text}]}
        )
        assert resp.status_code == 202, resp.body
        stack.pump()
    [row] = push_app.deliveries(body["messageId"])
    assert row["edit"]["status"] == "sent" and row.get("recall") is None
    push_app.call("PUT", "/users/dora/app-state", {"state": "background", "unreadCount": 0})  # she read it
    assert push_app.call("POST", f"/messages/{body['messageId']}/recall").status_code == 202
    stack.pump()
    notes = stack.sandbox.notifications(token)
    assert [n["payload"].get("op") for n in notes] == [None, "edit", "edit", "recall"]
    assert [n["payload"]["aps"]["alert"]["body"] for n in notes] == [
        "Alice: hi",
        "Alice: hi!",
        "Alice: hi!!",
        "Alice: [Message recalled]",
    ]
    assert [n["payload"]["aps"].get("badge") for n in notes] == [1, None, None, 0]  # never below 0
    assert len({n["headers"]["apns-collapse-id"] for n in notes}) == 1
    [row] = push_app.deliveries(body["messageId"])
    assert row["recall"]["status"] == "sent" and row["edit"]["status"] == "sent"
    assert push_app.call("GET", "/users/dora/app-state").data["badge"] == 0


def test_replacements_killed_mid_group_lose_nothing(stack: Stack, push_app: PushApp, poller: Poller) -> None:
    """The replacement jobs' own ledger: a poller killed (SIGKILL) while sending a 1,000-member
    group's recall; the next one takes over after the lease and sends only what has no outcome."""
    users, tokens = _seed(stack, push_app, 1000, "rk")
    body = push_app.message({"groupId": "rk", "groupName": "K", "members": users})
    push_app.call("POST", "/messages", body)
    stack.pump(timeout_s=120)
    assert push_app.call("POST", f"/messages/{body['messageId']}/recall").status_code == 202

    poller.start()
    deadline = time.monotonic() + 60
    while len(_replacements(stack, body["messageId"])) < 50:
        assert time.monotonic() < deadline, "no replacement was sent"
        time.sleep(0.01)
    poller.kill()
    at_kill = sum(len(v) for v in _replacements(stack, body["messageId"]).values())
    assert at_kill < len(users), "every replacement was sent before the kill: nothing was tested"

    poller.start()  # takes the jobs over once their lease runs out
    deadline = time.monotonic() + 120
    while True:
        rows = _report(push_app, body["messageId"])
        if all(r["recall"]["status"] != "pending" for r in rows):
            break
        assert time.monotonic() < deadline, "replacements still pending"
        time.sleep(0.5)
    got = _replacements(stack, body["messageId"])
    assert set(got) == set(tokens.values())  # none lost
    twice = {t: notes for t, notes in got.items() if len(notes) > 1}
    for notes in twice.values():  # a copy is identical: the phone shows it once
        assert len(notes) == 2
        assert len({(n["apnsId"], n["payload"]["aps"]["badge"]) for n in notes}) == 1
    print(f"killed after {at_kill} of {len(users)} replacements; sent twice: {len(twice)}")
    assert len(twice) <= 20  # SEND_MAX_UNRECORDED per crashed invocation
    assert {n["payload"]["aps"]["badge"] for notes in got.values() for n in notes} == {3}
    assert Counter(r["recall"]["status"] for r in rows) == Counter({"sent": 1000})


def _replacements(stack: Stack, message_id: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for n in stack.sandbox.notifications(limit=100_000):
        if n["payload"].get("m") == message_id and n["payload"].get("op") == "recall":
            out.setdefault(n["deviceToken"], []).append(n)
    return out
