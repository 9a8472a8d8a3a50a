"""A rendered notification: what one recipient's devices are sent (render makes it, the payload
and the APNs gateway send it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chalicelib.models.message import APNS_PRIORITY, Priority
from chalicelib.models.settings import DEFAULT_CONVENTIONS


@dataclass(frozen=True, slots=True)
class Notification:
    """One rendered notification, the same for every device of one recipient."""

    title: str | None  # None = no alert title
    body: str
    sound: str | None  # None = no sound key (push.no_sound)
    thread_id: str  # the conversation: "c2c_<senderId>" or "group_<groupId>"
    mutable_content: bool
    ext: str | None  # offlinePushInfo.ext: Tencent's `ext`, Agora's `e`
    sender_id: str
    group_id: str | None
    message_id: str
    priority: Priority = "high"
    # ignoreBadge: the send step passes badge=None to the payload and does not count this message.
    ignore_badge: bool = False
    # offlinePushInfo options (aps.alert.subtitle, aps.category, ...) and the top-level image URL.
    subtitle: str | None = None
    category: str | None = None
    interruption_level: str | None = None
    relevance_score: float | None = None
    image: str | None = None
    # A call event's top-level `call` object; None for an ordinary message.
    call: dict[str, Any] | None = None
    # apns-collapse-id when not the message's own (a call's `call-<callId>`); None = the message ID.
    collapse_id: str | None = None
    # apns-expiration in epoch seconds (0 = now or never); None = header absent.
    expiration: int | None = None
    # "recall" / "edit": this notification replaces the message's earlier one (same collapse-id);
    # sent as top-level "op" in the payload.
    op: str | None = None
    # The app's payloadConventions: which top-level keys carry ext and the IDs (apns/payload.py).
    conventions: tuple[str, ...] = DEFAULT_CONVENTIONS
    # TUIKit's entity for `custom` (tpns, events without ext); its message content may be shortened.
    entity: dict[str, Any] | None = None

    @property
    def apns_priority(self) -> int:
        return APNS_PRIORITY[self.priority]
