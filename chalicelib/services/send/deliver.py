"""Sending a planned attempt's devices, concurrently, each through the gateway and the outcome
table, each outcome checkpointed; what APNs did not take goes to the retry policy.

Every send holds a permit of the attempt runner until its outcome is written (``holds_permit``)
or it ends with none (``gave_back``: retried later, an error, or cancelled when the lease was lost,
so the container's later chunks have all their permits), and asks the checkpoints first whether the
attempt may still send (``before_send``: not once its lease was taken over).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chalicelib.apns.client import ApnsResult
from chalicelib.apns.ids import apns_id
from chalicelib.models.ledger import Outcome
from chalicelib.models.notification import Notification
from chalicelib.models.sending import SendChunk
from chalicelib.services.send.attempt import AttemptRunner, ChunkReport
from chalicelib.services.send.checkpoint import Checkpointer
from chalicelib.services.send.gateway import ApnsGateway
from chalicelib.services.send.plan import RECALLED
from chalicelib.services.send.retry import NOT_SENT, REPLACEMENT_DELAYS_S, RetryPolicy, gave_up
from chalicelib.services.send.settle import Settler
from chalicelib.services.send.target import Target

log = logging.getLogger(__name__)

Targets = list[tuple[Target, Notification]]


@dataclass
class Delivery:
    runner: AttemptRunner
    gateway: ApnsGateway
    settler: Settler
    retry: RetryPolicy

    async def chunk(
        self,
        chunk: SendChunk,
        targets: Targets,
        checkpoints: Checkpointer,
        report: ChunkReport,
        recalled: Callable[[], bool],
        sent_code: str = "",
        receipt_of: Callable[[Target], dict[str, Any] | None] = lambda _t: None,
    ) -> None:
        """A message's devices. ``recalled()``: the message was recalled meanwhile (the rest is
        skipped); ``sent_code``: the code of a sent outcome ("edit<n>": sent the n-th edit)."""
        retry: list[tuple[Target, ApnsResult]] = []
        unrecorded = self.runner.permits()

        async def one(target: Target, notification: Notification) -> None:
            await self._may_send(unrecorded, checkpoints)
            if recalled():
                checkpoints.add(
                    Outcome(target.index, target.device.token, "skipped", RECALLED), holds_permit=True
                )
                return
            if self.gateway.paused():
                checkpoints.gave_back()
                ident = apns_id(chunk.app_id, chunk.message_id, target.device.token)
                retry.append((target, ApnsResult(0, NOT_SENT + "ApnsNotAnswering", ident)))
                return
            try:
                result, cred = await self.gateway.send(
                    chunk.app_id,
                    chunk.message_id,
                    target,
                    notification,
                    report.latencies_ms,
                    receipt_of(target),
                )
            except asyncio.CancelledError:  # the lease was lost: this container's permit back
                checkpoints.gave_back()
                raise
            except Exception as exc:
                # e.g. Secrets Manager down on a cache miss: nothing was sent, so try again later.
                log.warning("sending to a device of %s failed: %r", chunk.message_id, exc)
                ident = apns_id(chunk.app_id, chunk.message_id, target.device.token)
                result, cred = ApnsResult(0, f"Error:{type(exc).__name__}", ident), None
            self.gateway.note_answer(result)
            try:
                outcome = await self.settler.settle(chunk.app_id, target, result, cred)
            except BaseException:
                checkpoints.gave_back()
                raise
            if outcome is None:  # not delivered (429, 5xx): nothing to lose, retried later
                checkpoints.gave_back()
                retry.append((target, result))
                return
            if sent_code and outcome.status == "sent":
                outcome = dataclasses.replace(outcome, code=sent_code)
            checkpoints.add(outcome, holds_permit=True)

        await asyncio.gather(*(one(t, n) for t, n in targets))
        if retry:
            try:
                checkpoints.extend(await self.retry.later(chunk, retry, report))
            except Exception as exc:
                log.error(
                    "could not schedule the retry of %d device(s) of %s: %r",
                    len(retry),
                    chunk.message_id,
                    exc,
                )
                checkpoints.extend(
                    [
                        Outcome(
                            t.index,
                            t.device.token,
                            "failed",
                            "RetryNotScheduled",
                            f"could not schedule a retry after {r.reason}",
                        )
                        for t, r in retry
                    ]
                )

    async def replacements(
        self, chunk: SendChunk, targets: Targets, checkpoints: Checkpointer, report: ChunkReport
    ) -> None:
        """A recall's or edit's replacements, each retried within the job a few times."""
        unrecorded = self.runner.permits()

        async def one(target: Target, notification: Notification) -> None:
            result = ApnsResult(0, "NoAnswer", "")
            for attempt in range(len(REPLACEMENT_DELAYS_S) + 1):
                if attempt:
                    await asyncio.sleep(REPLACEMENT_DELAYS_S[attempt - 1])
                await self._may_send(unrecorded, checkpoints)
                try:
                    result, cred = await self.gateway.send(
                        chunk.app_id, chunk.message_id, target, notification, report.latencies_ms
                    )
                    outcome = await self.settler.settle(chunk.app_id, target, result, cred)
                except asyncio.CancelledError:  # the lease was lost: this container's permit back
                    checkpoints.gave_back()
                    raise
                except Exception as exc:
                    checkpoints.gave_back()
                    log.warning("replacement to a device of %s failed: %r", chunk.message_id, exc)
                    result = ApnsResult(0, f"Error:{type(exc).__name__}", "")
                    continue
                if outcome is not None:
                    checkpoints.add(outcome, holds_permit=True)
                    return
                checkpoints.gave_back()
            checkpoints.add(gave_up(target, result, len(REPLACEMENT_DELAYS_S) + 1))

        await asyncio.gather(*(one(t, n) for t, n in targets))

    @staticmethod
    async def _may_send(unrecorded: asyncio.Semaphore, checkpoints: Checkpointer) -> None:
        """A permit, and the attempt still holds its lease (else ``LeaseLost``, the permit given back)."""
        await unrecorded.acquire()
        try:
            await checkpoints.before_send()
        except BaseException:
            unrecorded.release()
            raise
        checkpoints.started()
