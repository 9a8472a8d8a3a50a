"""The lease's fencing token, on the ledger as stored in the emulator: every write a claim's holder
makes after its claim (a checkpoint page, the page of its badges, a renewal, finish, release) lands
only while the attempt is still its own; once another invocation has taken the attempt over (and,
for pages, written its fence page), each raises ``LeaseLost`` and writes nothing."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest

from bench.cost import item_size
from chalicelib.models.ledger import ChunkAttempt, ChunkRef, Claim, LeaseLost, Outcome
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
        c.app_id, c.message_id, c.ref, seq, [Outcome(seq, TOKEN, "sent")], int(time.time() * 1000), c.holder
    )


def stored(repo: DeliveryRepository, c: Claim) -> Any:
    [attempt] = repo.attempts(c.app_id, c.message_id, ref=c.ref)
    return attempt


def ledger() -> Any:
    from chalicelib import deps
    from chalicelib.store.dynamo_async import AsyncDynamo
    from chalicelib.store.send_ledger import SendLedger

    return SendLedger(deps.services().deliveries, AsyncDynamo(deps.services().settings))


def test_a_page_written_under_the_current_claim_lands(repo: DeliveryRepository) -> None:
    _, fresh = taken_over(repo)
    repo.put_page(fresh, page(repo, fresh, 0))
    assert [o.index for o in stored(repo, fresh).outcomes] == [0]


def test_a_page_written_twice_by_its_own_holder_is_one_page(repo: DeliveryRepository) -> None:
    """DynamoDB may apply a put and answer 500: the retried put finds its own page, not a loss."""
    _, fresh = taken_over(repo)
    repo.put_page(fresh, page(repo, fresh, 0))
    repo.put_page(fresh, page(repo, fresh, 0))
    assert [o.index for o in stored(repo, fresh).outcomes] == [0]


def test_a_takeover_fences_the_stale_holders_next_page_off_and_keeps_what_it_wrote(
    repo: DeliveryRepository,
) -> None:
    import asyncio

    stale, fresh = taken_over(repo)
    repo.put_page(stale, page(repo, stale, 0))  # written before it stalled

    earlier = asyncio.run(ledger().take_over(fresh))

    assert ([o.index for o in earlier.outcomes], earlier.pages) == ([0], 2)  # page 1: the fence
    with pytest.raises(LeaseLost, match="another invocation took the attempt over"):
        repo.put_page(stale, page(repo, stale, 1))  # its next page, written after it resumed
    attempt = stored(repo, fresh)
    assert ([o.index for o in attempt.outcomes], attempt.pages) == ([0], 2)


def test_a_stale_page_landing_before_the_fence_is_read_and_fenced_after(repo: DeliveryRepository) -> None:
    """The stale holder's page lands between the taker's read and its fence: the fence is refused,
    the taker reads again and fences after it (it then knows those outcomes: none sent twice)."""
    import asyncio

    stale, fresh = taken_over(repo)
    led = ledger()
    read = led.earlier

    async def read_then_stale_page_lands(*args: Any) -> Any:
        found = await read(*args)
        if found.pages == 0:
            repo.put_page(stale, page(repo, stale, 0))
        return found

    led.earlier = read_then_stale_page_lands
    earlier = asyncio.run(led.take_over(fresh))

    assert ([o.index for o in earlier.outcomes], earlier.pages) == ([0], 2)
    with pytest.raises(LeaseLost):
        repo.put_page(stale, page(repo, stale, 1))


def test_badges_saved_by_a_holder_taken_over_are_refused(repo: DeliveryRepository) -> None:
    """A holder that stalled between its claim and saving its badges: the taker's fence is the page
    number its badges take, so they are refused (and it sends nothing)."""
    import asyncio

    stale, fresh = taken_over(repo)
    led = ledger()
    asyncio.run(led.take_over(fresh))
    with pytest.raises(LeaseLost):
        asyncio.run(led.put_badges(stale, ChunkAttempt(stale.ref), {0: 7}))
    assert stored(repo, fresh).badges is None


def test_badges_saved_before_a_crash_are_what_the_takeover_reads(repo: DeliveryRepository) -> None:
    """Badges are the attempt's first page: a takeover reads them (the pages after them numbered on),
    and a takeover's own badges page (recipients the first never counted) adds to them."""
    import asyncio

    stale, fresh = taken_over(repo)
    led = ledger()
    first = ChunkAttempt(stale.ref)
    asyncio.run(led.put_badges(stale, first, {0: 4, 1: 0}))
    asyncio.run(led.put_page(stale, first.pages, [Outcome(0, TOKEN, "sent")]))

    earlier = asyncio.run(led.take_over(fresh))
    assert (earlier.badges, [o.index for o in earlier.outcomes], earlier.pages) == ({0: 4, 1: 0}, [0], 3)
    asyncio.run(led.put_badges(fresh, earlier, {1: 9, 2: 5}))
    assert (stored(repo, fresh).badges, earlier.pages) == ({0: 4, 1: 9, 2: 5}, 4)


def test_a_claim_given_back_after_saving_its_badges_is_reclaimed_as_a_takeover(
    repo: DeliveryRepository,
) -> None:
    """A chunk that saved its badges, then failed before sending (its claim given back): the
    redelivery reads them and numbers its pages after them, instead of colliding with page 0 and
    waiting out a lease of its own."""
    import asyncio

    message_id = f"fence-release-{time.monotonic_ns()}"
    start = int(time.time() * 1000)
    _, first = claim(repo, message_id, "first", start)
    led = ledger()
    asyncio.run(led.put_badges(first, ChunkAttempt(first.ref), {0: 3}))
    repo.release(first)

    outcome, second = claim(repo, message_id, "second", start + 10)
    assert outcome == "takeover"
    earlier = asyncio.run(led.take_over(second))
    assert (earlier.badges, earlier.pages) == ({0: 3}, 2)
    asyncio.run(led.put_badges(second, earlier, {1: 6}))
    assert stored(repo, second).badges == {0: 3, 1: 6}


def test_a_chunks_badges_cost_one_write_unit(repo: DeliveryRepository) -> None:
    """250 recipients' badges (the largest chunk) compress to one page under 1 KB."""
    _, fresh = taken_over(repo)
    badges = {i: 1 + i % 40 for i in range(250)}
    request = repo.page_item(
        fresh.app_id, fresh.message_id, fresh.ref, 0, [], int(time.time() * 1000), fresh.holder, badges
    )
    assert item_size(request["Item"]) <= 1024
    repo.put_page(fresh, request)
    assert stored(repo, fresh).badges == badges


def test_badges_in_their_own_item_as_earlier_versions_saved_them_are_read(repo: DeliveryRepository) -> None:
    """An attempt claimed by a version before 3.2 and taken over by this one keeps its badges."""
    from chalicelib.store import items
    from chalicelib.store.ledger_codec import encode_badges

    _, fresh = taken_over(repo)
    repo.client.put_item(
        TableName=repo.table,
        Item=items.to_item(
            {
                "pk": items.delivery_pk(fresh.app_id, fresh.message_id),
                "sk": f"{fresh.ref.sk}#B",
                "b": encode_badges({3: 2}),
            }
        ),
    )
    assert stored(repo, fresh).badges == {3: 2}


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

    stale, fresh = taken_over(repo)
    led = ledger()

    async def write() -> None:
        await led.take_over(fresh)  # the fence: page 0
        await led.put_page(fresh, 1, [Outcome(0, TOKEN, "sent")])
        await led.put_page(fresh, 1, [Outcome(0, TOKEN, "sent")])  # its own, retried: fine
        with pytest.raises(LeaseLost):
            await led.put_page(stale, 0, [Outcome(1, TOKEN, "sent")])
        with pytest.raises(LeaseLost):
            await led.put_badges(stale, ChunkAttempt(stale.ref), {1: 3})

    asyncio.run(write())
    attempt = stored(repo, fresh)
    assert ([o.index for o in attempt.outcomes], attempt.badges) == ([0], None)
