"""The AWS resources the service needs, created in the local emulator.

Mirrors what the deployed stack declares (infra/), from the same schema
(``chalicelib/store/schema.py``): one DynamoDB table with
TTL, the intake, send and webhook queues, each with a dead-letter queue and redrive; the send
queue's dead-letter queue is consumed and redrives to ``<send queue>-parked``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.store.queues import DLQ_SUFFIX, PARKED_SUFFIX
from chalicelib.store.schema import MAX_RECEIVE_COUNT, TTL_ATTRIBUTE, table_definition

QUEUE_VISIBILITY_TIMEOUT_S = 60


@dataclass(frozen=True)
class QueueUrls:
    intake: str
    intake_dlq: str
    send: str
    send_dlq: str
    webhook: str | None = None


def create_table(ddb: Any, name: str) -> None:
    try:
        ddb.create_table(**table_definition(name))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        return
    ddb.get_waiter("table_exists").wait(TableName=name)
    ddb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )


def create_queue_with_dlq(
    sqs: Any, name: str, visibility_timeout_s: int = QUEUE_VISIBILITY_TIMEOUT_S
) -> tuple[str, str]:
    dlq_url = sqs.create_queue(QueueName=name + DLQ_SUFFIX, Attributes={"MessageRetentionPeriod": "1209600"})[
        "QueueUrl"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout_s),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            ),
        },
    )["QueueUrl"]
    return url, dlq_url


def create_all(
    ddb: Any,
    sqs: Any,
    table: str,
    intake_queue: str,
    send_queue: str,
    visibility_timeout_s: int = QUEUE_VISIBILITY_TIMEOUT_S,
    webhook_queue: str | None = None,
) -> QueueUrls:
    create_table(ddb, table)
    intake, intake_dlq = create_queue_with_dlq(sqs, intake_queue, visibility_timeout_s)
    send, send_dlq = create_queue_with_dlq(sqs, send_queue, visibility_timeout_s)
    webhook = create_queue_with_dlq(sqs, webhook_queue, visibility_timeout_s)[0] if webhook_queue else None
    # The send DLQ is consumed (settle_dead_letters) and redrives to where it parks what it settled.
    parked = sqs.create_queue(
        QueueName=send_queue + PARKED_SUFFIX, Attributes={"MessageRetentionPeriod": "1209600"}
    )["QueueUrl"]
    parked_arn = sqs.get_queue_attributes(QueueUrl=parked, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sqs.set_queue_attributes(
        QueueUrl=send_dlq,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout_s),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": parked_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            ),
        },
    )
    return QueueUrls(intake=intake, intake_dlq=intake_dlq, send=send, send_dlq=send_dlq, webhook=webhook)
