"""What travels on the send queue, group membership bodies, and delivery reports."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from chalicelib.models.base import ENTITY_ID_PATTERN, ApiModel
from chalicelib.models.message import MessageEvent
from chalicelib.models.settings import SendSettings

UserId = Annotated[str, Field(min_length=1, max_length=128, pattern=ENTITY_ID_PATTERN)]


class SendChunk(ApiModel):
    """One send-queue message: up to 500 recipients of one message (fan-out output, or a retry)."""

    app_id: str
    message_id: str
    index: int = Field(ge=0, description="Chunk number within the message.")
    attempt: int = Field(0, ge=0, description="0 = first try; n = the n-th retry of failed recipients.")
    event: MessageEvent = Field(description="The message event, without the group's member list.")
    recipients: list[UserId] = Field(min_length=1, max_length=500)
    sender_display_name: str | None = Field(
        None, description="The sender's push displayName, read once at fan-out (null = use the nickname)."
    )
    devices: dict[str, list[str]] | None = Field(
        None, description="Retries only: the devices of each recipient still to send to."
    )
    badges: dict[str, int | None] | None = Field(
        None, description="Retries only: the badge each recipient was given on the first try."
    )
    chunks: int | None = Field(
        None,
        ge=1,
        description="How many chunks the message has (message.completed knows the last one by it).",
    )
    tries: int | None = Field(
        None,
        ge=0,
        description="Retries only: how many earlier attempts sent these devices' requests to APNs "
        "(an attempt paused or failed before sending does not count; null: every attempt did).",
    )
    settings: SendSettings = Field(
        default_factory=SendSettings,
        description="The app's settings the send path needs, read by the fan-out for this message "
        "(absent in chunks queued before settings existed: the defaults).",
    )


class GroupMemberIn(ApiModel):
    user_id: UserId
    name_card: str | None = Field(None, max_length=128, description="The member's group name card.")


class GroupMembersChange(ApiModel):
    add: list[GroupMemberIn] = Field(default_factory=list, max_length=1000)
    remove: list[UserId] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _something(self) -> GroupMembersChange:
        if not self.add and not self.remove:
            raise ValueError("give members to add and/or user IDs to remove (at most 1000 of each per call)")
        added = [m.user_id for m in self.add]
        if len(set(added)) != len(added):
            raise ValueError("add lists a user twice")
        if len(set(self.remove)) != len(self.remove):
            raise ValueError("remove lists a user twice")
        if set(added) & set(self.remove):
            raise ValueError("a user is both added and removed in one call")
        return self


class GroupMember(ApiModel):
    user_id: str
    name_card: str | None = None


class GroupMembersPage(ApiModel):
    items: list[GroupMember]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page; null = last page.")


class PageQuery(ApiModel):
    cursor: str | None = Field(None, max_length=2048)
    limit: int = Field(100, ge=1, le=1000)


class DeliveryQuery(PageQuery):
    user_id: str | None = Field(None, max_length=128, description="Only this recipient's deliveries.")
    status: Literal["sent", "skipped", "failed", "pending"] | None = Field(
        None, description="Only deliveries with this status (the summary still covers all)."
    )


class MessageAccepted(ApiModel):
    message_id: str


class Replacement(ApiModel):
    """What became of the replacement of this delivery (a recall's, or the latest edit's)."""

    status: Literal["sent", "skipped", "failed", "pending"] = Field(
        description="sent = the phone was sent the replacement; skipped = not needed (e.g. the device "
        "was never sent the original, or already got the edited version); pending = not done yet."
    )
    code: str | None = Field(None, description="The reason as a short code (e.g. an APNs reason).")
    reason: str | None = None
    apns_id: str | None = Field(
        None, description="The replacement's own apns-id (its collapse-id is the original's)."
    )


class Delivery(ApiModel):
    user_id: str
    device_token: str | None = Field(None, description="null when the user was skipped as a whole.")
    status: Literal["sent", "skipped", "failed", "pending"]
    reason: str | None = Field(
        None,
        description="Why it was skipped, failed or is pending, in plain words (e.g. dnd, mutedGroup; "
        "expired = handled after the call's timeout or offlinePushInfo.expiresIn; callCancelled = a call "
        "invitation whose cancel came first; online = listed in the event's to.onlineUsers; "
        "per device: voipToken = an ordinary message and a PushKit "
        "token, callOnVoip = a call rung on the user's PushKit token instead of this one).",
    )
    code: str | None = Field(
        None,
        description="The reason as a short code (a skip reason, an APNs reason such as BadDeviceToken, "
        "RetriesExhausted, DeadLettered = its chunk was dead-lettered by the send queue and is sent "
        "again by a redrive, queued, sending): what the summary counts by.",
    )
    apns_id: str | None = None
    delivered_at: int | None = Field(
        None, description="Epoch ms the phone reported it delivered (POST .../receipts; null = no receipt)."
    )
    opened_at: int | None = Field(None, description="Epoch ms the user opened it (null = not reported).")
    recall: Replacement | None = Field(
        None, description="Recalled messages: this device's recall replacement (absent = not recalled)."
    )
    edit: Replacement | None = Field(
        None,
        description="Edited messages: this device's replacement with the latest edit (absent = not edited).",
    )


class DeliverySummary(ApiModel):
    """Counts over every delivery of the message (every page), or of the one user asked for."""

    sent: int
    pending: int
    skipped: dict[str, int] = Field(description="Skipped deliveries by reason code.")
    failed: dict[str, int] = Field(description="Failed deliveries by reason code.")
    delivered: int = Field(0, description="Devices whose app reported the notification delivered (receipts).")
    opened: int = Field(0, description="Devices whose user opened it (receipts; opened implies delivered).")


class DeliveryList(ApiModel):
    items: list[Delivery]
    next_cursor: str | None = Field(
        None, description="Opaque: pass as ?cursor= for the next page; null = last page."
    )
    recipient_count: int = Field(description="Recipients after fan-out (the sender excluded).")
    summary: DeliverySummary
