"""TUIKit's click-handler entity (seed 001, payload convention ``tpns``): what ``userInfo["custom"]``
holds when the event carries no ext. Pure: the event and the display text in, the entity out."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.models.message import CallInfo, GroupTarget, MessageEvent

ACTION_MESSAGE = 1  # APNs_Business_NormalMsg
ACTION_CALL = 2  # APNs_Business_Call
CALL_VERSION = 4  # TUICalling's signalling version
_CALL_ACTION = {"invite": 1, "cancel": 2}  # SignalingActionType: 1 invite, 2 cancel
_CALL_TYPE = {"audio": 1, "video": 2}


def _face_url(event: MessageEvent) -> str:
    return getattr(event.sender, "face_url", None) or ""


def _room_id(call: CallInfo) -> int | str:
    # TUICalling's room IDs are integers; a numeric roomId goes as a number, anything else as given.
    room = call.room_id or ""
    return int(room) if room.isdigit() and len(room) < 16 else room


def call_content(event: MessageEvent, call: CallInfo) -> str:
    """The JSON text seed 001's handler parses into a V2TIMSignalingInfo."""
    group = event.to.group_id if isinstance(event.to, GroupTarget) else ""
    content = {
        "action": _CALL_ACTION[call.action],
        "call_id": call.call_id,
        "invited_list": list(call.invited_list or []),
        "group_id": group,
        "timeout": call.timeout_seconds,
        "room_id": _room_id(call),
        "call_type": _CALL_TYPE[call.media],
        "version": CALL_VERSION,
    }
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"))


def entity(event: MessageEvent, display_text: str) -> dict[str, Any]:
    """``{action, chatType, sender, nickname, faceUrl, content, sendTime}`` as TUIKit's send code builds
    it: a group message's sender is the group (the chat to open), a call's the inviter."""
    is_group = isinstance(event.to, GroupTarget)
    chat_type = 2 if is_group else 1  # V2TIM_GROUP / V2TIM_C2C
    nickname = event.sender.nickname or ""
    if event.call is not None:
        return {
            "action": ACTION_CALL,
            "chatType": chat_type,
            "sender": event.sender.user_id,
            "nickname": nickname,
            "faceUrl": _face_url(event),
            "content": call_content(event, event.call),
            "sendTime": event.send_time,
        }
    if isinstance(event.to, GroupTarget):
        sender, nickname = event.to.group_id, event.to.group_name or ""
    else:
        sender = event.sender.user_id
    return {
        "action": ACTION_MESSAGE,
        "chatType": chat_type,
        "sender": sender,
        "nickname": nickname,
        "faceUrl": _face_url(event),
        "content": display_text,
        "sendTime": event.send_time,
    }
