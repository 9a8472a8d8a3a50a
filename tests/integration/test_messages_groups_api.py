"""Message intake and group membership APIs: validation and paging (sending itself is in tests/e2e)."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.conftest import AppContext

GOOD = {
    "messageId": "m-1",
    "sendTime": 1763790000,
    "sender": {"userId": "alice", "nickname": "Alice"},
    "to": {"userId": "bob"},
    "elems": [{"type": "text", "text": "hi"}],
}


def post(app_ctx: AppContext, body: dict, token: str | None = None):
    return app_ctx.api.call("POST", app_ctx.path("/messages"), body, token=token or app_ctx.admin)


def test_accepted_event_is_queued_with_its_app(app_ctx: AppContext, stack_env: dict) -> None:
    resp = post(app_ctx, {**GOOD, "messageId": "queued-1"})
    assert resp.status_code == 202
    sqs = boto3.client("sqs", endpoint_url=stack_env["AWS_ENDPOINT_OVERRIDE"])
    url = sqs.get_queue_url(QueueName=stack_env["INTAKE_QUEUE_NAME"])["QueueUrl"]
    found = []
    for _ in range(5):
        for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            body = json.loads(m["Body"])
            if body["messageId"] == "queued-1":
                found.append(body)
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        if found:
            break
    assert found and found[0]["appId"] == app_ctx.app_id and found[0]["to"] == {"userId": "bob"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"messageId": ""}, "messageId"),
        ({"messageId": "has space"}, "messageId"),
        ({"sendTime": "yesterday"}, "sendTime"),
        ({"sender": {}}, "sender.userId"),
        ({"to": {}}, "to"),
        ({"to": {"userId": "bob", "groupId": "g"}}, "to"),
        ({"to": {"groupId": "g", "members": ["a"] * 2}}, "to"),
        ({"elems": []}, "elems"),
        ({"elems": [{"type": "hologram"}]}, "elems.0"),
        ({"elems": [{"type": "text"}]}, "elems.0"),
        ({"offlinePushInfo": {"sound": "no extension"}}, "offlinePushInfo.sound"),
        ({"priority": "urgent"}, "priority"),
        ({"forcePush": "yes"}, "forcePush"),
    ],
)
def test_bad_message_is_400_naming_the_field(app_ctx: AppContext, change: dict, field: str) -> None:
    resp = post(app_ctx, {**GOOD, **change})
    assert resp.status_code == 400, resp.body
    fields = [e["field"] for e in resp.data["error"]["details"]["errors"]]
    assert any(f.startswith(field) for f in fields), fields


def test_user_token_cannot_submit_messages(app_ctx: AppContext) -> None:
    assert post(app_ctx, GOOD, token=app_ctx.token("alice")).status_code == 403


def test_group_members_add_page_remove(app_ctx: AppContext) -> None:
    api, admin = app_ctx.api, app_ctx.admin
    path = app_ctx.path("/groups/@TGS-2J4/members")
    add = [{"userId": f"u{i:03d}", **({"nameCard": "Card"} if i == 0 else {})} for i in range(25)]
    assert api.call("PUT", path, {"add": add}, token=admin).status_code == 204
    seen, cursor = [], None
    while True:
        resp = api.call("GET", path + "?limit=10" + (f"&cursor={cursor}" if cursor else ""), token=admin)
        assert resp.status_code == 200, resp.body
        seen += resp.data["items"]
        cursor = resp.data["nextCursor"]
        if not cursor:
            break
    assert [m["userId"] for m in seen] == [f"u{i:03d}" for i in range(25)]
    assert seen[0]["nameCard"] == "Card"
    assert api.call("PUT", path, {"remove": ["u000", "u001"]}, token=admin).status_code == 204
    assert len(api.call("GET", path + "?limit=100", token=admin).data["items"]) == 23


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "give members to add"),
        ({"add": [{"userId": "a"}, {"userId": "a"}]}, "twice"),
        ({"add": [{"userId": "a"}], "remove": ["a"]}, "both added and removed"),
        ({"add": [{"nameCard": "x"}]}, "add.0.userId"),
        ({"remove": ["bad/id"]}, "remove.0"),
        ({"add": [{"userId": f"u{i}"} for i in range(1001)]}, "add"),
    ],
)
def test_group_members_bad_input(app_ctx: AppContext, body: dict, needle: str) -> None:
    resp = app_ctx.api.call("PUT", app_ctx.path("/groups/g1/members"), body, token=app_ctx.admin)
    assert resp.status_code == 400
    assert needle in resp.body.decode()


@pytest.mark.parametrize("query", ["?limit=0", "?limit=abc", "?cursor=garbage", "?color=red"])
def test_group_members_bad_query(app_ctx: AppContext, query: str) -> None:
    resp = app_ctx.api.call("GET", app_ctx.path("/groups/g1/members") + query, token=app_ctx.admin)
    assert resp.status_code == 400, resp.body
