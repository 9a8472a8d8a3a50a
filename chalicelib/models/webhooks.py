"""Outcome webhooks: the events, what travels on the webhook queue, and the API's answers about them.

An event is ``{id, type, appId, at, ...}`` (API.md "Outcome webhooks"); a request body is
``{"events": [...]}`` with 1-100 of them, and so is one webhook-queue record, which also carries
its delivery attempt and when the first one was made (the retry schedule runs from it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from chalicelib.models.base import ApiModel

MAX_EVENTS_PER_REQUEST = 100
TEST_EVENT = "webhook.test"  # sent by POST .../settings/webhook/test whatever the listed types

EventType = Literal["device.invalidated", "recipient.failed", "message.completed", "webhook.test"]


class WebhookBatch(ApiModel):
    """One webhook-queue record: one request body's events for one app, and its delivery attempt."""

    app_id: str
    events: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_EVENTS_PER_REQUEST)
    attempt: int = Field(1, ge=1, description="1 = first delivery; n = the n-th try.")
    first_at: int = Field(description="Epoch ms of the batch's first delivery attempt (or its enqueue).")


class WebhookSecretIssued(ApiModel):
    webhook_secret: str = Field(
        description="Signs every request (X-Push-Signature). Shown once: store it with the receiver."
    )


class WebhookTestResult(ApiModel):
    delivered: bool = Field(description="The receiver answered 2xx within the timeout.")
    status: int | None = Field(None, description="The receiver's HTTP status (null = no answer).")
    error: str | None = Field(None, description="Why it was not delivered (timeout, connection refused ...).")
    duration_ms: int
    event_id: str


class WebhookDelivery(ApiModel):
    """One POST to the app's webhook, as recorded by the function that made it."""

    at: int = Field(description="Epoch ms of the attempt.")
    delivered: bool
    status: int | None = Field(None, description="The receiver's HTTP status (null = no answer).")
    error: str | None = None
    attempt: int = Field(description="1 = first try; then each retry.")
    events: int = Field(description="How many events the request carried.")
    types: list[str] = Field(description="Their types.")
    duration_ms: int
    outcome: Literal["delivered", "retrying", "deadLettered", "test"] = Field(
        description="delivered; retrying (queued again with back-off); deadLettered (retried for the "
        "whole retry window: the batch is in the webhook dead-letter queue with the reason); test."
    )


class WebhookDeliveryList(ApiModel):
    items: list[WebhookDelivery] = Field(description="The latest attempts, newest first (at most 20).")
