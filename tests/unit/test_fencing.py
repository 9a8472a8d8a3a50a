"""Fencing in the attempt runner: a holder whose write finds its lease taken over (``LeaseLost``)
stops sending at once, and past half its lease by its own clock it confirms the lease (a fenced
renewal) before sending more. The ledger here is a stand-in; the conditional writes themselves are
tested against the emulator (tests/integration/test_fencing_writes.py)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from chalicelib.models.ledger import ChunkAttempt, ChunkRef, Claim, LeaseLost, Outcome
from chalicelib.services.send.attempt import AttemptRunner, ChunkReport, Fence
from chalicelib.services.send.checkpoint import Checkpointer
from chalicelib.services.send.deliver import Delivery
from chalicelib.settings import load_settings

TOKEN = "ab" * 32


@dataclass
class Ledger:
    """Pages are written until ``lost_after`` of them; then every fenced write raises LeaseLost."""

    lost_after: int = 1_000_000
    pages: list[list[Outcome]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    sends: list[int] = field(default_factory=list)  # the sender's, to see what was sent at the loss
    sends_at_loss: int | None = None

    def _fenced(self, what: str) -> None:
        self.calls.append(what)
        if len(self.pages) >= self.lost_after:
            if self.sends_at_loss is None:
                self.sends_at_loss = len(self.sends)
            raise LeaseLost(f"{what}: taken over")

    async def put_page(self, claim: Claim, seq: int, outcomes: list[Outcome]) -> None:
        await asyncio.sleep(0)
        self._fenced("page")
        self.pages.append(outcomes)

    async def renew(self, claim: Claim) -> None:
        await asyncio.sleep(0.01)
        self._fenced("renew")

    async def finish(self, claim: Claim) -> None:
        self._fenced("finish")

    async def release(self, claim: Claim) -> None:
        self._fenced("release")


def claim(held_since: float = 0.0) -> Claim:
    return Claim("app", "m-1", ChunkRef(0, 0), "holder", held_since=held_since)


def runner(
    ledger: Ledger, max_unrecorded: int = 5, lease_s: int = 120, page_outcomes: int | None = None
) -> AttemptRunner:
    settings = load_settings(
        {
            "SEND_MAX_UNRECORDED": str(max_unrecorded),
            "SEND_CHECKPOINT_OUTCOMES": str(page_outcomes or max_unrecorded),
            "SEND_CHECKPOINT_MS": "10",
            "SEND_LEASE_S": str(lease_s),
        }
    )
    return AttemptRunner(settings, cast(Any, ledger))


def sender(r: AttemptRunner, devices: int, sent: list[int]) -> Any:
    """Sends each device as the delivery does: a permit and the fence first, then the outcome."""

    async def deliver(checkpoints: Checkpointer) -> None:
        permits = r.permits()

        async def one(i: int) -> None:
            await Delivery._may_send(permits, checkpoints)
            sent.append(i)
            await asyncio.sleep(0.001)  # APNs answers
            checkpoints.add(Outcome(i, TOKEN, "sent"), holds_permit=True)

        await asyncio.gather(*(one(i) for i in range(devices)))

    return deliver


def test_a_holder_whose_checkpoint_finds_the_lease_taken_over_stops_sending_at_once() -> None:
    ledger = Ledger(lost_after=2)
    r = runner(ledger, max_unrecorded=5)
    sent: list[int] = []
    ledger.sends = sent

    async def go() -> None:
        c = claim(time.monotonic())
        await r.run(c, ChunkAttempt(c.ref), [], r.page_writer(c), sender(r, 200, sent), ChunkReport("m-1"))

    with pytest.raises(LeaseLost):
        asyncio.run(go())
    assert ledger.sends_at_loss is not None
    assert len(sent) == ledger.sends_at_loss  # no send started once the loss was known
    assert "finish" not in ledger.calls


def test_a_stale_holder_sends_at_most_max_unrecorded_devices_past_its_last_recorded_outcome() -> None:
    ledger = Ledger(lost_after=2)
    r = runner(ledger, max_unrecorded=5)
    sent: list[int] = []

    async def go() -> None:
        c = claim(time.monotonic())
        await r.run(c, ChunkAttempt(c.ref), [], r.page_writer(c), sender(r, 200, sent), ChunkReport("m-1"))

    with pytest.raises(LeaseLost):
        asyncio.run(go())
    recorded = sum(len(p) for p in ledger.pages)
    assert recorded < len(sent) <= recorded + 5


def test_a_holder_past_half_its_lease_renews_before_sending_and_stops_when_taken_over() -> None:
    ledger = Ledger(lost_after=0)  # the attempt was taken over while this holder stalled
    r = runner(ledger, lease_s=4)
    sent: list[int] = []

    async def go() -> None:
        c = claim(time.monotonic() - 3)  # claimed 3 s ago: past half its 4 s lease
        await r.run(c, ChunkAttempt(c.ref), [], r.page_writer(c), sender(r, 50, sent), ChunkReport("m-1"))

    with pytest.raises(LeaseLost):
        asyncio.run(go())
    assert sent == []
    assert ledger.calls == ["renew"]  # one renewal asked for all the concurrent sends, nothing after


def test_a_live_holder_past_half_its_lease_renews_once_and_sends_on() -> None:
    ledger = Ledger()
    r = runner(ledger, lease_s=4)
    sent: list[int] = []

    async def go() -> None:
        c = claim(time.monotonic() - 3)
        await r.run(c, ChunkAttempt(c.ref), [], r.page_writer(c), sender(r, 50, sent), ChunkReport("m-1"))

    asyncio.run(go())
    assert sorted(sent) == list(range(50))
    assert ledger.calls.count("renew") == 1
    assert ledger.calls[-1] == "finish"


def test_a_lost_lease_is_not_written_again_and_stops_the_sends_before_any_permit_is_given_back() -> None:
    events: list[str] = []

    async def write(seq: int, outcomes: list[Outcome]) -> None:
        events.append("write")
        raise LeaseLost("taken over")

    async def go() -> None:
        cp = Checkpointer(
            write,
            interval_s=10,
            max_outcomes=1,
            on_written=lambda n: events.append(f"released {n}"),
            on_lost=lambda exc: events.append("lost"),
        )
        cp.add(Outcome(0, TOKEN, "sent"), holds_permit=True)
        with pytest.raises(LeaseLost):
            await cp.close()
        with pytest.raises(LeaseLost):
            await cp.before_send()

    asyncio.run(go())
    assert events == ["write", "lost", "released 1"]


def test_a_fence_asked_by_many_sends_at_once_renews_once() -> None:
    ledger = Ledger()

    async def go() -> None:
        fence = Fence(claim(time.monotonic() - 10), cast(Any, ledger), renew_after_s=1)
        await asyncio.gather(*(fence.before_send() for _ in range(20)))
        await fence.before_send()

    asyncio.run(go())
    assert ledger.calls == ["renew"]


def test_work_before_the_first_send_that_finds_the_lease_taken_over_does_not_give_it_back() -> None:
    ledger = Ledger()
    r = runner(ledger)

    async def go() -> None:
        async with r.preparing(claim()):
            raise LeaseLost("badges: taken over")

    with pytest.raises(LeaseLost):
        asyncio.run(go())
    assert ledger.calls == []


def test_a_renewal_that_fails_for_another_reason_does_not_stop_the_sends() -> None:
    class Throttled(Ledger):
        async def renew(self, claim: Claim) -> None:
            self.calls.append("renew")
            raise RuntimeError("ProvisionedThroughputExceededException")

    ledger = Throttled()

    async def go() -> None:
        fence = Fence(claim(time.monotonic() - 10), cast(Any, ledger), renew_after_s=1)
        await fence.before_send()
        await fence.before_send()  # tried again a second later, not at every send

    asyncio.run(go())
    assert ledger.calls == ["renew"]


def test_a_container_whose_lease_was_lost_mid_send_gets_every_permit_back() -> None:
    """The sends in flight when the loss is known are cancelled; their permits come back, so the
    container's next chunk is not left waiting for permits that no send holds."""
    from types import SimpleNamespace

    from chalicelib.apns.client import ApnsResult

    ledger = Ledger(lost_after=2)
    r = runner(ledger, max_unrecorded=5, page_outcomes=2)  # pages written while sends are out

    class Gateway:
        def paused(self) -> bool:
            return False

        def note_answer(self, result: ApnsResult) -> None:
            pass

        async def send(self, _app: str, _message: str, target: Any, *_: Any) -> tuple[ApnsResult, None]:
            await asyncio.sleep(0.001 * (1 + target.index % 7))  # APNs answers, some sooner
            return ApnsResult(200, "", "id"), None

    class Settler:
        async def settle(self, app_id: str, target: Any, result: ApnsResult, cred: Any) -> Outcome:
            return Outcome(target.index, TOKEN, "sent")

    delivery = Delivery(r, cast(Any, Gateway()), cast(Any, Settler()), cast(Any, None))
    chunk = cast(Any, SimpleNamespace(app_id="app", message_id="m-1"))
    targets = [(SimpleNamespace(index=i, device=SimpleNamespace(token=TOKEN)), None) for i in range(200)]

    async def go() -> int:
        c = claim(time.monotonic())
        report = ChunkReport("m-1")
        with pytest.raises(LeaseLost):
            await r.run(
                c,
                ChunkAttempt(c.ref),
                [],
                r.page_writer(c),
                lambda cp: delivery.chunk(chunk, cast(Any, targets), cp, report, lambda: False),
                report,
            )
        await asyncio.sleep(0.05)
        return r.permits()._value  # type: ignore[attr-defined]

    assert asyncio.run(go()) == 5
