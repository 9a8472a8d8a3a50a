"""The delivery report of the v2 ledger, through the API: every recipient once, pages that never
repeat a row, cursors with nothing personal in them, a summary that matches the items, and one
user's deliveries from one chunk; plus intake records for apps that do not exist."""

from __future__ import annotations

import base64
import json
import re
from collections import Counter
from typing import Any

import boto3

from devstack.seed import bulk_devices, seed_users
from tests.e2e.conftest import BUNDLE, PushApp, Stack

TOKEN_LIKE = re.compile(r"[0-9a-fA-F]{16,}")


def all_pages(push_app: PushApp, message_id: str, limit: int, **query: str) -> tuple[list[Any], list[str]]:
    rows: list[Any] = []
    cursors: list[str] = []
    cursor = None
    while True:
        qs = "&".join(
            [f"limit={limit}", *(f"{k}={v}" for k, v in query.items())]
            + ([f"cursor={cursor}"] if cursor else [])
        )
        resp = push_app.call("GET", f"/messages/{message_id}/deliveries?{qs}")
        assert resp.status_code == 200, resp.body
        rows += resp.data["items"]
        cursor = resp.data["nextCursor"]
        if cursor is None:
            return rows, cursors
        cursors.append(cursor)


def summary_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
    status = Counter(r["status"] for r in rows)
    return {
        "sent": status["sent"],
        "pending": status["pending"],
        "skipped": dict(Counter(r["code"] for r in rows if r["status"] == "skipped")),
        "failed": dict(Counter(r["code"] for r in rows if r["status"] == "failed")),
        "delivered": sum(1 for r in rows if r.get("deliveredAt") is not None),
        "opened": sum(1 for r in rows if r.get("openedAt") is not None),
    }


def test_report_pages_never_repeat_and_the_summary_matches(stack: Stack, push_app: PushApp) -> None:
    tokens = bulk_devices(stack.sandbox, BUNDLE, 600)
    ddb = boto3.client("dynamodb", endpoint_url=stack.env["AWS_ENDPOINT_OVERRIDE"], region_name="us-east-1")
    users = seed_users(
        ddb, stack.env["TABLE_NAME"], push_app.ctx.app_id, push_app.prod_cert, BUNDLE, tokens, "rep"
    )
    online = users[::3]
    for u in online[:20]:
        push_app.call("PUT", f"/users/{u}/app-state", {"state": "foreground"}, user=u)
    second = push_app.device(users[1])  # one recipient with two devices
    stack.sandbox.uninstall(tokens[2])  # one device gone: 410
    members = [*users, "nobody-1", "nobody-2"]  # two without any device
    body = push_app.message({"groupId": "report", "groupName": "R", "members": members})
    push_app.call("POST", "/messages", body)
    stack.pump(timeout_s=120)

    rows, cursors = all_pages(push_app, body["messageId"], limit=37)
    keys = [(r["userId"], r["deviceToken"]) for r in rows]
    assert len(keys) == len(set(keys)) == len(members) + 1
    assert {r["userId"] for r in rows} == set(members)
    for cursor in cursors:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        assert not TOKEN_LIKE.search(decoded) and "rep" not in decoded
    full = push_app.call("GET", f"/messages/{body['messageId']}/deliveries?limit=1").data
    assert full["summary"] == summary_of(rows)
    assert full["summary"]["skipped"] == {"foreground": 20, "noDevice": 2}
    assert full["summary"]["failed"] == {"Unregistered": 1}
    assert full["recipientCount"] == len(members)

    mine = push_app.deliveries(body["messageId"], userId=users[1])
    assert sorted(d["deviceToken"] for d in mine) == sorted([tokens[1], second])
    assert all(d["status"] == "sent" and d["apnsId"] for d in mine)
    assert push_app.deliveries(body["messageId"], userId="zz-not-a-member") == []


def test_a_report_while_chunks_are_in_flight_lists_each_recipient_once(
    stack: Stack, push_app: PushApp
) -> None:
    tokens = bulk_devices(stack.sandbox, BUNDLE, 300)
    ddb = boto3.client("dynamodb", endpoint_url=stack.env["AWS_ENDPOINT_OVERRIDE"], region_name="us-east-1")
    users = seed_users(
        ddb, stack.env["TABLE_NAME"], push_app.ctx.app_id, push_app.prod_cert, BUNDLE, tokens, "fly"
    )
    stack.sandbox.add_fault(status=503, reason="ServiceUnavailable", count=100)
    body = push_app.message({"groupId": "fly", "groupName": "F", "members": users})
    push_app.call("POST", "/messages", body)
    stack.intake.poll_once()
    stack.send_poller.poll_once()  # the first attempt, not its retries
    rows, _ = all_pages(push_app, body["messageId"], limit=50)
    assert sorted(r["userId"] for r in rows) == sorted(users)
    assert Counter(r["status"] for r in rows)["pending"] >= 100
    stack.pump(timeout_s=60)
    rows, _ = all_pages(push_app, body["messageId"], limit=50)
    assert Counter(r["status"] for r in rows) == {"sent": 300}


def test_a_forged_cursor_is_refused(stack: Stack, push_app: PushApp) -> None:
    push_app.device("bob")
    body = push_app.message({"userId": "bob"})
    push_app.call("POST", "/messages", body)
    stack.pump()
    resp = push_app.call("GET", f"/messages/{body['messageId']}/deliveries?cursor=bm9wZQ")
    assert resp.status_code == 400
    assert "nextCursor" in resp.data["error"]["message"]


def test_an_intake_record_for_an_unknown_app_is_dead_lettered_with_the_reason(stack: Stack) -> None:
    stack.dead_letters(stack.env["INTAKE_QUEUE_NAME"])
    record = {
        "appId": "app-does-not-exist",
        "messageId": "m-ghost",
        "sendTime": 1763790000,
        "sender": {"userId": "alice"},
        "to": {"userId": "bob"},
        "elems": [{"type": "text", "text": "hi"}],
    }
    stack.send_raw(stack.env["INTAKE_QUEUE_NAME"], json.dumps(record))
    stack.pump()
    [dead] = stack.dead_letters(stack.env["INTAKE_QUEUE_NAME"])
    assert json.loads(dead["Body"])["appId"] == "app-does-not-exist"
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert "unknown app" in reason and "app-does-not-exist" in reason
