"""Checkpoints of a chunk's outcomes while it is being sent.

Outcomes are written as they come, in pages: one write as soon as every send
of the chunk that left has answered (a page per burst of answers), or when
``max_outcomes`` sends' outcomes are waiting, or ``interval_s`` after the first
outcome waits, whichever is first, with at most one write in flight. Outcomes known without
sending (skips) ride along in the next page: they hold no permit, and many
in one page cost less than one page each. A send that dies loses only what was not
written yet, so a takeover resends only the devices that were in flight or
answered since the last page: the duplicate window is bounded by the
checkpoint, not by the invocation.

Each write is fenced by the attempt's claim: one that finds the lease taken
over (``LeaseLost``) is not tried again; the chunk fails at once, ``on_lost``
is told before any permit is given back, and ``before_send`` (the ``guard``
each send asks first) refuses every later send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from chalicelib.models.ledger import LeaseLost, Outcome

log = logging.getLogger(__name__)

WritePage = Callable[[int, list[Outcome]], Awaitable[None]]


@dataclass
class Checkpointer:
    write: WritePage  # (page number, outcomes) -> stored
    seq: int = 0  # the next page number (a takeover continues after the pages already written)
    on_written: Callable[[int], None] | None = None  # told how many permit-holding outcomes were written
    interval_s: float = 0.1
    max_outcomes: int = 25
    attempts: int = 3  # per page, before the chunk fails (SQS then redelivers it)
    guard: Callable[[], Awaitable[None]] | None = None  # asked before each send: raises LeaseLost
    on_lost: Callable[[LeaseLost], None] | None = None  # a write found the lease taken over
    written: list[Outcome] = field(default_factory=list)
    _pending: list[Outcome] = field(default_factory=list)
    _permits: list[bool] = field(default_factory=list)  # per pending outcome: does it hold a permit?
    _task: asyncio.Task[None] | None = None
    _timer: asyncio.TimerHandle | None = None
    _error: BaseException | None = None
    _in_flight: int = 0  # sends that left (``started``) and have not answered yet

    def started(self) -> None:
        """A send holding a permit has left (after ``before_send``): its answer is waited for."""
        self._in_flight += 1

    def gave_back(self) -> None:
        """A send that left ends with nothing to record (retried later, an error): its permit back."""
        self._in_flight -= 1
        self._release([True])
        if self._page_ready():
            self._kick()

    def add(self, outcome: Outcome, holds_permit: bool = False) -> None:
        """An outcome to write; ``holds_permit``: the answer of a send that left (``started``)."""
        self._pending.append(outcome)
        self._permits.append(holds_permit)
        if holds_permit:
            self._in_flight -= 1
        if self._error is not None:  # the chunk has failed already: don't hold up the others
            self._release(self._permits)
            self._permits = [False] * len(self._pending)
            return
        if holds_permit and self._page_ready():
            self._kick()
        elif self._timer is None and self._task is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval_s, self._kick)

    async def before_send(self) -> None:
        """Raises ``LeaseLost`` once this attempt may send no more (another invocation holds it)."""
        if isinstance(self._error, LeaseLost):
            raise self._error
        if self.guard is not None:
            await self.guard()

    def extend(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            self.add(o)

    async def close(self) -> None:
        """Write everything still waiting; raise if a page could not be written."""
        if self._task is not None:
            await asyncio.shield(self._task)
        self._cancel_timer()  # after the task: its done callback may have set it again
        if self._pending and self._error is None:
            await self._drain(closing=True)
        if self._error is not None:
            raise self._error

    def _kick(self) -> None:
        self._cancel_timer()
        if self._task is None and self._error is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())
            self._task.add_done_callback(self._done)

    def _done(self, _task: asyncio.Task[None]) -> None:
        self._task = None
        if self._pending and self._error is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval_s, self._kick)

    async def _drain(self, closing: bool = False) -> None:
        """Write what waits, page after page while a full page waits (or when closing): a part page
        waits for its timer, so sends answered during a write fill the next page rather than a
        page each (every page is a write unit)."""
        first = True
        while self._pending and self._error is None:
            if not (first or closing or self._page_ready()):
                return  # ``_done`` sets the timer
            first = False
            batch, self._pending = self._pending, []
            permits, self._permits = self._permits, []
            try:
                await self._write(batch)
            except Exception as exc:
                self._error = exc
                if isinstance(exc, LeaseLost) and self.on_lost is not None:
                    self.on_lost(exc)  # stops the sends before permits are given back
                self._pending, self._permits = batch + self._pending, permits + self._permits
                self._release(self._permits)  # the chunk fails: let the other chunks go on
                self._permits = [False] * len(self._pending)
                return
            self.written += batch
            self._release(permits)

    async def _write(self, batch: list[Outcome]) -> None:
        for attempt in range(1, self.attempts + 1):
            try:
                await self.write(self.seq, batch)
                self.seq += 1
                return
            except LeaseLost:
                raise
            except Exception as exc:
                if attempt == self.attempts:
                    raise
                log.warning("checkpoint page %d failed (%r); trying again", self.seq, exc)
                await asyncio.sleep(0.05 * 2**attempt)

    def _page_ready(self) -> bool:
        """A page worth writing now: ``max_outcomes`` answers wait, or some do and no send of the
        chunk is still out (nothing more would come before the timer)."""
        waiting = self._permits.count(True)
        return waiting >= self.max_outcomes or (waiting > 0 and self._in_flight <= 0)

    def _release(self, permits: list[bool]) -> None:
        held = sum(permits)
        if held and self.on_written is not None:
            self.on_written(held)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
