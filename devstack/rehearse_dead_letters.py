"""The rehearsal's dead-letter step: a chunk the send queue's redrive dead-letters is settled by the
send DLQ's consumer (``settle_dead_letters``) in the stack the template created, redriven after the
outage, and settled again without effect; every action of that function's role is performed here."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devstack.rehearse_flow import Flow


def move(flow: Flow, source: str, target: str | None) -> list[str]:
    """Every record of queue ``source`` moved to ``target`` (as SQS's redrive moves them; None: taken)."""
    sqs = flow.aws.sqs
    source_url = sqs.get_queue_url(QueueName=source)["QueueUrl"]
    moved: list[str] = []
    while got := sqs.receive_message(QueueUrl=source_url, MaxNumberOfMessages=10).get("Messages", []):
        for m in got:
            if target is not None:
                sqs.send_message(
                    QueueUrl=sqs.get_queue_url(QueueName=target)["QueueUrl"], MessageBody=m["Body"]
                )
            sqs.delete_message(QueueUrl=source_url, ReceiptHandle=m["ReceiptHandle"])
            moved.append(m["Body"])
    return moved


def dead_letter(flow: Flow, base: str, admin: str, token: str) -> None:
    """A chunk the send queue's redrive dead-letters (maxReceiveCount receives) ends failed in the
    report, nothing sent; redriven after the outage it is sent; settled again, it changes nothing."""
    env = flow.functions[flow.api_function()]["Environment"]["Variables"]
    intake, send = env["INTAKE_QUEUE_NAME"], env["SEND_QUEUE_NAME"]
    message = {
        "messageId": "rehearsal-dead",
        "sendTime": int(time.time()),
        "sender": {"userId": "alice", "nickname": "Alice"},
        "to": {"userId": "bob"},
        "elems": [{"type": "text", "text": "dead-lettered"}],
    }
    report = f"{base}/messages/rehearsal-dead/deliveries"

    def delivered() -> int:
        notes = flow.sandbox.notifications(token)
        return sum("dead-lettered" in json.dumps(n["payload"]) for n in notes)

    flow.expect(202, "POST", f"{base}/messages", message, admin)
    flow.drain(only={intake})
    chunks = move(flow, send, send + "-dlq")  # what SQS does after maxReceiveCount failed receives
    flow.drain()
    rows = flow.expect(200, "GET", report, None, admin)["items"]
    flow.report.check(
        [(r["status"], r.get("code")) for r in rows] == [("failed", "DeadLettered")] and delivered() == 0,
        "a chunk the send queue dead-lettered is settled by its consumer: failed DeadLettered in the report, nothing sent",
        f"a dead-lettered chunk's report says {rows}; delivered {delivered()} times",
    )
    parked = move(flow, send + "-parked", send)  # the redrive after the outage
    flow.drain()
    rows = flow.expect(200, "GET", report, None, admin)["items"]
    flow.report.check(
        len(parked) == 1 and [r["status"] for r in rows] == ["sent"] and delivered() == 1,
        "... parked; redriven to the send queue, it is sent once and the report says sent",
        f"redrive of {len(parked)} parked record(s): report {rows}, delivered {delivered()} times",
    )
    dlq = flow.aws.sqs.get_queue_url(QueueName=send + "-dlq")["QueueUrl"]
    flow.aws.sqs.send_message(QueueUrl=dlq, MessageBody=chunks[0])  # dead-lettered once more
    flow.drain()
    again = move(flow, send + "-parked", None)
    rows = flow.expect(200, "GET", report, None, admin)["items"]
    flow.report.check(
        len(again) == 1 and [r["status"] for r in rows] == ["sent"] and delivered() == 1,
        "... and the same dead letter settled again (its chunk done) changes nothing",
        f"settled again: report {rows}, delivered {delivered()} times",
    )
