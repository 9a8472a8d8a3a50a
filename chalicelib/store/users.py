"""Users: push config, devices, app state, badge and a hint of the conversations with a setting, all
in one item (``U``, "folded": see ``user_fold``), and one small item per conversation setting
(``CV#<kind>#<id>``), under the user's partition ``U#<appId>#<userId>``.

Device registrations are top-level attributes ``d#<token>`` on the user item, and a token-owner
item ``T#<appId>#<token>`` lets a token move between users in one transaction. The send path reads
exact keys only: the user item, then the settings its hint says may exist, never a Query. A user
stored before the fold (state in an ``S`` item) is read the old way until its first state or badge
write folds it (``fold``).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.errors import Conflict
from chalicelib.models.devices import Device
from chalicelib.models.push_config import ConversationSetting
from chalicelib.store import items, retry
from chalicelib.store.user_codec import (
    StateWrite,
    UserRecord,
    conversation_item,
    device_attr,
    parse_conversation,
    parse_user,
    state_update,
)
from chalicelib.store.user_fold import (
    FOLD,
    FOLDED,
    hint_add_request,
    hint_of,
    hint_positions,
    may_have_setting,
)
from chalicelib.store.user_fold_ops import fold_user, remove_stale_hint

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_SET_FIELDS = {"mutedGroups", "mutedUsers"}
# Concurrent BatchGetItem / BatchWriteItem calls per batch (a chunk of 100 group recipients = 4 calls).
_PARALLEL_CALLS = 8

Conversation = tuple[str, str]  # (kind, conversationId)


@dataclass
class UserRepository:
    client: DynamoDBClient
    table: str
    max_devices: int = 20
    # Foreground reported before leases existed (no foregroundUntil) holds this long after stateAt.
    default_lease_s: int = 300

    # ---- reading -------------------------------------------------------------------------------

    def get(self, app_id: str, user_id: str) -> UserRecord:
        return self._read(app_id, [user_id], (), consistent=True)[user_id]

    def batch_get(
        self, app_id: str, user_ids: Sequence[str], conversations: Sequence[Conversation] = ()
    ) -> dict[str, UserRecord]:
        """Users by ID with their state and the given conversation settings; missing users come back
        with defaults. Keys go out in BatchGetItem calls of 100, issued concurrently."""
        return self._read(app_id, user_ids, conversations, consistent=False)

    def _read(
        self, app_id: str, user_ids: Sequence[str], conversations: Sequence[Conversation], consistent: bool
    ) -> dict[str, UserRecord]:
        """Round 1: every user item (one key each). Round 2, for the few who need it: the settings a
        folded item's hint says may exist, or an unfolded user's S item and settings. The API's
        consistent read also looks for the S item of a user without a user item."""
        unique = list(dict.fromkeys(user_ids))
        convs = list(dict.fromkeys(conversations))
        found: dict[str, dict[str, dict[str, Any]]] = {u: {} for u in unique}
        self._get_into(found, [items.user_key(app_id, u) for u in unique], consistent)
        more: list[dict[str, Any]] = []
        for u in unique:
            user_item = found[u].get("U")
            if user_item is not None and FOLD in user_item:
                wanted = may_have_setting(hint_of(user_item), convs)
            elif user_item is not None:
                wanted = convs
                more.append(items.state_key(app_id, u))
            else:
                wanted = []
                if consistent:
                    more.append(items.state_key(app_id, u))
            more += [items.conversation_key(app_id, u, k, c) for k, c in wanted]
        self._get_into(found, more, consistent)
        return {u: parse_user(app_id, u, found[u], self.default_lease_s) for u in unique}

    def _get_into(
        self, found: dict[str, dict[str, dict[str, Any]]], keys: list[dict[str, Any]], consistent: bool
    ) -> None:
        """BatchGetItem calls of 100 keys, concurrently; items filed by user and sort key."""
        batches = [keys[i : i + items.BATCH_GET_LIMIT] for i in range(0, len(keys), items.BATCH_GET_LIMIT)]
        for got in _concurrently(lambda b: self._batch_get(b, consistent), batches):
            for item in got:
                user_id = item["pk"]["S"].split("#", 2)[2]
                found[user_id][item["sk"]["S"]] = item

    def _batch_get(self, keys: list[dict[str, Any]], consistent: bool) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": consistent}}
        started, rounds = time.monotonic(), 0
        while request:
            if rounds:
                retry.pause_for_unprocessed(rounds, started)
            rounds += 1
            resp = self.client.batch_get_item(RequestItems=request)
            out += resp.get("Responses", {}).get(self.table, [])
            request = dict(resp.get("UnprocessedKeys") or {})
        return out

    # ---- push config ---------------------------------------------------------------------------

    def write_config(self, app_id: str, user_id: str, values: dict[str, Any]) -> None:
        """Set the given config attributes (camelCase); None removes one (back to its default)."""
        sets, removes, names, vals = [], [], {}, {}
        for i, (name, value) in enumerate(values.items()):
            names[f"#f{i}"] = name
            if value is None or (name in _SET_FIELDS and not value):
                removes.append(f"#f{i}")
            else:
                vals[f":v{i}"] = items.serialize(set(value) if name in _SET_FIELDS else value)
                sets.append(f"#f{i} = :v{i}")
        if not names:
            return
        expr = " ".join(p for p in (_clause("SET", sets), _clause("REMOVE", removes)) if p)
        self._update(app_id, user_id, expr, names, vals)

    def forget_legacy_mute(self, app_id: str, user_id: str, list_name: str, member: str) -> None:
        """Drop one member of a mute list stored the old way (a set on the user item), if there."""
        self._update(app_id, user_id, "DELETE #l :m", {"#l": list_name}, {":m": {"SS": [member]}})

    # ---- conversation settings -----------------------------------------------------------------

    def conversations(self, app_id: str, user_id: str) -> list[ConversationSetting]:
        """Every stored conversation setting of the user, lapsed ones included (one paged Query)."""
        found = items.query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :cv)",
            ExpressionAttributeValues={
                ":pk": {"S": f"U#{app_id}#{user_id}"},
                ":cv": {"S": items.CONVERSATION_PREFIX},
            },
            ConsistentRead=True,
        )
        return [parse_conversation(item) for item in found]

    def put_conversation(self, app_id: str, user_id: str, setting: ConversationSetting) -> None:
        """The setting's hint position goes in before and again after the item (exact under a
        concurrent removal: see ``user_fold``)."""
        position = [(setting.kind, setting.conversation_id)]
        self._hint_add(app_id, user_id, position)
        self.client.put_item(TableName=self.table, Item=conversation_item(app_id, user_id, setting))
        self._hint_add(app_id, user_id, position)

    def delete_conversation(
        self, app_id: str, user_id: str, kind: str, conversation_id: str, *, only_if: str | None = None
    ) -> None:
        """Remove a setting (back to `all`); with ``only_if``, only a setting of that remindType."""
        kwargs: dict[str, Any] = {}
        if only_if is not None:
            kwargs = {
                "ConditionExpression": "remindType = :r",
                "ExpressionAttributeValues": {":r": {"S": only_if}},
            }
        try:
            resp = self.client.delete_item(
                TableName=self.table,
                Key=items.conversation_key(app_id, user_id, kind, conversation_id),
                ReturnValues="ALL_OLD",
                **kwargs,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return
        if resp.get("Attributes"):
            self._hint_remove_stale(app_id, user_id)

    def replace_conversations(
        self,
        app_id: str,
        user_id: str,
        put: Iterable[ConversationSetting],
        delete: Iterable[Conversation],
    ) -> None:
        """Write and remove many settings in BatchWriteItem calls (PATCH of mutedGroups / mutedUsers)."""
        put, delete = list(put), list(delete)
        added = [(s.kind, s.conversation_id) for s in put]
        requests: list[dict[str, Any]] = [
            {"PutRequest": {"Item": conversation_item(app_id, user_id, s)}} for s in put
        ]
        requests += [
            {"DeleteRequest": {"Key": items.conversation_key(app_id, user_id, k, c)}} for k, c in delete
        ]
        self._hint_add(app_id, user_id, added)
        self._batch_write(requests)
        self._hint_add(app_id, user_id, added)
        if delete:
            self._hint_remove_stale(app_id, user_id)

    def _hint_add(self, app_id: str, user_id: str, conversations: Sequence[Conversation]) -> None:
        if conversations:
            key = items.user_key(app_id, user_id)
            self.client.update_item(**hint_add_request(self.table, key, hint_positions(conversations)))

    def _hint_remove_stale(self, app_id: str, user_id: str) -> None:
        remove_stale_hint(self.client, self.table, app_id, user_id, self.conversations)

    # ---- app state and badge (on the folded user item) -------------------------------------------

    def set_background(self, app_id: str, user_id: str, unread_count: int, at_ms: int) -> None:
        self.put_states(app_id, [StateWrite(user_id, "background", unread_count, at_ms)])

    def set_foreground(self, app_id: str, user_id: str, at_ms: int, until_ms: int) -> None:
        self.put_states(app_id, [StateWrite(user_id, "foreground", 0, at_ms, until_ms)])

    def put_states(self, app_id: str, states: Sequence[StateWrite]) -> int:
        """Write many users' states: one UpdateItem each (1 write unit for a user item under 1 KB, as
        the S item was), issued concurrently; answers the number of calls."""
        return sum(_concurrently(lambda s: self._put_state(app_id, s), list(states)))

    def _put_state(self, app_id: str, s: StateWrite) -> int:
        expr, values = state_update(s)
        for calls in (1, 2):
            try:
                self.client.update_item(
                    TableName=self.table,
                    Key=items.user_key(app_id, s.user_id),
                    UpdateExpression=expr,
                    ConditionExpression=FOLDED,
                    ExpressionAttributeValues=values,
                )
                return calls
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException" or calls == 2:
                    raise
                self.fold(app_id, s.user_id)
        return 2

    def fold(self, app_id: str, user_id: str) -> None:
        """Fold a user stored before the fold (or not at all) into one item, once (``user_fold_ops``)."""
        fold_user(self.client, self.table, app_id, user_id)

    # ---- devices -------------------------------------------------------------------------------

    def register_device(self, app_id: str, device: Device) -> None:
        """Bind the token to this user, unbinding it from any previous user, in one transaction."""
        user = self.get(app_id, device.user_id)
        if not user.folded:
            self.fold(app_id, device.user_id)  # a new user's item is folded from its first device
        if len(user.devices) >= self.max_devices and all(
            d.device_token != device.device_token for d in user.devices
        ):
            raise Conflict(
                f"user '{device.user_id}' already has {self.max_devices} devices registered: log out an "
                "old device (DELETE .../devices/{deviceToken}) first",
            )
        for _attempt in range(3):
            owner = self._token_owner(app_id, device.device_token)
            try:
                self._move_token(app_id, device, owner)
                return
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
        raise Conflict("the token is being registered concurrently for another user: retry")

    def _token_owner(self, app_id: str, token: str) -> str | None:
        resp = self.client.get_item(
            TableName=self.table, Key=items.token_key(app_id, token), ConsistentRead=True
        )
        item = resp.get("Item")
        return item["userId"]["S"] if item else None

    def _move_token(self, app_id: str, device: Device, previous_owner: str | None) -> None:
        attr = items.DEVICE_PREFIX + device.device_token
        owner_condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(pk)"}
            if previous_owner is None
            else {
                "ConditionExpression": "userId = :prev",
                "ExpressionAttributeValues": {":prev": {"S": previous_owner}},
            }
        )
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": {
                        **items.token_key(app_id, device.device_token),
                        "userId": {"S": device.user_id},
                    },
                    **owner_condition,
                }
            },
            {
                "Update": {
                    "TableName": self.table,
                    "Key": items.user_key(app_id, device.user_id),
                    "UpdateExpression": "SET #d = :d REMOVE loggedOut",
                    "ExpressionAttributeNames": {"#d": attr},
                    "ExpressionAttributeValues": {":d": items.serialize(device_attr(device))},
                }
            },
        ]
        if previous_owner is not None and previous_owner != device.user_id:
            actions.append(
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": items.user_key(app_id, previous_owner),
                        "UpdateExpression": "REMOVE #d",
                        "ExpressionAttributeNames": {"#d": attr},
                    }
                }
            )
        self.client.transact_write_items(TransactItems=actions)  # type: ignore[arg-type]

    def remove_devices(
        self, app_id: str, user_id: str, tokens: Iterable[str], *, logged_out: bool = False
    ) -> None:
        """Unbind tokens from a user (logout / kicked); keeps the owner item only if someone else owns it."""
        tokens = list(tokens)
        if not tokens and not logged_out:
            return
        names = {f"#d{i}": items.DEVICE_PREFIX + t for i, t in enumerate(tokens)}
        expr = _clause("REMOVE", list(names))
        values: dict[str, Any] = {}
        if logged_out:
            expr = f"SET loggedOut = :t {expr}".strip()
            values[":t"] = {"BOOL": True}
        self._update(app_id, user_id, expr, names or None, values or None)
        for token in tokens:
            try:
                self.client.delete_item(
                    TableName=self.table,
                    Key=items.token_key(app_id, token),
                    ConditionExpression="userId = :u",
                    ExpressionAttributeValues={":u": {"S": user_id}},
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise

    def mark_device_invalid(self, app_id: str, user_id: str, token: str, reason: str) -> None:
        attr = items.DEVICE_PREFIX + token
        try:
            self._update(
                app_id,
                user_id,
                "SET #d.invalidReason = :r",
                {"#d": attr},
                {":r": {"S": reason}},
                condition="attribute_exists(#d)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def remove_device_if_registered_before(self, app_id: str, user_id: str, token: str, ms: int) -> bool:
        """APNs said 410 at ``ms``: drop the registration unless the app re-registered after that."""
        attr = items.DEVICE_PREFIX + token
        try:
            self._update(
                app_id,
                user_id,
                "REMOVE #d",
                {"#d": attr},
                {":ms": {"N": str(ms)}},
                condition="#d.registeredAt <= :ms",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        self.remove_devices(app_id, user_id, [token])
        return True

    # ---- plumbing ------------------------------------------------------------------------------

    def _update(
        self,
        app_id: str,
        user_id: str,
        expr: str,
        names: dict[str, str] | None,
        values: dict[str, Any] | None,
        condition: str | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": items.user_key(app_id, user_id),
            "UpdateExpression": expr,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if values:
            kwargs["ExpressionAttributeValues"] = values
        if condition:
            kwargs["ConditionExpression"] = condition
        self.client.update_item(**kwargs)

    def _batch_write(self, requests: list[dict[str, Any]]) -> int:
        groups = [
            requests[i : i + items.BATCH_WRITE_LIMIT]
            for i in range(0, len(requests), items.BATCH_WRITE_LIMIT)
        ]
        return sum(_concurrently(lambda g: items.batch_write(self.client, self.table, g), groups))


def _concurrently(fn: Any, batches: list[Any]) -> list[Any]:
    """``fn`` over each batch, in a small thread pool when there is more than one (boto3 clients are
    thread-safe); results in batch order."""
    if len(batches) <= 1:
        return [fn(b) for b in batches]
    context = contextvars.copy_context()  # the request's retry deadline (store.retry) holds in the threads
    with ThreadPoolExecutor(max_workers=min(_PARALLEL_CALLS, len(batches))) as pool:
        return list(pool.map(lambda b: context.copy().run(fn, b), batches))


def _clause(keyword: str, parts: list[str]) -> str:
    return f"{keyword} {', '.join(parts)}" if parts else ""
