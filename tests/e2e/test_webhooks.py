"""Outcome webhooks end to end: the send path queues events, the webhook function POSTs them signed
to a real receiver on loopback, retries a failing one with back-off and dead-letters what never
succeeds (the retry schedule shortened so it runs in seconds)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chalicelib import clock, deps, handlers
from chalicelib.models.webhooks import WebhookBatch
from chalicelib.services.webhook_events import SIGNATURE_HEADER, completed_event, verify
from devstack import aws_actions
from devstack.poller import QueuePoller
from tests.e2e.conftest import PushApp, Stack
from tests.webhook_receiver import Receiver, receiver

ALL = ["device.invalidated", "recipient.failed", "message.completed"]


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@pytest.fixture
def webhook_poller(stack: Stack) -> QueuePoller:
    url = stack.sqs.get_queue_url(QueueName=stack.env["WEBHOOK_QUEUE_NAME"])["QueueUrl"]

    def handle(event: dict[str, Any], _ctx: Any) -> Any:
        with aws_actions.as_function("webhook"):  # AWS_ACTION_LOG: held to the webhook function's policy
            return handlers.handle_webhook_records(event["Records"])

    return QueuePoller(sqs=stack.sqs, queue_url=url, handler=handle, name="webhook", wait_s=0)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """1 s, 2 s, 4 s ... for 3 s in all, instead of 10 s ... for 65 minutes."""
    svc = deps.services().webhooks
    monkeypatch.setattr(svc, "retry_base_s", 1)
    monkeypatch.setattr(svc, "retry_for_s", 3)


def _webhook(app: PushApp, url: str, events: list[str] | None = None) -> str:
    resp = app.call("PATCH", "/settings", {"webhook": {"url": url, "events": events or ALL}})
    assert resp.status_code == 200, resp.body
    return str(resp.data["webhookSecret"])


def _pump_until(poller: QueuePoller, done: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done():
            return
        if not poller.poll_once():
            time.sleep(0.1)
    raise AssertionError("the webhook queue never got there")


def _enqueue(app_id: str, events: list[dict[str, Any]]) -> None:
    batch = WebhookBatch(app_id=app_id, events=events, first_at=clock.now_ms())
    deps.services().queues.send_webhook([batch.model_dump_json(by_alias=True)])


def test_a_failing_receiver_gets_the_same_event_id_again_later(
    push_app: PushApp, hook: Receiver, webhook_poller: QueuePoller, fast_retries: None
) -> None:
    # Given a receiver that fails, and an event queued for it
    secret = _webhook(push_app, hook.url)
    hook.status = 500
    event = completed_event(push_app.ctx.app_id, "m-retry", clock.now_ms())
    _enqueue(push_app.ctx.app_id, [{**event, "summary": {"sent": 1}}])
    _pump_until(webhook_poller, lambda: len(hook.requests) >= 1)
    # When it recovers
    hook.status = 200
    _pump_until(webhook_poller, lambda: len(hook.requests) >= 2)
    # Then the retry carried the same event, signed again, and the log shows both tries
    first, second = hook.requests[:2]
    assert [e["id"] for e in first.events] == [e["id"] for e in second.events] == [event["id"]]
    for request in (first, second):
        assert verify(secret, request.headers[SIGNATURE_HEADER.lower()], request.body)
    log = push_app.call("GET", "/settings/webhook/deliveries").data["items"]
    assert [(d["outcome"], d["attempt"]) for d in log[:2]] == [("delivered", 2), ("retrying", 1)]


def test_what_never_succeeds_is_dead_lettered_with_the_reason(
    push_app: PushApp, stack: Stack, hook: Receiver, webhook_poller: QueuePoller, fast_retries: None
) -> None:
    _webhook(push_app, hook.url)
    hook.status = 503
    event = completed_event(push_app.ctx.app_id, "m-dlq", clock.now_ms())
    _enqueue(push_app.ctx.app_id, [{**event, "summary": {"sent": 0}}])
    found: list[dict[str, Any]] = []

    def dead_lettered() -> bool:
        found.extend(
            m for m in stack.dead_letters(stack.env["WEBHOOK_QUEUE_NAME"]) if event["id"] in m["Body"]
        )
        return bool(found)

    _pump_until(webhook_poller, dead_lettered)
    reason = found[0]["MessageAttributes"]["reason"]["StringValue"]
    assert "503" in reason and "tries" in reason
    assert len(hook.requests) >= 2  # tried, retried, then given up
    assert {e["id"] for r in hook.requests for e in r.events} == {event["id"]}


def test_events_the_app_no_longer_wants_are_dropped(
    push_app: PushApp, hook: Receiver, webhook_poller: QueuePoller
) -> None:
    _webhook(push_app, hook.url, ["device.invalidated"])
    _enqueue(push_app.ctx.app_id, [completed_event(push_app.ctx.app_id, "m-unwanted", clock.now_ms())])
    _pump_until(webhook_poller, lambda: webhook_poller.records >= 1)
    assert hook.requests == []


# ---- events from real sends ----------------------------------------------------------------------


def _group(app: PushApp, stack: Stack, members: list[str]) -> str:
    body = app.message({"groupId": "g-hooks", "groupName": "Hooks", "members": members})
    resp = app.call("POST", "/messages", body)
    assert resp.status_code == 202, resp.body
    stack.pump()
    return str(body["messageId"])


def test_each_event_type_arrives_signed(
    push_app: PushApp, stack: Stack, hook: Receiver, webhook_poller: QueuePoller
) -> None:
    # Given bob with a live phone and an uninstalled one, carol with a live phone
    secret = _webhook(push_app, hook.url)
    push_app.device("bob")
    dead = push_app.device("bob")
    push_app.device("carol")
    stack.sandbox.uninstall(dead)
    # When a message goes to both
    message_id = _group(push_app, stack, ["alice", "bob", "carol"])
    _pump_until(webhook_poller, lambda: any(e["type"] == "message.completed" for e in hook.events()))
    # Then the receiver got the dead device, the failure and the completion, each signed
    for request in hook.requests:
        assert verify(secret, request.headers[SIGNATURE_HEADER.lower()], request.body)
    by_type = {e["type"]: e for e in hook.events()}
    assert set(by_type) == set(ALL)
    assert by_type["device.invalidated"] | {"id": "", "at": 0} == {
        "id": "",
        "at": 0,
        "type": "device.invalidated",
        "appId": push_app.ctx.app_id,
        "userId": "bob",
        "deviceToken": dead,
        "certificateId": push_app.prod_cert,
        "code": "Unregistered",
    }
    failed = by_type["recipient.failed"]
    assert (failed["messageId"], failed["userId"], failed["deviceToken"], failed["code"]) == (
        message_id,
        "bob",
        dead,
        "Unregistered",
    )
    completed = by_type["message.completed"]
    assert completed["messageId"] == message_id
    assert completed["summary"]["sent"] == 2 and completed["summary"]["failed"] == {"Unregistered": 1}
    assert completed["summary"]["pending"] == 0
    assert len({e["id"] for e in hook.events()}) == len(hook.events())


def test_message_completed_is_sent_once_when_a_chunk_comes_again(
    push_app: PushApp, stack: Stack, hook: Receiver, webhook_poller: QueuePoller
) -> None:
    _webhook(push_app, hook.url, ["message.completed"])
    push_app.device("bob")
    message_id = _group(push_app, stack, ["alice", "bob"])
    _pump_until(webhook_poller, lambda: len(hook.events()) >= 1)
    # When the chunk's record is delivered again (SQS at least once), and the queues settle
    chunk = deps.services().deliveries.first_chunks(push_app.ctx.app_id, message_id)[0]
    from chalicelib.models.sending import SendChunk

    again = SendChunk.model_validate_json(
        SendChunk(
            app_id=push_app.ctx.app_id,
            message_id=message_id,
            index=chunk[0].index,
            event=push_app.message({"groupId": "g-hooks"}, messageId=message_id),
            recipients=chunk[1],
            chunks=1,
            settings={"webhookEvents": ["message.completed"]},
        ).model_dump_json(by_alias=True)
    )
    stack.send_raw(stack.env["SEND_QUEUE_NAME"], again.model_dump_json(by_alias=True, exclude_none=True))
    stack.pump()
    for _ in range(5):
        webhook_poller.poll_once()
    # Then one message.completed only
    assert [e["messageId"] for e in hook.events()] == [message_id]


def test_an_app_without_a_webhook_queues_nothing(
    push_app: PushApp, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    queued: list[Any] = []
    monkeypatch.setattr(
        deps.services().queues, "send_webhook", lambda bodies, delay_s=0: queued.append(bodies)
    )
    dead = push_app.device("bob")
    stack.sandbox.uninstall(dead)
    _group(push_app, stack, ["alice", "bob"])
    assert queued == []


def test_a_webhook_set_just_now_gets_events_though_a_warm_cache_predates_it(
    push_app: PushApp, hook: Receiver, webhook_poller: QueuePoller
) -> None:
    from chalicelib.models.settings import AppSettings

    # Given the webhook function's settings cache read before the webhook was set
    _webhook(push_app, hook.url)
    settings = deps.services().settings_service
    settings._cache[push_app.ctx.app_id] = (time.monotonic(), AppSettings())
    # When an event for it is queued
    event = completed_event(push_app.ctx.app_id, "m-fresh", clock.now_ms())
    _enqueue(push_app.ctx.app_id, [{**event, "summary": {"sent": 1}}])
    # Then it is delivered, not dropped
    _pump_until(webhook_poller, lambda: len(hook.requests) >= 1)
    assert [e["id"] for e in hook.events()] == [event["id"]]
