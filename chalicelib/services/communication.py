"""Communication notifications (iOS 15+): the payload's top-level ``sender`` and ``conversation``, for
the app's Notification Service Extension to donate an ``INSendMessageIntent`` so iOS draws the
sender's picture and the group's name (docs/communication-notifications.md). Pure: event in, keys out.

``name`` is the name the body's prefix shows (name card, displayName or nickname); a one-to-one
conversation is the sender's own (id, name, picture). Over 4 KB the face URLs go first (the
payload's ``DROP_FIRST``), before the body is shortened.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from chalicelib.models.message import GroupTarget, MessageEvent
from chalicelib.models.notification import Notification
from chalicelib.models.settings import SendSettings
from chalicelib.services.render import sender_name


def with_communication(
    n: Notification, event: MessageEvent, sender_display_name: str | None, settings: SendSettings
) -> Notification:
    """The notification with the communication keys when the app asks for them (its setting)."""
    if not settings.communication_notifications:
        return n
    return replace(n, communication=communication_keys(event, sender_display_name))


def communication_keys(event: MessageEvent, sender_display_name: str | None) -> dict[str, Any]:
    """``{"sender": {id, name, faceUrl?}, "conversation": {type, id, name, faceUrl?}}``."""
    user_id = event.sender.user_id
    name = sender_name(event, sender_display_name) or user_id
    sender: dict[str, Any] = {"id": user_id, "name": name}
    if event.sender.face_url:
        sender["faceUrl"] = event.sender.face_url
    to = event.to
    if isinstance(to, GroupTarget):
        conversation: dict[str, Any] = {
            "type": "group",
            "id": to.group_id,
            "name": to.group_name or to.group_id,
        }
        if to.group_face_url:
            conversation["faceUrl"] = to.group_face_url
    else:
        conversation = {"type": "c2c", "id": user_id, "name": name}
        if event.sender.face_url:
            conversation["faceUrl"] = event.sender.face_url
    return {"sender": sender, "conversation": conversation}
