"""Calls, VoIP (PushKit) tokens and the per-message options, end to end: API -> SQS -> fan-out ->
send -> the APNs sandbox, read back from the sandbox and the delivery report."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.e2e.conftest import BUNDLE, PushApp, Stack, payloads


def voip_device(app: PushApp, user: str, certificate_id: int | None = None) -> str:
    token = app.sandbox.create_device(BUNDLE, "production", device_type="voip")
    resp = app.call(
        "PUT",
        f"/users/{user}/devices/{token}",
        {"certificateId": certificate_id or app.prod_cert, "type": "voip"},
    )
    assert resp.status_code == 200, resp.body
    assert resp.data["type"] == "voip"
    return token


def call_event(app: PushApp, to: dict[str, Any], call_id: str, action: str, **call: Any) -> dict[str, Any]:
    body = app.message(to, elems=[], call={"callId": call_id, "media": "video", "action": action, **call})
    resp = app.call("POST", "/messages", body)
    assert resp.status_code == 202, resp.body
    return body


def by_user(app: PushApp, message_id: str) -> dict[tuple[str, str | None], tuple[str, str | None]]:
    return {(d["userId"], d["deviceToken"]): (d["status"], d["reason"]) for d in app.deliveries(message_id)}


def test_call_invite_then_cancel_on_alert_and_voip_tokens(stack: Stack, push_app: PushApp) -> None:
    # Given bob with an ordinary token only, and carol with an ordinary and a PushKit token
    bob = push_app.device("bob")
    carol_alert = push_app.device("carol")
    carol_voip = voip_device(push_app, "carol")
    group = {"groupId": "g-call", "groupName": "Dev", "members": ["bob", "carol"]}
    call_id = f"call-{uuid.uuid4().hex}"

    # When alice invites them to a video call
    invite = call_event(push_app, group, call_id, "invite", roomId="r-1", timeoutSeconds=45)
    stack.pump()

    # Then bob's phone shows a time-sensitive alert that carries the call
    [note] = stack.sandbox.notifications(bob)
    headers, payload = note["headers"], note["payload"]
    assert headers["apns-push-type"] == "alert" and headers["apns-topic"] == BUNDLE
    assert headers["apns-collapse-id"] == f"call-{call_id}"
    assert headers["apns-expiration"] == str(invite["sendTime"] + 45)
    assert payload["aps"]["alert"]["body"] == "Alice(Dev):[视频通话]"
    assert payload["aps"]["interruption-level"] == "time-sensitive"
    assert payload["aps"]["badge"] == 1  # an invitation counts like any message (seed 003: +1 per push)
    assert payload["call"] == {
        "callId": call_id,
        "media": "video",
        "action": "invite",
        "roomId": "r-1",
        "data": None,
        "sendTime": invite["sendTime"],
        "timeoutSeconds": 45,
    }
    # And carol's rings through PushKit only: voip push type, .voip topic, priority 10
    [voip] = stack.sandbox.notifications(carol_voip)
    assert voip["pushType"] == "voip" and voip["topic"] == BUNDLE + ".voip"
    assert voip["headers"]["apns-priority"] == "10"
    assert voip["headers"]["apns-collapse-id"] == f"call-{call_id}"
    assert voip["payload"]["call"]["callId"] == call_id
    assert stack.sandbox.notifications(carol_alert) == []
    report = by_user(push_app, invite["messageId"])
    assert report[("carol", carol_alert)] == ("skipped", "callOnVoip")
    assert report[("carol", carol_voip)][0] == "sent" and report[("bob", bob)][0] == "sent"

    # When alice cancels the call
    cancel = call_event(push_app, group, call_id, "cancel")
    stack.pump()

    # Then each device's invitation is replaced (same collapse-id), silently and without a badge
    for token in (bob, carol_voip):
        replaced = stack.sandbox.notifications(token)[-1]  # newest last
        assert replaced["headers"]["apns-collapse-id"] == f"call-{call_id}"
        assert replaced["payload"]["call"]["action"] == "cancel"
        assert replaced["payload"]["aps"]["alert"]["body"] == "Alice(Dev):[通话已取消]"
        assert "sound" not in replaced["payload"]["aps"] and "badge" not in replaced["payload"]["aps"]
    assert len(payloads(stack.sandbox, bob)) == 2
    assert stack.sandbox.notifications(carol_alert) == []
    assert {s for s, _ in by_user(push_app, cancel["messageId"]).values()} == {"sent", "skipped"}


def test_invite_recipients_not_yet_sent_never_get_it_after_the_cancel(
    stack: Stack, push_app: PushApp
) -> None:
    # Given bob's invitation fanned out but not sent yet (its chunk waits on the send queue)
    bob = push_app.device("bob")
    call_id = f"call-{uuid.uuid4().hex}"
    invite = call_event(push_app, {"userId": "bob"}, call_id, "invite")
    while not stack.intake.poll_once():
        pass
    # When the cancel is fanned out before the invitation's chunk is sent
    cancel = call_event(push_app, {"userId": "bob"}, call_id, "cancel")
    stack.pump()
    # Then the invitation is not sent (skipped callCancelled), only the cancel
    assert by_user(push_app, invite["messageId"]) == {("bob", None): ("skipped", "callCancelled")}
    [note] = stack.sandbox.notifications(bob)
    assert note["payload"]["call"]["action"] == "cancel" and note["payload"]["m"] == cancel["messageId"]


def test_an_expired_call_is_not_sent(stack: Stack, push_app: PushApp) -> None:
    # Given an invitation whose 30-second timeout passed before it was handled
    bob = push_app.device("bob")
    body = push_app.message(
        {"userId": "bob"},
        elems=[],
        sendTime=int(time.time()) - 31,
        call={"callId": f"c-{uuid.uuid4().hex}", "media": "audio", "action": "invite", "timeoutSeconds": 30},
    )
    assert push_app.call("POST", "/messages", body).status_code == 202
    stack.pump()
    # Then nobody is rung, and the report says why
    assert push_app.deliveries(body["messageId"])[0]["reason"] == "expired"
    assert stack.sandbox.notifications(bob) == []


def test_ordinary_messages_skip_voip_tokens(stack: Stack, push_app: PushApp) -> None:
    alert = push_app.device("bob")
    voip = voip_device(push_app, "bob")
    body = push_app.message({"userId": "bob"})
    push_app.call("POST", "/messages", body)
    stack.pump()
    assert len(stack.sandbox.notifications(alert)) == 1 and stack.sandbox.notifications(voip) == []
    assert by_user(push_app, body["messageId"])[("bob", voip)] == ("skipped", "voipToken")


def test_every_option_in_the_payload_and_headers(stack: Stack, push_app: PushApp) -> None:
    bob = push_app.device("bob")
    options = {
        "title": "Team",
        "subtitle": "Sprint 12",
        "category": "MESSAGE_REPLY",
        "interruptionLevel": "passive",
        "relevanceScore": 0.5,
        "image": "https://cdn.example.com/p/1.jpg",
        "expiresIn": 600,
    }
    body = push_app.message({"userId": "bob"}, offlinePushInfo=options)
    push_app.call("POST", "/messages", body)
    now_or_never = push_app.message({"userId": "bob"}, offlinePushInfo={"expiresIn": 0})
    push_app.call("POST", "/messages", now_or_never)
    stack.pump()
    notes = {n["payload"]["m"]: n for n in stack.sandbox.notifications(bob)}
    note = notes[body["messageId"]]
    aps = note["payload"]["aps"]
    assert aps["alert"] == {"title": "Team", "subtitle": "Sprint 12", "body": "Alice:hi"}
    assert aps["category"] == "MESSAGE_REPLY"
    assert aps["interruption-level"] == "passive"
    assert aps["relevance-score"] == 0.5
    assert aps["mutable-content"] == 1
    assert note["payload"]["image"] == "https://cdn.example.com/p/1.jpg"
    assert note["headers"]["apns-expiration"] == str(body["sendTime"] + 600)
    assert notes[now_or_never["messageId"]]["headers"]["apns-expiration"] == "0"


def test_a_message_handled_after_expires_in_is_skipped_expired(stack: Stack, push_app: PushApp) -> None:
    bob = push_app.device("bob")
    body = push_app.message(
        {"userId": "bob"}, sendTime=int(time.time()) - 120, offlinePushInfo={"expiresIn": 60}
    )
    push_app.call("POST", "/messages", body)
    stack.pump()
    assert push_app.deliveries(body["messageId"])[0]["reason"] == "expired"
    assert stack.sandbox.notifications(bob) == []


def test_a_voip_services_certificate_rings_pushkit_tokens(stack: Stack, push_app: PushApp) -> None:
    # Given a VoIP Services certificate uploaded next to the app's keys
    issued = stack.sandbox.issue_p12(BUNDLE, "production", "pw", type="voip")
    resp = push_app.call(
        "POST",
        "/credentials",
        {"type": "p12", "name": "voip", "environment": "production", "p12": issued["p12"], "password": "pw"},
    )
    assert resp.status_code == 201, resp.body
    assert resp.data["pushTypes"] == ["voip"] and resp.data["bundleId"] == BUNDLE
    voip_cert = resp.data["certificateId"]
    # Then it cannot register an ordinary token, and it rings a PushKit token over certificate auth
    refused = push_app.call("PUT", f"/users/bob/devices/{'ab' * 32}", {"certificateId": voip_cert})
    assert refused.status_code == 400 and "VoIP Services certificate" in refused.data["error"]["message"]
    token = voip_device(push_app, "bob", voip_cert)
    # And an Apple Push Services certificate cannot register a PushKit token
    push_p12 = stack.sandbox.issue_p12(BUNDLE, "production", "pw")
    resp = push_app.call(
        "POST",
        "/credentials",
        {
            "type": "p12",
            "name": "push",
            "environment": "production",
            "p12": push_p12["p12"],
            "password": "pw",
        },
    )
    assert resp.status_code == 201 and resp.data["pushTypes"] == ["alert"], resp.body
    refused = push_app.call(
        "PUT",
        f"/users/carol/devices/{'cd' * 32}",
        {"certificateId": resp.data["certificateId"], "type": "voip"},
    )
    assert (
        refused.status_code == 400
        and "p8 key, a VoIP Services certificate" in refused.data["error"]["message"]
    )
    call_event(push_app, {"userId": "bob"}, f"c-{uuid.uuid4().hex}", "invite")
    stack.pump()
    [note] = stack.sandbox.notifications(token)
    assert note["auth"] == "certificate" and note["pushType"] == "voip" and note["topic"] == BUNDLE + ".voip"


def test_a_now_or_never_message_is_not_retried(stack: Stack, push_app: PushApp) -> None:
    # Given APNs answers bob's first request 503
    bob = push_app.device("bob")
    stack.sandbox.add_fault(status=503, reason="ServiceUnavailable", count=1, deviceToken=bob)
    # When a message with expiresIn 0 ("deliver now or never") is sent
    body = push_app.message({"userId": "bob"}, offlinePushInfo={"expiresIn": 0})
    push_app.call("POST", "/messages", body)
    stack.pump()
    # Then the retry finds it too late: bob's device is settled as expired, and nothing arrived
    assert by_user(push_app, body["messageId"]) == {("bob", bob): ("skipped", "expired")}
    assert stack.sandbox.notifications(bob) == []
