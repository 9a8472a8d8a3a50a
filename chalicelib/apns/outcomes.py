"""What an APNs answer means for us: one table from (status, reason) to an action and a plain reason.

sent: record the apns-id. unregistered (410): drop the registration if it is
older than APNs' timestamp. invalid_token: mark the registration invalid and
say what to check. refresh_auth (403): rebuild the client once, then fail.
retry (429, 5xx, no answer): retry that recipient later with back-off. fail:
give up on that device with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    SENT = "sent"
    UNREGISTERED = "unregistered"
    INVALID_TOKEN = "invalidToken"  # noqa: S105 (a reason, not a password)
    REFRESH_AUTH = "refreshAuth"
    RETRY = "retry"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Action
    reason: str  # what the delivery report and the metrics say


_TOKEN_ERRORS = {"BadDeviceToken", "DeviceTokenNotForTopic", "TopicDisallowed"}
_AUTH_ERRORS = {
    "InvalidProviderToken",
    "ExpiredProviderToken",
    "MissingProviderToken",
    "BadCertificate",
    "BadCertificateEnvironment",
    "Forbidden",
    "TooManyProviderTokenUpdates",
}
_RETRY_STATUSES = {429, 500, 502, 503, 504}


def classify(status: int, reason: str | None) -> Action:
    if status == 200:
        return Action.SENT
    if status == 410 or reason == "Unregistered":
        return Action.UNREGISTERED
    if reason in _TOKEN_ERRORS:
        return Action.INVALID_TOKEN
    if status == 403 or reason in _AUTH_ERRORS:
        return Action.REFRESH_AUTH
    if status == 0 or status in _RETRY_STATUSES:
        return Action.RETRY
    return Action.FAIL


def explain(reason: str | None, *, environment: str, bundle_id: str) -> str:
    """The reason as an operator reads it in the delivery report: what happened and what to check."""
    other = "production" if environment == "development" else "development"
    builds = "Debug" if environment == "development" else "Release/TestFlight/App Store"
    match reason:
        case "BadDeviceToken":
            return (
                f"BadDeviceToken: APNs does not know this token in the {environment} environment: most often "
                f"a {other} token registered with a {environment} credential. Register {builds} builds' "
                f"tokens with the {environment} credential's certificateId, the others with the {other} one."
            )
        case "DeviceTokenNotForTopic":
            return (
                f"DeviceTokenNotForTopic: the token belongs to another app than '{bundle_id}': register it "
                "with the credential of the app (bundle ID) that produced it."
            )
        case "TopicDisallowed":
            return f"TopicDisallowed: the credential may not push to '{bundle_id}': check its bundle ID."
        case "Unregistered":
            return "Unregistered: the app was uninstalled or push was turned off; the token was removed."
        case "ExpiredProviderToken" | "InvalidProviderToken" | "MissingProviderToken":
            return (
                f"{reason}: APNs refused the signing key even after a fresh token: check the key ID, team "
                "ID and that the key is not revoked."
            )
        case "BadCertificate" | "BadCertificateEnvironment":
            return (
                f"{reason}: APNs refused the certificate: check it is valid and for the {environment} "
                "environment."
            )
        case "PayloadTooLarge":
            return "PayloadTooLarge: the notification does not fit 4096 bytes even with a shortened body."
        case None | "":
            return "no reason given"
        case _:
            return reason
