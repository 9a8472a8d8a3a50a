"""AWS's everyday faults through `make run` (AWS_FAULTS, devstack.aws_faults): the API answers 503 with
Retry-After when AWS keeps throttling, never a 500; a group message under throttling, 500s and
UnprocessedKeys/Items loses nothing, sends nothing twice and leaves nothing pending.
Sized to stay fast; each prints lost / twice / stuck."""

from __future__ import annotations

import time
import urllib.error
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.localstack import RunningStack, call, device_of, fault_stack

OPERATOR_KEY = "faults-operator-key-0123456789"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with fault_stack(tmp_path_factory.mktemp("faulty-stack"), OPERATOR_KEY) as stack:
        yield stack


def message(to: dict[str, Any]) -> dict[str, Any]:
    return {
        "messageId": f"m-{time.monotonic_ns()}",
        "sendTime": int(time.time()),
        "sender": {"userId": "alice", "nickname": "Alice"},
        "to": to,
        "elems": [{"type": "text", "text": "hi"}],
    }


def summary(s: RunningStack, message_id: str) -> dict[str, Any]:
    report = call(
        "GET", f"{s.api}/v1/apps/{s.app_id}/messages/{message_id}/deliveries?limit=1", token=s.admin
    )
    return dict(report["summary"])


def test_the_api_answers_503_with_retry_after_when_aws_keeps_throttling(faulty: RunningStack) -> None:
    # Given every AWS call of the functions throttled
    faulty.layer.set("throttle:1")
    try:
        # When a delivery report is asked for
        with pytest.raises(urllib.error.HTTPError) as caught:
            call("GET", f"{faulty.api}/v1/apps/{faulty.app_id}/messages/none/deliveries", token=faulty.admin)
    finally:
        faulty.layer.set("off")

    # Then the answer is 503 TryLater with Retry-After, not a 500
    assert caught.value.code == 503
    assert caught.value.headers["Retry-After"].isdigit()
    assert b"TryLater" in caught.value.read()


def test_a_group_under_throttling_errors_and_unprocessed_keys_loses_nothing(faulty: RunningStack) -> None:
    # Given a group of 100 members, each with a phone
    members = [f"g{i}" for i in range(100)]
    tokens = {
        device_of(faulty.api, faulty.sandbox, faulty.app_id, faulty.admin, faulty.cert, u): u for u in members
    }
    body = message({"groupId": "faulty", "groupName": "Faulty", "members": ["alice", *members]})

    # When it is sent under 10 % throttling, 1 % 500s and 30 % unprocessed batch keys
    faulty.layer.set("throttle:0.1,error:0.01,unprocessed:0.3")
    answers: Counter[int] = Counter()  # the API's error statuses meanwhile
    try:
        for _ in range(20):  # the API itself may be throttled past its budget: 503, sent again
            try:
                call("POST", f"{faulty.api}/v1/apps/{faulty.app_id}/messages", body, token=faulty.admin)
                break
            except urllib.error.HTTPError as exc:
                answers[exc.code] += 1
                time.sleep(0.5)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                got = summary(faulty, body["messageId"])
            except urllib.error.HTTPError as exc:
                answers[exc.code] += 1
                time.sleep(0.5)
                continue
            if (
                got.get("sent", 0) + sum(got.get("failed", {}).values()) >= len(members)
                and not got["pending"]
            ):
                break
            time.sleep(1)
        injected = faulty.layer.stats()["injected"]
    finally:
        faulty.layer.set("off")

    # Then every member got it exactly once, nothing is pending
    received = Counter(
        n["deviceToken"]
        for n in call("GET", f"{faulty.sandbox}/sandbox/notifications?limit=100000")["items"]
        if n["payload"].get("m") == body["messageId"] and n["deviceToken"] in tokens
    )
    final = summary(faulty, body["messageId"])
    lost = len([t for t in tokens if not received[t]])
    twice = len([t for t, n in received.items() if n > 1])
    print(
        f"faults injected {injected}; API errors {dict(answers)}; "
        f"lost {lost}, twice {twice}, stuck {final['pending']}; {final}"
    )
    assert injected.get("throttle", 0) > 0
    assert set(answers) <= {503, 404}  # never a 500 (404: the report before the fan-out wrote it)
    assert (lost, twice, final["pending"]) == (0, 0, 0)
    assert final["sent"] == len(members)


def delivered_within(s: RunningStack, token: str, message_id: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items = call("GET", f"{s.sandbox}/sandbox/notifications?deviceToken={token}")["items"]
        if any(n["payload"].get("m") == message_id for n in items):
            return True
        time.sleep(0.1)
    return False


def test_a_message_after_a_freeze_with_the_connection_silenced_is_delivered_within_10_s(
    faulty: RunningStack,
) -> None:
    # Given a warm send container whose APNs connection went silent while it was frozen
    token = device_of(faulty.api, faulty.sandbox, faulty.app_id, faulty.admin, faulty.cert, "frozen-bob")
    first = message({"userId": "frozen-bob"})
    call("POST", f"{faulty.api}/v1/apps/{faulty.app_id}/messages", first, token=faulty.admin)
    assert delivered_within(faulty, token, first["messageId"], 30)
    call("PUT", f"{faulty.sandbox}/sandbox/faults", {"connections": "silent"})
    time.sleep(6)  # frozen longer than APNS_IDLE_PING_S (the bench measures a real 60 s freeze)

    # When the next message comes
    second = message({"userId": "frozen-bob"})
    call("POST", f"{faulty.api}/v1/apps/{faulty.app_id}/messages", second, token=faulty.admin)

    # Then it is delivered within 10 s (one PING deadline, then a fresh connection)
    assert delivered_within(faulty, token, second["messageId"], 10)
    assert summary(faulty, second["messageId"])["sent"] == 1


def test_connections_silenced_mid_group_deliver_everything_and_fail_nothing(faulty: RunningStack) -> None:
    # Given a group of 60 members
    members = [f"s{i}" for i in range(60)]
    tokens = {
        device_of(faulty.api, faulty.sandbox, faulty.app_id, faulty.admin, faulty.cert, u): u for u in members
    }
    body = message({"groupId": "silenced", "groupName": "Silenced", "members": ["alice", *members]})

    # When every APNs connection goes silent while it is being sent
    before = call("GET", f"{faulty.sandbox}/sandbox/stats")["accepted"]
    call("POST", f"{faulty.api}/v1/apps/{faulty.app_id}/messages", body, token=faulty.admin)
    deadline = time.monotonic() + 30
    while (
        time.monotonic() < deadline and call("GET", f"{faulty.sandbox}/sandbox/stats")["accepted"] == before
    ):
        time.sleep(0.01)
    call("PUT", f"{faulty.sandbox}/sandbox/faults", {"connections": "silent"})
    deadline = time.monotonic() + 120
    final: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            final = summary(faulty, body["messageId"])
        except urllib.error.HTTPError:  # 404 until the fan-out wrote it
            time.sleep(0.5)
            continue
        if not final["pending"] and final["sent"] + sum(final["failed"].values()) >= len(members):
            break
        time.sleep(1)

    # Then every member got it, none failed
    received = {
        n["deviceToken"]
        for n in call("GET", f"{faulty.sandbox}/sandbox/notifications?limit=100000")["items"]
        if n["payload"].get("m") == body["messageId"]
    }
    print(f"silenced mid-send: {final}; lost {len(set(tokens) - received)}")
    assert set(tokens) <= received
    assert (final["sent"], final["failed"], final["pending"]) == (len(members), {}, 0)
