"""Read sync: the user read on another device (the request and its answer), and the send-queue job
that brings the user's phones in line a moment later (badge, and with ``badgeAndClear`` a clearing
background push)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field

from chalicelib.models.base import ENTITY_ID_PATTERN, ApiModel
from chalicelib.models.message import _message_id
from chalicelib.models.push_config import ConversationKind

MAX_UNREAD = 1_000_000

MessageId = Annotated[str, AfterValidator(_message_id)]


class ReadConversation(ApiModel):
    """The conversation read: a group, or the one-to-one conversation with another user."""

    kind: ConversationKind = Field(description="`group` or `c2c`.")
    id: str = Field(
        pattern=ENTITY_ID_PATTERN,
        description="The group's ID, or for `c2c` the other user's ID (the thread the phone shows).",
    )


class ReadIn(ApiModel):
    """``POST /v1/apps/{appId}/users/{userId}/read``: the user read on another device (the desktop,
    the web). The stored badge becomes ``unreadCount`` (the next message counts from it), and the
    user's phones are brought in line by the app's ``readSync`` setting: `badge` sends each alert
    device outside the foreground lease a badge-only push (priority 5, no alert, no sound) within a
    few seconds, reads less than 2 s apart making one push with the last count; `badgeAndClear` also
    a background push (`op: "read"`, the conversation and `readUpTo`) so the app can remove the
    conversation's delivered notifications (best effort: iOS throttles background pushes); `off` only
    the stored badge. A user logged out, with openPush off or in the foreground gets no push."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"unreadCount": 3, "conversation": {"kind": "group", "id": "g1"}, "readUpTo": "m-42"}
            ]
        }
    )

    unread_count: int = Field(
        ge=0, le=MAX_UNREAD, description="The user's unread count after this read: the new badge."
    )
    conversation: ReadConversation | None = Field(
        None, description="The conversation read (carried by badgeAndClear's background push)."
    )
    read_up_to: MessageId | None = Field(
        None, description="The newest message read in it (carried by badgeAndClear's background push)."
    )


class ReadAccepted(ApiModel):
    badge: int = Field(description="The stored badge now (= unreadCount).")


class ReadSyncJob(ApiModel):
    """A send-queue record, queued with a short delay by the read that opened the user's read window:
    bring the user's phones in line with the badge as the window closes (and, with badgeAndClear,
    clear the conversations read in it). Only one job per window sends (it claims the window)."""

    job: Literal["readSync"] = Field(description="Tells this record from message chunks.")
    app_id: str
    user_id: str
    held_ms: int = Field(ge=0, description="The window's start (epoch ms): the job claims that window.")
    mode: Literal["badge", "badgeAndClear"] = Field(description="The app's readSync setting at the read.")
