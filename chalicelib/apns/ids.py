"""Identifiers of a notification that must come out the same in every container and every retry."""

from __future__ import annotations

import hashlib
import uuid

_APNS_ID_NAMESPACE = uuid.UUID("6f1d7c2e-3b0a-4e59-9a51-0b6d8c1f4a20")


def apns_id(app_id: str, message_id: str, token: str, op: str | None = None) -> str:
    """Deterministic per message x device: a duplicate would carry the same apns-id. ``op``: a recall's
    or edit's replacement has an apns-id of its own (and the original's collapse-id)."""
    name = f"{app_id}/{message_id}/{token}" + (f"/{op}" if op else "")
    return str(uuid.uuid5(_APNS_ID_NAMESPACE, name)).upper()


def collapse_id(message_id: str) -> str:
    """apns-collapse-id <= 64 bytes: the message ID, hashed when longer. A notification APNs ever
    delivered twice for the same message replaces itself on the phone instead of showing twice."""
    return message_id if len(message_id.encode()) <= 64 else hashlib.sha256(message_id.encode()).hexdigest()


def call_collapse_id(call_id: str) -> str:
    """A call's invite and cancel share ``call-<callId>``, so the cancel replaces the invite on the
    phone; hashed (SHA-256 hex) when over APNs' 64 bytes."""
    return collapse_id(f"call-{call_id}")
