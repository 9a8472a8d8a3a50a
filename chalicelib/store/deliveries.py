"""Per-message bookkeeping: the message summary, its send chunks (the exactly-once ledger) and
one delivery record per recipient device, all under ``M#<appId>#<messageId>`` with a TTL.

| item            | sk                          | what                                              |
|-----------------|-----------------------------|---------------------------------------------------|
| summary         | ``MSG``                     | recipient/chunk counts, written once by fan-out   |
| chunk           | ``K#<index>.<attempt>``     | recipients, status queued -> claimed -> done      |
| delivery record | ``D#<userId>#<token or ->`` | sent / skipped / failed / pending, reason, apnsId |

A chunk is claimed with one conditional update before anything is sent, so a
redelivered or duplicated SQS message finds it claimed or done and sends nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from chalicelib.store import items

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Status = Literal["sent", "skipped", "failed", "pending"]
ClaimOutcome = Literal["claimed", "takeover", "done", "busy"]
NO_DEVICE = "-"


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    user_id: str
    device_token: str | None
    status: Status
    reason: str | None = None
    apns_id: str | None = None
    at_ms: int = 0
    code: str | None = None  # short form of reason for metrics (e.g. BadDeviceToken); not stored

    @property
    def metric_reason(self) -> str:
        return self.code or self.reason or ""

    @property
    def sk(self) -> str:
        return f"D#{self.user_id}#{self.device_token or NO_DEVICE}"


@dataclass(frozen=True, slots=True)
class ChunkRef:
    index: int
    attempt: int

    @property
    def sk(self) -> str:
        return f"K#{self.index:06d}.{self.attempt:02d}"


@dataclass
class DeliveryRepository:
    client: DynamoDBClient
    table: str
    ttl_s: int

    def create_summary(self, app_id: str, message_id: str, recipients: int, chunks: int, now_ms: int) -> bool:
        """Write the message summary once; False when this message was already fanned out."""
        try:
            self.client.put_item(
                TableName=self.table,
                Item=items.to_item(
                    {
                        "pk": items.delivery_pk(app_id, message_id),
                        "sk": "MSG",
                        "recipientCount": recipients,
                        "chunkCount": chunks,
                        "createdAt": now_ms,
                        "ttl": self._ttl(now_ms),
                    }
                ),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def summary_enqueued(self, app_id: str, message_id: str) -> bool:
        found = self.summary(app_id, message_id)
        return bool(found and found.get("enqueued"))

    def mark_enqueued(self, app_id: str, message_id: str) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=items.key(items.delivery_pk(app_id, message_id), "MSG"),
            UpdateExpression="SET enqueued = :t",
            ExpressionAttributeValues={":t": {"BOOL": True}},
        )

    def summary(self, app_id: str, message_id: str) -> dict[str, Any] | None:
        resp = self.client.get_item(
            TableName=self.table, Key=items.key(items.delivery_pk(app_id, message_id), "MSG")
        )
        return items.from_item(resp["Item"]) if "Item" in resp else None

    def put_chunks(
        self, app_id: str, message_id: str, chunks: Sequence[tuple[ChunkRef, list[str]]], now_ms: int
    ) -> None:
        """Write chunk items that do not exist yet. Never overwrites: a chunk already claimed or done
        (an earlier run of the same fan-out or retry) keeps its status, so it is not sent again."""
        pk = items.delivery_pk(app_id, message_id)
        for ref, users in chunks:
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item=items.to_item(
                        {
                            "pk": pk,
                            "sk": ref.sk,
                            "status": "queued",
                            "recipients": users,
                            "ttl": self._ttl(now_ms),
                        }
                    ),
                    ConditionExpression="attribute_not_exists(sk)",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise

    def _chunk_items(self, app_id: str, message_id: str) -> Iterator[dict[str, Any]]:
        yield from (
            items.from_item(raw)
            for raw in items.query_all(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :k)",
                ExpressionAttributeValues={
                    ":pk": {"S": items.delivery_pk(app_id, message_id)},
                    ":k": {"S": "K#"},
                },
            )
        )

    def first_chunks(self, app_id: str, message_id: str) -> list[tuple[ChunkRef, list[str]]]:
        """The chunks an earlier run of the fan-out wrote (attempt 0), with their recipients."""
        out = []
        for d in self._chunk_items(app_id, message_id):
            index, attempt = d["sk"][2:].split(".")
            if int(attempt) == 0:
                out.append((ChunkRef(int(index), 0), list(d.get("recipients", []))))
        return out

    def save_badges(self, app_id: str, message_id: str, ref: ChunkRef, badges: dict[str, int | None]) -> None:
        """The badges given in this chunk: a takeover after a crash reuses them instead of counting again."""
        self.client.update_item(
            TableName=self.table,
            Key=items.key(items.delivery_pk(app_id, message_id), ref.sk),
            UpdateExpression="SET badges = :b",
            ExpressionAttributeValues={":b": items.serialize(badges)},
        )

    def saved_badges(self, app_id: str, message_id: str, ref: ChunkRef) -> dict[str, int | None] | None:
        resp = self.client.get_item(
            TableName=self.table,
            Key=items.key(items.delivery_pk(app_id, message_id), ref.sk),
            ProjectionExpression="badges",
            ConsistentRead=True,
        )
        raw = resp.get("Item", {}).get("badges")
        return None if raw is None else dict(items.from_item({"b": raw})["b"])

    def claim(self, app_id: str, message_id: str, ref: ChunkRef, now_ms: int, lease_ms: int) -> ClaimOutcome:
        """Take the chunk for sending. ``takeover`` = a previous claim's lease ran out (a crash)."""
        try:
            resp = self.client.update_item(
                TableName=self.table,
                Key=items.key(items.delivery_pk(app_id, message_id), ref.sk),
                UpdateExpression="SET #s = :claimed, claimedAt = :now, #ttl = if_not_exists(#ttl, :ttl)",
                ConditionExpression=(
                    "attribute_not_exists(pk) OR #s = :queued OR (#s = :claimed AND claimedAt < :expired)"
                ),
                ExpressionAttributeNames={"#s": "status", "#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":claimed": {"S": "claimed"},
                    ":queued": {"S": "queued"},
                    ":now": {"N": str(now_ms)},
                    ":expired": {"N": str(now_ms - lease_ms)},
                    ":ttl": {"N": str(self._ttl(now_ms))},
                },
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            item = self.client.get_item(
                TableName=self.table,
                Key=items.key(items.delivery_pk(app_id, message_id), ref.sk),
                ConsistentRead=True,
            ).get("Item", {})
            return "done" if item.get("status", {}).get("S") == "done" else "busy"
        old = resp.get("Attributes", {}).get("status", {}).get("S")
        return "takeover" if old == "claimed" else "claimed"

    def finish(self, app_id: str, message_id: str, ref: ChunkRef) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=items.key(items.delivery_pk(app_id, message_id), ref.sk),
            UpdateExpression="SET #s = :done",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":done": {"S": "done"}},
        )

    def release(self, app_id: str, message_id: str, ref: ChunkRef) -> None:
        """Give the claim back after a failure before anything was sent, so a redelivery can retry."""
        self.client.update_item(
            TableName=self.table,
            Key=items.key(items.delivery_pk(app_id, message_id), ref.sk),
            UpdateExpression="SET #s = :queued",
            ConditionExpression="#s = :claimed",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":queued": {"S": "queued"}, ":claimed": {"S": "claimed"}},
        )

    def write_records(
        self, app_id: str, message_id: str, records: Sequence[DeliveryRecord], now_ms: int
    ) -> int:
        pk = items.delivery_pk(app_id, message_id)
        ttl = self._ttl(now_ms)
        requests = [
            {
                "PutRequest": {
                    "Item": items.to_item(
                        {
                            "pk": pk,
                            "sk": r.sk,
                            "userId": r.user_id,
                            "deviceToken": r.device_token,
                            "status": r.status,
                            "reason": r.reason,
                            "apnsId": r.apns_id,
                            "at": r.at_ms or now_ms,
                            "ttl": ttl,
                        }
                    )
                }
            }
            for r in records
        ]
        return items.batch_write(self.client, self.table, requests)

    def recorded_devices(
        self, app_id: str, message_id: str, keys: Sequence[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """Of these (userId, token) pairs, the ones with a record (sent, failed, or pending a retry of
        its own): a takeover leaves them alone."""
        pk = items.delivery_pk(app_id, message_id)
        found: set[tuple[str, str]] = set()
        for start in range(0, len(keys), items.BATCH_GET_LIMIT):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [
                        items.key(pk, f"D#{u}#{t}") for u, t in keys[start : start + items.BATCH_GET_LIMIT]
                    ],
                    "ProjectionExpression": "userId, deviceToken, #s",
                    "ExpressionAttributeNames": {"#s": "status"},
                }
            }
            while request:
                resp = self.client.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self.table, []):
                    if item.get("status", {}).get("S") != "skipped":
                        found.add((item["userId"]["S"], item["deviceToken"]["S"]))
                request = dict(resp.get("UnprocessedKeys") or {})
        return found

    def records(
        self, app_id: str, message_id: str, user_id: str | None, cursor: str | None, limit: int
    ) -> tuple[list[DeliveryRecord], str | None]:
        prefix = f"D#{user_id}#" if user_id else "D#"
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": {
                ":pk": {"S": items.delivery_pk(app_id, message_id)},
                ":p": {"S": prefix},
            },
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = items.decode_cursor(
                cursor, items.delivery_pk(app_id, message_id), prefix
            )
        resp = self.client.query(**kwargs)
        out = []
        for raw in resp["Items"]:
            d = items.from_item(raw)
            if user_id is not None and d["userId"] != user_id:
                continue  # user IDs may contain "#": the key prefix of "bob" also matches "bob#2"
            out.append(
                DeliveryRecord(
                    user_id=d["userId"],
                    device_token=d.get("deviceToken"),
                    status=d["status"],
                    reason=d.get("reason"),
                    apns_id=d.get("apnsId"),
                    at_ms=d.get("at", 0),
                )
            )
        last = resp.get("LastEvaluatedKey")
        return out, items.encode_cursor(last) if last else None

    def unfinished_first_attempts(self, app_id: str, message_id: str) -> list[str]:
        """Recipients of first-attempt chunks not yet done: nothing is recorded for them yet."""
        return [
            user
            for d in self._chunk_items(app_id, message_id)
            if d["status"] != "done" and d["sk"].endswith(".00")
            for user in d.get("recipients", [])
        ]

    def _ttl(self, now_ms: int) -> int:
        return now_ms // 1000 + self.ttl_s
