"""The benchmark's DynamoDB cost meter (bench/cost.py) applies DynamoDB's documented size rules.

Sizes: Developer Guide, "DynamoDB item sizes and formats". Units: "Read/write capacity mode"
(1 KB per write unit, 4 KB per read unit, eventually consistent reads half, BatchGetItem rounds
each item, Query rounds the sum). The last test runs the meter's hooks against the emulator.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from bench.cost import CostMeter, item_size, number_size, read_units, value_size, write_units
from devstack.emulator import Emulator

KB = 1024


def test_strings_count_utf8_bytes_of_name_and_value() -> None:
    assert item_size({"pk": {"S": "U#a#b"}}) == 2 + 5
    assert item_size({"name": {"S": "héllo"}}) == 4 + 6  # é is two bytes in UTF-8


def test_numbers_are_one_byte_per_two_significant_digits_plus_one() -> None:
    assert number_size("101") == 3
    assert number_size("1000") == 2  # trailing zeros trimmed: "1"
    assert number_size("0.001230") == 3  # leading and trailing zeros trimmed: "123"
    assert number_size("-12345678901234567890") == 11
    assert item_size({"Id": {"N": "101"}}) == 2 + 3


def test_binary_is_raw_bytes_booleans_and_null_one_byte() -> None:
    assert item_size({"b": {"B": b"\x00" * 39}}) == 1 + 39
    assert item_size({"ok": {"BOOL": True}, "n": {"NULL": True}}) == 3 + 2


def test_lists_and_maps_cost_three_bytes_plus_one_per_element() -> None:
    assert item_size({"e": {"L": []}}) == 1 + 3
    assert item_size({"l": {"L": [{"S": "ab"}, {"N": "7"}]}}) == 1 + 3 + (2 + 1) + (2 + 1)
    assert item_size({"m": {"M": {"k": {"S": "v"}}}}) == 1 + 3 + (1 + 1 + 1)
    nested = {"M": {"d": {"M": {"x": {"BOOL": False}}}}}
    assert value_size(nested) == 3 + (1 + (3 + (1 + 1 + 1)) + 1)


def test_sets_are_the_sum_of_their_elements() -> None:
    assert item_size({"ss": {"SS": ["a", "bc"]}}) == 2 + 3
    assert item_size({"ns": {"NS": ["1", "22"]}}) == 2 + 2 + 2
    assert item_size({"bs": {"BS": [b"ab", b"c"]}}) == 2 + 3


def test_a_known_item_is_141_bytes() -> None:
    # The example of the ddbitemsizer calculator, which follows the same documented rules.
    item = {
        "itemType": {"S": "SLOT"},
        "id": {"S": "abc1231"},
        "hostName": {"S": "Harry Mason"},
        "timeSlot": {"S": "February 23, 1999"},
        "slotStatus": {"S": "OPEN"},
        "createdAt": {"S": "February 1, 1999"},
        "updatedAt": {"S": "February 1, 1999"},
        "expiresAt": {"N": "2099"},
    }
    assert item_size(item) == 141


def test_write_units_round_up_the_larger_of_before_and_after_to_1_kb() -> None:
    assert write_units(0, 0) == 1  # at least one
    assert write_units(0, KB) == 1
    assert write_units(0, KB + 1) == 2
    assert write_units(0, int(1.5 * KB)) == 2  # AWS: a 1.5 KB item costs 2 WCUs
    assert write_units(12 * KB, KB) == 12  # an update that shrinks a 12 KB item costs 12


def test_read_units_round_up_to_4_kb_and_halve_when_eventually_consistent() -> None:
    assert read_units(int(3.5 * KB), consistent=True) == 1  # AWS: 3.5 KB rounds to 4 KB
    assert read_units(10 * KB, consistent=True) == 3  # AWS: 10 KB rounds to 12 KB
    assert read_units(10 * KB, consistent=False) == 1.5
    assert read_units(0, consistent=False) == 0.5  # a missing item still costs the minimum
    # AWS: BatchGetItem of a 1.5 KB and a 6.5 KB item is 4 KB + 8 KB, each item rounded.
    assert read_units(int(1.5 * KB), True) + read_units(int(6.5 * KB), True) == 3
    # AWS: a Query returning 10 items of 40.8 KB in all rounds the sum to 44 KB.
    assert read_units(int(40.8 * KB), consistent=True) == 11


@pytest.fixture
def ddb(emulator: Emulator) -> Iterator[tuple[Any, Any, str]]:
    def client() -> Any:
        return boto3.client(
            "dynamodb",
            endpoint_url=emulator.url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    hooked, probe = client(), client()
    table = f"meter-{uuid.uuid4().hex[:8]}"
    probe.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    yield hooked, probe, table
    probe.delete_table(TableName=table)


def test_the_meter_bills_real_calls_by_item_size(ddb: tuple[Any, Any, str]) -> None:
    hooked, probe, table = ddb
    meter = CostMeter(probe)
    meter.attach_dynamodb(hooked)
    big = "x" * 1500  # the item: pk (2 + 1) + v (1 + 1500) = 1504 bytes -> 2 write units

    hooked.put_item(TableName=table, Item={"pk": {"S": "a"}, "v": {"S": big}})
    assert meter.totals.wru == 2
    # Shrinking it is billed at its size before: still 2.
    hooked.update_item(
        TableName=table,
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET v = :v",
        ExpressionAttributeValues={":v": {"S": "y"}},
    )
    assert meter.totals.wru == 4
    # A write refused by its condition costs the item as it is (small now: 1).
    with pytest.raises(hooked.exceptions.ConditionalCheckFailedException):
        hooked.put_item(
            TableName=table, Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)"
        )
    assert meter.totals.wru == 5
    # A read with a projection is billed for the whole item; a missing key for the minimum.
    hooked.get_item(TableName=table, Key={"pk": {"S": "a"}}, ProjectionExpression="pk")
    hooked.get_item(TableName=table, Key={"pk": {"S": "missing"}}, ConsistentRead=True)
    assert meter.totals.rru == 0.5 + 1
    phases = meter.reset()
    assert phases["other"].calls == {"PutItem": 2, "UpdateItem": 1, "GetItem": 2}
    assert phases["other"].wru_by_kind["UpdateItem a"] == 2
