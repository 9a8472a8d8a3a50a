"""Sending one chunk of a message: who gets pushed, what it says, APNs, and what became of everyone.

Per chunk attempt: claim its lease (a redelivered chunk sends nothing), see whether the message was
recalled or edited meanwhile, plan (read every recipient in one round, decide, render, count the
badges and save them), send every device concurrently through the gateway, act on APNs' answers
through the outcome table, retry only the devices that can succeed later, and checkpoint the
outcomes as they come.

After a crash the lease runs out and a redelivery takes the attempt over: it sends only the devices
with no outcome in this attempt's pages, with the badges saved before the crash, so a device gets
the message twice only if it was in flight or answered after the last checkpoint; the copy has the
same apns-id, badge and collapse-id.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from chalicelib.models import receipt_refs
from chalicelib.models.ledger import ChunkRef, MessageOps, Outcome
from chalicelib.models.sending import SendChunk
from chalicelib.services.lifecycle import apply_edit
from chalicelib.services.send.attempt import ChunkReport, Claim, WritePage
from chalicelib.services.send.checkpoint import Checkpointer
from chalicelib.services.send.target import Target
from chalicelib.services.send.wing import SendWing

_RECALL_CHECK_S = 0.25  # how often a chunk being sent re-reads whether its message was recalled


@dataclass
class _Live:
    """What happened to the message meanwhile, re-read beside the checkpoints while sending."""

    ops: MessageOps
    checked_at: float = field(default_factory=time.monotonic)


@dataclass
class SendService:
    wing: SendWing

    async def send_chunk(self, chunk: SendChunk) -> ChunkReport:
        w = self.wing
        report = ChunkReport(message_id=chunk.message_id)
        ref = ChunkRef(chunk.index, chunk.attempt)
        now_ms = w.clock_ms()
        claim = await w.runner.claim(chunk.app_id, chunk.message_id, ref, now_ms, "chunk")
        if claim is None:
            report.outcome = "duplicate"
            return report
        sent_code = ""
        async with w.runner.preparing(claim):
            # Recalled or edited since it was sent (checked after the claim, so a recall's replacement
            # job, which waits for this lease to be done, sees every device this attempt sends).
            live = _Live(await w.ledger.ops(chunk.app_id, chunk.message_id))
            if live.ops.edit_rev and live.ops.edit and not live.ops.recalled:
                chunk = chunk.model_copy(update={"event": apply_edit(chunk.event, live.ops.edit)})
                sent_code = f"edit{live.ops.edit_rev}"
            if w.receipt_keys is not None:  # read (or created) once per app per container
                await asyncio.to_thread(w.receipt_keys.get_or_create, chunk.app_id)
            earlier = await w.runner.earlier(claim)
            if claim.takeover:  # a previous invocation died mid-chunk: keep what it recorded
                report.outcome = "takeover"
            skips, targets = await w.planner.plan(chunk, claim, earlier, now_ms, recalled=live.ops.recalled)

        async def deliver(checkpoints: Checkpointer) -> None:
            recalled = lambda: live.ops.recalled  # noqa: E731  (read at each send)
            await w.delivery.chunk(
                chunk, targets, checkpoints, report, recalled, sent_code, lambda t: self._receipt(chunk, t)
            )

        async def settled(outcomes: list[Outcome]) -> None:
            if w.events is not None:
                certificates = {(t.index, t.device.token): t.device.certificate_id for t, _ in targets}
                await w.events.settled(
                    chunk.app_id,
                    chunk.message_id,
                    chunk.index,
                    chunk.chunks,
                    chunk.recipients,
                    list(chunk.settings.webhook_events),
                    outcomes,
                    certificates,
                )

        await w.runner.run(
            claim,
            earlier,
            skips,
            self._watching_writer(claim, live),
            deliver,
            report,
            settled if chunk.settings.webhook_events else None,
        )
        return report

    def _receipt(self, chunk: SendChunk, target: Target) -> dict[str, Any] | None:
        """The notification's top-level ``r`` (receipt_refs): a few microseconds of HMAC, no I/O."""
        keys = self.wing.receipt_keys
        key = keys.cached(chunk.app_id) if keys is not None else None
        if key is None:
            return None
        day = self.wing.clock_ms() // 86_400_000
        ref = receipt_refs.issue(
            key,
            chunk.app_id,
            chunk.message_id,
            day,
            chunk.index,
            chunk.attempt,
            target.index,
            target.device.token,
        )
        return {"r": ref}

    def _watching_writer(self, claim: Claim, live: _Live) -> WritePage:
        """Checkpoint pages; beside one, at most every _RECALL_CHECK_S, a re-read of whether the
        message was recalled: a recall stops the rest of this chunk (the recall's 202 also waits for
        chunks being sent to finish)."""
        ledger = self.wing.ledger

        async def write(seq: int, outcomes: list[Outcome]) -> None:
            if live.ops.recalled or time.monotonic() - live.checked_at < _RECALL_CHECK_S:
                await ledger.put_page(claim, seq, outcomes)
                return
            live.checked_at = time.monotonic()
            ops = await ledger.put_page_and_read_ops(claim, seq, outcomes)
            if ops is not None:  # else the next checkpoint reads it again
                live.ops = ops

        return write
