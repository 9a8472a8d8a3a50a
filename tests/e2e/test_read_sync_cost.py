"""What read sync costs, metered by item size (bench/cost.py): a burst of ten reads is ten small
UpdateItems on the state item and one queue message; its job one conditional UpdateItem, one
BatchGetItem (user and state items) and one push per device."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from bench.cost import CostMeter
from chalicelib import deps
from tests.e2e.conftest import PushApp, Stack


@pytest.fixture
def meter(stack: Stack) -> Iterator[CostMeter]:
    svc = deps.services()
    probe = boto3.client("dynamodb", endpoint_url=stack.env["AWS_ENDPOINT_OVERRIDE"], region_name="us-east-1")
    m = CostMeter(probe)
    m.attach_dynamodb(svc.read_marks.client)
    m.attach_sqs(svc.queues.client, "service")
    m.enabled = False
    yield m
    m.enabled = False  # the hooks stay on the shared clients: leave them idle


def test_a_burst_of_ten_reads_costs_ten_write_units_and_one_queue_message(
    stack: Stack, push_app: PushApp, meter: CostMeter
) -> None:
    push_app.device("bob")
    push_app.call("PUT", "/users/bob/app-state", {"state": "background", "unreadCount": 20})
    push_app.call("PATCH", "/settings", {"readSync": "badgeAndClear"})
    meter.enabled, meter.phase = True, "api"
    for n in range(10, 0, -1):
        body = {"unreadCount": n, "conversation": {"kind": "group", "id": f"g{n}"}, "readUpTo": f"m-{n}"}
        assert push_app.call("POST", "/users/bob/read", body, user="bob").status_code == 202
    meter.phase = "send"
    stack.pump()
    meter.enabled = False
    phases = meter.reset()
    api, send = phases["api"], phases["send"]
    print(
        f"\nread sync, 10 reads: api {dict(api.calls)} {api.wru} WRU {dict(api.sqs_requests)}; "
        f"job {dict(send.calls)} {send.wru} WRU {send.rru} RRU"
    )
    assert api.calls == {"UpdateItem": 10}
    assert api.wru == 10  # the folded user item stays under 1 KB with ten conversations named
    assert api.sqs_requests["service.SendMessageBatch"] == 1  # (and GetQueueUrl once per container)
    assert send.calls["UpdateItem"] == 1 and send.calls["BatchGetItem"] == 1
    assert send.wru == 1
    # one consistent read of the folded user item (and the credential, once per container per 5 min)
    assert send.rru_by_kind["BatchGetItem U/U"] == 1
