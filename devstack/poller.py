"""Drives the SQS-triggered Lambda handlers from the local queues, as Lambda's event source mapping does.

For each ``@app.on_sqs_message`` handler: long-poll its queue, hand the
handler a real SQS event (records with messageId, receiptHandle, attributes),
delete the records it did not report in ``batchItemFailures``, and leave the
rest to reappear after the visibility timeout, so redrive to the dead-letter
queue happens in the emulator exactly as on AWS. A handler that raises fails
its whole batch, as on Lambda.

Each function runs as on Lambda (devstack.lambda_runtime): in a container of
its own, cold-started, frozen between invocations and killed at its timeout
(``LAMBDA_CONTAINERS=0``: in the poller's own process, as threads).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("devstack.poller")

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    function_name: str
    timeout_s: float = 60.0
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = ""
    _start: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_s - (time.monotonic() - self._start)) * 1000))


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {
                    k: {
                        "stringValue": v.get("StringValue"),
                        "dataType": v.get("DataType", "String"),
                        "stringListValues": [],
                        "binaryListValues": [],
                    }
                    for k, v in m.get("MessageAttributes", {}).items()
                },
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


@dataclass
class QueuePoller:
    sqs: Any
    queue_url: str
    handler: Handler
    name: str
    batch_size: int = 10
    region: str = "us-east-1"
    wait_s: int = 1
    stop_event: threading.Event = field(default_factory=threading.Event)
    invocations: int = 0
    records: int = 0

    def __post_init__(self) -> None:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = attrs["Attributes"]["QueueArn"]

    def poll_once(self) -> int:
        """Receive one batch, invoke the handler, settle the batch; answer the number of records."""
        resp = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(self.batch_size, 10),
            WaitTimeSeconds=self.wait_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = resp.get("Messages", [])
        if not messages:
            return 0
        event = sqs_event(messages, self.queue_arn, self.region)
        self.invocations += 1
        self.records += len(messages)
        try:
            result = self.handler(event, LambdaContext(function_name=self.name))
        except Exception:
            log.exception("handler %s failed its whole batch of %d", self.name, len(messages))
            return len(messages)
        failed = {f["itemIdentifier"] for f in (result or {}).get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        return len(messages)

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("polling %s failed; retrying", self.name)
                self.stop_event.wait(1.0)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name=f"poller-{self.name}", daemon=True)
        thread.start()
        return thread


def pollers_for(
    app_module: Any, sqs: Any, region: str, containers: dict[str, float] | None = None
) -> list[QueuePoller]:
    """One poller per SQS event source the Chalice app declares. ``containers``: each function runs
    in a Lambda-like container of its own with this timeout (devstack.lambda_runtime), else in-process."""
    from devstack.lambda_runtime import Container

    out = []
    for source in app_module.app.event_sources:
        queue = getattr(source, "queue", None)
        if queue is None:
            continue
        name = source.handler_string.split(".", 1)[1]
        handler: Handler = getattr(app_module, name)
        if containers is not None:
            handler = Container(name, containers.get(name, 60.0))
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        out.append(
            QueuePoller(
                sqs=sqs,
                queue_url=url,
                handler=handler,
                name=source.name,
                batch_size=source.batch_size,
                region=region,
            )
        )
    return out


def main() -> None:
    """Run every poller until interrupted (started by ``python -m devstack`` with the stage environment)."""
    import boto3

    logging.basicConfig(level=logging.INFO, format="%(asctime)s poller %(levelname)s %(message)s")
    import app as app_module
    from chalicelib.settings import get_settings

    settings = get_settings()
    containers = None
    if os.environ.get("LAMBDA_CONTAINERS", "1") != "0":
        from devstack.lambda_runtime import deployed_timeouts, local_timeout_s

        containers = {
            name: local_timeout_s(name, timeout, settings.send_lease_s)
            for name, timeout in deployed_timeouts().items()
        }
    # Lambda's event source mapping is AWS's own client: under `AWS_FAULTS` it talks to the emulator
    # directly; only the functions' calls go through the fault layer.
    endpoint = os.environ.get("AWS_EMULATOR_URL") or settings.aws_endpoint_url
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=settings.region)
    pollers = pollers_for(app_module, sqs, settings.region, containers)
    threads = [p.start() for p in pollers]
    log.info(
        "driving %s", ", ".join(f"{p.name} <- {p.queue_url.rsplit('/', 1)[-1]}" for p in pollers) or "nothing"
    )
    try:
        while any(t.is_alive() for t in threads) or not threads:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in pollers:
            p.stop_event.set()
            if hasattr(p.handler, "discard"):
                p.handler.discard()


if __name__ == "__main__":
    main()
