"""Delivery receipts end to end: the notification's `r`, posted back without a token, shows in the
report (deliveredAt / openedAt) and its summary."""

from __future__ import annotations

from typing import Any

from tests.conftest import OPERATOR_KEY
from tests.e2e.conftest import PushApp, Stack, payloads


def _receipts(app: PushApp, app_id: str, receipts: list[dict[str, Any]]) -> Any:
    return app.ctx.api.call("POST", f"/v1/apps/{app_id}/receipts", {"receipts": receipts}, token="")


def test_every_notification_carries_a_short_reference(push_app: PushApp, stack: Stack) -> None:
    token = push_app.device("bob")
    body = push_app.message({"userId": "bob"})
    push_app.call("POST", "/messages", body)
    stack.pump()
    [payload] = payloads(stack.sandbox, token)
    assert isinstance(payload["r"], str) and len(payload["r"]) <= 64 and payload["r"].isascii()


def test_receipts_show_in_the_report_and_its_summary(push_app: PushApp, stack: Stack) -> None:
    # Given a message to bob (two phones) and carol (one)
    bob1, bob2, carol = push_app.device("bob"), push_app.device("bob"), push_app.device("carol")
    body = push_app.message({"groupId": "g-r", "groupName": "R", "members": ["alice", "bob", "carol"]})
    push_app.call("POST", "/messages", body)
    stack.pump()
    r = {t: payloads(stack.sandbox, t)[-1]["r"] for t in (bob1, bob2, carol)}
    # When bob's first phone reports delivered then opened, carol's opened only (no extension)
    resp = _receipts(
        push_app,
        push_app.ctx.app_id,
        [
            {"r": r[bob1], "event": "delivered", "at": 1_764_900_000_000},
            {"r": r[bob1], "event": "opened", "at": 1_764_900_060_000},
            {"r": r[carol], "event": "opened", "at": 1_764_900_120_000},
        ],
    )
    assert resp.status_code == 202 and resp.data == {"accepted": 3, "rejected": 0}
    # Then the report shows each device's times, and the summary counts them (opened implies delivered)
    report = push_app.call("GET", f"/messages/{body['messageId']}/deliveries").data
    times = {d["deviceToken"]: (d["deliveredAt"], d["openedAt"]) for d in report["items"]}
    assert times == {
        bob1: (1_764_900_000_000, 1_764_900_060_000),
        bob2: (None, None),
        carol: (1_764_900_120_000, 1_764_900_120_000),
    }
    assert (report["summary"]["delivered"], report["summary"]["opened"]) == (2, 2)
    mine = push_app.call("GET", f"/messages/{body['messageId']}/deliveries?userId=bob").data
    assert (mine["summary"]["delivered"], mine["summary"]["opened"]) == (1, 1)


def test_a_repeat_changes_nothing_and_a_foreign_reference_is_rejected(
    push_app: PushApp, stack: Stack
) -> None:
    token = push_app.device("bob")
    body = push_app.message({"userId": "bob"})
    push_app.call("POST", "/messages", body)
    stack.pump()
    ref = payloads(stack.sandbox, token)[-1]["r"]
    _receipts(push_app, push_app.ctx.app_id, [{"r": ref, "event": "delivered", "at": 1_764_900_000_000}])
    again = _receipts(push_app, push_app.ctx.app_id, [{"r": ref, "event": "delivered"}])
    assert again.data == {"accepted": 1, "rejected": 0}
    [item] = push_app.call("GET", f"/messages/{body['messageId']}/deliveries").data["items"]
    assert item["deliveredAt"] == 1_764_900_000_000
    other = push_app.ctx.api.call("POST", "/v1/apps", {"name": "Other"}, token=OPERATOR_KEY).data["appId"]
    assert _receipts(push_app, other, [{"r": ref, "event": "opened"}]).data == {"accepted": 0, "rejected": 1}
