"""What the send path and presence cost in DynamoDB calls and keys, counted on the real client talking
to the emulator: the per-user state item, conversation-setting items read by exact key, bulk writes."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.models.push_config import ConversationSetting
from chalicelib.services.policy import conversations_of
from chalicelib.store import items
from chalicelib.store.users import StateWrite, UserRepository
from tests.conftest import AppContext


@dataclass
class Calls:
    """Every DynamoDB request the repository's client makes, with its parameters."""

    made: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.made.append((model.name, params))

    def named(self, operation: str) -> list[dict[str, Any]]:
        return [p for name, p in self.made if name == operation]


@pytest.fixture
def repo_calls(app_ctx: AppContext) -> Iterator[tuple[UserRepository, Calls]]:
    from chalicelib import deps

    repo = deps.services().user_repo
    calls = Calls()
    repo.client.meta.events.register("provide-client-params.dynamodb", calls)
    try:
        yield repo, calls
    finally:
        repo.client.meta.events.unregister("provide-client-params.dynamodb", calls)


def setting(kind: str, cid: str, remind: str, until: int | None = None) -> ConversationSetting:
    return ConversationSetting.model_validate(
        {"kind": kind, "conversationId": cid, "remindType": remind, "until": until}
    )


def group_message(group_id: str = "@TGS#2J4SZEAEL") -> Any:
    from chalicelib.models.message import MessageEvent

    return MessageEvent.model_validate(
        {
            "messageId": "m-1",
            "sendTime": 1763790000,
            "sender": {"userId": "alice"},
            "to": {"groupId": group_id},
            "elems": [{"type": "text", "text": "hi"}],
        }
    )


def test_a_chunk_reads_four_keys_per_group_recipient_in_concurrent_calls(
    app_ctx: AppContext, repo_calls: tuple[UserRepository, Calls]
) -> None:
    repo, calls = repo_calls
    app = app_ctx.app_id
    group = "@TGS#2J4SZEAEL"  # "#" inside an ID: the sort key still parses
    users = [f"u{i:03d}" for i in range(100)]
    # Given u000 has settings for 2,000 conversations, this group's and alice's among them
    many = [setting("group", f"g{i}", "none") for i in range(2000)]
    many += [setting("group", group, "mentionOnly"), setting("c2c", "alice", "none", 4102444800)]
    repo.replace_conversations(app, "u000", many, [])
    repo.put_states(app, [StateWrite("u001", "background", 4, 1)])
    calls.made.clear()
    # When a chunk of 100 recipients of a group message is read
    found = repo.batch_get(app, users, conversations_of(group_message(group)))
    # Then it is U, S and the two settings per user: 400 exact keys in 4 BatchGetItem calls, no Query
    gets = calls.named("BatchGetItem")
    assert [len(p["RequestItems"][repo.table]["Keys"]) for p in gets] == [100, 100, 100, 100]
    assert calls.named("Query") == [] and len(calls.made) == 4
    # And the user with 2,000 settings comes back with just the two that matter
    assert {(s.kind, s.conversation_id, s.remind_type) for s in found["u000"].conversations} == {
        ("group", group, "mentionOnly"),
        ("c2c", "alice", "none"),
    }
    assert found["u001"].state.badge == 4 and found["u002"].state.state == "unknown"


def test_the_badge_lives_in_the_small_state_item(
    app_ctx: AppContext, repo_calls: tuple[UserRepository, Calls]
) -> None:
    repo, calls = repo_calls
    app = app_ctx.app_id
    # Given bob with push config on his user item and unread count 7
    repo.write_config(app, "bob", {"displayName": "Bob", "language": "en"})
    repo.set_background(app, "bob", 7, int(time.time() * 1000))
    calls.made.clear()
    # When a push adds 1
    assert repo.increment_badge(app, "bob") == 8
    # Then one UpdateItem on the S item, and the user item is untouched
    [update] = calls.named("UpdateItem")
    assert update["Key"] == items.state_key(app, "bob") and len(calls.made) == 1
    user_item = repo.client.get_item(TableName=repo.table, Key=items.user_key(app, "bob"))["Item"]
    assert "badge" not in user_item and "appState" not in user_item
    state_item = repo.client.get_item(TableName=repo.table, Key=items.state_key(app, "bob"))["Item"]
    assert set(state_item) == {"pk", "sk", "appState", "badge", "stateAt"}
    assert len(str(state_item)) < 200  # a few dozen bytes: 1 write unit per push, whatever the user has


def test_bulk_presence_of_500_users_is_20_batch_writes(
    app_ctx: AppContext, repo_calls: tuple[UserRepository, Calls]
) -> None:
    repo, calls = repo_calls
    entries = [{"userId": f"u{i:03d}", "state": "background", "unreadCount": i} for i in range(500)]
    resp = app_ctx.api.call("PUT", app_ctx.path("/presence"), {"users": entries}, token=app_ctx.admin)
    assert resp.status_code == 200 and resp.data == {"updated": 500}
    writes = calls.named("BatchWriteItem")
    assert len(writes) == 20 and all(len(p["RequestItems"][repo.table]) == 25 for p in writes)
    assert {name for name, _ in calls.made} == {"BatchWriteItem"}
    found = repo.batch_get(app_ctx.app_id, ["u000", "u123", "u499"])
    assert [found[u].state.badge for u in ("u000", "u123", "u499")] == [0, 123, 499]


def test_state_stored_on_the_user_item_by_an_older_version_is_still_read(
    app_ctx: AppContext, repo_calls: tuple[UserRepository, Calls]
) -> None:
    repo, _ = repo_calls
    app = app_ctx.app_id
    at = int(time.time() * 1000)
    repo.client.put_item(
        TableName=repo.table,
        Item={
            **items.user_key(app, "old"),
            "appState": {"S": "foreground"},
            "badge": {"N": "3"},
            "stateAt": {"N": str(at)},
        },
    )
    state = repo.get(app, "old").state
    # An old foreground report holds for the default lease from when it was made
    assert (state.state, state.badge, state.foreground_until) == ("foreground", 3, at + 300_000)
