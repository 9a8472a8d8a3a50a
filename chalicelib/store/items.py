"""DynamoDB key design and item (de)serialisation: the one place that knows attribute shapes.

Single table, generic keys ``pk``/``sk``:

| item                 | pk                         | sk               |
|----------------------|----------------------------|------------------|
| app                  | ``A#<appId>``              | ``APP``          |
| credential id counter| ``A#<appId>``              | ``COUNTER``      |
| credential metadata  | ``A#<appId>``              | ``C#<id:012d>``  |
| credential name      | ``A#<appId>``              | ``CN#<name>``    |
| user (config, state, badge, devices ``d#<token>``) | ``U#<appId>#<userId>`` | ``U`` |
| device token owner   | ``T#<appId>#<token>``      | ``T``            |
| group member         | ``G#<appId>#<groupId>``    | ``M#<userId>``   |
| delivery (per message x device) | ``M#<appId>#<messageId>`` | ``D#<userId>#<token>`` |

One item per user holds everything the send path needs, so 100 recipients are
one BatchGetItem.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_SER = TypeSerializer()
_DESER = TypeDeserializer()

DEVICE_PREFIX = "d#"


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


def token_key(app_id: str, token: str) -> dict[str, Any]:
    return key(f"T#{app_id}#{token}", "T")


def group_pk(app_id: str, group_id: str) -> str:
    return f"G#{app_id}#{group_id}"


def delivery_pk(app_id: str, message_id: str) -> str:
    return f"M#{app_id}#{message_id}"


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
