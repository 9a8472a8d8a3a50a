"""Delivery receipts in DynamoDB, and each app's receipt key in Secrets Manager.

Receipts are stored per message under ``RC#<appId>#<digest of the message ID>`` (the reference
carries the digest, not the ID), one item per 32 recipients of a chunk attempt (sk
``<chunk>.<attempt>.<group>``), one attribute per device and event (``d<device>`` / ``o<device>``
= epoch ms): a receipt batch costs one UpdateItem per item it touches, each item stays around
1 KB, and ``if_not_exists`` keeps the first time of a repeated receipt.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chalicelib.models.receipt_refs import RECEIPT_GROUP, ReceiptRef, message_digest
from chalicelib.store import items
from chalicelib.store.secrets import SecretStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY_NAME = "receipt-key"
MAX_SETS_PER_UPDATE = 60  # keeps an UpdateExpression well under DynamoDB's 4 KB
MISSING_KEY_CACHE_S = 60.0

# (chunk, attempt, index, the token's first 2 bytes in hex) -> (deliveredAt, openedAt)
ReceiptTimes = dict[tuple[int, int, int, str], tuple[int | None, int | None]]


@dataclass
class ReceiptKeys:
    """The per-app key that signs receipt references: created on first use, never rotated, so kept
    for the container's life once read (a miss is re-read after a minute)."""

    secrets: SecretStore
    _keys: dict[str, bytes] = field(default_factory=dict, repr=False)
    _missing: dict[str, float] = field(default_factory=dict, repr=False)

    def get(self, app_id: str) -> bytes | None:
        """The app's key, or None if it never sent a notification (the receipts API's check)."""
        if app_id in self._keys:
            return self._keys[app_id]
        missed = self._missing.get(app_id)
        if missed is not None and time.monotonic() - missed < MISSING_KEY_CACHE_S:
            return None
        value = self.secrets.get(self.secrets.name(app_id, KEY_NAME), fresh=True)
        if value is None:
            self._missing[app_id] = time.monotonic()
            return None
        key = base64.b64decode(value["key"])
        self._keys[app_id] = key
        return key

    def cached(self, app_id: str) -> bytes | None:
        """The key if this container has it (no I/O)."""
        return self._keys.get(app_id)

    def get_or_create(self, app_id: str) -> bytes:
        """The send path's: the key, created the first time the app sends."""
        if app_id in self._keys:
            return self._keys[app_id]
        name = self.secrets.name(app_id, KEY_NAME)
        value = self.secrets.get(name, fresh=True)
        if value is None:
            fresh = base64.b64encode(secrets.token_bytes(32)).decode()
            self.secrets.create(name, {"key": fresh}, description=f"receipt reference key of {app_id}")
            value = self.secrets.get(name, fresh=True)  # the one stored first, if two raced
            assert value is not None
        key = base64.b64decode(value["key"])
        self._keys[app_id] = key
        self._missing.pop(app_id, None)
        return key


@dataclass(frozen=True, slots=True)
class ReceiptWrite:
    ref: ReceiptRef
    event: str  # "delivered" | "opened"
    at: int


@dataclass
class ReceiptRepository:
    client: DynamoDBClient
    table: str
    ttl_s: int

    def record(self, app_id: str, writes: Iterable[ReceiptWrite]) -> tuple[int, int]:
        """Store the receipts (first time wins); answers how many devices became delivered and
        opened with this call (a repeat changes, and counts, nothing)."""
        by_item: dict[tuple[bytes, int, int, int], dict[str, int]] = {}
        days: dict[tuple[bytes, int, int, int], int] = {}
        for w in writes:
            ref = w.ref
            where = (ref.digest, ref.chunk, ref.attempt, ref.group)
            attrs = by_item.setdefault(where, {})
            days[where] = ref.day
            names = ["d" + ref.device_key] + (["o" + ref.device_key] if w.event == "opened" else [])
            for name in names:
                attrs[name] = min(attrs.get(name, w.at), w.at)
        delivered = opened = 0
        for where, attrs in by_item.items():
            digest, chunk, attempt, group = where
            key = items.key(_pk(app_id, digest), f"{chunk:06d}.{attempt:02d}.{group:02d}")
            names = sorted(attrs)
            for start in range(0, len(names), MAX_SETS_PER_UPDATE):
                part = names[start : start + MAX_SETS_PER_UPDATE]
                existed = self._set_if_absent(key, {n: attrs[n] for n in part}, days[where])
                new = [n for n in part if n not in existed]
                delivered += sum(1 for n in new if n[0] == "d")
                opened += sum(1 for n in new if n[0] == "o")
        return delivered, opened

    def _set_if_absent(self, key: dict[str, Any], attrs: dict[str, int], day: int) -> set[str]:
        """One UpdateItem; answers the attributes that were already there."""
        names = {f"#a{i}": n for i, n in enumerate(attrs)}
        values = {f":v{i}": {"N": str(attrs[n])} for i, n in enumerate(attrs)}
        sets = [f"#a{i} = if_not_exists(#a{i}, :v{i})" for i in range(len(attrs))]
        resp = self.client.update_item(
            TableName=self.table,
            Key=key,
            UpdateExpression="SET " + ", ".join([*sets, "#ttl = if_not_exists(#ttl, :ttl)"]),
            ExpressionAttributeNames={**names, "#ttl": "ttl"},
            ExpressionAttributeValues={**values, ":ttl": {"N": str(day * 86400 + self.ttl_s)}},
            ReturnValues="ALL_OLD",  # (UPDATED_OLD may leave out what if_not_exists kept as it was)
        )
        return set(resp.get("Attributes", {})) & set(attrs)

    def of_message(self, app_id: str, message_id: str, chunk: int | None = None) -> ReceiptTimes:
        """Every receipt of the message (or of one chunk): one Query of small items."""
        out: ReceiptTimes = {}
        condition = "pk = :pk" + (" AND begins_with(sk, :c)" if chunk is not None else "")
        values: dict[str, Any] = {":pk": {"S": _pk(app_id, message_digest(message_id))}}
        if chunk is not None:
            values[":c"] = {"S": f"{chunk:06d}."}
        for raw in items.query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=values,
        ):
            c, att, group = (int(p) for p in raw["sk"]["S"].split("."))
            for name, value in raw.items():
                if name[0] not in "do":  # pk, sk, ttl
                    continue
                idx, prefix = int(name[1:-4], 16) + group * RECEIPT_GROUP, name[-4:]
                where = (c, att, idx, prefix)
                d, o = out.get(where, (None, None))
                at = int(value["N"])
                out[where] = (at, o) if name[0] == "d" else (d, at)
        return out


def _pk(app_id: str, digest: bytes) -> str:
    return f"RC#{app_id}#{digest.hex()}"
