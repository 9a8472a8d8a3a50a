"""`make redrive`: put what a dead-letter queue holds back on its queue, after an outage is over.

    python tools/redrive.py [--queue send|intake] [--endpoint URL]   (default: the local stack's)

Each record goes back as it came (body and message attributes other than the dead-lettering
``reason``), then is deleted from the DLQ; a record that fails again is dead-lettered again.
The send queue's dead letters are consumed at once (``settle_dead_letters``: their devices marked
failed in the report) and kept on ``<send queue>-parked``; a redriven chunk sends exactly those.
In production use SQS's own redrive instead:

    aws sqs start-message-move-task --source-arn <send -parked queue ARN> --destination-arn <send queue ARN>
    aws sqs start-message-move-task --source-arn <the intake -dlq queue's ARN>
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_OURS = {"reason", "sourceMessageId", "settled", "deferrals"}  # what the service's dead-lettering adds


def redrive(sqs: Any, queue_name: str) -> int:
    """Move every record of ``<queue_name>-parked`` (where the send DLQ's consumer keeps what it
    settled) and of ``<queue_name>-dlq`` back to ``queue_name``; the number moved."""
    moved = 0
    for suffix in ("-parked", "-dlq"):
        try:
            source = sqs.get_queue_url(QueueName=queue_name + suffix)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            continue
        moved += _move(sqs, source, queue_name)
    return moved


def _move(sqs: Any, source: str, queue_name: str) -> int:
    target = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    moved = 0
    while True:
        got = sqs.receive_message(
            QueueUrl=source, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not got:
            return moved
        for m in got:
            attributes = {
                k: {"DataType": v["DataType"], "StringValue": v["StringValue"]}
                for k, v in m.get("MessageAttributes", {}).items()
                if k not in _OURS and "StringValue" in v
            }
            sqs.send_message(QueueUrl=target, MessageBody=m["Body"], MessageAttributes=attributes)
            sqs.delete_message(QueueUrl=source, ReceiptHandle=m["ReceiptHandle"])
            moved += 1


def main(argv: list[str] | None = None) -> int:
    import boto3

    sys.path.insert(0, str(ROOT))
    from devstack.__main__ import stage_env

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--queue", choices=["send", "intake"], default="send")
    default = f"http://127.0.0.1:{os.environ.get('AWS_EMULATOR_PORT') or 5000}"
    parser.add_argument("--endpoint", default=os.environ.get("AWS_EMULATOR_URL") or default)
    args = parser.parse_args(argv)
    env = stage_env("local")
    name = env["SEND_QUEUE_NAME" if args.queue == "send" else "INTAKE_QUEUE_NAME"]
    for var, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
        os.environ.setdefault(var, value)
    sqs = boto3.client(
        "sqs", endpoint_url=args.endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1")
    )
    print(f"redrive: {redrive(sqs, name)} record(s) moved from {name}-dlq back to {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
