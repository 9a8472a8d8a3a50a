"""What the service does with each APNs answer (issue: outcomes table), and exactly-once under
redelivery, retries and poison records: all through SQS and the sandbox over HTTP/2."""

from __future__ import annotations

import json
from collections import Counter

from tests.e2e.conftest import PushApp, Stack, payloads


def devices_of(app: PushApp, user: str) -> list[dict]:
    return list(app.call("GET", f"/users/{user}/devices").data["items"])


def send(stack: Stack, app: PushApp, to: dict, **extra: object) -> str:
    body = app.message(to, **extra)
    assert app.call("POST", "/messages", body).status_code == 202
    stack.pump()
    return str(body["messageId"])


def test_unregistered_410_removes_the_registration(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    stack.sandbox.uninstall(token)
    message_id = send(stack, push_app, {"userId": "bob"})
    [d] = push_app.deliveries(message_id)
    assert d["status"] == "failed" and d["reason"].startswith("Unregistered")
    assert devices_of(push_app, "bob") == []


def test_development_token_with_production_credential_is_explained(stack: Stack, push_app: PushApp) -> None:
    token = stack.sandbox.create_device("com.example.chat", "development")
    push_app.call("PUT", f"/users/bob/devices/{token}", {"certificateId": push_app.prod_cert})
    message_id = send(stack, push_app, {"userId": "bob"})
    [d] = push_app.deliveries(message_id)
    assert d["status"] == "failed"
    assert d["reason"].startswith("BadDeviceToken")
    assert "development token registered with a production credential" in d["reason"]
    [device] = devices_of(push_app, "bob")
    assert device["invalidReason"] == d["reason"]
    # the next message does not hammer APNs with the known-bad token
    message_id = send(stack, push_app, {"userId": "bob"})
    [d] = push_app.deliveries(message_id)
    assert (d["status"], d["reason"], d["deviceToken"]) == ("skipped", "invalidToken", token)
    # re-registering with the right credential clears it
    push_app.call("PUT", f"/users/bob/devices/{token}", {"certificateId": push_app.dev_cert})
    send(stack, push_app, {"userId": "bob"})
    assert len(payloads(stack.sandbox, token)) == 1


def test_provider_token_refused_once_is_refreshed(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    stack.sandbox.add_fault(status=403, reason="ExpiredProviderToken", count=1, deviceToken=token)
    message_id = send(stack, push_app, {"userId": "bob"})
    assert len(payloads(stack.sandbox, token)) == 1
    assert push_app.deliveries(message_id)[0]["status"] == "sent"


def test_provider_token_refused_twice_fails_loudly(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    stack.sandbox.add_fault(status=403, reason="InvalidProviderToken", count=2, deviceToken=token)
    message_id = send(stack, push_app, {"userId": "bob"})
    [d] = push_app.deliveries(message_id)
    assert d["status"] == "failed"
    assert d["reason"].startswith("InvalidProviderToken") and "key ID" in d["reason"]


def test_503_storm_every_notification_delivered_exactly_once(stack: Stack, push_app: PushApp) -> None:
    members = [f"s{i}" for i in range(6)]
    tokens = [push_app.device(u) for u in members]
    stack.sandbox.add_fault(status=503, reason="ServiceUnavailable", count=8)
    message_id = send(stack, push_app, {"groupId": "storm", "members": members})
    for token in tokens:
        assert len(payloads(stack.sandbox, token)) == 1
    assert Counter(d["status"] for d in push_app.deliveries(message_id)) == {"sent": 6}


def test_429_and_dropped_connections_are_retried(stack: Stack, push_app: PushApp) -> None:
    a, b = push_app.device("bob"), push_app.device("carol")
    stack.sandbox.add_fault(status=429, reason="TooManyRequests", count=1, deviceToken=a)
    stack.sandbox.add_fault(action="reset", count=1, deviceToken=b)
    send(stack, push_app, {"groupId": "g", "members": ["bob", "carol"]})
    assert len(payloads(stack.sandbox, a)) == 1
    assert len(payloads(stack.sandbox, b)) == 1


def test_exhausted_retries_end_in_the_dead_letter_queue_with_reason(stack: Stack, push_app: PushApp) -> None:
    stack.dead_letters(stack.env["SEND_QUEUE_NAME"])
    token = push_app.device("bob")
    stack.sandbox.add_fault(status=500, reason="InternalServerError", deviceToken=token)  # until cleared
    message_id = send(stack, push_app, {"userId": "bob"})
    [d] = push_app.deliveries(message_id)
    assert d["status"] == "failed" and d["reason"].startswith(
        "gave up after 4 attempts: 500 InternalServerError"
    )
    [dead] = stack.dead_letters(stack.env["SEND_QUEUE_NAME"])
    assert dead["MessageAttributes"]["reason"]["StringValue"] == d["reason"]
    assert json.loads(dead["Body"])["devices"] == {"bob": [token]}


def test_sqs_redelivery_of_a_chunk_sends_nothing_twice(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    body = push_app.message({"userId": "bob"})
    push_app.call("POST", "/messages", body)
    stack.intake.poll_once()  # fan-out only
    url = stack.send_poller.queue_url
    [chunk] = stack.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1)["Messages"]
    for _ in range(2):  # SQS delivers at least once: here, three times
        stack.send_raw(stack.env["SEND_QUEUE_NAME"], chunk["Body"])
    stack.pump()
    assert len(payloads(stack.sandbox, token)) == 1


def test_duplicate_message_event_is_fanned_out_once(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    body = push_app.message({"userId": "bob"})
    for _ in range(2):
        push_app.call("POST", "/messages", body)
    stack.send_raw(stack.env["INTAKE_QUEUE_NAME"], json.dumps({"appId": push_app.ctx.app_id, **body}))
    stack.pump()
    assert len(payloads(stack.sandbox, token)) == 1


def test_poison_records_go_to_the_dead_letter_queue_and_spare_the_batch(
    stack: Stack, push_app: PushApp
) -> None:
    for queue in ("INTAKE_QUEUE_NAME", "SEND_QUEUE_NAME"):
        stack.dead_letters(stack.env[queue])
    token = push_app.device("bob")
    stack.send_raw(stack.env["INTAKE_QUEUE_NAME"], "not json at all")
    stack.send_raw(
        stack.env["INTAKE_QUEUE_NAME"], json.dumps({"appId": push_app.ctx.app_id, "messageId": "x"})
    )
    stack.send_raw(stack.env["SEND_QUEUE_NAME"], json.dumps({"appId": "a", "recipients": []}))
    stack.send_raw(
        stack.env["INTAKE_QUEUE_NAME"],
        json.dumps({"appId": push_app.ctx.app_id, **push_app.message({"userId": "bob"})}),
    )
    stack.pump()
    assert len(payloads(stack.sandbox, token)) == 1
    intake_dead = stack.dead_letters(stack.env["INTAKE_QUEUE_NAME"])
    send_dead = stack.dead_letters(stack.env["SEND_QUEUE_NAME"])
    reasons = sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in intake_dead)
    assert len(reasons) == 2 and all(r.startswith("invalid record:") for r in reasons)
    assert any("sender" in r for r in reasons)  # says which field is missing
    assert len(send_dead) == 1 and "recipients" in send_dead[0]["MessageAttributes"]["reason"]["StringValue"]
    assert {m["Body"] for m in intake_dead} >= {"not json at all"}
