"""Daily statistics and the message list: the stored day counters and what the API answers."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from pydantic import Field, field_validator, model_validator

from chalicelib.models.base import ApiModel
from chalicelib.models.sending import DeliverySummary

MAX_STATS_DAYS = 92


@dataclass(frozen=True)
class DayCounts:
    """What happened on one UTC day in one app (stored as ADD counters, see store/stats.py).
    sent / failed / delivered / opened per device; skipped per report row (a user, or a device)."""

    messages: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    skipped: Mapping[str, int] = field(default_factory=dict)
    failed: Mapping[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (
            self.messages
            or self.sent
            or self.delivered
            or self.opened
            or any(self.skipped.values())
            or any(self.failed.values())
        )

    def __add__(self, other: DayCounts) -> DayCounts:
        return DayCounts(
            messages=self.messages + other.messages,
            sent=self.sent + other.sent,
            delivered=self.delivered + other.delivered,
            opened=self.opened + other.opened,
            skipped=dict(Counter(self.skipped) + Counter(other.skipped)),
            failed=dict(Counter(self.failed) + Counter(other.failed)),
        )


# ---- GET /v1/apps/{appId}/stats --------------------------------------------------------------


class StatsQuery(ApiModel):
    from_: dt.date = Field(alias="from", description="First UTC day, YYYY-MM-DD.")
    to: dt.date = Field(description="Last UTC day, YYYY-MM-DD (inclusive).")

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _iso_day(cls, value: object) -> object:
        if not isinstance(value, str) or len(value) != 10:
            raise ValueError("give a UTC day as YYYY-MM-DD, e.g. 2026-12-05")
        return value

    @model_validator(mode="after")
    def _range(self) -> StatsQuery:
        if self.from_ > self.to:
            raise ValueError("from must not be after to")
        if (self.to - self.from_).days + 1 > MAX_STATS_DAYS:
            raise ValueError(f"at most {MAX_STATS_DAYS} days per request (from and to included)")
        return self


class StatsDay(ApiModel):
    date: str = Field(description="The UTC day, YYYY-MM-DD.")
    messages: int = Field(description="Messages fanned out (the first chunk of each settled that day).")
    sent: int = Field(description="Devices APNs accepted a notification for.")
    skipped: dict[str, int] = Field(description="Skipped report rows (recipients, or devices) by reason.")
    failed: dict[str, int] = Field(description="Devices that failed, by code (APNs reason or ours).")
    delivered: int = Field(description="Devices whose app reported the notification delivered.")
    opened: int = Field(description="Devices whose user opened the notification.")


class StatsPage(ApiModel):
    days: list[StatsDay] = Field(description="Every day of the range, oldest first, zeros included.")


# ---- GET /v1/apps/{appId}/messages -----------------------------------------------------------


class MessageListQuery(ApiModel):
    user_id: str | None = Field(
        None, min_length=1, max_length=128, description="Only messages this user was a recipient of."
    )
    cursor: str | None = Field(None, max_length=512, description="nextCursor of the previous page.")
    limit: int = Field(20, ge=1, le=100, description="At most this many messages (1-100, default 20).")


class UserRef(ApiModel):
    user_id: str


class GroupRef(ApiModel):
    group_id: str


class MessageListItem(ApiModel):
    message_id: str
    send_time: int = Field(description="The event's sendTime (epoch seconds).")
    created_at: int = Field(description="When the message was fanned out (epoch ms): the list's order.")
    to: UserRef | GroupRef
    sender_id: str
    kind: Literal["message", "call"] = "message"
    recipient_count: int
    summary: DeliverySummary = Field(
        description="Counts over the message's report; with ?userId=, over that user's deliveries."
    )


class MessageList(ApiModel):
    items: list[MessageListItem] = Field(
        description="Newest first (may be fewer than limit: see nextCursor)."
    )
    next_cursor: str | None = Field(
        None,
        description="Opaque: pass as ?cursor= for the next page; null = nothing older. With userId a page "
        "may hold fewer matches than limit (each request looks at a bounded number of messages).",
    )
