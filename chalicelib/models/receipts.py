"""Delivery receipts: what the app's Notification Service Extension and tap handler post."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from chalicelib.models.base import ApiModel

MAX_RECEIPTS = 100


class ReceiptIn(ApiModel):
    r: str = Field(
        min_length=1,
        max_length=64,
        description="The notification's top-level `r`, unchanged.",
    )
    event: Literal["delivered", "opened"] = Field(
        description="delivered: the notification reached the phone (post it from the Notification Service "
        "Extension); opened: the user tapped it (opened implies delivered)."
    )
    at: int | None = Field(
        None,
        ge=0,
        description="When it happened, epoch ms (default now; a time ahead of the server clock = now).",
    )


class ReceiptBatch(ApiModel):
    receipts: list[ReceiptIn] = Field(min_length=1, max_length=MAX_RECEIPTS, description="1-100 receipts.")


class ReceiptsAccepted(ApiModel):
    accepted: int = Field(
        description="Receipts whose reference this app issued (a repeat is accepted and changes nothing)."
    )
    rejected: int = Field(description="Receipts whose reference is forged, malformed or another app's.")
