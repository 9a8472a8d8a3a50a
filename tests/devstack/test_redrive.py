"""`make redrive` (tools/redrive.py): a dead-letter queue's records go back on their queue."""

from __future__ import annotations

import os

import boto3

from devstack import resources
from devstack.emulator import Emulator
from tools.redrive import redrive


def test_redrive_moves_every_dead_letter_back_without_the_dead_lettering_reason(emulator: Emulator) -> None:
    # Given a queue whose dead-letter queue holds 12 records, dead-lettered with a reason
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)
    sqs = boto3.client("sqs", endpoint_url=emulator.url, region_name="us-east-1")
    url, dlq = resources.create_queue_with_dlq(sqs, "redrive-test")
    for i in range(12):
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody=f'{{"n": {i}}}',
            MessageAttributes={"reason": {"DataType": "String", "StringValue": "throttled"}},
        )

    # When it is redriven
    moved = redrive(sqs, "redrive-test")

    # Then all 12 are back on the queue, without the reason, and the DLQ is empty
    back = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get(
        "Messages", []
    ):
        back += got
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    assert moved == 12
    assert sorted(m["Body"] for m in back) == sorted(f'{{"n": {i}}}' for i in range(12))
    assert all("reason" not in m.get("MessageAttributes", {}) for m in back)
    assert sqs.receive_message(QueueUrl=dlq).get("Messages", []) == []
