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
        last = failed[0][1]
        if attempt >= self.settings.max_send_attempts:
            reason = f"gave up after {attempt} attempts: {why(last)}"
            body = chunk.model_copy(
                update={
                    "recipients": sorted({t.user_id for t, _ in failed}),
                    "devices": devices_of(t for t, _ in failed),
                }
            ).model_dump_json(by_alias=True, exclude_none=True)
            await asyncio.to_thread(
                self.queues.dead_letter, self.settings.send_queue_name, body, reason, chunk.message_id
            )
            return [gave_up(t, last, attempt) for t, _ in failed]
        users = sorted({t.user_id for t, _ in failed})
        retry = chunk.model_copy(
            update={
                "attempt": attempt,
                "recipients": users,
                "devices": devices_of(t for t, _ in failed),
                "badges": {t.user_id: t.badge for t, _ in failed},
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
            f"retrying in {delay} s (attempt {attempt + 1} of {self.settings.max_send_attempts}) "
            f"after {why(last)}"
        )
        return [
            Outcome(t.index, t.device.token, "pending", r.reason or "NoAnswer", reason) for t, r in failed
        ]
