"""Read sync's pure rules: which devices get a read-sync push, and what each push says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.models.devices import Device
from chalicelib.models.push_config import AppState, PushConfig
from chalicelib.services.read_sync_rules import devices_to_sync, read_sync_pushes
from chalicelib.store.users import UserRecord

NOW = 1_800_000_000_000


def _device(token: str, **extra: object) -> Device:
    return Device.model_validate(
        {
            "deviceToken": token,
            "userId": "bob",
            "certificateId": 1,
            "bundleId": "com.example.chat",
            "environment": "production",
            "registeredAt": datetime.now(UTC),
            **extra,
        }
    )


def _user(*devices: Device, open_push: bool = True, logged_out: bool = False) -> UserRecord:
    return UserRecord(
        user_id="bob",
        config=PushConfig(open_push=open_push),
        state=AppState(),
        devices=devices,
        logged_out=logged_out,
    )


BACKGROUND = AppState(state="background", badge=2)


def test_every_alert_device_outside_the_foreground_gets_it() -> None:
    user = _user(_device("a" * 64), _device("b" * 64))
    devices, skip = devices_to_sync(user, BACKGROUND, NOW)
    assert [d.device_token for d in devices] == ["a" * 64, "b" * 64] and skip is None


def test_voip_disabled_and_invalid_tokens_get_none() -> None:
    user = _user(
        _device("a" * 64, type="voip"),
        _device("b" * 64, pushEnabled=False),
        _device("c" * 64, invalidReason="BadDeviceToken"),
        _device("d" * 64),
    )
    devices, _ = devices_to_sync(user, BACKGROUND, NOW)
    assert [d.device_token for d in devices] == ["d" * 64]


@pytest.mark.parametrize(
    ("user", "state", "reason"),
    [
        (_user(_device("a" * 64), open_push=False), BACKGROUND, "pushOff"),
        (_user(logged_out=True), BACKGROUND, "loggedOut"),
        (_user(), BACKGROUND, "noDevice"),
        (_user(_device("a" * 64)), AppState(state="foreground", foreground_until=NOW + 1000), "foreground"),
    ],
)
def test_a_user_logged_out_with_push_off_or_in_the_foreground_gets_none(
    user: UserRecord, state: AppState, reason: str
) -> None:
    assert devices_to_sync(user, state, NOW) == ([], reason)


def test_a_lapsed_foreground_lease_counts_as_offline() -> None:
    state = AppState(state="foreground", foreground_until=NOW - 1)
    devices, skip = devices_to_sync(_user(_device("a" * 64)), state, NOW)
    assert len(devices) == 1 and skip is None


def test_a_foreground_without_a_lease_holds() -> None:
    # Given an app whose foregroundLeaseSeconds is 0: foreground is stored without a lease end
    state = AppState(state="foreground", foreground_until=None)
    # When a read window closes, Then the user's phone is left to the app
    assert devices_to_sync(_user(_device("a" * 64)), state, NOW) == ([], "foreground")


def test_badge_mode_sends_only_the_badge() -> None:
    (push,) = read_sync_pushes("badge", 3, ({"kind": "group", "id": "g1"},))
    assert push.payload == {"aps": {"badge": 3}, "op": "badge"}
    assert push.push_type == "alert"


def test_badge_and_clear_names_each_conversation_read_once_the_last_as_conversation() -> None:
    read = (
        {"kind": "group", "id": "g1", "readUpTo": "m-1"},
        {"kind": "c2c", "id": "alice"},
        {"kind": "group", "id": "g1", "readUpTo": "m-9"},
    )
    badge, clear = read_sync_pushes("badgeAndClear", 0, read)
    assert badge.payload == {"aps": {"badge": 0}, "op": "badge"}
    assert clear.push_type == "background"
    assert clear.payload == {
        "aps": {"content-available": 1},
        "op": "read",
        "conversation": {"kind": "group", "id": "g1"},
        "readUpTo": "m-9",
        "conversations": [{"kind": "c2c", "id": "alice"}, {"kind": "group", "id": "g1", "readUpTo": "m-9"}],
    }


def test_badge_and_clear_without_a_conversation_sends_only_the_badge() -> None:
    assert [p.op for p in read_sync_pushes("badgeAndClear", 1, ())] == ["badge"]
