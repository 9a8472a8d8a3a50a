"""Presence from the IM server, in the event (API.md): members in ``to.onlineUsers`` are settled at
fan-out (skipped/online) without any read of theirs, listed in the report and counted in its summary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.conftest import PushApp, Stack, payloads


class KeysRead:
    """The partition keys of every item the service's DynamoDB client reads by key."""

    def __init__(self) -> None:
        self.pks: list[str] = []

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name == "BatchGetItem":
            for table in params["RequestItems"].values():
                self.pks += [k["pk"]["S"] for k in table["Keys"]]
        elif model.name == "GetItem":
            self.pks.append(params["Key"]["pk"]["S"])


@pytest.fixture
def keys_read(stack: Stack) -> Iterator[KeysRead]:
    from chalicelib import deps

    client = deps.services().user_repo.client
    seen = KeysRead()
    client.meta.events.register("provide-client-params.dynamodb", seen)
    yield seen
    client.meta.events.unregister("provide-client-params.dynamodb", seen)


def test_online_members_cost_no_read_and_are_reported_skipped_online(
    stack: Stack, push_app: PushApp, keys_read: KeysRead
) -> None:
    # Given a group of 20 members with a phone each, 15 of them online according to the IM server
    members = [f"m{i:02d}" for i in range(20)]
    tokens = {u: push_app.device(u) for u in members}
    online = members[:15]
    body = push_app.message({"groupId": "g-online", "members": ["alice", *members], "onlineUsers": online})
    keys_read.pks.clear()

    # When the message goes through fan-out and send
    assert push_app.call("POST", "/messages", body).status_code == 202
    stack.pump()

    # Then nothing of the 15 was read, and only the 5 others were pushed
    app = push_app.ctx.app_id
    assert not [pk for pk in keys_read.pks if pk.startswith(f"U#{app}#") and pk.split("#", 2)[2] in online]
    assert [u for u in members if payloads(stack.sandbox, tokens[u])] == members[15:]
    # And the report lists the 15 as skipped/online and counts them in its summary
    resp = push_app.call("GET", f"/messages/{body['messageId']}/deliveries")
    report = resp.data
    assert report["recipientCount"] == 20
    assert report["summary"]["skipped"] == {"online": 15} and report["summary"]["sent"] == 5
    rows = {r["userId"]: r for r in report["items"]}
    assert rows["m00"]["status"] == "skipped" and rows["m00"]["code"] == "online"
    assert rows["m00"]["deviceToken"] is None
    # And one online member's own report is that row
    [own] = push_app.deliveries(body["messageId"], userId="m07")
    assert (own["status"], own["code"]) == ("skipped", "online")


def test_everyone_online_sends_nothing_and_leaves_nothing_pending(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    body = push_app.message({"groupId": "g-all", "members": ["alice", "bob"], "onlineUsers": ["bob"]})
    assert push_app.call("POST", "/messages", body).status_code == 202
    stack.pump()
    assert payloads(stack.sandbox, token) == []
    summary = push_app.call("GET", f"/messages/{body['messageId']}/deliveries").data["summary"]
    assert summary["pending"] == 0 and summary["skipped"] == {"online": 1}


def test_with_a_stored_membership_online_ids_that_are_not_members_are_ignored(
    stack: Stack, push_app: PushApp
) -> None:
    push_app.device("bob")
    token = push_app.device("carol")
    resp = push_app.call(
        "PUT", "/groups/g-stored/members", {"add": [{"userId": u} for u in ("alice", "bob", "carol")]}
    )
    assert resp.status_code in (200, 204), resp.body
    body = push_app.message({"groupId": "g-stored", "onlineUsers": ["bob", "left-already"]})
    assert push_app.call("POST", "/messages", body).status_code == 202
    stack.pump()
    summary = push_app.call("GET", f"/messages/{body['messageId']}/deliveries").data["summary"]
    assert summary["skipped"] == {"online": 1} and summary["sent"] == 1
    assert len(payloads(stack.sandbox, token)) == 1


@pytest.mark.parametrize(
    ("to", "extra", "says"),
    [
        ({"groupId": "g", "members": ["bob"], "onlineUsers": ["carol"]}, {}, "not in to.members"),
        ({"groupId": "g", "members": ["bob"], "onlineUsers": ["bob"]}, {"offlineUsers": ["bob"]}, "both"),
        ({"groupId": "g", "onlineUsers": ["bob", "bob"]}, {}, "more than once"),
        ({"groupId": "g", "onlineUsers": [f"u{i}" for i in range(10_001)]}, {}, "10000"),
        ({"userId": "bob", "onlineUsers": ["bob"]}, {}, "onlineUsers"),
    ],
)
def test_bad_online_users_are_a_400_saying_what_is_wrong(
    push_app: PushApp, to: dict[str, Any], extra: dict[str, Any], says: str
) -> None:
    resp = push_app.call("POST", "/messages", push_app.message(to, **extra))
    assert resp.status_code == 400, resp.body
    assert says in str(resp.data)


def test_a_queued_event_with_bad_online_users_is_dead_lettered_with_the_reason(
    stack: Stack, push_app: PushApp
) -> None:
    import json

    stack.dead_letters(stack.env["INTAKE_QUEUE_NAME"])
    body = push_app.message({"groupId": "g", "members": ["bob"], "onlineUsers": ["carol"]})
    stack.send_raw(stack.env["INTAKE_QUEUE_NAME"], json.dumps({"appId": push_app.ctx.app_id, **body}))
    stack.pump()
    [dead] = stack.dead_letters(stack.env["INTAKE_QUEUE_NAME"])
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert reason.startswith("invalid record:") and "not in to.members" in reason
