"""The attempt runner, shared by a message's chunks and a recall's or edit's replacement jobs.

An attempt is claimed with one conditional write of its lease before anything is sent: ``done``
(a redelivered SQS message) sends nothing, ``busy`` (another invocation holds it) hands it back to
SQS, ``takeover`` (the holder died: its lease ran out) keeps what the earlier invocation recorded.
A claimed attempt that fails before sending gives its claim back (``preparing``); once it sends,
outcomes are checkpointed as they come (pages numbered on from a takeover's) and the lease is
marked done. Each send holds a permit until its outcome is written, so what a crash can make the
container send twice is at most ``send_max_unrecorded`` devices.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from chalicelib.models.ledger import DEAD_LETTERED, ChunkAttempt, ChunkRef, Outcome
from chalicelib.services.send.checkpoint import Checkpointer
from chalicelib.services.stats import attempt_counts
from chalicelib.settings import Settings
from chalicelib.store.send_ledger import SendLedger
from chalicelib.store.stats import StatsRepository, utc_day

log = logging.getLogger(__name__)


class ChunkBusy(Exception):
    """Another invocation holds this chunk's claim: let SQS deliver it again later."""


@dataclass
class ChunkReport:
    """What one chunk did: counts for metrics and logs."""

    message_id: str
    outcome: str = "sent"
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    retried: int = 0

    def count(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            self.counts[(o.status, o.code if o.status != "sent" else "")] += 1


@dataclass(frozen=True, slots=True)
class Claim:
    app_id: str
    message_id: str
    ref: ChunkRef
    takeover: bool
    claimed_at: int  # the lease's claimedAt: the finish is fenced by it


WritePage = Callable[[int, list[Outcome]], Awaitable[None]]


@dataclass
class AttemptRunner:
    settings: Settings
    ledger: SendLedger
    stats: StatsRepository | None = None  # the day's counters: one ADD per finished chunk attempt
    _unrecorded: asyncio.Semaphore | None = field(default=None, init=False)

    async def claim(
        self, app_id: str, message_id: str, ref: ChunkRef, now_ms: int, what: str
    ) -> Claim | None:
        """The claim, or None when the attempt is done already; raises ChunkBusy while another holds it."""
        claimed = await self.ledger.claim(app_id, message_id, ref, now_ms)
        if claimed == "done":
            return None
        if claimed == "busy":
            raise ChunkBusy(f"{what} {ref.sk} of message {message_id} is being sent by another invocation")
        return Claim(app_id, message_id, ref, takeover=claimed == "takeover", claimed_at=now_ms)

    async def earlier(self, claim: Claim) -> ChunkAttempt:
        """What a previous invocation of this attempt recorded (nothing unless a takeover)."""
        if not claim.takeover:
            return ChunkAttempt(claim.ref)
        found = await self.ledger.earlier(claim.app_id, claim.message_id, claim.ref)
        # A redriven dead letter sends the devices the dead-letter consumer marked failed: their
        # later outcome (a page numbered after) replaces DeadLettered in the report.
        found.outcomes = [o for o in found.outcomes if o.code != DEAD_LETTERED]
        return found

    @asynccontextmanager
    async def preparing(self, claim: Claim) -> AsyncIterator[None]:
        """Work before the first send: if it fails, the claim is given back for a redelivery."""
        try:
            yield
        except Exception:
            await self.ledger.release(claim.app_id, claim.message_id, claim.ref)
            raise

    def page_writer(self, claim: Claim) -> WritePage:
        async def write(seq: int, outcomes: list[Outcome]) -> None:
            await self.ledger.put_page(claim.app_id, claim.message_id, claim.ref, seq, outcomes)

        return write

    async def run(
        self,
        claim: Claim,
        earlier: ChunkAttempt,
        skips: list[Outcome],
        write: WritePage,
        deliver: Callable[[Checkpointer], Awaitable[None]],
        report: ChunkReport,
        settled: Callable[[list[Outcome]], Awaitable[None]] | None = None,
    ) -> None:
        """A claimed attempt's sending, checkpointed (pages numbered on from a takeover's), then done.
        ``settled`` gets all of the attempt's outcomes once written, before the lease is done (a crash
        in between calls it again from the takeover)."""
        checkpoints = Checkpointer(
            write,
            seq=earlier.pages,
            interval_s=self.settings.send_checkpoint_ms / 1000,
            max_outcomes=self.settings.send_checkpoint_outcomes,
            on_written=self._recorded,
        )
        checkpoints.extend(skips)
        try:
            await deliver(checkpoints)
        finally:
            await checkpoints.close()
        if settled is not None:
            await settled([*earlier.outcomes, *checkpoints.written])
        finished = await self.ledger.finish(claim.app_id, claim.message_id, claim.ref, claim.claimed_at)
        report.count(checkpoints.written)
        if not finished:  # taken over meanwhile: the taker's finish records and counts the attempt
            log.warning("%s of %s was taken over: its finish is the taker's", claim.ref.sk, claim.message_id)
            report.outcome = "superseded"
        elif not claim.ref.prefix:  # a message's own chunk (not a recall's or an edit's replacements)
            await self._count(claim, earlier.outcomes + checkpoints.written)

    async def _count(self, claim: Claim, outcomes: list[Outcome]) -> None:
        """The attempt's outcomes added to the day's statistics, once (the writer key refuses a retry)."""
        if self.stats is None:
            return
        counts = attempt_counts(outcomes, first_of_message=claim.ref == ChunkRef(0, 0))
        day = utc_day(self.ledger.clock_ms())
        try:
            await asyncio.to_thread(
                self.stats.add, claim.app_id, day, counts, f"{claim.message_id}#{claim.ref.sk}"
            )
        except Exception as exc:  # the outcomes are recorded; only the day's counters miss them
            log.error("could not add the statistics of %s %s: %r", claim.message_id, claim.ref.sk, exc)

    def permits(self) -> asyncio.Semaphore:
        """This container's sends without a written outcome (created on the container's loop)."""
        if self._unrecorded is None:
            self._unrecorded = asyncio.Semaphore(self.settings.send_max_unrecorded)
        return self._unrecorded

    def _recorded(self, permits: int) -> None:
        if self._unrecorded is not None:
            for _ in range(permits):
                self._unrecorded.release()
