"""The lease's fencing token, on the ledger as stored in the emulator: every write a claim's holder
makes after its claim (a checkpoint page, the saved badges, a renewal, finish, release) lands only
while the lease still names its token; once another invocation has taken the attempt over, each
raises ``LeaseLost`` and writes nothing."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.models.ledger import ChunkRef, Claim, LeaseLost, Outcome
from chalicelib.store.deliveries import DeliveryRepository

LEASE_MS = 3_000
TOKEN = "ab" * 32
_messages = itertools.count(1)


@pytest.fixture
def repo(stack_env: dict[str, str]) -> DeliveryRepository:
    from chalicelib import deps

    return deps.services().deliveries


def claim(repo: DeliveryRepository, message_id: str, holder: str, now_ms: int) -> tuple[str, Claim]:
    ref = ChunkRef(0, 0)
    outcome = repo.claim("app-fence", message_id, ref, now_ms, LEASE_MS, holder)
    return outcome, Claim("app-fence", message_id, ref, holder, outcome == "takeover")


def taken_over(repo: DeliveryRepository) -> tuple[Claim, Claim]:
    """A claim whose lease ran out, and the claim that took the attempt over."""
    message_id = f"fence-{next(_messages)}-{time.monotonic_ns()}"
    start = int(time.time() * 1000)
    first, stale = claim(repo, message_id, "stale", start)
    second, fresh = claim(repo, message_id, "fresh", start + LEASE_MS + 1)
    assert (first, second) == ("claimed", "takeover")
    return stale, fresh


def page(repo: DeliveryRepository, c: Claim, seq: int) -> dict[str, Any]:
    return repo.page_item(
        c.app_id, c.message_id, c.ref, seq, [Outcome(seq, TOKEN, "sent")], int(time.time() * 1000)
    )


def stored(repo: DeliveryRepository, c: Claim) -> Any:
    [attempt] = repo.attempts(c.app_id, c.message_id, ref=c.ref)
    return attempt


def test_a_page_written_under_the_current_claim_lands(repo: DeliveryRepository) -> None:
    _, fresh = taken_over(repo)
    repo.put_fenced(fresh, page(repo, fresh, 0))
    assert [o.index for o in stored(repo, fresh).outcomes] == [0]


def test_a_page_written_by_a_holder_taken_over_is_refused_and_lands_nothing(repo: DeliveryRepository) -> None:
    stale, fresh = taken_over(repo)
    with pytest.raises(LeaseLost, match="another invocation took the attempt over"):
        repo.put_fenced(stale, page(repo, stale, 0))
    attempt = stored(repo, fresh)
    assert (attempt.outcomes, attempt.pages) == ([], 0)


def test_badges_saved_by_a_holder_taken_over_are_refused(repo: DeliveryRepository) -> None:
    stale, fresh = taken_over(repo)
    saved = repo.badges_item(stale.app_id, stale.message_id, stale.ref, {0: 7}, int(time.time() * 1000))
    with pytest.raises(LeaseLost):
        repo.put_fenced(stale, saved)
    assert stored(repo, fresh).badges is None


@pytest.mark.parametrize(
    "write",
    [
        lambda repo, c: repo.finish(c),
        lambda repo, c: repo.release(c),
        lambda repo, c: repo.renew(c, int(time.time() * 1000)),
    ],
    ids=["finish", "release", "renew"],
)
def test_a_holder_taken_over_cannot_finish_release_or_renew_the_lease(
    repo: DeliveryRepository, write: Callable[[DeliveryRepository, Claim], None]
) -> None:
    stale, fresh = taken_over(repo)
    with pytest.raises(LeaseLost):
        write(repo, stale)
    assert stored(repo, fresh).status == "claimed"
    repo.finish(fresh)  # the new holder still can
    assert stored(repo, fresh).status == "done"


def test_a_renewal_restarts_the_lease_so_nobody_takes_a_live_holder_over(repo: DeliveryRepository) -> None:
    message_id = f"fence-renew-{time.monotonic_ns()}"
    start = int(time.time() * 1000)
    _, holder = claim(repo, message_id, "live", start)
    repo.renew(holder, start + LEASE_MS - 1)
    outcome, _ = claim(repo, message_id, "other", start + LEASE_MS + 1)
    assert outcome == "busy"


def test_a_claim_applied_whose_answer_was_lost_is_its_own_again_when_retried(
    repo: DeliveryRepository,
) -> None:
    """DynamoDB may apply a write and answer 500; the retried claim finds its own token: it holds the
    attempt (as a takeover, so it reads whatever the attempt recorded) instead of waiting it out."""
    message_id = f"fence-retry-{time.monotonic_ns()}"
    start = int(time.time() * 1000)
    assert claim(repo, message_id, "once", start)[0] == "claimed"
    assert claim(repo, message_id, "once", start + 10)[0] == "takeover"
    assert claim(repo, message_id, "another", start + 20)[0] == "busy"


def test_the_send_paths_asyncio_client_gets_the_same_refusal(repo: DeliveryRepository) -> None:
    """The send function writes its pages with the asyncio client: the refusal is LeaseLost too."""
    import asyncio

    from chalicelib import deps
    from chalicelib.store.dynamo_async import AsyncDynamo
    from chalicelib.store.send_ledger import SendLedger

    stale, fresh = taken_over(repo)
    ledger = SendLedger(repo, AsyncDynamo(deps.services().settings))

    async def write() -> None:
        await ledger.put_page(fresh, 0, [Outcome(0, TOKEN, "sent")])
        with pytest.raises(LeaseLost):
            await ledger.put_page(stale, 1, [Outcome(1, TOKEN, "sent")])
        with pytest.raises(LeaseLost):
            await ledger.put_badges(stale, {1: 3})

    asyncio.run(write())
    attempt = stored(repo, fresh)
    assert ([o.index for o in attempt.outcomes], attempt.badges) == ([0], None)
