"""Fencing, proven with real processes: a poller (the send function, as `make run` runs it) stalls
(SIGSTOP) past its lease in the middle of a group message, a second one takes the chunks over and
finishes them, then the first resumes (SIGCONT) where it stopped.

The guarantee under test (README, "Delivery guarantees"): the resumed invocation's writes are
fenced by its claim's token, so its first checkpoint (or, past half its lease by its own clock, the
renewal asked before any further send) finds the attempt taken over and it stops at once: it adds
only the sends it had in flight, so at most ``SEND_MAX_UNRECORDED`` devices get the message twice,
nothing is lost, and the report the new holder wrote stays as it is.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from chalicelib.settings import load_settings
from tests.e2e.conftest import Poller, PushApp, Stack
from tests.e2e.test_crash import accepted, group_of, received, settled_report, wait_for

pytestmark = pytest.mark.slow

MAX_UNRECORDED = load_settings().send_max_unrecorded
GROUP = 800
LATENCY_MS = 150  # APNs answers slowly, so the group takes seconds and the stall lands mid-send


def settled_count(stack: Stack, quiet_s: float = 2.0, timeout_s: float = 60.0) -> int:
    """The sandbox's accepted count once it has not moved for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    last, since = accepted(stack), time.monotonic()
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            raise TimeoutError("the sandbox kept receiving")
        time.sleep(0.2)
        now = accepted(stack)
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_a_stale_invocation_resumed_after_a_takeover_sends_at_most_max_unrecorded_twice(
    stack: Stack, push_app: PushApp, poller: Poller, tmp_path: Path
) -> None:
    # Given a group message being sent by a poller that then stalls past its lease
    users, owners = group_of(push_app, stack, GROUP, "fence")
    stack.sandbox.reset()
    stack.sandbox.add_fault(latencyMs=LATENCY_MS)
    body = push_app.message({"groupId": "fence-group", "groupName": "Fence", "members": users})
    message_id = body["messageId"]
    assert push_app.call("POST", "/messages", body).status_code == 202
    stale = poller
    stale.start()
    wait_for(lambda: accepted(stack) >= 100, timeout_s=60)
    stale.pause()
    at_pause = accepted(stack)
    assert at_pause < len(users), "the whole group was sent before the stall: nothing was tested"

    # When a second poller takes the chunks over and finishes them, and the first one resumes
    taker = Poller(stack.env, tmp_path / "taker.log")
    try:
        taker.start()
        before = settled_report(push_app, message_id)["summary"]
        by_taker = settled_count(stack)
        stale.resume()
        wait_for(lambda: "lease lost" in stale.log.read_text(errors="replace"), timeout_s=60, poll_s=0.2)
        after_resume = settled_count(stack) - by_taker
    finally:
        taker.kill()

    # Then the stale invocation added only what it had in flight: nothing lost, little twice
    after = settled_report(push_app, message_id)["summary"]
    got = received(stack, message_id)
    lost = [t for t in owners if not got.get(t)]
    twice = {t: notes for t, notes in got.items() if len(notes) > 1}
    stuck = after["pending"]
    print(
        f"stalled after {at_pause} of {len(users)} accepted; lost {len(lost)}, twice {len(twice)}, "
        f"stuck {stuck}; sent by the stale invocation after it resumed: {after_resume}"
    )
    assert lost == []
    assert set(got) <= set(owners)
    assert len(twice) <= MAX_UNRECORDED
    assert after_resume <= MAX_UNRECORDED
    for notes in twice.values():  # a copy is the same notification: the phone shows it once
        assert len(notes) == 2
        assert len({n["apnsId"] for n in notes}) == 1
        assert len({n["payload"]["aps"].get("badge") for n in notes}) == 1
    assert (stuck, after["failed"], after["sent"]) == (0, {}, len(owners))
    assert after == before  # none of the stale invocation's writes landed in the taker's ledger
