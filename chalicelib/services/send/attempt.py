"""The attempt runner, shared by a message's chunks and a recall's or edit's replacement jobs.

An attempt is claimed with one conditional write of its lease before anything is sent: ``done``
(a redelivered SQS message) sends nothing, ``busy`` (another invocation holds it) hands it back to
SQS, ``takeover`` (the holder died: its lease ran out; or it gave its claim back) keeps what the
earlier invocation recorded.
A claimed attempt that fails before sending gives its claim back (``preparing``); once it sends,
outcomes are checkpointed as they come (pages numbered on from a takeover's) and the lease is
marked done. Each send holds a permit until its outcome is written, so what a crash can make the
container send twice is at most ``send_max_unrecorded`` devices.

Fencing: the claim writes a fresh token (``Claim.holder``) and every later write of this attempt
(pages, badges, renewal, finish, release) lands only while the attempt is still its own (a
takeover fences the pages off first, ``store/leases.py``). An
invocation that stalled past its lease (a frozen container, a paused process) and was taken over
finds out at its first write (``LeaseLost``), and before sending anything more once its own clock
says the lease may have run out (``Fence``: a fenced renewal). It then stops at once: the sends in
flight are all it adds, so a stale invocation resumed after a takeover sends at most
``send_max_unrecorded`` devices twice, and none of its outcomes lands in the new holder's ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from chalicelib.models.ledger import DEAD_LETTERED, ChunkAttempt, ChunkRef, Claim, LeaseLost, Outcome
from chalicelib.services.send.checkpoint import Checkpointer
from chalicelib.services.stats import attempt_counts
from chalicelib.settings import Settings
from chalicelib.store.send_ledger import SendLedger
from chalicelib.store.stats import StatsRepository, utc_day

log = logging.getLogger(__name__)

RENEW_SHARE = 0.5  # past this share of its lease (own clock), a holder confirms it before sending on

__all__ = ["AttemptRunner", "ChunkBusy", "ChunkReport", "Claim", "Fence", "LeaseLost", "WritePage"]


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


WritePage = Callable[[int, list[Outcome]], Awaitable[None]]


@dataclass
class Fence:
    """This invocation's hold on one attempt's lease, asked before each send (``before_send``).

    Once a fenced write has found the lease taken over (``lose``), every send raises ``LeaseLost``
    and the attempt's sending task is cancelled. Past ``renew_after_s`` since the claim or the last
    renewal (by this process's monotonic clock, which runs on through a stall), the next send
    first renews the lease with a fenced write (one for all concurrent sends): a stale holder
    sends nothing more, a slow but live one keeps its lease."""

    claim: Claim
    ledger: SendLedger
    renew_after_s: float
    lost: LeaseLost | None = None
    _renew_at: float = field(default=0.0, init=False)  # monotonic: the next send renews first
    _renewal: asyncio.Task[None] | None = field(default=None, init=False)
    _on_lost: list[Callable[[], object]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._renew_at = (self.claim.held_since or time.monotonic()) + self.renew_after_s

    def when_lost(self, callback: Callable[[], object]) -> None:
        self._on_lost.append(callback)

    async def before_send(self) -> None:
        if self.lost is None and time.monotonic() >= self._renew_at:
            if self._renewal is None:
                self._renewal = asyncio.get_running_loop().create_task(self._renew())
            await asyncio.shield(self._renewal)
        if self.lost is not None:
            raise self.lost

    def lose(self, exc: LeaseLost) -> None:
        if self.lost is not None:
            return
        self.lost = exc
        log.warning("lease lost: %s; it stops sending now (what it had in flight is all it adds)", exc)
        for callback in self._on_lost:
            callback()

    async def _renew(self) -> None:
        started = time.monotonic()
        try:
            await self.ledger.renew(self.claim)
            self._renew_at = started + self.renew_after_s
        except LeaseLost as exc:
            self.lose(exc)
        except Exception as exc:  # e.g. throttled past its retries: not a loss; writes stay fenced
            log.warning("could not renew the lease of %s: %r; trying again in 1 s", self.claim.ref.sk, exc)
            self._renew_at = time.monotonic() + 1.0
        finally:
            self._renewal = None


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
        claimed, claim = await self.ledger.claim(app_id, message_id, ref, now_ms)
        if claimed == "done":
            return None
        if claimed == "busy":
            raise ChunkBusy(f"{what} {ref.sk} of message {message_id} is being sent by another invocation")
        return claim

    async def earlier(self, claim: Claim) -> ChunkAttempt:
        """What a previous invocation of this attempt recorded (nothing unless a takeover)."""
        if not claim.takeover:
            return ChunkAttempt(claim.ref)
        found = await self.ledger.take_over(claim)  # read, and the stale holder's pages fenced off
        # A redriven dead letter sends the devices the dead-letter consumer marked failed: their
        # later outcome (a page numbered after) replaces DeadLettered in the report.
        found.outcomes = [o for o in found.outcomes if o.code != DEAD_LETTERED]
        return found

    @asynccontextmanager
    async def preparing(self, claim: Claim) -> AsyncIterator[None]:
        """Work before the first send: if it fails, the claim is given back for a redelivery."""
        try:
            yield
        except LeaseLost:
            raise  # taken over meanwhile: the claim is not this invocation's to give back
        except Exception:
            with contextlib.suppress(LeaseLost):
                await self.ledger.release(claim)
            raise

    def page_writer(self, claim: Claim) -> WritePage:
        async def write(seq: int, outcomes: list[Outcome]) -> None:
            await self.ledger.put_page(claim, seq, outcomes)

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
        in between calls it again from the takeover). Raises ``LeaseLost`` when another invocation
        took the attempt over meanwhile."""
        fence = Fence(claim, self.ledger, self.settings.send_lease_s * RENEW_SHARE)
        checkpoints = Checkpointer(
            write,
            seq=earlier.pages,
            interval_s=self.settings.send_checkpoint_ms / 1000,
            max_outcomes=self.settings.send_checkpoint_outcomes,
            on_written=self._recorded,
            guard=fence.before_send,
            on_lost=fence.lose,
        )
        checkpoints.extend(skips)
        sending: asyncio.Future[None] = asyncio.ensure_future(deliver(checkpoints))
        fence.when_lost(sending.cancel)  # stop at once: no send starts after the loss is known
        try:
            await sending
        except (asyncio.CancelledError, LeaseLost):
            if fence.lost is None:
                raise
        finally:
            await checkpoints.close()
        if fence.lost is not None:
            raise fence.lost
        if settled is not None:
            await settled([*earlier.outcomes, *checkpoints.written])
        # Fenced: LeaseLost when taken over meanwhile (the taker's finish records and counts it).
        await self.ledger.finish(claim)
        report.count(checkpoints.written)
        if not claim.ref.prefix:  # a message's own chunk (not a recall's or an edit's replacements)
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
