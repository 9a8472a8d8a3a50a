"""Nothing pending forever: a chunk the send queue's redrive dead-lettered (not our code) ends in the
report as ``failed DeadLettered``, nothing is sent, and it is parked so a redrive after the outage
sends exactly those devices. A chunk that cannot make progress is deferred, not handed back to SQS."""

from __future__ import annotations

import json
from typing import Any

from chalicelib import handlers
from chalicelib.deps import services
from chalicelib.models.ledger import ChunkRef
from devstack import aws_actions
from devstack.poller import sqs_event
from tests.e2e.conftest import PushApp, Stack
from tools.redrive import redrive


def take_all(stack: Stack, name: str) -> list[dict[str, Any]]:
    """Receive and delete every visible record of a queue (as the redrive moves them)."""
    url = stack.sqs.get_queue_url(QueueName=name)["QueueUrl"]
    out: list[dict[str, Any]] = []
    while got := stack.sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
    ).get("Messages", []):
        for m in got:
            out.append(m)
            stack.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return out


def settle(stack: Stack, records: list[dict[str, Any]]) -> dict[str, Any]:
    event = sqs_event(records, "arn:aws:sqs:us-east-1:123456789012:dlq", "us-east-1")
    with aws_actions.as_function("settle_dead_letters"):
        return handlers.handle_send_dead_letters(event["Records"])


def summary(push_app: PushApp, message_id: str) -> dict[str, Any]:
    resp = push_app.call("GET", f"/messages/{message_id}/deliveries?limit=1")
    assert resp.status_code == 200, resp.body
    return dict(resp.data["summary"])


def dead_lettered_group(stack: Stack, push_app: PushApp, n: int) -> tuple[dict[str, Any], dict[str, str]]:
    """A group message fanned out whose chunks the send queue's redrive moved to its DLQ."""
    tokens = {push_app.device(f"dl{i}"): f"dl{i}" for i in range(n)}
    body = push_app.message({"groupId": "dl", "groupName": "DL", "members": ["alice", *tokens.values()]})
    assert push_app.call("POST", "/messages", body).status_code == 202
    while stack.intake.poll_once():
        pass
    send = stack.env["SEND_QUEUE_NAME"]
    dlq = stack.sqs.get_queue_url(QueueName=send + "-dlq")["QueueUrl"]
    for m in take_all(stack, send):  # what SQS does after maxReceiveCount receives
        stack.sqs.send_message(QueueUrl=dlq, MessageBody=m["Body"])
    return body, tokens


def test_a_chunk_dead_lettered_by_the_queue_ends_failed_in_the_report_and_sends_nothing(
    stack: Stack, push_app: PushApp
) -> None:
    # Given a group message whose chunk the send queue dead-lettered
    stack.sandbox.reset()
    body, _ = dead_lettered_group(stack, push_app, 5)
    send = stack.env["SEND_QUEUE_NAME"]

    # When the send DLQ's consumer runs
    result = settle(stack, take_all(stack, send + "-dlq"))

    # Then every device is failed DeadLettered with a reason, none pending, nothing sent
    assert result == {"batchItemFailures": []}
    report = summary(push_app, body["messageId"])
    assert (report["pending"], report["sent"], report["failed"]) == (0, 0, {"DeadLettered": 5})
    rows = push_app.deliveries(body["messageId"])
    assert all("redrive" in r["reason"] for r in rows)
    assert stack.sandbox.notifications(limit=1000) == []
    # and the record is parked for a redrive, saying what was done
    parked = take_all(stack, send + "-parked")
    assert len(parked) == 1
    assert "5 device(s)" in parked[0]["MessageAttributes"]["settled"]["StringValue"]


def test_settling_a_dead_letter_twice_marks_nothing_more(stack: Stack, push_app: PushApp) -> None:
    # Given a dead-lettered chunk already settled
    body, _ = dead_lettered_group(stack, push_app, 3)
    send = stack.env["SEND_QUEUE_NAME"]
    records = take_all(stack, send + "-dlq")
    settle(stack, records)
    take_all(stack, send + "-parked")

    # When the same record is settled again (SQS delivered it twice)
    again = services().dead_letters.settle(records[0]["Body"])

    # Then nothing more is marked, and the report is unchanged
    assert again.marked == 0
    assert summary(push_app, body["messageId"])["failed"] == {"DeadLettered": 3}


def test_a_redriven_dead_letter_sends_exactly_the_devices_marked_failed(
    stack: Stack, push_app: PushApp
) -> None:
    # Given a dead-lettered chunk settled and parked
    stack.sandbox.reset()
    body, tokens = dead_lettered_group(stack, push_app, 4)
    send = stack.env["SEND_QUEUE_NAME"]
    settle(stack, take_all(stack, send + "-dlq"))

    # When the outage is over and `make redrive` puts it back on the send queue
    assert redrive(stack.sqs, send) == 1
    stack.pump()

    # Then each device gets it once and the report says sent
    got = [
        n["deviceToken"]
        for n in stack.sandbox.notifications(limit=1000)
        if n["payload"].get("m") == body["messageId"]
    ]
    assert sorted(got) == sorted(tokens)
    report = summary(push_app, body["messageId"])
    assert (report["sent"], report["pending"], report["failed"]) == (4, 0, {})


def test_a_chunk_another_invocation_holds_is_deferred_not_handed_back(
    stack: Stack, push_app: PushApp
) -> None:
    # Given a chunk whose lease a live invocation holds
    stack.sandbox.reset()
    token = push_app.device("held")
    body = push_app.message({"userId": "held"})
    assert push_app.call("POST", "/messages", body).status_code == 202
    while stack.intake.poll_once():
        pass
    send = stack.env["SEND_QUEUE_NAME"]
    (record,) = take_all(stack, send)
    chunk = json.loads(record["Body"])
    svc = services()
    ref = ChunkRef(chunk["index"], chunk.get("attempt", 0))
    assert (
        svc.deliveries.claim(
            push_app.ctx.app_id, body["messageId"], ref, svc.send_wing.clock_ms(), 3000, "another"
        )
        == "claimed"
    )

    # When the send function is given it
    event = sqs_event([record], "arn:aws:sqs:us-east-1:123456789012:send", "us-east-1")
    with aws_actions.as_function("send"):
        result = handlers.handle_send_records(event["Records"])

    # Then it is not handed back to SQS (no receive counted): it is queued again, delayed, counted
    assert result == {"batchItemFailures": []}
    stack.pump(timeout_s=60)  # comes back after its delay and the lease (3 s), then is sent
    again = [n for n in stack.sandbox.notifications(token) if n["payload"].get("m") == body["messageId"]]
    assert len(again) == 1
