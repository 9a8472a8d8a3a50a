"""Users: push config and devices (item ``U``), app state and badge (item ``S``), and one small item per
conversation setting (``CV#<kind>#<id>``), all under the user's partition ``U#<appId>#<userId>``.

Device registrations are top-level attributes ``d#<token>`` on the user item, and a token-owner
item ``T#<appId>#<token>`` lets a token move between users in one transaction. The send path reads
exact keys only (U, S and the conversation settings a message concerns), never a Query.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.errors import Conflict
from chalicelib.models.devices import Device
from chalicelib.models.push_config import AppState, ConversationSetting, PushConfig
from chalicelib.store import items, retry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

CONFIG_FIELDS = (
    "openPush",
    "c2cSound",
    "groupSound",
    "displayName",
    "displayStyle",
    "doNotDisturb",
    "language",
    # Before conversation settings, mutes were string sets on the user item: still read (as permanent
    # `none`), removed when the user next changes that list.
    "mutedGroups",
    "mutedUsers",
)
_SET_FIELDS = {"mutedGroups", "mutedUsers"}
# State attributes that lived on the user item before the state item (read when there is no S item).
_LEGACY_STATE = ("appState", "badge", "stateAt")
# Concurrent BatchGetItem / BatchWriteItem calls per batch (a chunk of 100 group recipients = 4 calls).
_PARALLEL_CALLS = 8

Conversation = tuple[str, str]  # (kind, conversationId)


@dataclass(frozen=True)
class UserRecord:
    """Everything the send path and the API know about one user."""

    user_id: str
    config: PushConfig
    state: AppState
    devices: tuple[Device, ...] = ()
    logged_out: bool = False
    exists: bool = True
    # The conversation settings that were asked for and exist (lapsed ones included: policy decides).
    conversations: tuple[ConversationSetting, ...] = ()


@dataclass(frozen=True, slots=True)
class StateWrite:
    """One user's app state to store (the S item is written whole)."""

    user_id: str
    state: str
    badge: int
    at_ms: int
    # None: a background write; NO_LEASE: foreground until the app reports background (lease 0).
    foreground_until_ms: int | None = None


NO_LEASE = 0  # stored foregroundUntil of a foreground without a lease (the app's setting 0)


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
        unique = list(dict.fromkeys(user_ids))
        sks = ["U", "S"] + [items.conversation_sk(k, c) for k, c in dict.fromkeys(conversations)]
        keys = [items.key(f"U#{app_id}#{u}", sk) for u in unique for sk in sks]
        batches = [keys[i : i + items.BATCH_GET_LIMIT] for i in range(0, len(keys), items.BATCH_GET_LIMIT)]
        found: dict[str, dict[str, dict[str, Any]]] = {u: {} for u in unique}
        for got in _concurrently(lambda b: self._batch_get(b, consistent), batches):
            for item in got:
                user_id = item["pk"]["S"].split("#", 2)[2]
                found[user_id][item["sk"]["S"]] = item
        return {u: parse_user(app_id, u, found[u], self.default_lease_s) for u in unique}

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
        self.client.put_item(TableName=self.table, Item=_conversation_item(app_id, user_id, setting))

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
            self.client.delete_item(
                TableName=self.table,
                Key=items.conversation_key(app_id, user_id, kind, conversation_id),
                **kwargs,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def replace_conversations(
        self,
        app_id: str,
        user_id: str,
        put: Iterable[ConversationSetting],
        delete: Iterable[Conversation],
    ) -> None:
        """Write and remove many settings in BatchWriteItem calls (PATCH of mutedGroups / mutedUsers)."""
        requests: list[dict[str, Any]] = [
            {"PutRequest": {"Item": _conversation_item(app_id, user_id, s)}} for s in put
        ]
        requests += [
            {"DeleteRequest": {"Key": items.conversation_key(app_id, user_id, k, c)}} for k, c in delete
        ]
        self._batch_write(requests)

    # ---- app state and badge (the S item) --------------------------------------------------------

    def set_background(self, app_id: str, user_id: str, unread_count: int, at_ms: int) -> None:
        self.put_states(app_id, [StateWrite(user_id, "background", unread_count, at_ms)])

    def set_foreground(self, app_id: str, user_id: str, at_ms: int, until_ms: int) -> None:
        self.put_states(app_id, [StateWrite(user_id, "foreground", 0, at_ms, until_ms)])

    def put_states(self, app_id: str, states: Sequence[StateWrite]) -> int:
        """Write many users' state items: one PutItem for one user, else BatchWriteItem calls of 25
        (concurrently); answers the number of calls."""
        requests = [{"PutRequest": {"Item": _state_item(app_id, s)}} for s in states]
        if len(requests) == 1:
            self.client.put_item(TableName=self.table, Item=requests[0]["PutRequest"]["Item"])
            return 1
        return self._batch_write(requests)

    def increment_badge(self, app_id: str, user_id: str) -> int:
        """Atomically add 1 to the badge and answer the new value (the small S item: 1 write unit)."""
        resp = self.client.update_item(**self.badge_increment_request(app_id, user_id))
        return int(resp["Attributes"]["badge"]["N"])

    def badge_increment_request(self, app_id: str, user_id: str) -> dict[str, Any]:
        """increment_badge as a request for the send path's asyncio client (answer: Attributes.badge.N)."""
        return {
            "TableName": self.table,
            "Key": items.state_key(app_id, user_id),
            "UpdateExpression": "ADD badge :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
            "ReturnValues": "UPDATED_NEW",
        }

    def badge_decrement_request(self, app_id: str, user_id: str) -> dict[str, Any]:
        """Take 1 off the badge, never below 0 (a recall): conditional, 1 write unit; the answer's
        Attributes.badge.N is the new value, ConditionalCheckFailedException means it was already 0."""
        return {
            "TableName": self.table,
            "Key": items.state_key(app_id, user_id),
            "UpdateExpression": "SET badge = badge - :one",
            "ConditionExpression": "badge > :zero",
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":zero": {"N": "0"}},
            "ReturnValues": "UPDATED_NEW",
        }

    # ---- devices -------------------------------------------------------------------------------

    def register_device(self, app_id: str, device: Device) -> None:
        """Bind the token to this user, unbinding it from any previous user, in one transaction."""
        user = self.get(app_id, device.user_id)
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
                    "ExpressionAttributeValues": {":d": items.serialize(_device_attr(device))},
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


def _device_attr(device: Device) -> dict[str, Any]:
    return {
        "certificateId": device.certificate_id,
        "bundleId": device.bundle_id,
        "environment": device.environment,
        "pushEnabled": device.push_enabled,
        "type": device.type,
        "registeredAt": int(device.registered_at.timestamp() * 1000),
    }


def _state_item(app_id: str, s: StateWrite) -> dict[str, Any]:
    item = {
        **items.state_key(app_id, s.user_id),
        "appState": {"S": s.state},
        "badge": {"N": str(s.badge)},
        "stateAt": {"N": str(s.at_ms)},
    }
    if s.foreground_until_ms is not None:
        item["foregroundUntil"] = {"N": str(s.foreground_until_ms)}
    return item


def _conversation_item(app_id: str, user_id: str, setting: ConversationSetting) -> dict[str, Any]:
    item = {
        **items.conversation_key(app_id, user_id, setting.kind, setting.conversation_id),
        "remindType": {"S": setting.remind_type},
    }
    if setting.until is not None:
        item["until"] = {"N": str(setting.until)}
        # The table's TTL removes a lapsed setting some time later; until then the rules ignore it.
        item["ttl"] = {"N": str(setting.until)}
    return item


def parse_conversation(item: dict[str, Any]) -> ConversationSetting:
    _, kind, conversation_id = item["sk"]["S"].split("#", 2)
    until = item.get("until")
    return ConversationSetting.model_validate(
        {
            "kind": kind,
            "conversationId": conversation_id,
            "remindType": item["remindType"]["S"],
            "until": int(until["N"]) if until else None,
        }
    )


def parse_state(state_item: dict[str, Any] | None, user: dict[str, Any], default_lease_s: int) -> AppState:
    """The S item; without one, what an older version kept on the user item."""
    data = items.from_item(state_item) if state_item else {k: user[k] for k in _LEGACY_STATE if k in user}
    state = data.get("appState", "unknown")
    until = data.get("foregroundUntil")
    if state == "foreground" and until is None:
        until = int(data.get("stateAt") or 0) + default_lease_s * 1000
    elif until == NO_LEASE:
        until = None  # foreground holds until the app reports background
    return AppState(
        state=state,
        badge=data.get("badge", 0),
        updated_at=data.get("stateAt"),
        foreground_until=until if state == "foreground" else None,
    )


def parse_user(
    app_id: str, user_id: str, found: dict[str, dict[str, Any]], default_lease_s: int = 300
) -> UserRecord:
    """One user from the items read under their partition, by sort key (U, S, CV#...)."""
    conversations = tuple(
        parse_conversation(item)
        for sk, item in sorted(found.items())
        if sk.startswith(items.CONVERSATION_PREFIX)
    )
    user_item = found.get("U")
    data = items.from_item(user_item) if user_item else {}
    state = parse_state(found.get("S"), data, default_lease_s)
    if not user_item:
        return UserRecord(
            user_id=user_id,
            config=PushConfig(),
            state=state,
            exists="S" in found,
            conversations=conversations,
        )
    config = PushConfig.model_validate({k: data[k] for k in CONFIG_FIELDS if k in data})
    devices = tuple(
        Device(
            device_token=name[len(items.DEVICE_PREFIX) :],
            user_id=user_id,
            certificate_id=attr["certificateId"],
            bundle_id=attr["bundleId"],
            environment=attr["environment"],
            push_enabled=attr.get("pushEnabled", True),
            type=attr.get("type", "alert"),
            registered_at=datetime.fromtimestamp(attr["registeredAt"] / 1000, UTC),
            invalid_reason=attr.get("invalidReason"),
        )
        for name, attr in sorted(data.items())
        if name.startswith(items.DEVICE_PREFIX)
    )
    return UserRecord(
        user_id=user_id,
        config=config,
        state=state,
        devices=devices,
        # A device registered after a logout wins (also when the two raced): logged out = no device.
        logged_out=bool(data.get("loggedOut", False)) and not devices,
        conversations=conversations,
    )
