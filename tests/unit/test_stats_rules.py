"""Daily statistics' pure rules: a chunk's attempts, counted one attempt at a time as each settles,
add up to exactly what the message's report summarizes (pending left out); the stats query's
range rules; the counter item's update expression."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chalicelib.models.ledger import ChunkAttempt, ChunkRef, Outcome
from chalicelib.models.stats import DayCounts, StatsQuery
from chalicelib.services import report
from chalicelib.services.stats import attempt_counts
from chalicelib.store.stats import StatsRepository, counts_of

SKIPS = ["online", "noDevice", "pushDisabled", "loggedOut", "recalled"]
FAILS = ["Unregistered", "BadDeviceToken", "RetriesExhausted"]
device_status = st.sampled_from(["sent", "failed", "skipped", "pending"])


@st.composite
def chunk_attempts(draw: st.DrawFn) -> list[ChunkAttempt]:
    """A chunk's attempts as the send path writes them: attempt 0 decides every recipient (a skip
    of the whole user, device outcomes, or both); each retry re-decides the devices left pending."""
    users = [f"u{i}" for i in range(draw(st.integers(1, 8)))]
    first = ChunkAttempt(ChunkRef(0, 0), recipients=users, status="done")
    pending: dict[str, list[str]] = {}
    for index, user in enumerate(users):
        kind = draw(st.sampled_from(["user", "devices", "both"]))
        if kind in ("devices", "both"):
            for d in range(draw(st.integers(1, 3))):
                token = f"{index:02x}{d:02x}" * 16
                status = draw(device_status)
                code = (
                    draw(st.sampled_from(FAILS if status == "failed" else SKIPS)) if status != "sent" else ""
                )
                first.outcomes.append(Outcome(index, token, status, code))
                if status == "pending":
                    pending.setdefault(user, []).append(token)
        if kind in ("user", "both"):
            first.outcomes.append(Outcome(index, None, "skipped", draw(st.sampled_from(SKIPS))))
    if draw(st.booleans()) and first.outcomes:  # a takeover re-recorded one outcome: the latest wins
        first.outcomes.append(first.outcomes[draw(st.integers(0, len(first.outcomes) - 1))])
    attempts = [first]
    for n in range(1, 4):
        if not pending:
            break
        retry = ChunkAttempt(ChunkRef(0, n), recipients=sorted(pending), status="done")
        still: dict[str, list[str]] = {}
        for index, user in enumerate(retry.recipients):
            for token in pending[user]:
                status = draw(device_status)
                code = (
                    draw(st.sampled_from(FAILS if status == "failed" else SKIPS)) if status != "sent" else ""
                )
                retry.outcomes.append(Outcome(index, token, status, code))
                if status == "pending":
                    still.setdefault(user, []).append(token)
        attempts.append(retry)
        pending = still
    return attempts


@settings(max_examples=300, deadline=None)
@given(chunk_attempts())
def test_attempt_counts_add_up_to_the_report_summary(attempts: list[ChunkAttempt]) -> None:
    # Given a chunk's attempts, When each is counted as it settles
    counted = DayCounts()
    for a in attempts:
        counted += attempt_counts(a.outcomes)
    # Then the sum is the report's summary, pending left out (a retry counts those it settles)
    summary = report.summary(report.rows(attempts))
    assert counted.sent == summary["sent"]
    assert dict(counted.skipped) == summary["skipped"]
    assert dict(counted.failed) == summary["failed"]


def test_a_message_counts_once_with_its_first_chunk_attempt() -> None:
    outcomes = [Outcome(0, "ab" * 32, "sent")]
    assert attempt_counts(outcomes, first_of_message=True).messages == 1
    assert attempt_counts(outcomes).messages == 0


def test_pending_devices_are_not_counted_until_settled() -> None:
    counts = attempt_counts([Outcome(0, "ab" * 32, "pending", "TooManyRequests")])
    assert counts.empty


@pytest.mark.parametrize(
    ("first", "last", "error"),
    [
        ("2026-12-05", "2026-12-04", "from must not be after to"),
        ("2026-01-01", "2026-04-03", "at most 92 days"),
        ("2026-1-1", "2026-01-02", "YYYY-MM-DD"),
        ("2026-02-30", "2026-03-01", "date"),
    ],
)
def test_a_stats_range_must_be_ordered_days_at_most_92(first: str, last: str, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        StatsQuery.model_validate({"from": first, "to": last})


def test_92_days_inclusive_is_the_longest_range() -> None:
    query = StatsQuery.model_validate({"from": "2026-01-01", "to": "2026-04-02"})
    assert (query.to - query.from_).days + 1 == 92


def test_the_counter_update_adds_only_what_is_not_zero_and_reads_back() -> None:
    repo = StatsRepository(client=None, table="t")  # type: ignore[arg-type]
    counts = DayCounts(messages=1, sent=3, skipped={"online": 2}, failed={"Unregistered": 1})
    spec = repo.update_spec("app1", dt.date(2026, 12, 5), counts)
    assert spec["Key"] == {"pk": {"S": "ST#app1"}, "sk": {"S": "D#2026-12-05"}}
    assert spec["UpdateExpression"].count(":a") == 4  # messages, sent, s#online, f#Unregistered
    names = set(spec["ExpressionAttributeNames"].values())
    assert {"messages", "sent", "s#online", "f#Unregistered"} <= names and "opened" not in names
    stored = {"messages": 1, "sent": 3, "s#online": 2, "f#Unregistered": 1, "ttl": 1, "pk": "x", "sk": "y"}
    assert counts_of(stored) == counts
