"""Payload conventions (API.md "The seeds' own vocabulary"): each chosen convention's keys, ext once
per convention, TUIKit's entity for messages and calls, and the 4 KB fit that shortens the body and
the entity's content but never ext."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.apns.payload import APNS_PAYLOAD_LIMIT, ELLIPSIS, build_message, build_payload
from chalicelib.models.message import MessageEvent
from chalicelib.services.render import render

CONVENTION_KEYS = {
    ("tencent",): {"ext"},
    ("agora",): {"f", "t", "g", "m", "e"},
    ("tpns",): {"custom"},
    ("tencent", "agora"): {"ext", "f", "t", "g", "m", "e"},
    ("tencent", "tpns"): {"ext", "custom"},
    ("agora", "tpns"): {"f", "t", "g", "m", "e", "custom"},
    ("tencent", "agora", "tpns"): {"ext", "f", "t", "g", "m", "e", "custom"},
}


def event(**overrides: Any) -> MessageEvent:
    data: dict[str, Any] = {
        "messageId": "m-1",
        "sendTime": 1763790000,
        "sender": {"userId": "denny", "nickname": "Denny"},
        "to": {"groupId": "g1", "groupName": "Dev", "members": ["denny", "vinson"]},
        "elems": [{"type": "text", "text": "hi there"}],
    }
    data.update(overrides)
    return MessageEvent.model_validate(data)


def payload(e: MessageEvent, conventions: tuple[str, ...], **kw: Any) -> dict[str, Any]:
    data = build_payload(render(e, conventions=conventions, **kw), recipient_user_id="vinson", badge=1)
    assert len(data) <= APNS_PAYLOAD_LIMIT
    parsed: dict[str, Any] = json.loads(data)
    return parsed


@pytest.mark.parametrize("conventions", list(CONVENTION_KEYS), ids="+".join)
def test_each_convention_carries_its_keys_and_ext_once(conventions: tuple[str, ...]) -> None:
    body = payload(event(offlinePushInfo={"ext": "jump to denny"}), conventions)
    keys = set(body) - {"aps"}
    assert keys == CONVENTION_KEYS[conventions]
    # ext travels once per convention, under that convention's key
    assert sum(1 for v in body.values() if v == "jump to denny") == len(conventions)


def test_agora_keys_are_the_seeds() -> None:
    body = payload(event(offlinePushInfo={"extern": "custom string"}), ("agora",))
    assert {k: body[k] for k in "ftgme"} == {
        "f": "denny",
        "t": "vinson",
        "g": "g1",
        "m": "m-1",
        "e": "custom string",
    }


def test_tpns_without_ext_carries_tuikits_message_entity() -> None:
    # seed 001: custom -> entity -> action / chatType / sender (the group to open) / content
    body = payload(event(), ("tpns",))
    entity = json.loads(body["custom"])["entity"]
    assert entity == {
        "action": 1,
        "chatType": 2,
        "sender": "g1",
        "nickname": "Dev",
        "faceUrl": "",
        "content": "hi there",
        "sendTime": 1763790000,
    }
    c2c = json.loads(payload(event(to={"userId": "vinson"}, elems=[{"type": "image"}]), ("tpns",))["custom"])
    c2c_entity = c2c["entity"]
    assert (c2c_entity["chatType"], c2c_entity["sender"], c2c_entity["nickname"]) == (1, "denny", "Denny")
    assert c2c["entity"]["content"] == "[图片]"


def test_tpns_with_ext_carries_the_ext_itself() -> None:
    ext = json.dumps({"entity": {"action": 1, "chatType": 1, "sender": "denny"}})
    assert payload(event(offlinePushInfo={"ext": ext}), ("tpns",))["custom"] == ext


def test_tpns_call_entity_content_is_what_the_handler_parses() -> None:
    call = {
        "callId": "call-9",
        "media": "video",
        "action": "invite",
        "timeoutSeconds": 30,
        "roomId": "12345",
        "invitedList": ["vinson", "carol"],
    }
    entity = json.loads(payload(event(call=call, elems=[]), ("tpns",))["custom"])["entity"]
    assert (entity["action"], entity["chatType"], entity["sender"], entity["sendTime"]) == (
        2,
        2,
        "denny",
        1763790000,
    )
    content = json.loads(entity["content"])
    assert content == {
        "action": 1,
        "call_id": "call-9",
        "invited_list": ["vinson", "carol"],
        "group_id": "g1",
        "timeout": 30,
        "room_id": 12345,
        "call_type": 2,
        "version": 4,
    }
    cancel = json.loads(
        payload(event(call={**call, "action": "cancel"}, elems=[], to={"userId": "vinson"}), ("tpns",))[
            "custom"
        ]
    )["entity"]
    assert json.loads(cancel["content"])["action"] == 2
    assert json.loads(cancel["content"])["group_id"] == "" and cancel["chatType"] == 1


def test_a_call_without_invited_list_sends_an_empty_list() -> None:
    e = event(call={"callId": "c", "media": "audio", "action": "invite"}, elems=[])
    content = json.loads(json.loads(payload(e, ("tpns",))["custom"])["entity"]["content"])
    assert content["invited_list"] == [] and content["call_type"] == 1 and content["room_id"] == ""


LONG_CJK = "这是一条很长的中文消息。" * 400  # 4,800 characters, 14,400 bytes


@pytest.mark.parametrize("conventions", [("tencent",), ("agora",), ("tpns",)], ids="+".join)
def test_the_4kb_fit_keeps_a_3000_byte_ext_whole_and_shortens_the_body(conventions: tuple[str, ...]) -> None:
    # Given a 3,000-byte ext (one convention) and a long Chinese body
    ext = "x" * 3000
    body = payload(
        event(elems=[{"type": "text", "text": LONG_CJK}], offlinePushInfo={"ext": ext}), conventions
    )
    # Then ext is whole and the body was cut with an ellipsis
    assert ext in body.values()
    alert_body = body["aps"]["alert"]["body"]
    assert alert_body.startswith("Denny(Dev):这是") and alert_body.endswith(ELLIPSIS)


def test_the_4kb_fit_shortens_the_entitys_content_with_the_body() -> None:
    # Given tpns without ext, a long Chinese body (the entity's content is as long)
    n = render(event(elems=[{"type": "text", "text": LONG_CJK}]), conventions=("tpns",))
    data = build_payload(n, recipient_user_id="vinson", badge=1)
    body = json.loads(data)
    entity = json.loads(body["custom"])["entity"]
    # Then both are shortened, both end in an ellipsis, and the payload fills the room
    assert len(data) <= APNS_PAYLOAD_LIMIT and len(data) > APNS_PAYLOAD_LIMIT - 16
    assert entity["content"].endswith(ELLIPSIS) and LONG_CJK.startswith(entity["content"][:-1])
    assert body["aps"]["alert"]["body"].endswith(ELLIPSIS)


def test_the_4kb_fit_with_3000_byte_ext_over_three_conventions_would_not_fit_so_it_is_refused() -> None:
    from chalicelib.models.push_info import ext_refusal

    assert ext_refusal("x" * 1024, ["tencent", "agora", "tpns"]) is None
    assert "at most 1024 bytes" in (ext_refusal("x" * 1025, ["tencent", "agora", "tpns"]) or "")
    # the largest ext each count of conventions accepts fits with a long body
    for conventions, size in [(("tencent", "agora"), 1536), (("tencent", "agora", "tpns"), 1024)]:
        e = event(
            elems=[{"type": "text", "text": LONG_CJK}],
            offlinePushInfo={"ext": "x" * size, "title": "T" * 200},
        )
        assert "x" * size in payload(e, conventions).values()


def test_simple_banner_shows_no_title_subtitle_or_image() -> None:
    info = {"title": "Denny", "subtitle": "Dev", "image": "https://cdn.example.com/a.png"}
    body = payload(event(offlinePushInfo=info), ("tencent",), display_style="simpleBanner", language="en")
    assert body["aps"]["alert"] == {"body": "You have a new message"}
    assert "image" not in body and "mutable-content" not in body["aps"]
    mentioned = payload(
        event(offlinePushInfo=info), ("tencent",), display_style="simpleBanner", language="en", mention="me"
    )
    assert mentioned["aps"]["alert"] == {"body": "[@Me]You have a new message"}


def test_extra_keys_are_added_and_measured() -> None:
    n = render(event(elems=[{"type": "text", "text": LONG_CJK}]), conventions=("tencent",))
    message = build_message(n, recipient_user_id="vinson", badge=1, extra={"r": "R" * 64})
    assert message["r"] == "R" * 64
    assert len(json.dumps(message, ensure_ascii=False).encode()) <= APNS_PAYLOAD_LIMIT


def test_a_recall_under_tpns_shows_the_placeholder_in_the_entity() -> None:
    from chalicelib.models.push_config import PushConfig
    from chalicelib.services.render import render_recall

    n = render_recall(event(), PushConfig(), sender_display_name=None, conventions=("tpns",))
    body = json.loads(build_payload(n, recipient_user_id="vinson", badge=None))
    assert json.loads(body["custom"])["entity"]["content"] == "[消息已撤回]"
    assert body["op"] == "recall"
