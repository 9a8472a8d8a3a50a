"""The message list: one small index item per message, written by the fan-out, read newest first.

| item        | pk                            | sk                                  |
|-------------|-------------------------------|-------------------------------------|
| index entry | ``ML#<appId>#<YYYY-MM-DD>``   | ``<createdAt ms:013d>#<messageId>`` |

One partition per app per UTC day (of the fan-out), so "newest first" is a backwards Query of
today's partition, then yesterday's ... The entry holds what the list shows without reading the
message (target, sender, sendTime, recipient count) and the message's recipient ranges (each
chunk's first recipient, and the last one), so "the messages Bob received" needs no write per
recipient: a message whose ranges hold Bob is checked by reading the one chunk that would hold him.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.store import items

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class IndexEntry:
    message_id: str
    created_at: int  # ms: the list's order
    send_time: int
    to_user: str | None
    to_group: str | None
    sender_id: str
    call: bool
    recipient_count: int
    bounds: tuple[str, ...]  # each chunk's first recipient (recipients are sorted)
    last: str | None  # the last recipient

    @property
    def sk(self) -> str:
        return entry_sk(self.created_at, self.message_id)

    @property
    def day(self) -> dt.date:
        return dt.datetime.fromtimestamp(self.created_at / 1000, dt.UTC).date()

    def may_hold(self, user_id: str) -> bool:
        """Could user_id be a recipient? Exact for one-to-one messages; a range test for groups."""
        if not self.bounds or self.last is None:
            return False
        return self.bounds[0] <= user_id <= self.last


def index_pk(app_id: str, day: dt.date) -> str:
    return f"ML#{app_id}#{day.isoformat()}"


def entry_sk(created_at: int, message_id: str) -> str:
    return f"{created_at:013d}#{message_id}"


@dataclass
class MessageIndexRepository:
    client: DynamoDBClient
    table: str
    ttl_s: int

    def put(self, app_id: str, entry: IndexEntry) -> None:
        """Idempotent: the same message fanned out again writes the same key."""
        values: dict[str, Any] = {
            "pk": index_pk(app_id, entry.day),
            "sk": entry.sk,
            "t": entry.send_time,
            "from": entry.sender_id,
            "n": entry.recipient_count,
            "b": list(entry.bounds),
            "hi": entry.last,
            "ttl": entry.created_at // 1000 + self.ttl_s,
        }
        if entry.to_user is not None:
            values["tu"] = entry.to_user
        if entry.to_group is not None:
            values["tg"] = entry.to_group
        if entry.call:
            values["call"] = True
        self.client.put_item(TableName=self.table, Item=items.to_item(values))

    def newest(
        self, app_id: str, day: dt.date, before_sk: str | None, limit: int
    ) -> tuple[list[IndexEntry], bool]:
        """Up to ``limit`` entries of one day, newest first, older than ``before_sk`` (None: from the
        newest); and whether that day has more (older) entries."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": index_pk(app_id, day)}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if before_sk is not None:
            kwargs["ExclusiveStartKey"] = items.key(index_pk(app_id, day), before_sk)
        resp = self.client.query(**kwargs)
        found = [_entry(items.from_item(raw)) for raw in resp.get("Items", [])]
        return found, "LastEvaluatedKey" in resp


def _entry(plain: dict[str, Any]) -> IndexEntry:
    created, _, message_id = str(plain["sk"]).partition("#")
    return IndexEntry(
        message_id=message_id,
        created_at=int(created),
        send_time=int(plain.get("t", 0)),
        to_user=plain.get("tu"),
        to_group=plain.get("tg"),
        sender_id=str(plain.get("from", "")),
        call=bool(plain.get("call")),
        recipient_count=int(plain.get("n", 0)),
        bounds=tuple(plain.get("b") or ()),
        last=plain.get("hi"),
    )
