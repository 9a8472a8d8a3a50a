"""The send path's side of outcome webhooks: after a chunk attempt settles, its events go on the
webhook queue in one SendMessageBatch (nothing at all for an app that wants none).

``message.completed`` needs to know when the last chunk settled with nobody pending: each chunk
whose attempt ends without a retry adds its index to the message's small completion item
(``M#<appId>#<messageId>`` / ``DONE``, a number set: adding twice changes nothing, so a redelivered
or taken-over chunk cannot complete a message twice). The update that finds every chunk there and
the event not yet queued queues it, then marks it queued; a crash between the two queues it again
from a takeover, with the same event ID.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from chalicelib import clock
from chalicelib.models.ledger import Outcome
from chalicelib.models.webhooks import WebhookBatch
from chalicelib.services import webhook_events as ev
from chalicelib.store import items
from chalicelib.store.dynamo_async import AsyncDynamo
from chalicelib.store.queues import Queues

log = logging.getLogger(__name__)

COMPLETION_SK = "DONE"


@dataclass
class OutcomeEvents:
    queues: Queues
    dynamo: AsyncDynamo
    table: str
    ttl_s: int
    clock_ms: Callable[[], int] = clock.now_ms

    async def settled(
        self,
        app_id: str,
        message_id: str,
        chunk_index: int,
        chunk_count: int | None,
        recipients: list[str],
        wanted: list[str],
        outcomes: Iterable[Outcome],
        certificates: Mapping[tuple[int, str], int],
    ) -> int:
        """Queue the events of a settled chunk attempt (``outcomes``: all of the attempt's, a
        takeover's earlier ones included); answers how many were queued."""
        if not wanted:
            return 0
        now = self.clock_ms()
        settled = list(outcomes)
        failures = [
            ev.Failure(
                recipients[o.index],
                o.device_token,
                certificates.get((o.index, o.device_token)),
                o.code,
                o.reason,
            )
            for o in settled
            if o.status == "failed" and o.device_token and o.index < len(recipients)
        ]
        events = ev.failure_events(app_id, message_id, failures, wanted, now)
        completes = False
        if ev.MESSAGE_COMPLETED in wanted and chunk_count and not any(o.status == "pending" for o in settled):
            completes = await self._chunk_done(app_id, message_id, chunk_index, chunk_count, now)
            if completes:
                events.append(ev.completed_event(app_id, message_id, now))
        if not events:
            return 0
        bodies = [
            WebhookBatch(app_id=app_id, events=batch, first_at=now).model_dump_json(by_alias=True)
            for batch in ev.batches(events)
        ]
        await asyncio.to_thread(self.queues.send_webhook, bodies)
        if completes:
            await self.dynamo.call("UpdateItem", self._notified(app_id, message_id))
        return len(events)

    async def _chunk_done(self, app_id: str, message_id: str, index: int, count: int, now_ms: int) -> bool:
        """Record this chunk as settled; True when every chunk is and the event is not yet queued."""
        resp = await self.dynamo.call(
            "UpdateItem",
            {
                "TableName": self.table,
                "Key": items.key(items.delivery_pk(app_id, message_id), COMPLETION_SK),
                "UpdateExpression": "ADD done :i SET chunks = :n, #t = if_not_exists(#t, :ttl)",
                "ExpressionAttributeNames": {"#t": "ttl"},
                "ExpressionAttributeValues": {
                    ":i": {"NS": [str(index)]},
                    ":n": {"N": str(count)},
                    ":ttl": {"N": str(now_ms // 1000 + self.ttl_s)},
                },
                "ReturnValues": "ALL_NEW",
            },
        )
        item: dict[str, Any] = resp.get("Attributes", {})
        done = item.get("done", {}).get("NS", [])
        return len(done) >= count and not item.get("notified", {}).get("BOOL", False)

    def _notified(self, app_id: str, message_id: str) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "Key": items.key(items.delivery_pk(app_id, message_id), COMPLETION_SK),
            "UpdateExpression": "SET notified = :t",
            "ExpressionAttributeValues": {":t": {"BOOL": True}},
        }
