"""The folded user item's slower writes: folding a user stored before the fold, and taking stale
positions out of the conversation hint after a setting is removed (see ``user_fold``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.errors import Conflict
from chalicelib.models.push_config import ConversationSetting
from chalicelib.store import items
from chalicelib.store.user_codec import STATE_FIELDS, parse_conversation
from chalicelib.store.user_fold import FOLD, HINT, HINT_VERSION, MARKS, hint_of, hint_positions

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def fold_user(client: DynamoDBClient, table: str, app_id: str, user_id: str) -> None:
    """Fold a user stored before the fold (or not stored at all) into one item: the S item's
    state and badge and the settings' hint go on the user item, then the S item goes. Once per
    user; conditional on no hint addition meanwhile (then it looks again)."""
    key = items.user_key(app_id, user_id)
    for _attempt in range(5):
        user_item = client.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
        if user_item is not None and FOLD in user_item:
            return
        part = list(
            items.query_all(
                client,
                TableName=table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": f"U#{app_id}#{user_id}"}},
                ConsistentRead=True,
            )
        )
        state_item = next((i for i in part if i["sk"]["S"] == "S"), None)
        source = state_item or user_item or {}
        positions = hint_positions(
            (c.kind, c.conversation_id)
            for c in (parse_conversation(i) for i in part if i["sk"]["S"].startswith("CV#"))
        )
        sets = ["#f = :one", "#bm = if_not_exists(#bm, :empty)"]
        values: dict[str, Any] = {":one": {"N": "1"}, ":empty": {"M": {}}}
        for i, name in enumerate(STATE_FIELDS):
            if name in source:
                sets.append(f"{name} = :s{i}")
                values[f":s{i}"] = source[name]
        if "badge" not in source:
            sets.append("badge = :zero")
            values[":zero"] = {"N": "0"}
        removes = [n for n in STATE_FIELDS if n not in source and n != "badge"]
        if positions:
            sets.append("#h = :h")
            values[":h"] = {"NS": [str(p) for p in sorted(positions)]}
        else:
            removes.append("#h")
        version = (user_item or {}).get(HINT_VERSION)
        condition = "attribute_not_exists(#f) AND " + ("#v = :v" if version else "attribute_not_exists(#v)")
        if version:
            values[":v"] = version
        try:
            client.update_item(
                TableName=table,
                Key=key,
                UpdateExpression=f"{_clause('SET', sets)} {_clause('REMOVE', removes)}".strip(),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#f": FOLD, "#bm": MARKS, "#h": HINT, "#v": HINT_VERSION},
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            continue
        if state_item is not None:
            client.delete_item(TableName=table, Key=items.state_key(app_id, user_id))
        return
    raise Conflict(f"user '{user_id}' changed while being folded: retry")


def remove_stale_hint(
    client: DynamoDBClient,
    table: str,
    app_id: str,
    user_id: str,
    settings: Callable[[str, str], list[ConversationSetting]],
) -> None:
    """Drop the hint positions no stored setting has, unless a setting was added meanwhile (then
    look again): read the version, then the settings, then delete on condition."""
    key = items.user_key(app_id, user_id)
    for _attempt in range(5):
        got = client.get_item(
            TableName=table,
            Key=key,
            ConsistentRead=True,
            ProjectionExpression="#h, #v",
            ExpressionAttributeNames={"#h": HINT, "#v": HINT_VERSION},
        ).get("Item", {})
        stale = hint_of(got) - hint_positions((s.kind, s.conversation_id) for s in settings(app_id, user_id))
        if not stale:
            return
        version = got.get(HINT_VERSION)
        try:
            client.update_item(
                TableName=table,
                Key=key,
                UpdateExpression="DELETE #h :p",
                ConditionExpression="#v = :v" if version else "attribute_not_exists(#v)",
                ExpressionAttributeNames={"#h": HINT, "#v": HINT_VERSION},
                ExpressionAttributeValues={
                    ":p": {"NS": [str(p) for p in sorted(stale)]},
                    **({":v": version} if version else {}),
                },
            )
            return
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
    # Settings kept changing: the stale positions stay (a "maybe" costs a read, never a miss).


def _clause(keyword: str, parts: list[str]) -> str:
    return f"{keyword} {', '.join(parts)}" if parts else ""
