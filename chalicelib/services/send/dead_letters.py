"""What the send queue's redrive dead-lettered (a chunk that failed ``maxReceiveCount`` receives, e.g.
through a throttling storm) still ends in the report: its devices without an outcome are marked
``failed DeadLettered``, nothing is sent. The record is then parked (``<send queue>-parked``) so a
redrive after the outage sends it again: its lease was left ``dead``, so that send is a takeover
that keeps every recorded outcome and sends exactly the devices marked here (their new outcome
replaces ``DeadLettered``). Idempotent: a second pass marks nothing new.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from chalicelib import clock
from chalicelib.models.ledger import DEAD_LETTERED, ChunkAttempt, ChunkRef, Claim, LeaseLost, Outcome
from chalicelib.models.lifecycle import ReplaceJob, SendRecord
from chalicelib.models.read_sync import ReadSyncJob
from chalicelib.models.sending import SendChunk
from chalicelib.store.deliveries import DeliveryRepository

WHY = (
    "the send queue dead-lettered this chunk after it failed its maximum receives (e.g. AWS kept "
    "throttling); a redrive of its dead-letter queue sends it again"
)


class DeadLetterBusy(Exception):
    """A live invocation still holds the attempt's lease: look again later."""


@dataclass(frozen=True, slots=True)
class Settled:
    what: str  # marked | done (everything was recorded) | replacement | readSync | unreadable
    marked: int = 0

    def describe(self) -> str:
        return f"{self.what}: {self.marked} device(s) marked failed {DEAD_LETTERED}"


def dead_outcomes(chunk: SendChunk, recipients: list[str], recorded: list[Outcome]) -> list[Outcome]:
    """The outcomes to record for a dead-lettered attempt (pure): every device a retry carries, or
    every recipient of a first attempt, that has no outcome in the attempt yet."""
    decided = {o.key for o in recorded}
    touched = {o.index for o in recorded}
    out: list[Outcome] = []
    for index, user_id in enumerate(recipients):
        if chunk.devices is not None:  # a retry: its devices are "pending" from the attempt before
            out += [
                Outcome(index, token, "failed", DEAD_LETTERED, WHY)
                for token in chunk.devices.get(user_id, ())
                if (index, token) not in decided
            ]
        elif index not in touched:
            out.append(Outcome(index, None, "failed", DEAD_LETTERED, WHY))
    return out


@dataclass
class DeadLetterService:
    deliveries: DeliveryRepository
    lease_ms: int
    clock_ms: Callable[[], int] = clock.now_ms

    def settle(self, body: str) -> Settled:
        """Mark what one dead-lettered send-queue record left undecided; raises DeadLetterBusy while
        a live invocation still holds it."""
        try:
            record = SendRecord.model_validate_json(body).root
        except ValidationError:
            return Settled("unreadable")  # dead-lettered by the handler with its reason: nothing to mark
        if isinstance(record, ReplaceJob):
            return Settled("replacement")  # the original's outcomes stand; the report shows them
        if isinstance(record, ReadSyncJob):
            return Settled("readSync")  # a badge-only push: the next read or message sets the badge again
        ref = ChunkRef(record.index, record.attempt)
        now = self.clock_ms()
        holder = "dead-" + secrets.token_hex(8)
        lease = self.deliveries.mark_dead(record.app_id, record.message_id, ref, now, self.lease_ms, holder)
        if lease == "busy":
            raise DeadLetterBusy(f"chunk {ref.sk} of message {record.message_id} is still being sent")
        if lease == "done":
            return Settled("done")
        found = self.deliveries.attempts(record.app_id, record.message_id, None, ref)
        attempt = found[0] if found else ChunkAttempt(ref)
        marks = dead_outcomes(record, attempt.recipients or record.recipients, attempt.outcomes)
        if marks:
            page = self.deliveries.page_item(
                record.app_id, record.message_id, ref, attempt.pages, marks, now, holder
            )
            claim = Claim(record.app_id, record.message_id, ref, holder)
            try:
                self.deliveries.put_page(claim, page)  # also fences the stale holder's pages off
            except LeaseLost as exc:  # a stale holder's page just landed: read it all again later
                raise DeadLetterBusy(str(exc)) from None
        return Settled("marked", len(marks))
