"""Sending a recall's or an edit's replacements for one chunk of the original message.

One job per original chunk, on the send queue (``ReplaceJob``), so a group of 10,000 is replaced
by 40 jobs in parallel, as it was sent. A job:

1. waits (queues itself again with a short delay) while the original chunk has an attempt that is
   queued or being sent: the original checks the recall at its claim and at every checkpoint, so once
   its attempts are done, what its ledger says was ``sent`` is every device that can show it;
2. claims its own lease (``R#K#...`` for a recall, ``E<rev>#K#...`` for an edit) with the attempt
   runner: a redelivered job sends nothing twice, a takeover after a crash sends only devices
   without an outcome;
3. recall: takes 1 off the badge of every recipient the original counted (conditional, never below
   0) and saves the new values before sending (a takeover reuses them);
4. sends each device that was sent the original a replacement (same collapse-id, its own apns-id,
   ``op``, no sound) and checkpoints the outcomes as the original's send does; answers to retry
   (429, 5xx, no answer) are tried again within the job (``retry.py``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from chalicelib.models.ledger import RECALL_PREFIX, ChunkRef, edit_prefix
from chalicelib.models.lifecycle import ReplaceJob
from chalicelib.models.message import MessageEvent
from chalicelib.models.sending import SendChunk
from chalicelib.services.lifecycle import apply_edit, chunk_state
from chalicelib.services.send.attempt import ChunkReport
from chalicelib.services.send.checkpoint import Checkpointer
from chalicelib.services.send.replace_plan import plan_replacements
from chalicelib.services.send.wing import SendWing

MAX_WAITS = 120  # about an hour of waiting for an original chunk that never finishes (e.g. dead-lettered)


def job_prefix(job: ReplaceJob) -> str:
    return RECALL_PREFIX if job.op == "recall" else edit_prefix(job.rev)


@dataclass
class ReplaceService:
    wing: SendWing

    async def replace_chunk(self, job: ReplaceJob) -> ChunkReport:
        w = self.wing
        report = ChunkReport(message_id=job.message_id, outcome=job.op)
        app_id, message_id = job.app_id, job.message_id
        stored = await w.ledger.stored_message(app_id, message_id)  # sees the latest edit
        if stored is None:
            report.outcome = "gone"  # expired (TTL): nothing left to replace
            return report
        ops = stored.ops
        if job.op == "edit" and (ops.recalled or ops.edit_rev != job.rev or ops.edit is None):
            report.outcome = "superseded"  # a later edit or a recall replaces every device anyway
            return report
        original = await w.ledger.attempts_of(app_id, message_id, job.index)
        state = chunk_state(original, edit_rev=job.rev if job.op == "edit" else 0)
        if state.unfinished and job.waits < MAX_WAITS:
            delay = min(30, 1 + job.waits)
            body = job.model_copy(update={"waits": job.waits + 1}).model_dump_json(by_alias=True)
            await asyncio.to_thread(w.queues.send_chunks, [body], delay)
            report.outcome = "waiting"
            return report

        ref = ChunkRef(job.index, job.attempt, job_prefix(job))
        claim = await w.runner.claim(app_id, message_id, ref, w.clock_ms(), "replacement")
        if claim is None:
            report.outcome = "duplicate"
            return report
        async with w.runner.preparing(claim):
            earlier = await w.runner.earlier(claim)
            event = MessageEvent.model_validate(stored.event)
            if job.op == "edit" and ops.edit is not None:
                event = apply_edit(event, ops.edit)
            chunk = SendChunk(
                app_id=app_id,
                message_id=message_id,
                index=job.index,
                attempt=job.attempt,
                event=event,
                recipients=state.recipients or ["-"],
                sender_display_name=stored.sender_display_name,
                settings=stored.settings,
            )
            skips, targets = await plan_replacements(w, job, chunk, state, earlier, claim)

        async def deliver(checkpoints: Checkpointer) -> None:
            await w.delivery.replacements(chunk, targets, checkpoints, report)

        await w.runner.run(claim, earlier, skips, w.runner.page_writer(claim), deliver, report)
        return report
