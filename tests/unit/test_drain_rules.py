"""The rules that keep nothing pending forever: what a dead-lettered attempt marks failed, what counts
as an attempt, and how a chunk that cannot make progress backs off."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.apns.client import ApnsResult
from chalicelib.models.ledger import DEAD_LETTERED, ChunkRef, Outcome
from chalicelib.models.message import MessageEvent
from chalicelib.models.sending import SendChunk
from chalicelib.services.policy import DeviceView
from chalicelib.services.send.attempt import ChunkReport
from chalicelib.services.send.dead_letters import dead_outcomes
from chalicelib.services.send.deferral import MAX_DELAY_S, deferral_delay_s, deferrals_of
from chalicelib.services.send.retry import RetryPolicy, left
from chalicelib.services.send.target import Target
from chalicelib.settings import Settings

EVENT = MessageEvent.model_validate(
    {
        "messageId": "m1",
        "sendTime": 1,
        "sender": {"userId": "alice"},
        "to": {"userId": "bob"},
        "elems": [{"type": "text", "text": "hi"}],
    }
)


def chunk(recipients: list[str], **extra: Any) -> SendChunk:
    return SendChunk(app_id="a", message_id="m1", index=0, event=EVENT, recipients=recipients, **extra)


# ---- a dead-lettered attempt ------------------------------------------------------------------------


def test_a_dead_lettered_first_attempt_fails_each_recipient_with_no_outcome_yet() -> None:
    recorded = [Outcome(0, "t0", "sent"), Outcome(2, None, "skipped", "dnd")]
    marks = dead_outcomes(chunk(["u0", "u1", "u2", "u3"]), ["u0", "u1", "u2", "u3"], recorded)
    assert [(o.index, o.device_token, o.status, o.code) for o in marks] == [
        (1, None, "failed", DEAD_LETTERED),
        (3, None, "failed", DEAD_LETTERED),
    ]
    assert all("redrive" in o.reason for o in marks)


def test_a_dead_lettered_retry_fails_each_device_it_carries_with_no_outcome_yet() -> None:
    retry = chunk(["u0", "u1"], attempt=2, devices={"u0": ["a", "b"], "u1": ["c"]})
    marks = dead_outcomes(retry, ["u0", "u1"], [Outcome(0, "a", "sent")])
    assert [(o.index, o.device_token) for o in marks] == [(0, "b"), (1, "c")]


def test_a_dead_letter_marked_once_marks_nothing_more() -> None:
    first = chunk(["u0", "u1"])
    marks = dead_outcomes(first, ["u0", "u1"], [])
    assert dead_outcomes(first, ["u0", "u1"], marks) == []


# ---- only a request that really left counts as an attempt --------------------------------------------


@dataclass
class FakeLedger:
    retry_chunks: list[ChunkRef] = field(default_factory=list)

    async def put_retry_chunk(self, app_id: str, message_id: str, ref: ChunkRef, users: list[str]) -> None:
        self.retry_chunks.append(ref)


@dataclass
class FakeQueues:
    queued: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)

    def send_chunks(self, bodies: list[str], delay_s: int = 0) -> int:
        self.queued += bodies
        return 1

    def dead_letter(self, queue: str, body: str, reason: str, source: str | None = None) -> None:
        self.dead.append(reason)


def later(attempt: int, tries: int | None, result: ApnsResult) -> tuple[list[Outcome], FakeQueues]:
    queues = FakeQueues()
    policy = RetryPolicy(Settings(MAX_SEND_ATTEMPTS=3), FakeLedger(), queues)  # type: ignore[arg-type]
    target = Target(0, "u0", DeviceView("tok", 1, True, None), None)
    sent = chunk(["u0"], attempt=attempt, tries=tries, devices={"u0": ["tok"]})
    outcomes = asyncio.run(policy.later(sent, [(target, result)], ChunkReport("m1")))
    return outcomes, queues


PAUSED = ApnsResult(0, "NotSent:ApnsNotAnswering", "id")
NO_ANSWER = ApnsResult(0, "Timeout", "id")


def test_a_request_not_sent_during_the_pause_does_not_count_as_an_attempt() -> None:
    assert not left(PAUSED) and not left(ApnsResult(0, "Error:ClientError", "id")) and left(NO_ANSWER)
    # Given the last allowed attempt (2 tries used of 3) paused before sending
    outcomes, queues = later(attempt=2, tries=2, result=PAUSED)
    # Then it is retried, not given up, and the retry still has one try left
    assert [o.status for o in outcomes] == ["pending"] and not queues.dead
    assert '"tries":2' in queues.queued[0] and '"attempt":3' in queues.queued[0]


def test_a_request_that_left_counts_and_the_last_one_gives_up() -> None:
    outcomes, queues = later(attempt=2, tries=2, result=NO_ANSWER)
    assert [(o.status, o.code) for o in outcomes] == [("failed", "RetriesExhausted")]
    assert "gave up after 3 attempts" in queues.dead[0]


def test_a_chunk_queued_before_tries_existed_counts_its_attempts() -> None:
    outcomes, _ = later(attempt=2, tries=None, result=NO_ANSWER)
    assert outcomes[0].code == "RetriesExhausted"


def test_attempts_that_never_send_still_end() -> None:
    # Given a chunk paused attempt after attempt: twice the allowed attempts, then given up
    outcomes, queues = later(attempt=5, tries=0, result=PAUSED)
    assert outcomes[0].status == "failed" and queues.dead


# ---- back-off of a chunk that cannot make progress -----------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 20])
def test_a_deferral_waits_longer_each_time_with_jitter_within_sqs_limits(n: int) -> None:
    ceiling = min(MAX_DELAY_S, 2 * 2 ** (n - 1))
    delays = {deferral_delay_s(n) for _ in range(50)}
    assert all(max(1, ceiling // 2) <= d <= ceiling for d in delays)


def test_a_record_without_or_with_a_bad_deferral_count_starts_at_zero() -> None:
    assert (
        deferrals_of({}) == 0
        and deferrals_of({"deferrals": "x"}) == 0
        and deferrals_of({"deferrals": "3"}) == 3
    )
