"""Per-message bookkeeping, all under ``M#<appId>#<messageId>`` with a TTL: the message summary,
its send chunks (the exactly-once ledger) and each chunk's outcomes, stored per chunk, not per device.

| item         | sk                             | what                                                  |
|--------------|--------------------------------|-------------------------------------------------------|
| summary      | ``MSG``                        | recipient/chunk counts, each chunk's first recipient  |
| chunk        | ``K#<index>.<attempt>``        | its recipients (sorted), written once                 |
| lease        | ``K#<index>.<attempt>#L``      | queued -> claimed (claimedAt, holder) -> done; dead   |
| outcome page | ``K#<index>.<attempt>#P<seq>`` | one checkpoint's outcomes (binary), who wrote it; the |
|              |                                | attempt's first page holds the badges it gave (``b``) |
| replacement  | ``R#K#...`` / ``E<rev>#K#...`` | the same ledger for a recall / an edit's replacements |

A recall or edit marks the summary (``recalled``, ``edit``: conditional, so a second recall is a
no-op) and queues one replacement job per chunk, whose lease, badges and pages live under their own
prefix (``R#`` for the recall, ``E<rev:03d>#`` for the rev-th change when it is an edit) so they
never mix with the original's.

A chunk attempt is claimed with one conditional update of its tiny lease item
before anything is sent, so a redelivered SQS message finds it claimed or done
and sends nothing; the claim's fencing token guards every later write of its
holder (``leases.py``). While it sends, the sender writes an outcome page every few
hundred milliseconds (a checkpoint); a takeover after a crash reads the
attempt's pages and sends only the devices that have no outcome there.
Recipients are sorted at fan-out and chunks hold contiguous ranges, so one
recipient's outcomes are found by reading one chunk.
"""

from __future__ import annotations

import bisect
import json
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.models.ledger import ChunkAttempt, ChunkRef, MessageOps, Outcome
from chalicelib.store import items, retry
from chalicelib.store.leases import LeaseWrites
from chalicelib.store.ledger_codec import (
    decode_badges,
    decode_outcomes,
    encode_badges,
    encode_outcomes,
    pack_ids,
    unpack_ids,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

COMPRESS_PAGE_OVER = 900  # an outcome page over this many bytes is stored zlib-compressed (``z``)
ONLINE_PAGE = 4_000  # member IDs per ON# item: well under 400 KB even uncompressed


@dataclass
class DeliveryRepository(LeaseWrites):
    client: DynamoDBClient
    table: str
    ttl_s: int

    # ---- the message summary -------------------------------------------------------------------

    def create_summary(
        self,
        app_id: str,
        message_id: str,
        recipients: int,
        bounds: list[str],
        now_ms: int,
        event: dict[str, Any] | None = None,
        online: int = 0,
    ) -> bool:
        """Write the message summary once; False when this message was already fanned out.
        ``bounds``: the first recipient of each chunk (recipients are sorted). ``event``: what a
        recall or edit needs to render its replacements (the event as chunks carry it, and the
        sender's display name), stored zlib-compressed. ``online``: how many were settled online
        (stored apart, ``put_online``)."""
        extra: dict[str, Any] = {"onlineCount": online} if online else {}
        if event is not None:
            extra["event"] = zlib.compress(json.dumps(event, separators=(",", ":")).encode())
        try:
            self.client.put_item(
                TableName=self.table,
                Item=items.to_item(
                    {
                        "pk": items.delivery_pk(app_id, message_id),
                        "sk": "MSG",
                        "recipientCount": recipients,
                        "chunkCount": len(bounds),
                        "bounds": bounds,
                        "createdAt": now_ms,
                        "ttl": self._ttl(now_ms),
                        **extra,
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

    def summary(self, app_id: str, message_id: str, consistent: bool = False) -> dict[str, Any] | None:
        resp = self.client.get_item(
            TableName=self.table,
            Key=items.key(items.delivery_pk(app_id, message_id), "MSG"),
            ConsistentRead=consistent,
        )
        return items.from_item(resp["Item"]) if "Item" in resp else None

    # ---- members settled online at fan-out --------------------------------------------------------

    def put_online(self, app_id: str, message_id: str, users: list[str], now_ms: int) -> None:
        """The members the event said were online (sorted), zlib-compressed in items of
        ONLINE_PAGE IDs (``ON#<n>``): a few bytes per member, written once (a repeated fan-out
        keeps the first)."""
        pk = items.delivery_pk(app_id, message_id)
        for n, start in enumerate(range(0, len(users), ONLINE_PAGE)):
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item={
                        **items.key(pk, f"ON#{n}"),
                        "u": {"B": pack_ids(users[start : start + ONLINE_PAGE])},
                        "ttl": {"N": str(self._ttl(now_ms))},
                    },
                    ConditionExpression="attribute_not_exists(sk)",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise

    def online(self, app_id: str, message_id: str, count: int) -> list[str]:
        """The members settled online (``count`` from the summary), sorted."""
        pk = items.delivery_pk(app_id, message_id)
        out: list[str] = []
        for n in range(-(-count // ONLINE_PAGE)):
            got = self.client.get_item(TableName=self.table, Key=items.key(pk, f"ON#{n}")).get("Item")
            if got is not None:
                out += unpack_ids(got["u"]["B"])
        return out

    # ---- calls ---------------------------------------------------------------------------------

    def mark_call_cancelled(self, app_id: str, call_id: str, cancel_message_id: str, now_ms: int) -> None:
        """The call's cancel was fanned out: its invite's chunks, from now on, send nothing."""
        self.client.update_item(
            TableName=self.table,
            Key=items.call_key(app_id, call_id),
            UpdateExpression=(
                "SET cancelledAt = if_not_exists(cancelledAt, :at), cancelMessageId = :m, #t = :ttl"
            ),
            ExpressionAttributeNames={"#t": "ttl"},
            ExpressionAttributeValues={
                ":at": {"N": str(now_ms)},
                ":m": {"S": cancel_message_id},
                ":ttl": {"N": str(self._ttl(now_ms))},
            },
        )

    def call_cancelled(self, app_id: str, call_id: str) -> bool:
        resp = self.client.get_item(
            TableName=self.table, Key=items.call_key(app_id, call_id), ConsistentRead=True
        )
        return "cancelledAt" in resp.get("Item", {})

    # ---- recall and edit -----------------------------------------------------------------------

    def mark_recalled(self, app_id: str, message_id: str, now_ms: int) -> bool:
        """Mark the message recalled; False if it already was (a second recall changes nothing)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=items.key(items.delivery_pk(app_id, message_id), "MSG"),
                UpdateExpression="SET recalled = :t, recalledAt = :now",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(recalled)",
                ExpressionAttributeValues={":t": {"BOOL": True}, ":now": {"N": str(now_ms)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def mark_edited(self, app_id: str, message_id: str, edit: dict[str, Any], now_ms: int) -> int | None:
        """Store the new content as the next edit; its number (1, 2 ...), or None if the message was
        recalled meanwhile."""
        try:
            resp = self.client.update_item(
                TableName=self.table,
                Key=items.key(items.delivery_pk(app_id, message_id), "MSG"),
                UpdateExpression="SET editRev = if_not_exists(editRev, :zero) + :one, editJson = :e, "
                "editedAt = :now",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(recalled)",
                ExpressionAttributeValues={
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":e": {"S": json.dumps(edit, separators=(",", ":"), ensure_ascii=False)},
                    ":now": {"N": str(now_ms)},
                },
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return int(resp["Attributes"]["editRev"]["N"])

    def ops_request(self, app_id: str, message_id: str) -> dict[str, Any]:
        """GetItem (strongly consistent) of what happened to the message since: the send path's check,
        small (the summary's bounds and event are not read)."""
        return {
            "TableName": self.table,
            "Key": items.key(items.delivery_pk(app_id, message_id), "MSG"),
            "ProjectionExpression": "recalled, editRev, editJson",
            "ConsistentRead": True,
        }

    @staticmethod
    def ops_of(item: dict[str, Any] | None) -> MessageOps:
        """The MessageOps in a GetItem answer's Item (DynamoDB JSON)."""
        return DeliveryRepository.ops_in(items.from_item(item) if item else {})

    @staticmethod
    def ops_in(plain: dict[str, Any]) -> MessageOps:
        """The MessageOps in a summary as ``summary()`` answers it."""
        rev = int(plain.get("editRev") or 0)
        raw = plain.get("editJson")
        return MessageOps(
            recalled=bool(plain.get("recalled")),
            edit_rev=rev,
            edit=json.loads(raw) if rev and raw else None,
        )

    def ops(self, app_id: str, message_id: str) -> MessageOps:
        return self.ops_of(self.client.get_item(**self.ops_request(app_id, message_id)).get("Item"))

    @staticmethod
    def stored_event(summary: dict[str, Any]) -> dict[str, Any] | None:
        """The event the fan-out stored with the summary (None for messages fanned out before)."""
        raw = summary.get("event")
        if raw is None:
            return None
        data: dict[str, Any] = json.loads(zlib.decompress(bytes(raw)))
        return data

    def chunks_being_sent(self, app_id: str, message_id: str, chunk_count: int) -> int:
        """How many of the message's chunks (first attempts) are claimed right now: exact keys,
        BatchGetItem of 100, strongly consistent."""
        pk = items.delivery_pk(app_id, message_id)
        keys = [items.key(pk, f"{ChunkRef(i, 0).sk}#L") for i in range(chunk_count)]
        claimed = 0
        for start in range(0, len(keys), 100):
            pending: dict[str, Any] = {
                self.table: {
                    "Keys": keys[start : start + 100],
                    "ProjectionExpression": "#s",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ConsistentRead": True,
                }
            }
            started, rounds = time.monotonic(), 0
            while pending:
                if rounds:
                    retry.pause_for_unprocessed(rounds, started)
                rounds += 1
                resp = self.client.batch_get_item(RequestItems=pending)
                found = resp.get("Responses", {}).get(self.table, [])
                claimed += sum(1 for it in found if it.get("status", {}).get("S") == "claimed")
                pending = dict(resp.get("UnprocessedKeys") or {})
        return claimed

    # ---- chunks --------------------------------------------------------------------------------

    def put_chunks(
        self, app_id: str, message_id: str, chunks: Sequence[tuple[ChunkRef, list[str]]], now_ms: int
    ) -> None:
        """Write chunk items that do not exist yet. Never overwrites: an earlier run of the same
        fan-out or retry keeps its recipients, and its lease keeps the chunk from being sent twice."""
        pk = items.delivery_pk(app_id, message_id)
        for ref, users in chunks:
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item={
                        **items.key(pk, ref.sk),
                        "r": {"B": pack_ids(users)},  # ~1 write unit for 250, not 3 as a list
                        "ttl": {"N": str(self._ttl(now_ms))},
                    },
                    ConditionExpression="attribute_not_exists(sk)",
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise

    def first_chunks(self, app_id: str, message_id: str) -> list[tuple[ChunkRef, list[str]]]:
        """The chunks an earlier run of the fan-out wrote (attempt 0), with their recipients."""
        return [(a.ref, a.recipients) for a in self.attempts(app_id, message_id) if a.ref.attempt == 0]

    # ---- badges and outcomes -------------------------------------------------------------------

    def page_item(
        self,
        app_id: str,
        message_id: str,
        ref: ChunkRef,
        seq: int,
        outcomes: Sequence[Outcome],
        now_ms: int,
        holder: str,
        badges: Mapping[int, int] | None = None,
    ) -> dict[str, Any]:
        """One checkpoint: the outcomes decided since the previous one, as one small item, written
        by ``holder`` (a claim's fencing token) only if page ``seq`` is not written yet: a PutItem
        request (see ``leases.py`` for why that fences a stale holder out). No outcomes: the fence
        page a takeover writes, or the page of ``badges`` (by recipient index) an attempt saves
        before it sends anything (a takeover reuses them)."""
        sk = self.page_sk(ref, seq)
        values: dict[str, Any] = {"h": holder}
        encoded = encode_outcomes(outcomes)
        if encoded:
            values.update(_stored("o", "z", encoded))
        if badges is not None:  # saved even when none was given (a recall that counted nobody)
            values.update(_stored("b", "bz", encode_badges(badges)))
        request = self._put_request(app_id, message_id, sk, values, now_ms)
        return {**request, "ConditionExpression": "attribute_not_exists(sk)"}

    @staticmethod
    def page_sk(ref: ChunkRef, seq: int) -> str:
        return f"{ref.sk}#P{seq:04d}"

    def _put_request(
        self, app_id: str, message_id: str, sk: str, values: dict[str, Any], now_ms: int
    ) -> dict[str, Any]:
        pk = items.delivery_pk(app_id, message_id)
        return {
            "TableName": self.table,
            "Item": items.to_item({"pk": pk, "sk": sk, **values, "ttl": self._ttl(now_ms)}),
        }

    # ---- reading the ledger --------------------------------------------------------------------

    def attempts(
        self,
        app_id: str,
        message_id: str,
        index: int | None = None,
        ref: ChunkRef | None = None,
        prefix: str = "",
    ) -> list[ChunkAttempt]:
        """Every chunk attempt of a message (or of one chunk, or one attempt), in chunk order.
        ``prefix``: the original's ledger (""), or a recall's / an edit's replacements."""
        if ref is not None:
            prefix = ref.prefix
        start = len(prefix)
        wanted = (
            prefix + "K#" if index is None and ref is None else (ref.sk if ref else f"{prefix}K#{index:06d}.")
        )
        found: dict[tuple[int, int], ChunkAttempt] = {}
        for raw in items.query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :k)",
            ExpressionAttributeValues={
                ":pk": {"S": items.delivery_pk(app_id, message_id)},
                ":k": {"S": wanted},
            },
            ConsistentRead=True,
        ):
            sk = raw["sk"]["S"]
            head, _, part = sk[start + 2 :].partition("#")
            idx, att = head.split(".")
            attempt = found.setdefault(
                (int(idx), int(att)), ChunkAttempt(ChunkRef(int(idx), int(att), prefix))
            )
            if part == "":
                attempt.recipients = _recipients(raw)
            elif part == "L":
                attempt.status = raw.get("status", {}).get("S", "queued")
            elif part == "B":  # the badges' own item, as versions before 3.2 wrote it
                attempt.badges = decode_badges(raw["b"]["B"])
            elif part.startswith("P"):
                outcomes = _binary(raw, "o", "z")
                attempt.outcomes += decode_outcomes(outcomes or b"")  # none: a fence or badges page
                badges = _binary(raw, "b", "bz")
                if badges is not None:  # a takeover's page of badges adds to (or updates) the first's
                    attempt.badges = {**(attempt.badges or {}), **decode_badges(badges)}
                attempt.pages = max(attempt.pages, int(part[1:]) + 1)
        return [found[k] for k in sorted(found)]

    @staticmethod
    def chunk_of(bounds: list[str], user_id: str) -> int | None:
        """The chunk whose recipient range holds user_id (bounds: each chunk's first recipient)."""
        pos = bisect.bisect_right(bounds, user_id) - 1
        return pos if pos >= 0 else None

    def _ttl(self, now_ms: int) -> int:
        return now_ms // 1000 + self.ttl_s


def _stored(plain: str, packed: str, data: bytes) -> dict[str, bytes]:
    """A page's binary attribute, zlib-compressed when large (a page of skips, the same few codes
    hundreds of times, compresses ~10x; a chunk's badges ~3x): write units saved."""
    if len(data) > COMPRESS_PAGE_OVER:
        return {packed: zlib.compress(data)}
    return {plain: data}


def _binary(raw: dict[str, Any], plain: str, packed: str) -> bytes | None:
    """A page's binary attribute, stored as it is (``plain``) or zlib-compressed (``packed``)."""
    if packed in raw:
        return zlib.decompress(raw[packed]["B"])
    return bytes(raw[plain]["B"]) if plain in raw else None


def _recipients(raw: dict[str, Any]) -> list[str]:
    """A chunk item's recipients: compressed (``r``), or a list as earlier versions wrote them."""
    if "r" in raw:
        return unpack_ids(raw["r"]["B"])
    return [v["S"] for v in raw.get("recipients", {}).get("L", [])]
