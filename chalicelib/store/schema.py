"""The shape of the resources the store needs: the one table (generic ``pk``/``sk`` keys, on-demand,
TTL on ``ttl``) and the queues' redrive count. The deployed stack (``infra/stack.py``) and the local
emulator (``devstack/resources.py``) both build them from here."""

from __future__ import annotations

from typing import Any

TTL_ATTRIBUTE = "ttl"
MAX_RECEIVE_COUNT = 5  # receives of a queue message before SQS moves it to the dead-letter queue


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable's arguments for the table (key schema and billing mode; TTL is set apart)."""
    return {
        "TableName": name,
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }
