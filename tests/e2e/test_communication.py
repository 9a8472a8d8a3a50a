"""Communication notifications through the stack: the app's setting puts the sender and the group,
with their pictures, in the payload; a face URL that is not https is a 400 whatever the setting."""

from __future__ import annotations

from tests.e2e.conftest import PushApp, Stack, payloads

FACE = "https://cdn.example.com/face/alice.png"


def test_with_the_setting_on_the_phone_gets_the_sender_and_the_group(stack: Stack, push_app: PushApp) -> None:
    resp = push_app.call("PATCH", "/settings", {"communicationNotifications": True})
    assert resp.status_code == 200, resp.body
    phone = push_app.device("bob")
    body = push_app.message(
        {
            "groupId": "g1",
            "groupName": "Dev",
            "groupFaceUrl": "https://cdn.example.com/g1.png",
            "members": ["bob"],
        },
        sender={"userId": "alice", "nickname": "Alice", "faceUrl": FACE},
    )
    assert push_app.call("POST", "/messages", body).status_code == 202
    stack.pump()
    [payload] = payloads(stack.sandbox, phone)
    assert payload["aps"]["mutable-content"] == 1
    assert payload["sender"] == {"id": "alice", "name": "Alice", "faceUrl": FACE}
    assert payload["conversation"] == {
        "type": "group",
        "id": "g1",
        "name": "Dev",
        "faceUrl": "https://cdn.example.com/g1.png",
    }


def test_with_the_setting_off_the_pictures_are_accepted_but_not_sent(stack: Stack, push_app: PushApp) -> None:
    phone = push_app.device("bob")
    body = push_app.message(
        {"userId": "bob"}, sender={"userId": "alice", "nickname": "Alice", "faceUrl": FACE}
    )
    assert push_app.call("POST", "/messages", body).status_code == 202
    stack.pump()
    [payload] = payloads(stack.sandbox, phone)
    assert "sender" not in payload and "conversation" not in payload


def test_a_face_url_that_is_not_https_is_a_400(push_app: PushApp) -> None:
    body = push_app.message(
        {"userId": "bob"}, sender={"userId": "alice", "faceUrl": "http://x.example/a.png"}
    )
    resp = push_app.call("POST", "/messages", body)
    assert resp.status_code == 400, resp.body
    assert "sender.faceUrl" in resp.body.decode() and "https" in resp.body.decode()
