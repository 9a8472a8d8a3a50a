"""The pure rules of outcome webhooks and receipt references."""

from __future__ import annotations

import base64

import pytest

from chalicelib.models import receipt_refs
from chalicelib.services import webhook_events as ev
from chalicelib.services.receipts import by_device
from chalicelib.store.deliveries import ChunkAttempt, ChunkRef

KEY = b"k" * 32
TOKEN = "0a1b2c3d" + "ee" * 28


def _failure(code: str) -> ev.Failure:
    return ev.Failure("bob", TOKEN, 7, code, "words")


# ---- signatures ------------------------------------------------------------------------------


def test_a_signature_verifies_with_the_secret_and_the_exact_body() -> None:
    header = ev.sign("whsec_a", b'{"events":[]}', now_s=1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert ev.verify("whsec_a", header, b'{"events":[]}', now_s=1_700_000_010)
    assert not ev.verify("whsec_b", header, b'{"events":[]}', now_s=1_700_000_010)
    assert not ev.verify("whsec_a", header, b'{"events": []}', now_s=1_700_000_010)


def test_an_old_signature_is_refused_as_a_replay() -> None:
    header = ev.sign("whsec_a", b"{}", now_s=1_700_000_000)
    assert not ev.verify("whsec_a", header, b"{}", now_s=1_700_000_000 + 301)


# ---- events ----------------------------------------------------------------------------------


def test_only_the_wanted_types_are_made() -> None:
    failed = ev.failure_events("app-1", "m-1", [_failure("Unregistered")], ["recipient.failed"], 1)
    assert [e["type"] for e in failed] == ["recipient.failed"]
    both = ev.failure_events(
        "app-1", "m-1", [_failure("Unregistered")], ["device.invalidated", "recipient.failed"], 1
    )
    assert [e["type"] for e in both] == ["recipient.failed", "device.invalidated"]
    assert ev.failure_events("app-1", "m-1", [_failure("Unregistered")], [], 1) == []


@pytest.mark.parametrize(
    ("code", "invalidates"),
    [
        ("Unregistered", True),
        ("BadDeviceToken", True),
        ("DeviceTokenNotForTopic", True),
        ("PayloadTooLarge", False),
    ],
)
def test_device_invalidated_only_for_dead_tokens(code: str, invalidates: bool) -> None:
    made = ev.failure_events("app-1", "m-1", [_failure(code)], ["device.invalidated"], 1)
    assert bool(made) is invalidates
    if made:
        assert made[0] | {"id": "x"} == {
            "id": "x",
            "type": "device.invalidated",
            "appId": "app-1",
            "at": 1,
            "userId": "bob",
            "deviceToken": TOKEN,
            "certificateId": 7,
            "code": code,
        }


def test_the_same_event_gets_the_same_id_and_others_another() -> None:
    a = ev.failure_events("app-1", "m-1", [_failure("Unregistered")], ["recipient.failed"], 1)
    b = ev.failure_events("app-1", "m-1", [_failure("Unregistered")], ["recipient.failed"], 99)
    c = ev.failure_events("app-1", "m-2", [_failure("Unregistered")], ["recipient.failed"], 1)
    assert a[0]["id"] == b[0]["id"] != c[0]["id"]
    assert ev.completed_event("app-1", "m-1", 1)["id"] == ev.completed_event("app-1", "m-1", 2)["id"]


def test_requests_carry_at_most_100_events() -> None:
    assert [len(b) for b in ev.batches([{"n": i} for i in range(250)])] == [100, 100, 50]


# ---- receipt references ------------------------------------------------------------------------


def test_a_reference_is_short_ascii_and_reads_back() -> None:
    r = receipt_refs.issue(KEY, "app-1", "m" * 128, 20_000, 3, 1, 200, TOKEN)
    assert len(r) <= 64 and r.isascii()
    ref = receipt_refs.read(KEY, "app-1", r)
    assert ref is not None
    assert (ref.day, ref.chunk, ref.attempt, ref.index, ref.token_prefix.hex()) == (
        20_000,
        3,
        1,
        200,
        "0a1b2c3d",
    )
    assert ref.digest == receipt_refs.message_digest("m" * 128)


@pytest.mark.parametrize("where", ["app", "key", "byte"])
def test_a_foreign_or_forged_reference_does_not_read(where: str) -> None:
    r = receipt_refs.issue(KEY, "app-1", "m-1", 20_000, 0, 0, 5, TOKEN)
    if where == "app":
        assert receipt_refs.read(KEY, "app-2", r) is None
    elif where == "key":
        assert receipt_refs.read(b"x" * 32, "app-1", r) is None
    else:
        raw = bytearray(base64.urlsafe_b64decode(r))
        raw[17] ^= 0x01  # the recipient index
        assert receipt_refs.read(KEY, "app-1", base64.urlsafe_b64encode(bytes(raw)).decode()) is None


def test_receipts_join_the_report_by_chunk_user_and_token() -> None:
    first = ChunkAttempt(ChunkRef(2, 0), recipients=["ann", "bob", "cat"])
    retry = ChunkAttempt(ChunkRef(2, 1), recipients=["cat"])
    receipts = {
        (2, 0, 1, "0a1b"): (10, None),
        (2, 1, 0, "0a1b"): (None, 30),
        (2, 0, 9, "ffff"): (1, 1),
    }
    joined = by_device([first, retry], receipts)
    # bob by the first attempt's index; cat by the retry's; opened implies delivered; out of range ignored
    assert joined == {(2, "bob", "0a1b"): (10, None), (2, "cat", "0a1b"): (30, 30)}
