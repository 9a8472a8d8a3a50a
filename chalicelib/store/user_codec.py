"""The user partition's items as the store reads and writes them (``U``, ``S``, ``CV#...``), and the
``UserRecord`` a read answers. Pure: no client here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.models.devices import Device
from chalicelib.models.push_config import AppState, ConversationSetting, PushConfig
from chalicelib.store import items
from chalicelib.store.user_fold import FOLD, MARKS, marks_of

CONFIG_FIELDS = (
    "openPush",
    "c2cSound",
    "groupSound",
    "displayName",
    "displayStyle",
    "doNotDisturb",
    "language",
    # Before conversation settings, mutes were string sets on the user item: still read (as permanent
    # `none`), removed when the user next changes that list.
    "mutedGroups",
    "mutedUsers",
)
# State attributes on the user item: folded items keep them there (older versions did too, before the
# S item existed).
STATE_FIELDS = ("appState", "badge", "stateAt", "foregroundUntil")


@dataclass(frozen=True)
class UserRecord:
    """Everything the send path and the API know about one user."""

    user_id: str
    config: PushConfig
    state: AppState
    devices: tuple[Device, ...] = ()
    logged_out: bool = False
    exists: bool = True
    # The conversation settings that were asked for and exist (lapsed ones included: policy decides).
    conversations: tuple[ConversationSetting, ...] = ()
    # A folded user item (state and badge on it); False: stored before the fold, not yet folded.
    folded: bool = False
    # The badge changes last counted (user_fold.MARKS), as read.
    marks: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StateWrite:
    """One user's app state to store."""

    user_id: str
    state: str
    badge: int
    at_ms: int
    # None: a background write; NO_LEASE: foreground until the app reports background (lease 0).
    foreground_until_ms: int | None = None


NO_LEASE = 0  # stored foregroundUntil of a foreground without a lease (the app's setting 0)


def device_attr(device: Device) -> dict[str, Any]:
    return {
        "certificateId": device.certificate_id,
        "bundleId": device.bundle_id,
        "environment": device.environment,
        "pushEnabled": device.push_enabled,
        "type": device.type,
        "registeredAt": int(device.registered_at.timestamp() * 1000),
    }


def state_update(s: StateWrite) -> tuple[str, dict[str, Any]]:
    """The SET (and REMOVE) of a state write on the folded user item, and its values. A state report
    closes an open read window (read sync: its job then sends nothing; ``read_marks``)."""
    values = {":s": {"S": s.state}, ":b": {"N": str(s.badge)}, ":t": {"N": str(s.at_ms)}}
    expr = "SET appState = :s, badge = :b, stateAt = :t"
    if s.foreground_until_ms is not None:
        values[":f"] = {"N": str(s.foreground_until_ms)}
        return expr + ", foregroundUntil = :f REMOVE readHeld, readConvs", values
    return expr + " REMOVE foregroundUntil, readHeld, readConvs", values


def conversation_item(app_id: str, user_id: str, setting: ConversationSetting) -> dict[str, Any]:
    item = {
        **items.conversation_key(app_id, user_id, setting.kind, setting.conversation_id),
        "remindType": {"S": setting.remind_type},
    }
    if setting.until is not None:
        item["until"] = {"N": str(setting.until)}
        # The table's TTL removes a lapsed setting some time later; until then the rules ignore it.
        item["ttl"] = {"N": str(setting.until)}
    return item


def parse_conversation(item: dict[str, Any]) -> ConversationSetting:
    _, kind, conversation_id = item["sk"]["S"].split("#", 2)
    until = item.get("until")
    return ConversationSetting.model_validate(
        {
            "kind": kind,
            "conversationId": conversation_id,
            "remindType": item["remindType"]["S"],
            "until": int(until["N"]) if until else None,
        }
    )


def parse_state(state_item: dict[str, Any] | None, user: dict[str, Any], default_lease_s: int) -> AppState:
    """A folded user item's state (``state_item`` None), else the S item; without either, what an
    older version kept on the user item."""
    data = items.from_item(state_item) if state_item else {k: user[k] for k in STATE_FIELDS if k in user}
    state = data.get("appState", "unknown")
    until = data.get("foregroundUntil")
    if state == "foreground" and until is None:
        until = int(data.get("stateAt") or 0) + default_lease_s * 1000
    elif until == NO_LEASE:
        until = None  # foreground holds until the app reports background
    return AppState(
        state=state,
        badge=data.get("badge", 0),
        updated_at=data.get("stateAt"),
        foreground_until=until if state == "foreground" else None,
    )


def parse_user(
    app_id: str, user_id: str, found: dict[str, dict[str, Any]], default_lease_s: int = 300
) -> UserRecord:
    """One user from the items read under their partition, by sort key (U, S, CV#...)."""
    conversations = tuple(
        parse_conversation(item)
        for sk, item in sorted(found.items())
        if sk.startswith(items.CONVERSATION_PREFIX)
    )
    user_item = found.get("U")
    folded = bool(user_item and FOLD in user_item)
    data = items.from_item({k: v for k, v in user_item.items() if k != MARKS}) if user_item else {}
    state = parse_state(None if folded else found.get("S"), data, default_lease_s)
    if not user_item:
        return UserRecord(
            user_id=user_id,
            config=PushConfig(),
            state=state,
            exists="S" in found,
            conversations=conversations,
        )
    config = PushConfig.model_validate({k: data[k] for k in CONFIG_FIELDS if k in data})
    devices = tuple(
        Device(
            device_token=name[len(items.DEVICE_PREFIX) :],
            user_id=user_id,
            certificate_id=attr["certificateId"],
            bundle_id=attr["bundleId"],
            environment=attr["environment"],
            push_enabled=attr.get("pushEnabled", True),
            type=attr.get("type", "alert"),
            registered_at=datetime.fromtimestamp(attr["registeredAt"] / 1000, UTC),
            invalid_reason=attr.get("invalidReason"),
        )
        for name, attr in sorted(data.items())
        if name.startswith(items.DEVICE_PREFIX)
    )
    return UserRecord(
        user_id=user_id,
        config=config,
        state=state,
        devices=devices,
        # A device registered after a logout wins (also when the two raced): logged out = no device.
        logged_out=bool(data.get("loggedOut", False)) and not devices,
        conversations=conversations,
        folded=folded,
        marks=marks_of(user_item) if folded else {},
    )
