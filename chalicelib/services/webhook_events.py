"""Outcome events (pure): which ones a chunk's outcomes make, their IDs, and the request signature.

Event IDs are derived from what the event is about (app, type, message, device), so an event
emitted twice (a chunk taken over after a crash, a redelivered queue record) has the same ID
and the receiver's de-duplication by ``id`` removes the copy. The signature is Stripe's scheme:
``X-Push-Signature: t=<epoch s>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">``, keyed by the app's
webhook secret; the timestamp lets a receiver refuse replays.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.models.webhooks import MAX_EVENTS_PER_REQUEST, TEST_EVENT

SIGNATURE_HEADER = "X-Push-Signature"
INVALIDATING_CODES = frozenset({"Unregistered", "BadDeviceToken", "DeviceTokenNotForTopic"})
DEVICE_INVALIDATED = "device.invalidated"
RECIPIENT_FAILED = "recipient.failed"
MESSAGE_COMPLETED = "message.completed"
SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)


@dataclass(frozen=True, slots=True)
class Failure:
    """One device the send path gave up on, with what the events need to say about it."""

    user_id: str
    device_token: str
    certificate_id: int | None
    code: str
    reason: str


def event_id(app_id: str, kind: str, *about: str) -> str:
    """The same event always gets the same ID (receivers de-duplicate by it)."""
    digest = hashlib.sha256("\x00".join((app_id, kind, *about)).encode()).hexdigest()
    return f"evt_{digest[:32]}"


def failure_events(
    app_id: str, message_id: str, failures: Iterable[Failure], wanted: Sequence[str], now_ms: int
) -> list[dict[str, Any]]:
    """``recipient.failed`` for every failed device and ``device.invalidated`` for those APNs called
    invalid, of the types the app asked for (none when it asked for none)."""
    out: list[dict[str, Any]] = []
    if RECIPIENT_FAILED not in wanted and DEVICE_INVALIDATED not in wanted:
        return out
    for f in failures:
        if RECIPIENT_FAILED in wanted:
            out.append(
                {
                    "id": event_id(app_id, RECIPIENT_FAILED, message_id, f.device_token),
                    "type": RECIPIENT_FAILED,
                    "appId": app_id,
                    "at": now_ms,
                    "messageId": message_id,
                    "userId": f.user_id,
                    "deviceToken": f.device_token,
                    "code": f.code,
                    "reason": f.reason or f.code,
                }
            )
        if DEVICE_INVALIDATED in wanted and f.code in INVALIDATING_CODES:
            out.append(
                {
                    "id": event_id(app_id, DEVICE_INVALIDATED, message_id, f.device_token),
                    "type": DEVICE_INVALIDATED,
                    "appId": app_id,
                    "at": now_ms,
                    "userId": f.user_id,
                    "deviceToken": f.device_token,
                    "certificateId": f.certificate_id,
                    "code": f.code,
                }
            )
    return out


def completed_event(app_id: str, message_id: str, now_ms: int) -> dict[str, Any]:
    """``message.completed`` without its summary: the webhook function adds it (reading the report
    there keeps the send path from reading a whole message's ledger)."""
    return {
        "id": event_id(app_id, MESSAGE_COMPLETED, message_id),
        "type": MESSAGE_COMPLETED,
        "appId": app_id,
        "at": now_ms,
        "messageId": message_id,
    }


def test_event(app_id: str, now_ms: int) -> dict[str, Any]:
    return {"id": "evt_test_" + secrets.token_hex(12), "type": TEST_EVENT, "appId": app_id, "at": now_ms}


def batches(
    events: Sequence[dict[str, Any]], size: int = MAX_EVENTS_PER_REQUEST
) -> list[list[dict[str, Any]]]:
    return [list(events[i : i + size]) for i in range(0, len(events), size)]


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes, now_s: int | None = None) -> str:
    """The X-Push-Signature header's value for this raw body."""
    t = int(time.time()) if now_s is None else now_s
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(secret: str, header: str, body: bytes, tolerance_s: int = 300, now_s: float | None = None) -> bool:
    """What a receiver does (README): the v1 HMAC matches and t is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    now = time.time() if now_s is None else now_s
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(now - t) <= tolerance_s and hmac.compare_digest(expected, parts.get("v1", ""))
