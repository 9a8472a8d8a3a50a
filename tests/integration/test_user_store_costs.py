"""What the send path and presence cost in DynamoDB calls and keys, counted on the real client talking
to the emulator: one folded item per recipient, settings read only when the hint names them, item sizes,
and users stored before the fold."""

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


def keys_read(calls: Calls, table: str) -> list[int]:
    return [len(p["RequestItems"][table]["Keys"]) for p in calls.named("BatchGetItem")]


def device(user_id: str, n: int) -> Any:
    from datetime import UTC, datetime

    from chalicelib.models.devices import Device

    return Device(
        device_token=f"{n:02d}" * 32,
        user_id=user_id,
        certificate_id=1,
        bundle_id="com.example.chat",
        environment="production",
        registered_at=datetime.now(UTC),
    )


def billed_size(repo: UserRepository, key: dict[str, Any]) -> int:
    from bench.cost import item_size

    return item_size(repo.client.get_item(TableName=repo.table, Key=key, ConsistentRead=True)["Item"])


def test_a_chunk_of_250_recipients_without_settings_reads_250_items(
    app_ctx: AppContext, repo_calls: tuple[UserRepository, Calls]
) -> None:
    repo, calls = repo_calls
    app = app_ctx.app_id
    users = [f"u{i:03d}" for i in range(250)]
    # Given 250 users with state stored (folded items), none with a setting
    repo.put_states(app, [StateWrite(u, "background", i, 1) for i, u in enumerate(users)])
    calls.made.clear()
    # When a chunk of 250 recipients of a group message is read
    found = repo.batch_get(app, users, conversations_of(group_message()))
    # Then it is one key per recipient (250 items, not 1,000), in 3 concurrent BatchGetItem calls
    assert sorted(keys_read(calls, repo.table)) == [50, 100, 100]
    assert {name for name, _ in calls.made} == {"BatchGetItem"}
    assert all(p["RequestItems"][repo.table]["ConsistentRead"] is False for p in calls.named("BatchGetItem"))
    assert [found[u].state.badge for u in ("u000", "u123", "u249")] == [0, 123, 249]


def test_settings_are_read_only_for_users_whose_hint_names_the_conversation(
    app_ctx: AppContext, repo_calls: tuple[UserRepository, Calls]
) -> None:
    repo, calls = repo_calls
    app = app_ctx.app_id
    group = "@TGS#2J4SZEAEL"  # "#" inside an ID: the sort key still parses
    users = [f"u{i:03d}" for i in range(100)]
    repo.put_states(app, [StateWrite(u, "background", 0, 1) for u in users])
    # Given u000 has settings for 300 conversations, this group's and alice's among them
    many = [setting("group", f"g{i}", "none") for i in range(300)]
    many += [setting("group", group, "mentionOnly"), setting("c2c", "alice", "none", 4102444800)]
    repo.replace_conversations(app, "u000", many, [])
    # And u001 has one setting, for another group
    repo.put_conversation(app, "u001", setting("group", "elsewhere", "none"))
    calls.made.clear()
    # When a chunk of 100 recipients is read
    found = repo.batch_get(app, users, conversations_of(group_message(group)))
    # Then 100 user items, then only u000's two setting keys (u001's hint does not name this group)
    assert keys_read(calls, repo.table) == [100, 2]
    assert calls.named("Query") == []
    assert {(s.kind, s.conversation_id, s.remind_type) for s in found["u000"].conversations} == {
        ("group", group, "mentionOnly"),
        ("c2c", "alice", "none"),
    }
    assert found["u001"].conversations == ()


def test_removing_a_setting_takes_its_position_out_of_the_hint(
    app_ctx: AppContext, repo_calls: tuple[UserRepository, Calls]
) -> None:
    from chalicelib.store.user_fold import hint_of, hint_position

    repo, calls = repo_calls
    app = app_ctx.app_id
    repo.set_background(app, "bob", 0, 1)
    # Given bob mutes two groups
    repo.put_conversation(app, "bob", setting("group", "g1", "none"))
    repo.put_conversation(app, "bob", setting("group", "g2", "none"))
    user_item = repo.client.get_item(TableName=repo.table, Key=items.user_key(app, "bob"))["Item"]
    assert hint_of(user_item) == {hint_position("group", "g1"), hint_position("group", "g2")}
    # When he unmutes one
    repo.delete_conversation(app, "bob", "group", "g1")
    # Then only the other's position stays, and a message to g1 reads no setting of his
    user_item = repo.client.get_item(TableName=repo.table, Key=items.user_key(app, "bob"))["Item"]
    assert hint_of(user_item) == {hint_position("group", "g2")}
    calls.made.clear()
    repo.batch_get(app, ["bob"], [("group", "g1")])
    assert keys_read(calls, repo.table) == [1]


def test_the_badge_lives_on_the_folded_user_item_at_1_write_unit_up_to_3_devices(
    app_ctx: AppContext, repo_calls: tuple[UserRepository, Calls]
) -> None:
    from bench.cost import write_units

    repo, _ = repo_calls
    app = app_ctx.app_id
    sizes = {}
    for n in (1, 3, 10):
        user = f"d{n}"
        # Given a user with n devices, config, a background state and a mute
        for i in range(n):
            repo.register_device(app, device(user, i))
        repo.write_config(app, user, {"displayName": "Bob", "language": "en"})
        repo.set_background(app, user, 7, int(time.time() * 1000))
        repo.put_conversation(app, user, setting("group", "g1", "none"))
        sizes[n] = billed_size(repo, items.user_key(app, user))
    print(f"folded user item size by devices: {sizes} bytes")
    # Then with 1 and 3 devices it stays under 1 KB: 1 write unit per badge increment or state write
    assert write_units(sizes[1], sizes[1]) == 1 and write_units(sizes[3], sizes[3]) == 1
    # And with 10 it is under 4 KB: still half a read unit per send
    assert sizes[10] <= 4096
    # And there is no S item
    got = repo.client.get_item(TableName=repo.table, Key=items.state_key(app, "d3")).get("Item")
    assert got is None


def test_presence_is_one_update_per_user_once_folded(
    app_ctx: AppContext, repo_calls: tuple[UserRepository, Calls]
) -> None:
    repo, calls = repo_calls
    entries = [{"userId": f"u{i:03d}", "state": "background", "unreadCount": i} for i in range(100)]
    # Given 100 users whose first state write folded their items
    resp = app_ctx.api.call("PUT", app_ctx.path("/presence"), {"users": entries}, token=app_ctx.admin)
    assert resp.status_code == 200 and resp.data == {"updated": 100}
    calls.made.clear()
    # When the IM server reports them again
    entries = [{**e, "unreadCount": e["unreadCount"] + 1} for e in entries]
    resp = app_ctx.api.call("PUT", app_ctx.path("/presence"), {"users": entries}, token=app_ctx.admin)
    # Then it is one UpdateItem per user (1 write unit each under 1 KB, as the S item was), nothing else
    assert resp.status_code == 200 and resp.data == {"updated": 100}
    assert len(calls.named("UpdateItem")) == 100 and {name for name, _ in calls.made} == {"UpdateItem"}
    found = repo.batch_get(app_ctx.app_id, ["u000", "u099"])
    assert [found[u].state.badge for u in ("u000", "u099")] == [1, 100]


def test_a_user_stored_before_the_fold_is_read_the_old_way_until_its_first_state_write(
    app_ctx: AppContext, repo_calls: tuple[UserRepository, Calls]
) -> None:
    repo, calls = repo_calls
    app = app_ctx.app_id
    # Given carol stored by the previous version: a user item with a device, an S item, a mute item
    repo.client.put_item(
        TableName=repo.table,
        Item={
            **items.user_key(app, "carol"),
            **items.to_item(
                {
                    "d#" + "ab" * 32: {
                        "certificateId": 1,
                        "bundleId": "com.example.chat",
                        "environment": "production",
                        "registeredAt": 1,
                    }
                }
            ),
        },
    )
    repo.client.put_item(
        TableName=repo.table,
        Item={
            **items.state_key(app, "carol"),
            **items.to_item({"appState": "background", "badge": 5, "stateAt": 1}),
        },
    )
    repo.client.put_item(
        TableName=repo.table,
        Item={**items.conversation_key(app, "carol", "group", "g1"), "remindType": {"S": "none"}},
    )
    calls.made.clear()
    # When a message to g1 reads her: her user item, then her S item and the setting (the old way)
    old = repo.batch_get(app, ["carol"], [("group", "g1")])["carol"]
    assert keys_read(calls, repo.table) == [1, 2]
    assert (old.folded, old.state.badge, len(old.devices), len(old.conversations)) == (False, 5, 1, 1)
    # When her app reports a state: the item is folded (state, badge and hint on it), the S item gone
    repo.set_background(app, "carol", 6, 2)
    assert repo.client.get_item(TableName=repo.table, Key=items.state_key(app, "carol")).get("Item") is None
    calls.made.clear()
    new = repo.batch_get(app, ["carol"], [("group", "g1")])["carol"]
    # Then one item and the hinted setting; nothing lost
    assert keys_read(calls, repo.table) == [1, 1]
    assert (new.folded, new.state.badge, len(new.devices), len(new.conversations)) == (True, 6, 1, 1)
    calls.made.clear()
    assert repo.batch_get(app, ["carol"], [("group", "g2")])["carol"].conversations == ()
    assert keys_read(calls, repo.table) == [1]


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
