"""The AWS fault layer (devstack.aws_faults) in front of the emulator, and the store's one retry
policy (chalicelib.store.retry) riding it out: boto3 and the async DynamoDB client alike."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack import resources
from devstack.aws_faults import BadFaults, FaultLayer, Faults, split_batch, start_fault_layer
from devstack.emulator import Emulator

TABLE = "faults-test"


@pytest.fixture(scope="module")
def layer(emulator: Emulator) -> Iterator[FaultLayer]:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)
    ddb = boto3.client("dynamodb", endpoint_url=emulator.url, region_name="us-east-1")
    resources.create_table(ddb, TABLE)
    fl = start_fault_layer(emulator.url)
    yield fl
    fl.stop()


@pytest.fixture(autouse=True)
def _faults_off(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "layer" in request.fixturenames:
        request.getfixturevalue("layer").set("off")


def raw_client(service: str, layer: FaultLayer) -> Any:
    """A boto3 client that never retries: it sees each injected fault."""
    return boto3.client(
        service,
        endpoint_url=layer.url,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )


def store_settings(layer: FaultLayer) -> Any:
    from chalicelib.settings import load_settings

    return load_settings({"AWS_ENDPOINT_OVERRIDE": layer.url, "TABLE_NAME": TABLE, "AWS_REGION": "us-east-1"})


def key(i: int | str) -> dict[str, Any]:
    return {"pk": {"S": f"F#{i}"}, "sk": {"S": "X"}}


def test_faults_are_read_from_the_environment_text() -> None:
    faults = Faults.parse(
        "throttle:0.1, error:0.01,unprocessed:0.3,latency:5-50ms,applied-error:0.2@UpdateItem"
    )

    assert faults.chance("throttle", "GetItem") == 0.1
    assert faults.chance("applied-error", "UpdateItem") == 0.2
    assert faults.chance("applied-error", "PutItem") == 0.0
    assert 0.005 <= faults.latency_s("GetItem") <= 0.05


@pytest.mark.parametrize("text", ["throttle", "throttle:2", "slow:0.1", "latency:fast"])
def test_unreadable_faults_say_how_to_write_them(text: str) -> None:
    with pytest.raises(BadFaults, match="AWS_FAULTS"):
        Faults.parse(text)


def test_unprocessed_split_keeps_at_least_one_and_hands_back_the_rest() -> None:
    body = b'{"RequestItems": {"t": {"Keys": [1, 2, 3], "ConsistentRead": true}}}'

    split = split_batch("BatchGetItem", body, 1.0)

    assert split is not None
    sent, left = split
    assert b'"Keys": [1]' in sent
    assert left == {"t": {"Keys": [2, 3], "ConsistentRead": True}}


@pytest.mark.parametrize(
    ("service", "code"), [("dynamodb", "ThrottlingException"), ("sqs", "RequestThrottled")]
)
def test_throttling_answers_the_services_own_error(layer: FaultLayer, service: str, code: str) -> None:
    layer.set("throttle:1")
    client = raw_client(service, layer)

    def call() -> None:
        if service == "sqs":
            client.list_queues()
            return
        for _ in range(3):  # DynamoDB's three throttling codes come in turn
            try:
                client.get_item(TableName=TABLE, Key=key(1))
            except ClientError as exc:
                if exc.response["Error"]["Code"] == code:
                    raise

    with pytest.raises(ClientError) as caught:
        call()

    assert caught.value.response["Error"]["Code"] == code


def test_applied_error_applies_the_write_and_answers_500(layer: FaultLayer) -> None:
    layer.set("applied-error:1@PutItem")
    client = raw_client("dynamodb", layer)
    item = {**key("applied"), "v": {"N": "1"}}

    with pytest.raises(ClientError) as caught:
        client.put_item(TableName=TABLE, Item=item)

    assert caught.value.response["Error"]["Code"] == "InternalServerError"
    assert client.get_item(TableName=TABLE, Key=key("applied"))["Item"] == item


def test_store_clients_ride_out_throttling_errors_and_unprocessed_items(layer: FaultLayer) -> None:
    from chalicelib.store import aws, items

    # Given 30 % of the calls throttled, 1 in 10 failing with 500, and batches left 30 % unprocessed
    # (a call fails 37 % of the time: one of the ~70 failing all of the policy's 12 tries is 5e-4;
    # at half throttled, 55 % and 5 %, and CI met it)
    layer.set("throttle:0.3,error:0.1,unprocessed:0.3")
    client = aws.dynamodb(store_settings(layer))
    run = uuid.uuid4().hex[:8]

    # When the store writes 60 items in batches and reads each back
    items.batch_write(
        client,
        TABLE,
        [{"PutRequest": {"Item": {**key(f"{run}-{i}"), "v": {"N": str(i)}}}} for i in range(60)],
    )
    got = [client.get_item(TableName=TABLE, Key=key(f"{run}-{i}"))["Item"]["v"]["N"] for i in range(60)]

    # Then every write landed and every read answered, though the layer injected faults
    assert got == [str(i) for i in range(60)]
    injected = layer.stats()["injected"]
    assert injected.get("throttle", 0) > 0 and injected.get("unprocessed", 0) > 0


def test_async_client_rides_out_throttling(layer: FaultLayer) -> None:
    from chalicelib.apns.client import run
    from chalicelib.store.dynamo_async import AsyncDynamo

    # 40 % of calls fail: 20 calls all get through within the policy's 12 tries unless one fails
    # 12 times in a row (20 x 0.4^12 = 3e-4; at 60 % it was 4 %, and CI met it)
    layer.set("throttle:0.3,error:0.1")
    dynamo = AsyncDynamo(store_settings(layer))

    async def writes() -> list[dict[str, Any]]:
        return list(
            await asyncio.gather(
                *(
                    dynamo.call(
                        "UpdateItem",
                        {
                            "TableName": TABLE,
                            "Key": key("async"),
                            "UpdateExpression": "ADD n :one",
                            "ExpressionAttributeValues": {":one": {"N": "1"}},
                        },
                    )
                    for _ in range(20)
                )
            )
        )

    run(writes())  # the container's one loop, as the send function runs it

    assert layer.stats()["injected"].get("throttle", 0) > 0


def test_a_call_stops_retrying_at_the_invocations_deadline(layer: FaultLayer) -> None:
    from chalicelib.store import aws, retry

    # Given every call throttled, and an invocation with 1.2 s left (0.2 s after the margin kept)
    layer.set("throttle:1")
    client = aws.dynamodb(store_settings(layer))
    before = layer.stats()["injected"].get("throttle", 0)

    # When a call is made, it gives up with the throttling error
    with retry.deadline_scope(retry.MARGIN_S + 0.2), pytest.raises(ClientError) as caught:
        client.get_item(TableName=TABLE, Key=key(1))

    # Then it gave up because of the deadline, long before its attempts ran out
    assert retry.is_throttling(caught.value)
    assert layer.stats()["injected"]["throttle"] - before < retry.MAX_ATTEMPTS
