"""A badge change is applied once per message, also when DynamoDB applies it and still answers 500
(the fault layer's ``applied-error``) and the store's retry policy sends it again (issue 15 item 6)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from devstack import resources
from devstack.aws_faults import FaultLayer, start_fault_layer
from devstack.emulator import Emulator

TABLE = "badges-once"
APP = "app-1"


@pytest.fixture(scope="module")
def layer(emulator: Emulator) -> Iterator[FaultLayer]:
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(name, value)
    ddb = boto3.client("dynamodb", endpoint_url=emulator.url, region_name="us-east-1")
    resources.create_table(ddb, TABLE)
    fl = start_fault_layer(emulator.url)
    yield fl
    fl.stop()


def counter(layer: FaultLayer, emulator: Emulator) -> Any:
    from chalicelib.settings import load_settings
    from chalicelib.store.badges import BadgeCounter
    from chalicelib.store.dynamo_async import AsyncDynamo
    from chalicelib.store.users import UserRepository

    settings = load_settings(
        {"AWS_ENDPOINT_OVERRIDE": layer.url, "TABLE_NAME": TABLE, "AWS_REGION": "us-east-1"}
    )
    repo = UserRepository(boto3.client("dynamodb", endpoint_url=emulator.url, region_name="us-east-1"), TABLE)
    return BadgeCounter(repo, AsyncDynamo(settings))


def test_twenty_messages_with_applied_errors_show_badges_exactly_1_to_20(
    layer: FaultLayer, emulator: Emulator
) -> None:
    badges = counter(layer, emulator)
    # Given bob in the background with no unread message
    badges.users.set_background(APP, "bob", 0, 1)
    bob = badges.users.get(APP, "bob")

    async def send_all() -> list[int]:
        return list(await asyncio.gather(*(badges.increment(APP, bob, f"m-{i}") for i in range(20))))

    # When 20 messages count at once while 40 % of UpdateItems are applied and answered 500
    layer.set("applied-error:0.4@UpdateItem")
    try:
        shown = asyncio.run(send_all())
        # And each message is counted a second time (a takeover that lost its saved badges)
        again = asyncio.run(send_all())
        injected = layer.stats()["injected"].get("applied-error", 0)  # (counts reset with the rules)
    finally:
        layer.set("off")

    # Then the badges shown are exactly 1..20, the second round changes nothing, the stored badge is 20
    print(f"applied-errors injected: {injected}; badges {sorted(shown)}")
    assert injected > 0
    assert sorted(shown) == list(range(1, 21))
    assert again == shown
    assert badges.users.get(APP, "bob").state.badge == 20


def test_a_recall_after_an_ambiguous_decrement_takes_one_off_once(
    layer: FaultLayer, emulator: Emulator
) -> None:
    badges = counter(layer, emulator)
    # Given carol with two messages counted
    badges.users.set_background(APP, "carol", 0, 1)
    carol = badges.users.get(APP, "carol")
    for m in ("m-1", "m-2"):
        asyncio.run(badges.increment(APP, carol, m))

    # When m-1 is recalled and every decrement is applied, then answered 500, until a retry gets through
    layer.set("applied-error:1@UpdateItem")
    injected: list[int] = []
    try:

        async def recall() -> int:
            task = asyncio.ensure_future(badges.decrement(APP, carol, "m-1"))
            await asyncio.sleep(0.3)  # a few ambiguous answers, then DynamoDB answers again
            injected.append(layer.stats()["injected"].get("applied-error", 0))
            layer.set("off")
            return await task

        shown = asyncio.run(recall())
    finally:
        layer.set("off")

    # Then the badge went from 2 to 1, once; a second recall of m-1 changes nothing
    assert injected[0] >= 1
    assert shown == 1
    assert asyncio.run(badges.decrement(APP, carol, "m-1")) == 1
    assert badges.users.get(APP, "carol").state.badge == 1
