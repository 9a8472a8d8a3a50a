"""Read sync, the rules (pure): which of a user's devices a read-sync push goes to, and what it says.

- ``badge``: ``{"aps": {"badge": n}, "op": "badge"}``, apns-push-type alert, priority 5: iOS sets the
  icon's badge and shows nothing, plays nothing.
- ``badgeAndClear``: that, and ``{"aps": {"content-available": 1}, "op": "read", "conversation":
  {kind, id}, "readUpTo", "conversations": [...]}``, apns-push-type background, priority 5: iOS wakes
  the app (when it was not force-quit, and as often as its background budget allows) to remove the
  delivered notifications of the conversations read (``conversation`` is the last one read,
  ``conversations`` every one read in the window, oldest first).

Neither is stored by APNs for an unreachable phone (apns-expiration 0): APNs keeps one notification
per app for an offline device, and a read-sync push must not take the place of an unread message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from chalicelib.models.devices import Device
from chalicelib.models.push_config import AppState
from chalicelib.services.policy import foreground_now
from chalicelib.store.user_codec import UserRecord

ReadSyncSkip = Literal["loggedOut", "pushOff", "foreground", "noDevice"]
READ_SYNC_PRIORITY = 5
READ_SYNC_EXPIRATION = 0  # deliver now or never: never displace a stored message alert


@dataclass(frozen=True, slots=True)
class ReadSyncPush:
    """One request: its payload, apns-push-type and a name for the apns-id."""

    op: Literal["badge", "read"]
    push_type: Literal["alert", "background"]
    payload: dict[str, Any]


def devices_to_sync(
    user: UserRecord, state: AppState, now_ms: int
) -> tuple[list[Device], ReadSyncSkip | None]:
    """The user's alert devices a read-sync push goes to, or why none does."""
    if not user.exists or user.logged_out or not user.devices:
        return [], "loggedOut" if user.logged_out else "noDevice"
    if not user.config.open_push:
        return [], "pushOff"
    # The send path's rule: a lapsed lease counts as offline; no lease (the app's setting 0) holds.
    if foreground_now(state, datetime.fromtimestamp(now_ms / 1000, UTC)):
        return [], "foreground"
    devices = [d for d in user.devices if d.type == "alert" and d.push_enabled and not d.invalid_reason]
    return devices, None if devices else "noDevice"


def read_sync_pushes(
    mode: Literal["badge", "badgeAndClear"], badge: int, conversations: tuple[dict[str, Any], ...]
) -> list[ReadSyncPush]:
    """What each device gets: the badge, and with badgeAndClear (and a conversation read) the clearing."""
    pushes = [ReadSyncPush("badge", "alert", {"aps": {"badge": badge}, "op": "badge"})]
    if mode != "badgeAndClear" or not conversations:
        return pushes
    # A conversation read twice in the window is named once, where it was last read.
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for c in conversations:
        latest.pop((c["kind"], c["id"]), None)
        named = {"kind": c["kind"], "id": c["id"]}
        if c.get("readUpTo") is not None:
            named["readUpTo"] = c["readUpTo"]
        latest[(c["kind"], c["id"])] = named
    read = list(latest.values())
    clear: dict[str, Any] = {
        "aps": {"content-available": 1},
        "op": "read",
        "conversation": {"kind": read[-1]["kind"], "id": read[-1]["id"]},
    }
    if "readUpTo" in read[-1]:
        clear["readUpTo"] = read[-1]["readUpTo"]
    clear["conversations"] = read
    pushes.append(ReadSyncPush("read", "background", clear))
    return pushes
