"""Communication notifications in the payload: top-level sender and conversation with mutable-content
1 when the app's setting is on (none when off); over 4 KB the face URLs go before the body is
shortened, also with long CJK bodies; face URLs are https whatever the setting."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from chalicelib.apns.payload import APNS_PAYLOAD_LIMIT, ELLIPSIS, build_message, build_payload
from chalicelib.models.message import MessageEvent
from chalicelib.models.notification import Notification
from chalicelib.models.push_config import PushConfig
from chalicelib.models.settings import SendSettings
from chalicelib.services.communication import with_communication
from chalicelib.services.render import render_for

ALICE_FACE = "https://cdn.example.com/face/alice.png"
GROUP_FACE = "https://cdn.example.com/face/g1.png"
ON = SendSettings(communication_notifications=True)
OFF = SendSettings()


def _event(to: dict[str, Any], text: str = "hi", **sender: Any) -> MessageEvent:
    return MessageEvent.model_validate(
        {
            "messageId": "m-1",
            "sendTime": 1_700_000_000,
            "sender": {"userId": "alice", "nickname": "Alice", "faceUrl": ALICE_FACE, **sender},
            "to": to,
            "elems": [{"type": "text", "text": text}],
        }
    )


GROUP = {"groupId": "g1", "groupName": "Dev team", "groupFaceUrl": GROUP_FACE}


def _notification(event: MessageEvent, settings: SendSettings, display: str | None = None) -> Notification:
    n = render_for(event, PushConfig(), sender_display_name=display)
    return with_communication(n, event, display, settings)


def _payload(n: Notification) -> tuple[dict[str, Any], int]:
    data = build_payload(n, recipient_user_id="bob", badge=3)
    return json.loads(data), len(data)


def test_with_the_setting_off_the_payload_has_no_communication_keys() -> None:
    payload, _ = _payload(_notification(_event(GROUP), OFF))
    assert "sender" not in payload and "conversation" not in payload
    assert "mutable-content" not in payload["aps"]


def test_a_group_message_carries_the_sender_and_the_group_with_mutable_content() -> None:
    payload, _ = _payload(_notification(_event(GROUP, nameCard="Lead"), ON))
    assert payload["aps"]["mutable-content"] == 1
    # name = the name the body's prefix shows (the name card in a group)
    assert payload["aps"]["alert"]["body"].startswith("Lead(Dev team):")
    assert payload["sender"] == {"id": "alice", "name": "Lead", "faceUrl": ALICE_FACE}
    assert payload["conversation"] == {"type": "group", "id": "g1", "name": "Dev team", "faceUrl": GROUP_FACE}


def test_a_one_to_one_conversation_is_the_senders_own() -> None:
    payload, _ = _payload(_notification(_event({"userId": "bob"}), ON, display="Ally"))
    assert payload["sender"] == {"id": "alice", "name": "Ally", "faceUrl": ALICE_FACE}
    assert payload["conversation"] == {"type": "c2c", "id": "alice", "name": "Ally", "faceUrl": ALICE_FACE}


def test_without_pictures_the_keys_carry_ids_and_names_only() -> None:
    event = _event({"groupId": "g1"}, faceUrl="")
    payload, _ = _payload(_notification(event, ON))
    assert payload["sender"] == {"id": "alice", "name": "Alice"}
    assert payload["conversation"] == {"type": "group", "id": "g1", "name": "g1"}


def _cjk_fitting(settings: SendSettings, room: int) -> str:
    """A CJK text whose payload without face URLs is ``room`` bytes under the limit."""
    base = _payload(_notification(_event(GROUP, text="漢"), settings))[1] - 3
    faces = len(f',"faceUrl":"{ALICE_FACE}"') + len(f',"faceUrl":"{GROUP_FACE}"')
    budget = APNS_PAYLOAD_LIMIT - (base - faces) - room
    return "漢" * (budget // 3)


def test_over_4kb_the_face_urls_go_before_the_body_is_shortened() -> None:
    # Given a CJK body that fits only once the pictures are left out
    text = _cjk_fitting(ON, room=10)
    payload, size = _payload(_notification(_event(GROUP, text=text), ON))
    # Then the pictures are gone, the body whole, the ids and names kept
    assert size <= APNS_PAYLOAD_LIMIT
    assert payload["aps"]["alert"]["body"].endswith(text)
    assert payload["sender"] == {"id": "alice", "name": "Alice"}
    assert payload["conversation"] == {"type": "group", "id": "g1", "name": "Dev team"}


def test_a_body_that_fits_with_the_pictures_keeps_them() -> None:
    text = _cjk_fitting(ON, room=10)[:-60]  # 180 bytes less: the pictures (~80 bytes) fit too
    payload, size = _payload(_notification(_event(GROUP, text=text), ON))
    assert size <= APNS_PAYLOAD_LIMIT
    assert payload["sender"]["faceUrl"] == ALICE_FACE and payload["conversation"]["faceUrl"] == GROUP_FACE


def test_a_long_cjk_body_loses_the_pictures_then_is_shortened_to_4kb() -> None:
    text = "我们明天上午十点在三楼会议室开会讨论新版本的发布计划😀" * 200
    payload, size = _payload(_notification(_event(GROUP, text=text), ON))
    assert APNS_PAYLOAD_LIMIT - 4 <= size <= APNS_PAYLOAD_LIMIT  # filled up to the last whole character
    assert payload["aps"]["alert"]["body"].endswith(ELLIPSIS)
    assert "faceUrl" not in payload["sender"] and "faceUrl" not in payload["conversation"]
    assert payload["conversation"]["name"] == "Dev team"


def test_the_aioapns_form_fits_4kb_as_sent() -> None:
    text = "長" * 1400
    n = _notification(_event(GROUP, text=text), ON)
    message = build_message(n, recipient_user_id="bob", badge=3)
    assert len(json.dumps(message, ensure_ascii=False).encode()) <= APNS_PAYLOAD_LIMIT
    assert message["sender"]["id"] == "alice"


@pytest.mark.parametrize("url", ["http://cdn.example.com/a.png", "ftp://x/a.png", "cdn.example.com/a.png"])
@pytest.mark.parametrize("where", ["sender", "group"])
def test_face_urls_must_be_https_whatever_the_setting(url: str, where: str) -> None:
    to = {**GROUP, "groupFaceUrl": url} if where == "group" else GROUP
    with pytest.raises(ValidationError, match="https"):
        _event(to, **({"faceUrl": url} if where == "sender" else {}))
