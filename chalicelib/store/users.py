"""Users: push config, app state, badge and device registrations, one DynamoDB item per user.

Device registrations are top-level attributes ``d#<token>`` on the user item
(so a send reads a user in one BatchGetItem key), and a token-owner item
``T#<appId>#<token>`` lets a token move between users in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.errors import Conflict
from chalicelib.models.devices import Device
from chalicelib.models.push_config import AppState, PushConfig
from chalicelib.store import items

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
    "mutedGroups",
    "mutedUsers",
)
_SET_FIELDS = {"mutedGroups", "mutedUsers"}


@dataclass(frozen=True)
class UserRecord:
    """Everything the send path and the API know about one user."""

    user_id: str
    config: PushConfig
    state: AppState
    devices: tuple[Device, ...] = ()
    logged_out: bool = False
    exists: bool = True


@dataclass
class UserRepository:
    client: DynamoDBClient
    table: str
    max_devices: int = 20

    # ---- reading -------------------------------------------------------------------------------

    def get(self, app_id: str, user_id: str) -> UserRecord:
        resp = self.client.get_item(
            TableName=self.table, Key=items.user_key(app_id, user_id), ConsistentRead=True
        )
        return parse_user(app_id, user_id, resp.get("Item"))

    def batch_get(self, app_id: str, user_ids: Sequence[str]) -> dict[str, UserRecord]:
        """Users by ID in BatchGetItem calls of 100 keys; missing users come back with defaults."""
        unique = list(dict.fromkeys(user_ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(unique), items.BATCH_GET_LIMIT):
            keys = [items.user_key(app_id, u) for u in unique[start : start + items.BATCH_GET_LIMIT]]
            request: dict[str, Any] = {self.table: {"Keys": keys}}
            while request:
                resp = self.client.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self.table, []):
                    user_id = item["pk"]["S"].split("#", 2)[2]
                    found[user_id] = item
                request = dict(resp.get("UnprocessedKeys") or {})
        return {u: parse_user(app_id, u, found.get(u)) for u in unique}

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

    def change_muted(self, app_id: str, user_id: str, list_name: str, member: str, add: bool) -> None:
        action = "ADD" if add else "DELETE"
        self._update(app_id, user_id, f"{action} #l :m", {"#l": list_name}, {":m": {"SS": [member]}})

    # ---- app state and badge -------------------------------------------------------------------

    def set_background(self, app_id: str, user_id: str, unread_count: int, at_ms: int) -> None:
        self._update(
            app_id,
            user_id,
            "SET appState = :s, badge = :b, stateAt = :t",
            None,
            {":s": {"S": "background"}, ":b": {"N": str(unread_count)}, ":t": {"N": str(at_ms)}},
        )

    def set_foreground(self, app_id: str, user_id: str, at_ms: int) -> None:
        self._update(
            app_id,
            user_id,
            "SET appState = :s, badge = :b, stateAt = :t",
            None,
            {":s": {"S": "foreground"}, ":b": {"N": "0"}, ":t": {"N": str(at_ms)}},
        )

    def increment_badge(self, app_id: str, user_id: str) -> int:
        """Atomically add 1 to the badge and answer the new value."""
        resp = self.client.update_item(
            TableName=self.table,
            Key=items.user_key(app_id, user_id),
            UpdateExpression="ADD badge :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(resp["Attributes"]["badge"]["N"])

    def badge_increment_request(self, app_id: str, user_id: str) -> dict[str, Any]:
        """increment_badge as a request for the send path's asyncio client (answer: Attributes.badge.N)."""
        return {
            "TableName": self.table,
            "Key": items.user_key(app_id, user_id),
            "UpdateExpression": "ADD badge :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
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


def _clause(keyword: str, parts: list[str]) -> str:
    return f"{keyword} {', '.join(parts)}" if parts else ""


def _device_attr(device: Device) -> dict[str, Any]:
    return {
        "certificateId": device.certificate_id,
        "bundleId": device.bundle_id,
        "environment": device.environment,
        "pushEnabled": device.push_enabled,
        "registeredAt": int(device.registered_at.timestamp() * 1000),
    }


def parse_user(app_id: str, user_id: str, item: dict[str, Any] | None) -> UserRecord:
    if not item:
        return UserRecord(user_id=user_id, config=PushConfig(), state=AppState(), exists=False)
    data = items.from_item(item)
    config = PushConfig.model_validate({k: data[k] for k in CONFIG_FIELDS if k in data})
    state = AppState(
        state=data.get("appState", "unknown"), badge=data.get("badge", 0), updated_at=data.get("stateAt")
    )
    devices = tuple(
        Device(
            device_token=name[len(items.DEVICE_PREFIX) :],
            user_id=user_id,
            certificate_id=attr["certificateId"],
            bundle_id=attr["bundleId"],
            environment=attr["environment"],
            push_enabled=attr.get("pushEnabled", True),
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
    )
