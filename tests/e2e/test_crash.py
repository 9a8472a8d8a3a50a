"""Crash safety of the send path, proven with real processes: the queue poller (the SQS-triggered
handlers, as `make run` runs them) is killed with SIGKILL in the middle of sending a group message,
a new one takes over after the lease, and every device is counted in the sandbox afterwards.

The guarantee under test (README, "Delivery guarantees"): nothing is lost, nothing stays pending,
and a device gets the message twice only if it was in flight or answered since the last checkpoint
when the process died; such a copy has the same apns-id, badge and collapse-id.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import boto3

from chalicelib.settings import load_settings
from devstack.seed import bulk_devices, seed_users
from tests.e2e.conftest import BUNDLE, Poller, PushApp, Stack

MAX_DUPLICATE_SHARE = 0.02
MAX_UNRECORDED = load_settings().send_max_unrecorded  # the bound per crashed invocation


def group_of(push_app: PushApp, stack: Stack, n: int, prefix: str) -> tuple[list[str], dict[str, str]]:
    tokens = bulk_devices(stack.sandbox, BUNDLE, n)
    ddb = boto3.client("dynamodb", endpoint_url=stack.env["AWS_ENDPOINT_OVERRIDE"], region_name="us-east-1")
    users = seed_users(
        ddb, stack.env["TABLE_NAME"], push_app.ctx.app_id, push_app.prod_cert, BUNDLE, tokens, prefix
    )
    return users, dict(zip(tokens, users, strict=True))


def accepted(stack: Stack) -> int:
    return int(stack.sandbox.stats()["accepted"])


def wait_for(predicate: Any, timeout_s: float, poll_s: float = 0.01) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the condition did not hold in time")
        time.sleep(poll_s)


def settled_report(push_app: PushApp, message_id: str, timeout_s: float = 120) -> dict[str, Any]:
    """The delivery report once nothing is pending any more."""
    found: dict[str, Any] = {}

    def settled() -> bool:
        resp = push_app.call("GET", f"/messages/{message_id}/deliveries?limit=1")
        if resp.status_code != 200:
            return False
        found.update(resp.data)
        return int(resp.data["summary"]["pending"]) == 0

    wait_for(settled, timeout_s, poll_s=0.5)
    return found


def received(stack: Stack, message_id: str) -> dict[str, list[dict[str, Any]]]:
    by_token: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for n in stack.sandbox.notifications(limit=100_000):
        if n["payload"].get("m") == message_id:
            by_token[n["deviceToken"]].append(n)
    return by_token


def check_counts(
    stack: Stack, push_app: PushApp, message_id: str, owners: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """Every device got the message, at most twice, copies identical; answers the duplicate count."""
    report = settled_report(push_app, message_id)
    got = received(stack, message_id)
    lost = [t for t in owners if not got.get(t)]
    assert lost == [], f"{len(lost)} devices never got the message"
    assert set(got) <= set(owners)
    duplicates = {t: notes for t, notes in got.items() if len(notes) > 1}
    for notes in duplicates.values():
        assert len(notes) == 2
        assert len({n["apnsId"] for n in notes}) == 1
        assert len({n["headers"].get("apns-collapse-id") for n in notes}) == 1
        assert len({n["payload"]["aps"].get("badge") for n in notes}) == 1
    summary = report["summary"]
    assert summary["sent"] == len(owners)
    assert (summary["pending"], summary["failed"]) == (0, {})
    return len(duplicates), summary


def test_a_send_killed_mid_group_loses_nothing_and_duplicates_little(
    stack: Stack, push_app: PushApp, poller: Poller
) -> None:
    users, owners = group_of(push_app, stack, 1000, "crash")
    stack.sandbox.reset()
    body = push_app.message({"groupId": "crash-group", "groupName": "Crash", "members": ["alice", *users]})
    assert push_app.call("POST", "/messages", body).status_code == 202

    poller.start()
    wait_for(lambda: accepted(stack) >= 50, timeout_s=60)  # mid-send: some devices have it
    poller.kill()
    at_kill = accepted(stack)
    assert at_kill < len(users), "the whole group was sent before the kill: nothing was tested"

    poller.start()  # a new container: takes the chunks over once their lease runs out
    duplicates, _ = check_counts(stack, push_app, body["messageId"], owners)
    print(f"killed after {at_kill} of {len(users)} accepted; duplicates: {duplicates}")
    assert duplicates <= min(MAX_UNRECORDED, MAX_DUPLICATE_SHARE * len(users))


def test_a_send_killed_during_a_retry_chunk_loses_nothing(
    stack: Stack, push_app: PushApp, poller: Poller
) -> None:
    users, owners = group_of(push_app, stack, 300, "retry")
    stack.sandbox.reset()
    # APNs refuses the whole first attempt: every device goes to a retry chunk.
    stack.sandbox.add_fault(status=503, reason="ServiceUnavailable", count=len(users))
    body = push_app.message({"groupId": "retry-group", "groupName": "Retry", "members": users})
    assert push_app.call("POST", "/messages", body).status_code == 202

    poller.start()
    wait_for(lambda: accepted(stack) >= 30, timeout_s=60)  # the retry chunk is being sent
    poller.kill()
    at_kill = accepted(stack)
    assert at_kill < len(users), "the whole retry was sent before the kill: nothing was tested"

    poller.start()
    duplicates, _ = check_counts(stack, push_app, body["messageId"], owners)
    print(f"killed after {at_kill} of {len(users)} accepted in the retry; duplicates: {duplicates}")
    assert duplicates <= MAX_UNRECORDED
