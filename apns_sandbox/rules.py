"""What Apple enforces on a push request, as plain data and pure functions.

The provider endpoint (h2server.py) decides *who* is asking (auth) and *which device* it is; the
checks here only look at the request's headers and body, so they are testable without a network.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# Apple's reason strings and the HTTP status each one comes with
# ("Handling notification responses from APNs").
REASON_STATUS: dict[str, int] = {
    "BadCollapseId": 400,
    "BadDeviceToken": 400,
    "BadExpirationDate": 400,
    "BadMessageId": 400,
    "BadPriority": 400,
    "BadTopic": 400,
    "DeviceTokenNotForTopic": 400,
    "DuplicateHeaders": 400,
    "IdleTimeout": 400,
    "InvalidPushType": 400,
    "MissingDeviceToken": 400,
    "MissingTopic": 400,
    "PayloadEmpty": 400,
    "TopicDisallowed": 400,
    # Not an Apple reason: Apple documents none for a body that is not a JSON object with `aps`.
    "BadPayload": 400,
    "BadCertificate": 403,
    "BadCertificateEnvironment": 403,
    "ExpiredProviderToken": 403,
    "Forbidden": 403,
    "InvalidProviderToken": 403,
    "MissingProviderToken": 403,
    "UnrelatedKeyIdInToken": 403,
    "BadEnvironmentKeyInToken": 403,
    "BadPath": 404,
    "MethodNotAllowed": 405,
    "ExpiredToken": 410,
    "Unregistered": 410,
    "PayloadTooLarge": 413,
    "TooManyProviderTokenUpdates": 429,
    "TooManyRequests": 429,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
    "Shutdown": 503,
}
# The reason a fault uses when only a status is given.
DEFAULT_REASON: dict[int, str] = {
    400: "BadDeviceToken",
    403: "Forbidden",
    404: "BadPath",
    405: "MethodNotAllowed",
    410: "Unregistered",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}

# apns-push-type -> the suffix Apple requires on apns-topic (None: the bare bundle ID).
PUSH_TYPE_TOPIC_SUFFIX: dict[str, str | None] = {
    "alert": None,
    "background": None,
    "location": ".location-query",
    "voip": ".voip",
    "complication": ".complication",
    "fileprovider": ".pushkit.fileprovider",
    "mdm": None,
    "liveactivity": ".push-type.liveactivity",
    "pushtotalk": ".voip-ptt",
    "widgets": ".push-type.widgets",
    "controls": ".push-type.controls",
}
MAX_PAYLOAD = 4096
MAX_PAYLOAD_VOIP = 5120
MAX_COLLAPSE_ID = 64
PRIORITIES = frozenset({"1", "5", "10"})
DEVICE_PATH_PREFIX = "/3/device/"

_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TOPIC_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_]*")
_TOKEN_RE = re.compile(r"[0-9a-fA-F]{64,200}")
# Headers that must appear at most once (Apple: DuplicateHeaders).
SINGLE_HEADERS = frozenset(
    {
        "apns-id",
        "apns-topic",
        "apns-push-type",
        "apns-priority",
        "apns-expiration",
        "apns-collapse-id",
        "authorization",
    }
)


class Rejection(Exception):
    """A request APNs refuses: carries Apple's reason; the status comes from REASON_STATUS."""

    def __init__(self, reason: str, timestamp_ms: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = REASON_STATUS[reason]
        self.timestamp_ms = timestamp_ms


def check_headers_unique(names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in SINGLE_HEADERS:
            if name in seen:
                raise Rejection("DuplicateHeaders")
            seen.add(name)


def parse_path(method: str, path: str) -> str:
    """The device token of `POST /3/device/<token>`; 405/404/400 otherwise."""
    if method != "POST":
        raise Rejection("MethodNotAllowed")
    path = path.split("?", 1)[0]
    if not path.startswith(DEVICE_PATH_PREFIX):
        raise Rejection("BadPath")
    token = path[len(DEVICE_PATH_PREFIX) :]
    if not token:
        raise Rejection("MissingDeviceToken")
    if "/" in token:
        raise Rejection("BadPath")
    return token


def is_well_formed_token(token: str) -> bool:
    return _TOKEN_RE.fullmatch(token) is not None


def check_apns_id(apns_id: str | None) -> None:
    if apns_id is not None and _UUID_RE.fullmatch(apns_id) is None:
        raise Rejection("BadMessageId")


def check_push_type(push_type: str | None) -> str:
    """The effective push type (Apple treats a missing header as `alert` on iOS)."""
    if push_type is None:
        return "alert"
    if push_type not in PUSH_TYPE_TOPIC_SUFFIX:
        raise Rejection("InvalidPushType")
    return push_type


def topic_bundle(topic: str, push_type: str) -> str:
    """The bundle ID behind apns-topic: the push type's required suffix removed (BadTopic if absent)."""
    if not _TOPIC_RE.fullmatch(topic):
        raise Rejection("BadTopic")
    suffix = PUSH_TYPE_TOPIC_SUFFIX[push_type]
    if suffix is None:
        return topic
    if not topic.endswith(suffix) or len(topic) == len(suffix):
        raise Rejection("BadTopic")
    return topic[: -len(suffix)]


def check_options(
    priority: str | None, expiration: str | None, collapse_id: str | None, push_type: str
) -> None:
    if priority is not None:
        if priority not in PRIORITIES:
            raise Rejection("BadPriority")
        # Apple: background notifications must use priority 5 (or 1), never 10.
        if push_type == "background" and priority == "10":
            raise Rejection("BadPriority")
    if expiration is not None and not (expiration.isascii() and expiration.isdigit()):
        raise Rejection("BadExpirationDate")
    if collapse_id is not None and len(collapse_id.encode()) > MAX_COLLAPSE_ID:
        raise Rejection("BadCollapseId")


def parse_payload(body: bytes, push_type: str) -> dict[str, Any]:
    """The notification payload: a JSON object with an `aps` dictionary, within Apple's size limit."""
    if not body.strip():
        raise Rejection("PayloadEmpty")
    limit = MAX_PAYLOAD_VOIP if push_type == "voip" else MAX_PAYLOAD
    if len(body) > limit:
        raise Rejection("PayloadTooLarge")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Rejection("BadPayload") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
        raise Rejection("BadPayload")
    return payload


@dataclass(frozen=True)
class ErrorBody:
    reason: str
    timestamp_ms: int | None = None

    def encode(self) -> bytes:
        body: dict[str, Any] = {"reason": self.reason}
        if self.timestamp_ms is not None:
            body["timestamp"] = self.timestamp_ms
        return json.dumps(body, separators=(",", ":")).encode()
