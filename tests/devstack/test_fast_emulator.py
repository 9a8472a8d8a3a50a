"""Each correctness and memory patch of the embedded emulator (devstack/fast_emulator.py), shown
against moto's own behaviour: every test runs its check with the patch and without it.

moto runs in this process, served over HTTP by werkzeug's threaded server on a free loopback
port, so a test can swap a patch out; boto3 talks to it as to `make run`'s emulator.
"""

from __future__ import annotations

import contextlib
import threading
import tracemalloc
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from devstack import fast_emulator, resources

ACCOUNT = "123456789012"  # moto's default account


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextlib.contextmanager
def served(serialize: bool = True) -> Iterator[str]:
    server = make_server(
        "127.0.0.1", 0, fast_emulator.make_app(serialize), threaded=True, request_handler=_Quiet
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def new_table(url: str) -> tuple[Any, str]:
    ddb = client("dynamodb", url)
    name = f"t-{uuid.uuid4().hex[:8]}"
    ddb.create_table(**resources.table_definition(name))
    return ddb, name


def item(pk: str, **attrs: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "U"}, **{k: {"S": v} for k, v in attrs.items()}}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with served() as u:
        yield u


# ---- one request at a time -----------------------------------------------------------------------


def two_puts_overlap(url: str, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Two PutItem requests at once: did both ever run inside moto at the same time?

    Each put waits inside moto (up to 5 s) for the other one to arrive there too."""
    import moto.dynamodb.models as models

    ddb, table = new_table(url)
    meeting = threading.Barrier(2, timeout=5)
    met: list[bool] = []
    put_item = models.DynamoDBBackend.put_item

    def waiting_put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            meeting.wait()
            met.append(True)
        except threading.BrokenBarrierError:
            met.append(False)
        return put_item(self, *args, **kwargs)

    monkeypatch.setattr(models.DynamoDBBackend, "put_item", waiting_put_item)
    threads = [
        threading.Thread(target=ddb.put_item, kwargs={"TableName": table, "Item": item(f"u{i}")})
        for i in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    monkeypatch.undo()
    assert len(met) == 2
    return any(met)


def test_requests_run_inside_moto_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    with served(serialize=True) as url:
        assert not two_puts_overlap(url, monkeypatch)
    with served(serialize=False) as url:  # moto's server as is: requests run side by side
        assert two_puts_overlap(url, monkeypatch)


# ---- an SQS long poll waits outside the lock ------------------------------------------------------


def others_run_during_a_long_poll(url: str, wait_s: int, monkeypatch: pytest.MonkeyPatch) -> bool:
    """A ReceiveMessage long poll on an empty queue; meanwhile a PutItem. Did moto run the put while
    the poll was still waiting?  (Then a SendMessage ends the poll, which must receive it.)"""
    import moto.sqs.models as sqs_models

    sqs = client("sqs", url)
    ddb, table = new_table(url)
    queue = sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    waiting, poll_over = threading.Event(), threading.Event()
    wait_for_messages = sqs_models.Queue.wait_for_messages
    receive_message = sqs_models.SQSBackend.receive_message

    def signalling_wait(self: Any, timeout: int) -> None:
        waiting.set()
        wait_for_messages(self, timeout)

    def signalling_receive(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return receive_message(self, *args, **kwargs)
        finally:
            poll_over.set()

    monkeypatch.setattr(sqs_models.Queue, "wait_for_messages", signalling_wait)
    monkeypatch.setattr(sqs_models.SQSBackend, "receive_message", signalling_receive)
    received: list[Any] = []
    poll = threading.Thread(
        target=lambda: received.extend(
            sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=wait_s).get("Messages", [])
        )
    )
    poll.start()
    assert waiting.wait(30)
    ddb.put_item(TableName=table, Item=item("during-the-poll"))
    put_during_poll = not poll_over.is_set()
    sqs.send_message(QueueUrl=queue, MessageBody="wake up")
    poll.join()
    monkeypatch.undo()
    if put_during_poll:
        assert [m["Body"] for m in received] == ["wake up"]
    return put_during_poll


def test_a_long_poll_does_not_hold_up_other_requests(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    assert others_run_during_a_long_poll(url, 20, monkeypatch)


def test_without_the_long_poll_patch_a_poll_would_stall_the_emulator(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    import moto.sqs.models as sqs_models

    monkeypatch.setattr(sqs_models.Queue, "wait_for_messages", sqs_models.Queue.wait_for_messages.__wrapped__)
    assert not others_run_during_a_long_poll(url, 2, monkeypatch)


# ---- transaction rollback snapshots ---------------------------------------------------------------


def backend() -> Any:
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[ACCOUNT]["us-east-1"]


def scan(ddb: Any, table: str) -> list[dict[str, Any]]:
    return sorted(ddb.scan(TableName=table)["Items"], key=lambda i: i["pk"]["S"])


def test_a_cancelled_transaction_puts_back_exactly_the_items_it_touched(url: str) -> None:
    ddb, table = new_table(url)
    for pk in ("kept", "updated", "deleted"):
        ddb.put_item(TableName=table, Item=item(pk, v="before", n="x"))
    before = scan(ddb, table)
    key = {"sk": {"S": "U"}}

    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        ddb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": item("created", v="new")}},
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": "updated"}, **key},
                        "UpdateExpression": "SET v = :v REMOVE n",
                        "ExpressionAttributeValues": {":v": {"S": "after"}},
                    }
                },
                {"Delete": {"TableName": table, "Key": {"pk": {"S": "deleted"}, **key}}},
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": {"pk": {"S": "kept"}, **key},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )

    assert scan(ddb, table) == before


def transaction_peak_bytes(table_items: int) -> int:
    """Peak memory allocated by one cancelled two-item transaction on a table of ``table_items``."""
    url_ctx = served()
    with url_ctx as url:
        ddb, table = new_table(url)
        for start in range(0, table_items, 25):
            ddb.batch_write_item(
                RequestItems={
                    table: [
                        {"PutRequest": {"Item": item(f"u{i}", v="x" * 100)}} for i in range(start, start + 25)
                    ]
                }
            )
    moto = backend()
    failing = [
        {"Put": {"TableName": table, "Item": item("new")}},
        {
            "ConditionCheck": {
                "TableName": table,
                "Key": {"pk": {"S": "u1"}, "sk": {"S": "U"}},
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        },
    ]
    tracemalloc.start()
    try:
        with contextlib.suppress(Exception):
            moto.transact_write_items(failing)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_transaction_copies_only_the_items_it_touches(monkeypatch: pytest.MonkeyPatch) -> None:
    import moto.dynamodb.models as models

    fast_emulator.apply_patches()
    patched_peak = transaction_peak_bytes(2_000)
    monkeypatch.setattr(
        models.DynamoDBBackend,
        "transact_write_items",
        models.DynamoDBBackend.transact_write_items.__wrapped__,
    )
    moto_peak = transaction_peak_bytes(2_000)

    assert patched_peak < 200_000
    assert moto_peak > 1_000_000  # moto copies all 2,000 items (twice: once per transaction item)


# ---- moto's instance tracker ----------------------------------------------------------------------


def items_tracked_after_rewrites(url: str, times: int) -> int:
    from moto.dynamodb.models.dynamo_type import Item

    ddb, table = new_table(url)
    before = len(Item.instances_tracked)  # type: ignore[attr-defined]
    for n in range(times):
        ddb.put_item(TableName=table, Item=item("same", v=str(n)))
        ddb.get_item(TableName=table, Key={"pk": {"S": "same"}, "sk": {"S": "U"}})
    return len(Item.instances_tracked) - before  # type: ignore[attr-defined]


def test_rewriting_an_item_keeps_no_old_versions(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    from moto.core.common_models import BaseModel

    assert items_tracked_after_rewrites(url, 100) == 0
    monkeypatch.setattr(BaseModel, "__new__", BaseModel.__new__.__wrapped__)
    assert items_tracked_after_rewrites(url, 100) >= 100  # moto keeps every version ever written
