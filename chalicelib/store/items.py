"""DynamoDB key design and item (de)serialisation: the one place that knows attribute shapes.

Single table, generic keys ``pk``/``sk``:

| item                 | pk                         | sk               |
|----------------------|----------------------------|------------------|
| app                  | ``A#<appId>``              | ``APP``          |
| app registry entry   | ``APPS``                   | ``A#<appId>``    |
| credential id counter| ``A#<appId>``              | ``COUNTER``      |
| credential metadata  | ``A#<appId>``              | ``C#<id:012d>``  |
| credential name      | ``A#<appId>``              | ``CN#<name>``    |
| user, folded (config, devices ``d#<token>``, state, badge, hint) | ``U#<appId>#<userId>`` | ``U`` |
| user state, before the fold (read, then folded into ``U``) | ``U#<appId>#<userId>`` | ``S`` |
| conversation setting (remindType, until) | ``U#<appId>#<userId>`` | ``CV#group#<gid>``, ``CV#c2c#<uid>`` |
| device token owner   | ``T#<appId>#<token>``      | ``T``            |
| group member         | ``G#<appId>#<groupId>``    | ``M#<userId>``   |
| delivery (per message x device) | ``M#<appId>#<messageId>`` | ``D#<userId>#<token>`` |

A send reads, per recipient, the folded user item, and the one or two conversation settings the
message concerns (``CV#group#<gid>`` and ``CV#c2c#<senderId>``) only when the item's hint names
them (``user_fold``): exact keys in BatchGetItem calls of 100. The badge lives on the user item:
1 write unit per increment while the item stays under 1 KB.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from chalicelib.errors import ValidationFailed
from chalicelib.store import retry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

_SER = TypeSerializer()
_DESER = TypeDeserializer()

DEVICE_PREFIX = "d#"
APP_REGISTRY_PK = "APPS"  # one item per app (sk A#<appId>): lets the expiry report list every app
BATCH_WRITE_LIMIT = 25
BATCH_GET_LIMIT = 100


def app_key(app_id: str) -> dict[str, Any]:
    return key(f"A#{app_id}", "APP")


def counter_key(app_id: str) -> dict[str, Any]:
    return key(f"A#{app_id}", "COUNTER")


def credential_key(app_id: str, certificate_id: int) -> dict[str, Any]:
    return key(f"A#{app_id}", f"C#{certificate_id:012d}")


def credential_name_key(app_id: str, name: str) -> dict[str, Any]:
    return key(f"A#{app_id}", f"CN#{name}")


def user_key(app_id: str, user_id: str) -> dict[str, Any]:
    return key(f"U#{app_id}#{user_id}", "U")


def state_key(app_id: str, user_id: str) -> dict[str, Any]:
    return key(f"U#{app_id}#{user_id}", "S")


CONVERSATION_PREFIX = "CV#"


def conversation_sk(kind: str, conversation_id: str) -> str:
    return f"{CONVERSATION_PREFIX}{kind}#{conversation_id}"


def conversation_key(app_id: str, user_id: str, kind: str, conversation_id: str) -> dict[str, Any]:
    return key(f"U#{app_id}#{user_id}", conversation_sk(kind, conversation_id))


def token_key(app_id: str, token: str) -> dict[str, Any]:
    return key(f"T#{app_id}#{token}", "T")


def group_pk(app_id: str, group_id: str) -> str:
    return f"G#{app_id}#{group_id}"


def delivery_pk(app_id: str, message_id: str) -> str:
    return f"M#{app_id}#{message_id}"


def call_key(app_id: str, call_id: str) -> dict[str, Any]:
    """A call's small item in the deliveries table: written by its cancel, read by its invite's chunks."""
    return key(f"CALL#{app_id}#{call_id}", "CALL")


def key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def serialize(value: Any) -> dict[str, Any]:
    return cast(dict[str, Any], _SER.serialize(value))


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _SER.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_DESER.deserialize(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    """Decimals back to int/float, sets to sorted lists: what the models expect."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str, pk: str, sk_prefix: str) -> dict[str, Any]:
    """The start key of a cursor this API answered for this very query (same pk, sk prefix), else 400."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError:
        key = None
    sk = key.get("sk") if isinstance(key, dict) else None
    if (
        not isinstance(key, dict)
        or set(key) != {"pk", "sk"}
        or key["pk"] != {"S": pk}
        or not isinstance(sk, dict)
        or set(sk) != {"S"}
        or not isinstance(sk["S"], str)
        or not sk["S"].startswith(sk_prefix)
    ):
        raise ValidationFailed("cursor is not one this API returned: pass nextCursor unchanged")
    return key


def batch_write(client: DynamoDBClient, table: str, requests: list[dict[str, Any]]) -> int:
    """BatchWriteItem in calls of 25, retrying unprocessed items; answers the number of calls."""
    calls = 0
    for start in range(0, len(requests), BATCH_WRITE_LIMIT):
        pending: dict[str, Any] = {table: requests[start : start + BATCH_WRITE_LIMIT]}
        started, rounds = time.monotonic(), 0
        while pending:
            if rounds:
                retry.pause_for_unprocessed(rounds, started)
            rounds += 1
            calls += 1
            resp = client.batch_write_item(RequestItems=pending)
            pending = dict(resp.get("UnprocessedItems") or {})
    return calls


def query_all(client: DynamoDBClient, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query matches, page after page (items as returned: typed attribute values)."""
    while True:
        resp = client.query(**kwargs)
        yield from resp.get("Items", [])
        if "LastEvaluatedKey" not in resp:
            return
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]
