"""Sending a recall's or an edit's replacements for one chunk of the original message.

One job per original chunk, on the send queue (``ReplaceJob``), so a group of 10,000 is replaced
by 40 jobs in parallel, as it was sent. A job:

1. waits (queues itself again with a short delay) while the original chunk has an attempt that is
   queued or being sent: the original checks the recall at its claim and at every checkpoint, so once
   its attempts are done, what its ledger says was ``sent`` is every device that can show it;
2. claims its own lease (``R#K#...`` for a recall, ``E<rev>#K#...`` for an edit): a redelivered job
   sends nothing twice, and a takeover after a crash sends only devices without an outcome;
3. recall: takes 1 off the badge of every recipient the original counted (conditional, never below
   0) and saves the new values before sending (a takeover reuses them);
4. sends each device that was sent the original a replacement (same collapse-id, its own apns-id,
   ``op``, no sound) and checkpoints the outcomes as the original's send does; answers to retry
   (429, 5xx, no answer) are tried again within the job, with back-off, a few times.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiodynamo.errors import ConditionalCheckFailed

from chalicelib.apns.client import ApnsResult
from chalicelib.models.lifecycle import ReplaceJob
from chalicelib.models.message import MessageEvent
from chalicelib.models.sending import SendChunk
from chalicelib.models.settings import SendSettings
from chalicelib.services.checkpoint import Checkpointer
from chalicelib.services.lifecycle import apply_edit, chunk_state
from chalicelib.services.policy import DeviceView
from chalicelib.services.render import Notification, render_edit, render_recall
from chalicelib.services.sender import ChunkBusy, ChunkReport, SendService, _Target
from chalicelib.store.deliveries import RECALL_PREFIX, ChunkAttempt, ChunkRef, edit_prefix
from chalicelib.store.ledger_codec import Outcome

log = logging.getLogger(__name__)

MAX_WAITS = 120  # about an hour of waiting for an original chunk that never finishes (e.g. dead-lettered)
RETRY_DELAYS_S = (0.5, 1.0, 2.0)


def job_prefix(job: ReplaceJob) -> str:
    return RECALL_PREFIX if job.op == "recall" else edit_prefix(job.rev)


@dataclass
class ReplaceService:
    sender: SendService

    async def replace_chunk(self, job: ReplaceJob) -> ChunkReport:
        s = self.sender
        report = ChunkReport(message_id=job.message_id, outcome=job.op)
        app_id, message_id = job.app_id, job.message_id
        summary = await s._db(s.deliveries.summary, app_id, message_id, True)  # sees the latest edit
        stored = s.deliveries.stored_event(summary) if summary else None
        if summary is None or stored is None:
            report.outcome = "gone"  # expired (TTL): nothing left to replace
            return report
        ops = s.deliveries.ops_in(summary)
        if job.op == "edit" and (ops.recalled or ops.edit_rev != job.rev or ops.edit is None):
            report.outcome = "superseded"  # a later edit or a recall replaces every device anyway
            return report
        original = await s._db(s.deliveries.attempts, app_id, message_id, job.index)
        state = chunk_state(original, edit_rev=job.rev if job.op == "edit" else 0)
        if state.unfinished and job.waits < MAX_WAITS:
            delay = min(30, 1 + job.waits)
            body = job.model_copy(update={"waits": job.waits + 1}).model_dump_json(by_alias=True)
            await asyncio.to_thread(s.queues.send_chunks, [body], delay)
            report.outcome = "waiting"
            return report

        ref = ChunkRef(job.index, job.attempt, job_prefix(job))
        claim = await s._db(s.deliveries.claim, app_id, message_id, ref, s.clock_ms(), s.lease_ms)
        if claim == "done":
            report.outcome = "duplicate"
            return report
        if claim == "busy":
            raise ChunkBusy(
                f"replacement {ref.sk} of message {message_id} is being sent by another invocation"
            )
        try:
            earlier = ChunkAttempt(ref)
            if claim == "takeover":
                found = await s._db(s.deliveries.attempts, app_id, message_id, None, ref)
                earlier = found[0] if found else earlier
            event = MessageEvent.model_validate(stored["event"])
            if job.op == "edit" and ops.edit is not None:
                event = apply_edit(event, ops.edit)
            chunk = SendChunk(
                app_id=app_id,
                message_id=message_id,
                index=job.index,
                attempt=job.attempt,
                event=event,
                recipients=state.recipients or ["-"],
                sender_display_name=stored.get("senderDisplayName"),
                settings=SendSettings.model_validate(stored.get("settings") or {}),
            )
            skips, targets = await self._plan(job, chunk, state, earlier, ref)
        except Exception:
            await s._db(s.deliveries.release, app_id, message_id, ref)
            raise

        async def write(seq: int, outcomes: list[Outcome]) -> None:
            page = s.deliveries.page_item(app_id, message_id, ref, seq, outcomes, s.clock_ms())
            await s.dynamo.call("PutItem", page, binary=True)

        await s._run_attempt(
            chunk, ref, earlier, skips, write, lambda cp: self._deliver(chunk, targets, cp, report), report
        )
        return report

    async def _plan(
        self, job: ReplaceJob, chunk: SendChunk, state: Any, earlier: ChunkAttempt, ref: ChunkRef
    ) -> tuple[list[Outcome], list[tuple[_Target, Notification]]]:
        s = self.sender
        done = {o.key for o in earlier.outcomes}
        todo = [(i, t) for i, t in state.sent if (i, t) not in done]
        counted = state.counted if job.op == "recall" else frozenset()
        wanted = sorted({i for i, _ in todo} | set(counted))
        users = await s._db(s.users.batch_get, chunk.app_id, [state.recipients[i] for i in wanted], ())
        badges = await self._badges(
            chunk, ref, [state.recipients[i] for i in sorted(counted)], state, earlier
        )
        rendered: dict[int, Notification] = {}
        skips: list[Outcome] = []
        targets: list[tuple[_Target, Notification]] = []
        for index, token in todo:
            user_id = state.recipients[index]
            user = users[user_id]
            device = next((d for d in user.devices if d.device_token == token), None)
            if device is None:  # logged out or moved to another user since: no credential to reach it
                skips.append(Outcome(index, token, "skipped", "noDevice"))
                continue
            if index not in rendered:
                if job.op == "recall":
                    n = render_recall(
                        chunk.event,
                        user.config,
                        sender_display_name=chunk.sender_display_name,
                        conventions=chunk.settings.payload_conventions,
                    )
                else:
                    n = render_edit(
                        chunk.event,
                        user.config,
                        sender_display_name=chunk.sender_display_name,
                        mention=chunk.event.mention_of(user_id),
                        conventions=chunk.settings.payload_conventions,
                    )
                rendered[index] = n
            view = DeviceView(device.device_token, device.certificate_id, device.push_enabled, None)
            targets.append((_Target(index, user_id, view, badges.get(user_id)), rendered[index]))
        return skips, targets

    async def _badges(
        self, chunk: SendChunk, ref: ChunkRef, users: list[str], state: Any, earlier: ChunkAttempt
    ) -> dict[str, int | None]:
        """Recall: 1 off each counted recipient's badge (never below 0), saved before sending."""
        if not users:
            return {}
        position = {u: i for i, u in enumerate(state.recipients)}
        if earlier.badges is not None:  # a takeover: the decrements were done and saved
            return {u: earlier.badges.get(position[u]) for u in users}
        s = self.sender
        values = await asyncio.gather(
            *(self._decrement(chunk.app_id, u) for u in users), return_exceptions=True
        )
        badges: dict[str, int | None] = {}
        for user, value in zip(users, values, strict=True):
            if isinstance(value, BaseException):
                log.warning("badge decrement failed for a recipient of %s: %r", chunk.message_id, value)
                badges[user] = None
            else:
                badges[user] = value
        given = {position[u]: b for u, b in badges.items() if b is not None}
        saved = s.deliveries.badges_item(chunk.app_id, chunk.message_id, ref, given, s.clock_ms())
        await s.dynamo.call("PutItem", saved, binary=True)
        return badges

    async def _decrement(self, app_id: str, user_id: str) -> int:
        s = self.sender
        try:
            resp = await s.dynamo.call("UpdateItem", s.users.badge_decrement_request(app_id, user_id))
        except ConditionalCheckFailed:
            return 0
        return int(resp["Attributes"]["badge"]["N"])

    async def _deliver(
        self,
        chunk: SendChunk,
        targets: list[tuple[_Target, Notification]],
        checkpoints: Checkpointer,
        report: ChunkReport,
    ) -> None:
        s = self.sender
        unrecorded = s._permits()

        async def one(target: _Target, notification: Notification) -> None:
            result = ApnsResult(0, "NoAnswer", "")
            for attempt in range(len(RETRY_DELAYS_S) + 1):
                if attempt:
                    await asyncio.sleep(RETRY_DELAYS_S[attempt - 1])
                await unrecorded.acquire()
                try:
                    result, cred = await s._send_one(chunk, target, notification, report)
                    outcome = await s._settle(chunk, target, result, cred)
                except Exception as exc:
                    unrecorded.release()
                    log.warning("replacement to a device of %s failed: %r", chunk.message_id, exc)
                    result = ApnsResult(0, f"Error:{type(exc).__name__}", "")
                    continue
                if outcome is not None:
                    checkpoints.add(outcome, holds_permit=True)
                    return
                unrecorded.release()
            why = f"{result.status or 'no answer'} {result.reason or ''}".strip()
            reason = f"gave up after {len(RETRY_DELAYS_S) + 1} attempts: {why}"
            checkpoints.add(Outcome(target.index, target.device.token, "failed", "RetriesExhausted", reason))

        await asyncio.gather(*(one(t, n) for t, n in targets))
