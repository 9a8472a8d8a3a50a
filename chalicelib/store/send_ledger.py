"""The send wing's calls on the ledger, executed here and answered as domain values.

Every write that makes a chunk attempt exactly-once goes through this class: the claim of its
lease with a fresh fencing token, and then, each fenced by that token (``leases.py``), its
checkpoints (pages of outcomes, and first the badges it gave, each conditional on its number
being free: written with the asyncio client, hot) and its renewal,
finish or release (boto3, off the event loop: rare). A write that finds the attempt taken over
raises ``LeaseLost``. The
requests themselves are built by ``DeliveryRepository`` (``deliveries.py``), the one place that
knows the ledger's keys.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib import clock
from chalicelib.models.ledger import (
    ChunkAttempt,
    ChunkRef,
    Claim,
    ClaimOutcome,
    LeaseLost,
    MessageOps,
    Outcome,
)
from chalicelib.models.settings import SendSettings
from chalicelib.store.deliveries import DeliveryRepository
from chalicelib.store.dynamo_async import AsyncDynamo

log = logging.getLogger(__name__)

_FENCE_TRIES = 3  # a stale holder has at most one page in flight: a second refusal is a third holder


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

    async def claim(
        self, app_id: str, message_id: str, ref: ChunkRef, now_ms: int
    ) -> tuple[ClaimOutcome, Claim]:
        """The claim's outcome, and the claim (with its fresh fencing token) as this invocation holds it."""
        holder, started = secrets.token_hex(8), time.monotonic()
        outcome = await asyncio.to_thread(
            self.deliveries.claim, app_id, message_id, ref, now_ms, self.lease_ms, holder
        )
        return outcome, Claim(app_id, message_id, ref, holder, outcome == "takeover", started)

    async def renew(self, claim: Claim) -> None:
        await asyncio.to_thread(self.deliveries.renew, claim, self.clock_ms())

    async def finish(self, claim: Claim) -> None:
        await asyncio.to_thread(self.deliveries.finish, claim)

    async def release(self, claim: Claim) -> None:
        await asyncio.to_thread(self.deliveries.release, claim)

    # ---- checkpoints (fenced) ---------------------------------------------------------------

    async def put_page(
        self, claim: Claim, seq: int, outcomes: Sequence[Outcome], badges: dict[int, int] | None = None
    ) -> None:
        """Page ``seq`` of the attempt's outcomes (or of its ``badges``), unless another holder wrote
        that number (then ``LeaseLost``: this claim was taken over, see ``leases.py``)."""
        c = claim
        now = self.clock_ms()
        page = self.deliveries.page_item(c.app_id, c.message_id, c.ref, seq, outcomes, now, c.holder, badges)
        try:
            await self.dynamo.call("PutItem", page, binary=True)
        except Exception as exc:
            if type(exc).__name__ != "ConditionalCheckFailed":
                raise
            found = await self.dynamo.call("GetItem", self.deliveries.page_writer_request(page))
            lost = self.deliveries.page_refused(claim, page, self.deliveries.page_writer(found))
            if lost is not None:
                raise lost from None

    async def take_over(self, claim: Claim) -> ChunkAttempt:
        """What the invocations before this one recorded of the attempt, read after a takeover, and
        an empty fence page written at the next number: the stale holder's next page is refused.
        A page of its that lands between the read and the fence is read and fenced after."""
        for _ in range(_FENCE_TRIES):
            found = await self.earlier(claim.app_id, claim.message_id, claim.ref)
            try:
                await self.put_page(claim, found.pages, [])
            except LeaseLost:
                continue  # its page just landed: read again
            found.pages += 1
            return found
        raise LeaseLost(f"{claim.ref.sk} of message {claim.message_id}: could not fence its pages")

    async def put_page_and_read_ops(
        self, claim: Claim, seq: int, outcomes: Sequence[Outcome]
    ) -> MessageOps | None:
        """A page, and beside it (concurrently) what happened to the message since; None when only
        that read failed (the page is written or this raises)."""
        put, found = await asyncio.gather(
            self.put_page(claim, seq, outcomes),
            self.ops(claim.app_id, claim.message_id),
            return_exceptions=True,
        )
        if isinstance(put, BaseException):
            raise put
        if isinstance(found, BaseException):
            log.warning("could not check %s for a recall: %r", claim.message_id, found)
            return None
        return found

    async def put_badges(self, claim: Claim, earlier: ChunkAttempt, badges: dict[int, int]) -> None:
        """The badges given in this attempt (by recipient index), saved before anything is sent: a
        page numbered after ``earlier``'s (counted in it), fenced like every page (1 write unit while
        a chunk's badges compress under 1 KB)."""
        await self.put_page(claim, earlier.pages, [], badges)
        earlier.pages += 1

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
