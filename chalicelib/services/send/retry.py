"""What to do with devices APNs did not take (429, 5xx, no answer, paused): the one retry policy.

A message's chunk sends them again later as a new attempt of the chunk, only to those devices, with
the badges they were given, through the send queue with exponential delay, and gives up (failed
``RetriesExhausted``, the rest dead-lettered with the reason) after ``max_send_attempts``. A
recall's or edit's replacement retries within its job, after ``REPLACEMENT_DELAYS_S``: its lease
already waited for the original's attempts, so a few seconds more cost nothing.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from chalicelib.apns.client import ApnsResult
from chalicelib.models.ledger import ChunkRef, Outcome
from chalicelib.models.sending import SendChunk
from chalicelib.services.send.attempt import ChunkReport
from chalicelib.services.send.target import Target, devices_of
from chalicelib.settings import Settings
from chalicelib.store.queues import Queues
from chalicelib.store.send_ledger import SendLedger

REPLACEMENT_DELAYS_S = (0.5, 1.0, 2.0)
NOT_SENT = "NotSent:"  # the reason of a device not sent because APNs was not answering (the pause)
_NOT_LEFT = (NOT_SENT, "Error:")  # ... or because sending failed before a request left (e.g. a secret)
LEDGER_ATTEMPTS_PER_TRY = 2  # attempts that sent nothing still end: at most this many per counted try


def left(result: ApnsResult) -> bool:
    """The request really went to APNs (only those count as attempts)."""
    return not (result.status == 0 and (result.reason or "").startswith(_NOT_LEFT))


def why(result: ApnsResult) -> str:
    return f"{result.status or 'no answer'} {result.reason or ''}".strip()


def gave_up(target: Target, result: ApnsResult, attempts: int) -> Outcome:
    reason = f"gave up after {attempts} attempts: {why(result)}"
    return Outcome(target.index, target.device.token, "failed", "RetriesExhausted", reason)


@dataclass
class RetryPolicy:
    settings: Settings
    ledger: SendLedger
    queues: Queues

    async def later(
        self, chunk: SendChunk, failed: list[tuple[Target, ApnsResult]], report: ChunkReport
    ) -> list[Outcome]:
        """Queue a later attempt of the chunk for these devices (their outcome: pending), or give
        up after the last attempt (failed)."""
        attempt = chunk.attempt + 1
        # Only a request that really left counts: devices paused while APNs was not answering, or
        # not sent for a failure before sending, are tried again without using up an attempt.
        tries = (chunk.attempt if chunk.tries is None else chunk.tries) + any(left(r) for _, r in failed)
        last = next((r for _, r in failed if left(r)), failed[0][1])
        cap = self.settings.max_send_attempts
        if tries >= cap or attempt >= LEDGER_ATTEMPTS_PER_TRY * cap:
            reason = f"gave up after {tries} attempts: {why(last)}"
            body = chunk.model_copy(
                update={
                    "recipients": sorted({t.user_id for t, _ in failed}),
                    "devices": devices_of(t for t, _ in failed),
                }
            ).model_dump_json(by_alias=True, exclude_none=True)
            await asyncio.to_thread(
                self.queues.dead_letter, self.settings.send_queue_name, body, reason, chunk.message_id
            )
            return [gave_up(t, last, tries) for t, _ in failed]
        users = sorted({t.user_id for t, _ in failed})
        retry = chunk.model_copy(
            update={
                "attempt": attempt,
                "recipients": users,
                "devices": devices_of(t for t, _ in failed),
                "badges": {t.user_id: t.badge for t, _ in failed},
                "tries": tries,
            }
        )
        await self.ledger.put_retry_chunk(
            chunk.app_id, chunk.message_id, ChunkRef(chunk.index, attempt), users
        )
        delay = min(900, math.ceil(self.settings.retry_base_delay_s * 2 ** (attempt - 1)))
        body = retry.model_dump_json(by_alias=True, exclude_none=True)
        await asyncio.to_thread(self.queues.send_chunks, [body], delay)
        report.retried += len(failed)
        reason = (
            f"retrying in {delay} s (attempt {tries + 1} of {self.settings.max_send_attempts}) "
            f"after {why(last)}"
        )
        return [
            Outcome(t.index, t.device.token, "pending", r.reason or "NoAnswer", reason) for t, r in failed
        ]
