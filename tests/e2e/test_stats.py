"""Daily statistics through the real path: the day's counts match the reports of the same messages
exactly (sent, skipped and failed by reason, a retry counted once it settles, messages once), and a
chunk counts once however it is replayed: redelivered after it finished, taken over after a
crash (kill -9 of the poller mid-send), or finished late by an invocation whose claim was taken over."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from chalicelib import deps
from chalicelib.models.ledger import ChunkRef, Claim, LeaseLost
from chalicelib.models.message import MessageEvent
from chalicelib.models.sending import SendChunk
from tests.e2e.conftest import PushApp, Stack
from tests.e2e.test_crash import accepted, group_of, settled_report, wait_for


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


def stats_today(push_app: PushApp) -> dict[str, Any]:
    resp = push_app.call("GET", f"/stats?from={today()}&to={today()}")
    assert resp.status_code == 200, resp.body
    return dict(resp.data["days"][0])


def summed(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    skipped: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for s in summaries:
        skipped.update(s["skipped"])
        failed.update(s["failed"])
    return {"sent": sum(s["sent"] for s in summaries), "skipped": dict(skipped), "failed": dict(failed)}


def reported(push_app: PushApp, message_ids: list[str]) -> dict[str, Any]:
    summaries = []
    for m in message_ids:
        resp = push_app.call("GET", f"/messages/{m}/deliveries?limit=1")
        assert resp.status_code == 200, resp.body
        assert resp.data["summary"]["pending"] == 0
        summaries.append(resp.data["summary"])
    return summed(summaries)


def test_the_days_stats_match_the_reports_of_the_same_messages(stack: Stack, push_app: PushApp) -> None:
    # Given bob with two phones, carol's app uninstalled, dave in the foreground, erin with no phone,
    # and frank whose first push APNs refuses with a 503 (retried, then sent)
    push_app.device("bob")
    push_app.device("bob")
    stack.sandbox.uninstall(push_app.device("carol"))
    push_app.device("dave")
    push_app.call("PUT", "/users/dave/app-state", {"state": "foreground"}, user="dave")
    frank = push_app.device("frank")
    stack.sandbox.add_fault(status=503, reason="ServiceUnavailable", count=1, deviceToken=frank)
    # When three messages are sent and settle
    bodies = [
        push_app.message({"userId": "bob"}),
        push_app.message({"groupId": "g", "members": ["bob", "carol", "dave", "erin", "frank"]}),
        push_app.message({"userId": "erin"}),
    ]
    for body in bodies:
        assert push_app.call("POST", "/messages", body).status_code == 202
    stack.pump(timeout_s=60)
    # Then today's counters are the reports' summaries added up, and each message counts once
    expected = reported(push_app, [b["messageId"] for b in bodies])
    day = stats_today(push_app)
    assert {k: day[k] for k in ("sent", "skipped", "failed")} == expected
    assert expected == {
        "sent": 5,  # bob's 2 phones twice, frank's after the retry
        "skipped": {"foreground": 1, "noDevice": 2},
        "failed": {"Unregistered": 1},
    }
    assert day["messages"] == 3


def test_a_chunk_redelivered_after_it_finished_counts_once(stack: Stack, push_app: PushApp) -> None:
    # Given a message sent and counted
    push_app.device("bob")
    body = push_app.message({"userId": "bob"})
    assert push_app.call("POST", "/messages", body).status_code == 202
    stack.pump()
    before = stats_today(push_app)
    assert (before["messages"], before["sent"]) == (1, 1)
    # When its chunk is put on the send queue again (SQS delivers a message twice)
    chunk = SendChunk(
        app_id=push_app.ctx.app_id,
        message_id=body["messageId"],
        index=0,
        event=MessageEvent.model_validate(body),
        recipients=["bob"],
    )
    stack.send_raw(stack.env["SEND_QUEUE_NAME"], chunk.model_dump_json(by_alias=True, exclude_none=True))
    stack.pump()
    # Then nothing more is counted
    assert stats_today(push_app) == before


def test_a_chunk_taken_over_counts_once_and_the_late_finish_of_the_first_claim_nothing(
    stack: Stack, push_app: PushApp
) -> None:
    # Given a message fanned out, whose chunk an invocation claimed and then froze past its lease
    push_app.device("bob")
    body = push_app.message({"userId": "bob"})
    assert push_app.call("POST", "/messages", body).status_code == 202
    wait_for(lambda: stack.intake.poll_once() > 0, timeout_s=30, poll_s=0.1)
    deliveries = deps.services().deliveries
    app_id, message_id, ref = push_app.ctx.app_id, body["messageId"], ChunkRef(0, 0)
    frozen_at = int(time.time() * 1000) - 60_000
    assert deliveries.claim(app_id, message_id, ref, frozen_at, lease_ms=3_000, holder="frozen") == "claimed"
    # When the chunk is delivered again: another invocation takes it over and finishes it
    stack.pump()
    counted = stats_today(push_app)
    # And then the frozen invocation wakes up and finishes it too
    with pytest.raises(LeaseLost):
        deliveries.finish(Claim(app_id, message_id, ref, "frozen"))
    # Then the taker counted the chunk once, and the late finish is refused (it would count it again)
    assert (counted["messages"], counted["sent"]) == (1, 1)
    assert stats_today(push_app) == counted


@pytest.mark.slow
def test_a_chunk_taken_over_after_a_crash_counts_once(stack: Stack, push_app: PushApp, poller: Any) -> None:
    # Given a group of 600 being sent by a poller that is killed mid-send
    users, owners = group_of(push_app, stack, 600, "statcrash")
    stack.sandbox.reset()
    body = push_app.message({"groupId": "stat-crash", "members": users})
    assert push_app.call("POST", "/messages", body).status_code == 202
    poller.start()
    wait_for(lambda: accepted(stack) >= 50, timeout_s=60)
    poller.kill()
    assert accepted(stack) < len(users), "the whole group was sent before the kill: nothing was tested"
    # When another poller takes the chunks over and finishes them
    poller.start()
    report = settled_report(push_app, body["messageId"])
    # Then every device is counted exactly once, as the report says (copies sent twice are not)
    day = stats_today(push_app)
    assert report["summary"]["sent"] == len(owners)
    assert (day["sent"], day["messages"], day["failed"]) == (len(owners), 1, {})
