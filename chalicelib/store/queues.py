"""SQS: the intake, send and webhook queues, and dead-lettering with a reason."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

DLQ_SUFFIX = "-dlq"  # <queue>-dlq: what failed, with a reason (ours) or by the queue's redrive
PARKED_SUFFIX = "-parked"  # <send queue>-parked: dead letters the report already shows, kept for a redrive
SQS_BATCH = 10
SQS_BATCH_BYTES = 256 * 1024 - 4096  # SQS caps a whole SendMessageBatch at 256 KiB; some room for ids
MAX_DELAY_S = 900


@dataclass
class Queues:
    client: SQSClient
    intake_name: str
    send_name: str
    webhook_name: str = ""
    _urls: dict[str, str] = field(default_factory=dict)

    def url(self, name: str) -> str:
        if name not in self._urls:
            self._urls[name] = self.client.get_queue_url(QueueName=name)["QueueUrl"]
        return self._urls[name]

    def send_intake(self, body: dict[str, Any]) -> None:
        self.client.send_message(QueueUrl=self.url(self.intake_name), MessageBody=json.dumps(body))

    def send_chunks(self, bodies: Sequence[str], delay_s: int = 0) -> int:
        """SendMessageBatch of at most 10 entries and 256 KiB in all; raises if SQS refused any entry
        (the caller's record is then retried)."""
        return self.send_to(self.send_name, bodies, delay_s)

    def send_webhook(self, bodies: Sequence[str], delay_s: int = 0) -> int:
        """Webhook batches (one request body each) on the webhook queue: SendMessageBatch calls."""
        return self.send_to(self.webhook_name, bodies, delay_s)

    def send_to(self, queue_name: str, bodies: Sequence[str], delay_s: int = 0) -> int:
        calls = 0
        for batch in _batches(bodies):
            entries = [
                {"Id": str(i), "MessageBody": body, "DelaySeconds": min(delay_s, MAX_DELAY_S)}
                for i, body in enumerate(batch)
            ]
            resp = self.client.send_message_batch(QueueUrl=self.url(queue_name), Entries=entries)  # type: ignore[arg-type]
            calls += 1
            if resp.get("Failed"):
                raise RuntimeError(
                    f"SQS refused {len(resp['Failed'])} record(s) for {queue_name}: "
                    f"{resp['Failed'][0].get('Code')}"
                )
        return calls

    def defer(self, body: str, delay_s: int, attributes: dict[str, str]) -> None:
        """Put a send-queue record back, delayed, as a new message (its receive count starts again)."""
        self.client.send_message(
            QueueUrl=self.url(self.send_name),
            MessageBody=body,
            DelaySeconds=min(delay_s, MAX_DELAY_S),
            MessageAttributes=_string_attributes(attributes),
        )

    def park(self, body: str, attributes: dict[str, str]) -> None:
        """Keep a settled send-queue dead letter on ``<send queue>-parked`` for a redrive."""
        self.client.send_message(
            QueueUrl=self.url(self.send_name + PARKED_SUFFIX),
            MessageBody=body or "(empty)",
            MessageAttributes=_string_attributes(attributes),
        )

    def dead_letter(
        self, queue_name: str, body: str, reason: str, source_message_id: str | None = None
    ) -> None:
        """Put a record on ``<queue>-dlq`` with why it failed (as message attributes), to be looked at."""
        attributes: dict[str, Any] = {"reason": {"DataType": "String", "StringValue": reason[:1000]}}
        if source_message_id:
            attributes["sourceMessageId"] = {"DataType": "String", "StringValue": source_message_id}
        self.client.send_message(
            QueueUrl=self.url(queue_name + DLQ_SUFFIX),
            MessageBody=body or "(empty)",
            MessageAttributes=attributes,
        )


def _string_attributes(attributes: dict[str, str]) -> dict[str, Any]:
    return {k: {"DataType": "String", "StringValue": v[:1000]} for k, v in attributes.items() if v}


def _batches(bodies: Sequence[str]) -> list[list[str]]:
    out: list[list[str]] = []
    size = 0
    for body in bodies:
        n = len(body.encode())
        if not out or len(out[-1]) == SQS_BATCH or size + n > SQS_BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(body)
        size += n
    return out
