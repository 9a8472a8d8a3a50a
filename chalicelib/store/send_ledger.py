"""The send wing's calls on the ledger, executed here and answered as domain values.

Every write that makes a chunk attempt exactly-once goes through this class: the claim of its
lease, its finish or release (boto3, off the event loop: rare), and its checkpoints (outcome pages
and saved badges, written with the asyncio client: hot). The requests themselves are built by
``DeliveryRepository`` (``deliveries.py``, sections "leases" and "badges and outcomes"), the one
place that knows the ledger's keys: a condition on every checkpoint (e.g. fencing by the claim)
is a change there and here, nowhere in the services.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib import clock
from chalicelib.models.ledger import ChunkAttempt, ChunkRef, ClaimOutcome, MessageOps, Outcome
from chalicelib.models.settings import SendSettings
from chalicelib.store.deliveries import DeliveryRepository
from chalicelib.store.dynamo_async import AsyncDynamo

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """What the fan-out stored of a message (for its replacements), and what happened to it since."""

    event: dict[str, Any]  # the event as its chunks carried it (JSON)
    sender_display_name: str | None
    ops: MessageOps
    settings: SendSettings  # the app's settings the fan-out stamped on the message


@dataclass
class SendLedger:
    deliveries: DeliveryRepository
    dynamo: AsyncDynamo
    lease_ms: int = 120_000
    clock_ms: Callable[[], int] = clock.now_ms

    # ---- the attempt's lease ----------------------------------------------------------------

    async def claim(self, app_id: str, message_id: str, ref: ChunkRef, now_ms: int) -> ClaimOutcome:
        return await asyncio.to_thread(self.deliveries.claim, app_id, message_id, ref, now_ms, self.lease_ms)

    async def finish(
        self, app_id: str, message_id: str, ref: ChunkRef, claimed_at: int | None = None
    ) -> bool:
        """Done; with ``claimed_at``, only while that claim is still the lease's (False: taken over)."""
        return await asyncio.to_thread(self.deliveries.finish, app_id, message_id, ref, claimed_at)

    async def release(self, app_id: str, message_id: str, ref: ChunkRef) -> None:
        await asyncio.to_thread(self.deliveries.release, app_id, message_id, ref)

    # ---- checkpoints ------------------------------------------------------------------------

    async def put_page(
        self, app_id: str, message_id: str, ref: ChunkRef, seq: int, outcomes: Sequence[Outcome]
    ) -> None:
        page = self.deliveries.page_item(app_id, message_id, ref, seq, outcomes, self.clock_ms())
        await self.dynamo.call("PutItem", page, binary=True)

    async def put_page_and_read_ops(
        self, app_id: str, message_id: str, ref: ChunkRef, seq: int, outcomes: Sequence[Outcome]
    ) -> MessageOps | None:
        """A page, and beside it (concurrently) what happened to the message since; None when only
        that read failed (the page is written or this raises)."""
        put, found = await asyncio.gather(
            self.put_page(app_id, message_id, ref, seq, outcomes),
            self.ops(app_id, message_id),
            return_exceptions=True,
        )
        if isinstance(put, BaseException):
            raise put
        if isinstance(found, BaseException):
            log.warning("could not check %s for a recall: %r", message_id, found)
            return None
        return found

    async def put_badges(self, app_id: str, message_id: str, ref: ChunkRef, badges: dict[int, int]) -> None:
        """The badges given in this attempt (by recipient index), saved before anything is sent."""
        saved = self.deliveries.badges_item(app_id, message_id, ref, badges, self.clock_ms())
        await self.dynamo.call("PutItem", saved, binary=True)

    # ---- reading ----------------------------------------------------------------------------

    async def earlier(self, app_id: str, message_id: str, ref: ChunkRef) -> ChunkAttempt:
        """What an earlier invocation of this very attempt recorded (a takeover keeps it)."""
        found = await asyncio.to_thread(self.deliveries.attempts, app_id, message_id, None, ref)
        return found[0] if found else ChunkAttempt(ref)

    async def attempts_of(self, app_id: str, message_id: str, index: int) -> list[ChunkAttempt]:
        """Every attempt of one chunk of the original message."""
        return await asyncio.to_thread(self.deliveries.attempts, app_id, message_id, index)

    async def ops(self, app_id: str, message_id: str) -> MessageOps:
        """Recalled or edited since it was sent (strongly consistent, small)."""
        found = await self.dynamo.call("GetItem", self.deliveries.ops_request(app_id, message_id))
        return self.deliveries.ops_of(found.get("Item"))

    async def stored_message(self, app_id: str, message_id: str) -> StoredMessage | None:
        """The stored event and its latest edit (consistent); None once expired or never stored."""
        summary = await asyncio.to_thread(self.deliveries.summary, app_id, message_id, True)
        stored = self.deliveries.stored_event(summary) if summary else None
        if summary is None or stored is None:
            return None
        return StoredMessage(
            stored["event"],
            stored.get("senderDisplayName"),
            self.deliveries.ops_in(summary),
            SendSettings.model_validate(stored.get("settings") or {}),
        )

    async def call_cancelled(self, app_id: str, call_id: str) -> bool:
        return await asyncio.to_thread(self.deliveries.call_cancelled, app_id, call_id)

    # ---- retries ----------------------------------------------------------------------------

    async def put_retry_chunk(self, app_id: str, message_id: str, ref: ChunkRef, users: list[str]) -> None:
        """The chunk item of a retry attempt (its recipients), before it is queued."""
        await asyncio.to_thread(
            self.deliveries.put_chunks, app_id, message_id, [(ref, users)], self.clock_ms()
        )
