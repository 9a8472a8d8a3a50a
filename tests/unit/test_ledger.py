"""The per-chunk ledger's pure parts: the outcome encoding, the report assembled from chunk attempts,
its pages and cursors, and the checkpointer that writes outcomes while a chunk is sent."""

from __future__ import annotations

import asyncio
import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import ValidationFailed
from chalicelib.models.ledger import STATUSES, ChunkAttempt, ChunkRef, Outcome
from chalicelib.services import report
from chalicelib.services.send.checkpoint import Checkpointer
from chalicelib.store.deliveries import DeliveryRepository
from chalicelib.store.ledger_codec import (
    decode_badges,
    decode_outcomes,
    encode_badges,
    encode_outcomes,
)

TOKEN_A = "a1" * 32
TOKEN_B = "b2" * 32

outcomes = st.builds(
    Outcome,
    index=st.integers(0, 499),
    device_token=st.none() | st.binary(min_size=32, max_size=100).map(bytes.hex),
    status=st.sampled_from(STATUSES),
    code=st.text(max_size=40),
    reason=st.text(max_size=300),
)


@given(st.lists(outcomes, max_size=50))
def test_outcomes_round_trip(values: list[Outcome]) -> None:
    assert decode_outcomes(encode_outcomes(values)) == values


def test_a_sent_device_costs_39_bytes_and_a_skipped_recipient_a_few() -> None:
    assert len(encode_outcomes([Outcome(7, TOKEN_A, "sent")])) == 39
    assert len(encode_outcomes([Outcome(7, None, "skipped", "foreground")])) == 17


def test_a_long_reason_is_cut_without_splitting_a_character() -> None:
    [back] = decode_outcomes(encode_outcomes([Outcome(0, None, "failed", "x", "é" * 5000)]))
    assert back.reason == "é" * 1000


def test_badges_round_trip() -> None:
    assert decode_badges(encode_badges({0: 1, 3: 70000, 499: 0})) == {0: 1, 3: 70000, 499: 0}


def attempt(index: int, n: int, recipients: list[str], *out: Outcome, status: str = "done") -> ChunkAttempt:
    return ChunkAttempt(ChunkRef(index, n), recipients, status, None, list(out))  # type: ignore[arg-type]


def test_a_retry_outcome_replaces_the_first_tries_pending() -> None:
    rows = report.rows(
        [
            attempt(0, 0, ["bob", "carol"], Outcome(0, TOKEN_A, "pending", "ServiceUnavailable", "retrying")),
            attempt(0, 1, ["bob"], Outcome(0, TOKEN_A, "sent")),
        ]
    )
    assert [(r.user_id, r.device_token, r.status, r.code) for r in rows] == [
        ("bob", TOKEN_A, "sent", ""),
        ("carol", None, "pending", report.QUEUED),
    ]


def test_recipients_of_a_chunk_being_sent_are_pending_sending() -> None:
    rows = report.rows([attempt(0, 0, ["bob"], status="claimed")])
    assert [(r.status, r.code) for r in rows] == [("pending", report.SENDING)]


def test_rows_follow_chunk_and_recipient_order_whatever_the_outcome_order() -> None:
    rows = report.rows(
        [
            attempt(1, 0, ["x", "y"], Outcome(1, None, "skipped", "dnd"), Outcome(0, TOKEN_B, "sent")),
            attempt(
                0, 0, ["a"], Outcome(0, TOKEN_B, "failed", "BadDeviceToken"), Outcome(0, TOKEN_A, "sent")
            ),
        ]
    )
    assert [(r.user_id, r.device_token) for r in rows] == [
        ("a", TOKEN_A),
        ("a", TOKEN_B),
        ("x", TOKEN_B),
        ("y", None),
    ]
    assert report.summary(rows) == {
        "sent": 2,
        "pending": 0,
        "skipped": {"dnd": 1},
        "failed": {"BadDeviceToken": 1},
    }


def test_pages_hold_whole_recipients_and_never_repeat() -> None:
    users = [f"u{i:03d}" for i in range(50)]
    outs = [
        Outcome(i, t, "sent") for i in range(50) for t in ((TOKEN_A, TOKEN_B) if i % 3 == 0 else (TOKEN_A,))
    ]
    first = attempt(0, 0, users[:25], *[o for o in outs if o.index < 25])
    second = attempt(
        1,
        0,
        users[25:],
        *[Outcome(o.index - 25, o.device_token, "sent") for o in outs[len(first.outcomes) :]],
    )
    rows = report.rows([first, second])
    seen: list[tuple[str, str | None]] = []
    start = report.Position()
    while True:
        listed, nxt = report.page(rows, start, 7)
        assert 1 <= len(listed) <= 7
        seen += [(r.user_id, r.device_token) for r in listed]
        if nxt is None:
            break
        start = report.decode_cursor(report.encode_cursor(nxt))
    assert seen == [(r.user_id, r.device_token) for r in rows]
    assert len(set(seen)) == len(seen)


def test_a_cursor_holds_no_user_or_token_and_forged_ones_are_refused() -> None:
    cursor = report.encode_cursor(report.Position(3, 17))
    assert base64.urlsafe_b64decode(cursor + "==").decode() == '{"c":3,"r":17}'
    for forged in ("nope", base64.urlsafe_b64encode(b'{"c":-1,"r":0}').decode(), "e30"):
        with pytest.raises(ValidationFailed):
            report.decode_cursor(forged)


@pytest.mark.parametrize(
    ("user", "chunk"), [("a", 0), ("alice", 0), ("m", 1), ("mallory", 1), ("zed", 2), ("0", None)]
)
def test_a_user_is_found_in_the_chunk_whose_range_holds_it(user: str, chunk: int | None) -> None:
    assert DeliveryRepository.chunk_of(["a", "m", "t"], user) == chunk


def test_checkpoints_write_every_n_sends_and_the_rest_on_close() -> None:
    pages: list[tuple[int, list[Outcome]]] = []

    async def write(seq: int, batch: list[Outcome]) -> None:
        await asyncio.sleep(0)
        pages.append((seq, batch))

    async def main() -> Checkpointer:
        cp = Checkpointer(write, seq=2, interval_s=10, max_outcomes=3)
        cp.extend([Outcome(100 + i, None, "skipped", "dnd") for i in range(5)])  # no page of their own
        for _ in range(7):
            cp.started()
        for i in range(7):
            cp.add(Outcome(i, TOKEN_A, "sent"), holds_permit=True)
            await asyncio.sleep(0.01)
        await cp.close()
        return cp

    cp = asyncio.run(main())
    assert [seq for seq, _ in pages] == [2, 3, 4]
    assert [o.index for _, batch in pages for o in batch] == [100, 101, 102, 103, 104, *range(7)]
    assert len(pages[0][1]) == 8  # the skips rode along with the first three sends
    assert len(cp.written) == 12 and cp.seq == 5


def test_a_burst_of_answers_is_one_page_written_when_its_last_send_answers() -> None:
    """Sends leave together and answer together: one page once the last has answered (or given
    its permit back without an outcome), not a page per few answers and not after the timer."""
    pages: list[list[int]] = []
    permits: list[int] = []

    async def write(seq: int, batch: list[Outcome]) -> None:
        pages.append([o.index for o in batch])

    async def main() -> None:
        cp = Checkpointer(write, interval_s=10, max_outcomes=16, on_written=permits.append)
        for _ in range(5):
            cp.started()
        for i in range(4):
            cp.add(Outcome(i, TOKEN_A, "sent"), holds_permit=True)
            await asyncio.sleep(0.01)
        assert pages == []  # one send is still out
        cp.gave_back()  # it answered 429: retried later, nothing to record
        await asyncio.sleep(0.01)
        assert pages == [[0, 1, 2, 3]]
        assert sum(permits) == 5
        await cp.close()

    asyncio.run(main())
    assert pages == [[0, 1, 2, 3]]


def test_checkpoints_write_after_the_interval_without_waiting_for_n() -> None:
    pages: list[int] = []

    async def write(seq: int, batch: list[Outcome]) -> None:
        pages.append(len(batch))

    async def main() -> None:
        cp = Checkpointer(write, interval_s=0.02, max_outcomes=100)
        cp.add(Outcome(0, None, "skipped", "dnd"))
        await asyncio.sleep(0.2)
        assert pages == [1]  # written by the timer, before close
        await cp.close()

    asyncio.run(main())
    assert pages == [1]


def test_a_page_that_cannot_be_written_fails_the_chunk() -> None:
    async def write(seq: int, batch: list[Outcome]) -> None:
        raise RuntimeError("DynamoDB is down")

    async def main() -> None:
        cp = Checkpointer(write, interval_s=0.01, max_outcomes=1, attempts=2)
        cp.add(Outcome(0, None, "skipped", "dnd"))
        await cp.close()

    with pytest.raises(RuntimeError, match="down"):
        asyncio.run(main())
