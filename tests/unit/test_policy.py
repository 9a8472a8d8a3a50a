"""Who gets pushed: one test per rule, named after it, then the order and forced push."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.models.message import MessageEvent
from chalicelib.models.push_config import AppState, DoNotDisturb, PushConfig
from chalicelib.services.policy import (
    FORCE_PUSH_OVERRIDES,
    RULES,
    Decision,
    DeviceSkipReason,
    DeviceView,
    Recipient,
    SkipReason,
    decide,
    in_dnd_window,
    message_skip_reason,
    split_devices,
)

NOON_UTC = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
PHONE = DeviceView(token="aa" * 32, certificate_id=1, push_enabled=True)
TABLET = DeviceView(token="bb" * 32, certificate_id=2, push_enabled=True)


def event(**overrides: Any) -> MessageEvent:
    data: dict[str, Any] = {
        "messageId": "m-1",
        "sendTime": 1763790000,
        "sender": {"userId": "alice", "nickname": "Alice"},
        "to": {"userId": "bob"},
        "elems": [{"type": "text", "text": "hi"}],
    }
    data.update(overrides)
    return MessageEvent.model_validate(data)


def group_event(**overrides: Any) -> MessageEvent:
    return event(to={"groupId": "g1", "groupName": "Dev", "members": ["alice", "bob"]}, **overrides)


def bob(
    *,
    config: dict[str, Any] | None = None,
    state: str = "background",
    devices: tuple[DeviceView, ...] = (PHONE,),
    logged_out: bool = False,
) -> Recipient:
    return Recipient(
        user_id="bob",
        config=PushConfig.model_validate(config or {}),
        state=AppState.model_validate({"state": state}),
        devices=devices,
        logged_out=logged_out,
    )


def dnd(start: int, end: int, timezone: str = "UTC", enabled: bool = True) -> dict[str, Any]:
    return {"doNotDisturb": {"enabled": enabled, "startHour": start, "endHour": end, "timezone": timezone}}


def test_pushed_when_no_rule_applies() -> None:
    # Given bob in the background with two devices and default settings
    recipient = bob(devices=(PHONE, TABLET))
    # When alice messages him
    decision = decide(event(), recipient, now=NOON_UTC)
    # Then both devices are targets and nothing is skipped
    assert decision == Decision("bob", (PHONE, TABLET), None, ())
    assert decision.pushed


def test_sender() -> None:
    # Given the sender is among the recipients (a group she posts in)
    alice = Recipient("alice", PushConfig(), AppState(state="background"), (PHONE,))
    # When policy decides for her, Then she is skipped as the sender
    assert decide(group_event(), alice, now=NOON_UTC).skip_reason == SkipReason.SENDER


def test_online_user_only() -> None:
    # Given a message for online users only, When bob is offline, Then he is not pushed
    decision = decide(event(onlineUserOnly=True), bob(), now=NOON_UTC)
    assert decision.skip_reason == SkipReason.ONLINE_USER_ONLY
    assert decision.targets == ()


def test_disable_push() -> None:
    decision = decide(event(offlinePushInfo={"disablePush": True}), bob(), now=NOON_UTC)
    assert decision.skip_reason == SkipReason.DISABLE_PUSH


@pytest.mark.parametrize(
    ("elems", "info", "expected"),
    [
        ([{"type": "custom", "data": "x"}], {}, SkipReason.CUSTOM_WITHOUT_DESC),
        ([{"type": "text", "text": "hi"}, {"type": "custom"}], {}, SkipReason.CUSTOM_WITHOUT_DESC),
        ([{"type": "custom"}, {"type": "custom", "desc": "card"}], {}, SkipReason.CUSTOM_WITHOUT_DESC),
        ([{"type": "custom", "data": "x"}], {"desc": "You have a call invitation."}, None),
        ([{"type": "custom", "data": "x"}], {"em_push_content": "custom push content"}, None),
        ([{"type": "custom", "desc": "card"}], {}, None),
        ([{"type": "text", "text": "hi"}], {}, None),
    ],
    ids=[
        "custom-alone",
        "text-and-bare-custom",
        "one-custom-without-desc",
        "offline-push-desc",
        "agora-push-content",
        "element-desc",
        "no-custom",
    ],
)
def test_custom_without_desc(
    elems: list[dict[str, Any]], info: dict[str, Any], expected: SkipReason | None
) -> None:
    # Given a message with these elements (seed: 若自定义消息 desc 为空,则该消息不进行离线推送)
    message = event(elems=elems, offlinePushInfo=info)
    # When policy decides, Then a custom element with no text to show stops the push
    assert decide(message, bob(), now=NOON_UTC).skip_reason == expected


def test_logged_out() -> None:
    # Given bob logged out or was kicked offline (his state may still say background)
    decision = decide(event(), bob(logged_out=True), now=NOON_UTC)
    # Then he gets no push at all, even forced (seed: 正常或强制退出均收不到)
    assert decision.skip_reason == SkipReason.LOGGED_OUT
    assert decide(event(forcePush=True), bob(logged_out=True), now=NOON_UTC).skip_reason == "loggedOut"


@pytest.mark.parametrize(
    ("state", "offline_users", "expected"),
    [
        ("foreground", None, SkipReason.FOREGROUND),
        ("foreground", ["carol"], SkipReason.FOREGROUND),
        ("foreground", ["bob"], None),
        ("background", None, None),
        ("unknown", None, None),
    ],
    ids=["foreground", "someone-else-offline", "server-says-offline", "background", "never-reported"],
)
def test_foreground(state: str, offline_users: list[str] | None, expected: SkipReason | None) -> None:
    # Given bob's last reported app state and the IM server's list of offline users
    message = event(offlineUsers=offline_users) if offline_users is not None else event()
    # When policy decides, Then only a foreground app the server does not call offline is skipped
    assert decide(message, bob(state=state), now=NOON_UTC).skip_reason == expected


def test_no_device() -> None:
    disabled = DeviceView(token="cc" * 32, certificate_id=1, push_enabled=False)
    invalid = DeviceView(
        token="dd" * 32, certificate_id=1, push_enabled=True, invalid_reason="BadDeviceToken"
    )
    # Given no devices, When policy decides, Then noDevice
    assert decide(event(), bob(devices=()), now=NOON_UTC) == Decision("bob", (), SkipReason.NO_DEVICE, ())
    # Given only devices that are skipped one by one, Then noDevice, with each device's reason
    decision = decide(event(), bob(devices=(disabled, invalid)), now=NOON_UTC)
    assert decision.skip_reason == SkipReason.NO_DEVICE
    assert decision.device_skips == (
        (disabled.token, DeviceSkipReason.PUSH_DISABLED),
        (invalid.token, DeviceSkipReason.INVALID_TOKEN),
    )
    # Given one good device among them, Then it alone is pushed and the others are reported
    decision = decide(event(), bob(devices=(disabled, PHONE, invalid)), now=NOON_UTC)
    assert decision.pushed and decision.targets == (PHONE,)
    assert [reason for _, reason in decision.device_skips] == ["pushDisabled", "invalidToken"]


def test_split_devices_names_an_invalid_token_before_push_disabled() -> None:
    both = DeviceView(token="ee" * 32, certificate_id=1, push_enabled=False, invalid_reason="Unregistered")
    assert split_devices((both,)) == ((), ((both.token, "invalidToken"),))


def test_open_push_off() -> None:
    # Given bob turned offline push off, When a message (even forced) arrives, Then he is skipped
    recipient = bob(config={"openPush": False})
    assert decide(event(), recipient, now=NOON_UTC).skip_reason == SkipReason.OPEN_PUSH_OFF
    assert decide(event(forcePush=True), recipient, now=NOON_UTC).skip_reason == SkipReason.OPEN_PUSH_OFF


def test_muted_group() -> None:
    # Given bob muted group g1
    recipient = bob(config={"mutedGroups": ["g1"]})
    # Then g1's messages are skipped, one-to-one messages are not, and a forced push goes through
    assert decide(group_event(), recipient, now=NOON_UTC).skip_reason == SkipReason.MUTED_GROUP
    assert decide(event(), recipient, now=NOON_UTC).pushed
    assert decide(group_event(forcePush=True), recipient, now=NOON_UTC).pushed


def test_muted_user() -> None:
    # Given bob muted alice
    recipient = bob(config={"mutedUsers": ["alice"]})
    # Then her messages are skipped, one-to-one and in groups, unless forced
    assert decide(event(), recipient, now=NOON_UTC).skip_reason == SkipReason.MUTED_USER
    assert decide(group_event(), recipient, now=NOON_UTC).skip_reason == SkipReason.MUTED_USER
    assert decide(event(sender={"userId": "carol"}), recipient, now=NOON_UTC).pushed
    assert decide(event(forcePush=True), recipient, now=NOON_UTC).pushed


def test_dnd() -> None:
    # Given bob's quiet hours 22 -> 7 in Shanghai, When it is 23:00 there (15:00 UTC)
    recipient = bob(config=dnd(22, 7, "Asia/Shanghai"))
    late = datetime(2025, 6, 1, 15, 0, tzinfo=UTC)
    # Then he is skipped for dnd, but a forced push (em_force_notification) goes through
    assert decide(event(), recipient, now=late).skip_reason == SkipReason.DND
    assert decide(event(forcePush=True), recipient, now=late).pushed
    # And at noon in Shanghai he is pushed
    assert decide(event(), recipient, now=datetime(2025, 6, 1, 4, 0, tzinfo=UTC)).pushed


# (start, end, time zone, instant in UTC, in the window?)
DND_CASES = [
    # across midnight, Shanghai (UTC+8, no DST)
    (22, 7, "Asia/Shanghai", datetime(2025, 6, 1, 13, 59, tzinfo=UTC), False),  # 21:59
    (22, 7, "Asia/Shanghai", datetime(2025, 6, 1, 14, 0, tzinfo=UTC), True),  # 22:00
    (22, 7, "Asia/Shanghai", datetime(2025, 6, 1, 16, 0, tzinfo=UTC), True),  # 00:00
    (22, 7, "Asia/Shanghai", datetime(2025, 6, 1, 22, 59, tzinfo=UTC), True),  # 06:59
    (22, 7, "Asia/Shanghai", datetime(2025, 6, 1, 23, 0, tzinfo=UTC), False),  # 07:00
    # half-hour offset: Kolkata (UTC+5:30)
    (22, 7, "Asia/Kolkata", datetime(2025, 6, 1, 16, 29, tzinfo=UTC), False),  # 21:59
    (22, 7, "Asia/Kolkata", datetime(2025, 6, 1, 16, 30, tzinfo=UTC), True),  # 22:00
    # New York in summer (EDT, UTC-4) and winter (EST, UTC-5): same wall clock, other UTC hour
    (22, 7, "America/New_York", datetime(2025, 7, 1, 2, 0, tzinfo=UTC), True),  # 22:00 EDT
    (22, 7, "America/New_York", datetime(2025, 1, 15, 2, 0, tzinfo=UTC), False),  # 21:00 EST
    (22, 7, "America/New_York", datetime(2025, 1, 15, 3, 0, tzinfo=UTC), True),  # 22:00 EST
    # DST starts (2025-03-09, 02:00 EST -> 03:00 EDT): 1 -> 3 ends at 03:00 EDT, an hour early in UTC
    (1, 3, "America/New_York", datetime(2025, 3, 9, 6, 59, tzinfo=UTC), True),  # 01:59 EST
    (1, 3, "America/New_York", datetime(2025, 3, 9, 7, 0, tzinfo=UTC), False),  # 03:00 EDT
    # DST ends (2025-11-02, 02:00 EDT -> 01:00 EST): 01:xx happens twice, both in 1 -> 2
    (1, 2, "America/New_York", datetime(2025, 11, 2, 5, 30, tzinfo=UTC), True),  # 01:30 EDT
    (1, 2, "America/New_York", datetime(2025, 11, 2, 6, 30, tzinfo=UTC), True),  # 01:30 EST
    (1, 2, "America/New_York", datetime(2025, 11, 2, 7, 0, tzinfo=UTC), False),  # 02:00 EST
    # southern hemisphere: Sydney is UTC+11 in January, UTC+10 in July
    (22, 7, "Australia/Sydney", datetime(2025, 1, 15, 11, 0, tzinfo=UTC), True),  # 22:00 AEDT
    (22, 7, "Australia/Sydney", datetime(2025, 7, 15, 11, 0, tzinfo=UTC), False),  # 21:00 AEST
    # same-day window, Berlin (CEST, UTC+2)
    (9, 17, "Europe/Berlin", datetime(2025, 6, 1, 6, 59, tzinfo=UTC), False),  # 08:59
    (9, 17, "Europe/Berlin", datetime(2025, 6, 1, 7, 0, tzinfo=UTC), True),  # 09:00
    (9, 17, "Europe/Berlin", datetime(2025, 6, 1, 14, 59, tzinfo=UTC), True),  # 16:59
    (9, 17, "Europe/Berlin", datetime(2025, 6, 1, 15, 0, tzinfo=UTC), False),  # 17:00
    # 0 -> 24 is all day; start == end is no window (Agora: 00:00-00:00 turns it off)
    (0, 24, "UTC", datetime(2025, 6, 1, 0, 0, tzinfo=UTC), True),
    (0, 24, "UTC", datetime(2025, 6, 1, 23, 59, tzinfo=UTC), True),
    (0, 0, "UTC", datetime(2025, 6, 1, 0, 0, tzinfo=UTC), False),
    (8, 8, "UTC", datetime(2025, 6, 1, 8, 30, tzinfo=UTC), False),
    (24, 24, "UTC", datetime(2025, 6, 1, 0, 0, tzinfo=UTC), False),
    # 24 is midnight at the end of the day
    (24, 7, "UTC", datetime(2025, 6, 1, 0, 30, tzinfo=UTC), True),
    (24, 7, "UTC", datetime(2025, 6, 1, 23, 30, tzinfo=UTC), False),
    (22, 24, "UTC", datetime(2025, 6, 1, 23, 59, tzinfo=UTC), True),
    (22, 24, "UTC", datetime(2025, 6, 1, 0, 0, tzinfo=UTC), False),
    # the instant may be given in any zone: only the instant matters
    (22, 7, "Asia/Shanghai", datetime.fromisoformat("2025-06-01T10:00:00-04:00"), True),  # 22:00 CST
]


@pytest.mark.parametrize(
    ("start", "end", "timezone", "now", "expected"),
    DND_CASES,
    ids=[f"{s}-{e}-{tz}-{now.isoformat()}" for s, e, tz, now, _ in DND_CASES],
)
def test_dnd_window_boundaries(start: int, end: int, timezone: str, now: datetime, expected: bool) -> None:
    # Given quiet hours start -> end in the recipient's zone, When it is `now`, Then in or out
    quiet = DoNotDisturb.model_validate(dnd(start, end, timezone)["doNotDisturb"])
    assert in_dnd_window(quiet, now) is expected
    # and decide agrees
    reason = decide(event(), bob(config=dnd(start, end, timezone)), now=now).skip_reason
    assert reason == (SkipReason.DND if expected else None)


def test_dnd_disabled_is_never_in_the_window() -> None:
    quiet = DoNotDisturb(enabled=False, start_hour=0, end_hour=24)
    assert not in_dnd_window(quiet, NOON_UTC)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(event(), bob(), now=datetime(2025, 6, 1, 12, 0))


@pytest.mark.parametrize(
    ("config", "message", "expected"),
    [
        (dnd(0, 24), {}, None),
        ({"mutedGroups": ["g1"]}, {}, None),
        ({"mutedUsers": ["alice"]}, {}, None),
        ({"openPush": False}, {}, SkipReason.OPEN_PUSH_OFF),
        ({}, {"onlineUserOnly": True}, SkipReason.ONLINE_USER_ONLY),
        ({}, {"offlinePushInfo": {"disablePush": True}}, SkipReason.DISABLE_PUSH),
        ({}, {"elems": [{"type": "custom"}]}, SkipReason.CUSTOM_WITHOUT_DESC),
    ],
    ids=["dnd", "muted-group", "muted-user", "open-push-off", "online-only", "disable-push", "custom"],
)
def test_force_push_overrides_only_the_recipients_quiet_settings(
    config: dict[str, Any], message: dict[str, Any], expected: SkipReason | None
) -> None:
    # Given a forced group message (Agora em_force_notification: 忽略接收方的免打扰设置)
    forced = group_event(em_force_notification=True, **message)
    # When bob has this setting, Then only do-not-disturb and mutes are overridden
    assert decide(forced, bob(config=config), now=NOON_UTC).skip_reason == expected


def test_force_push_overrides_exactly_dnd_and_mutes() -> None:
    assert {
        SkipReason.DND,
        SkipReason.MUTED_GROUP,
        SkipReason.MUTED_USER,
        SkipReason.MENTION_ONLY,
    } == FORCE_PUSH_OVERRIDES


def test_rule_order_reports_the_first_reason() -> None:
    # Given bob logged out, foreground, with no device, push off, the group muted and in DND
    recipient = bob(
        config={"openPush": False, "mutedGroups": ["g1"], **dnd(0, 24)},
        state="foreground",
        devices=(),
        logged_out=True,
    )
    # When rules are peeled off one by one, Then each time the next one in RULES order is reported
    assert decide(group_event(), recipient, now=NOON_UTC).skip_reason == SkipReason.LOGGED_OUT
    assert [reason for reason, _ in RULES] == [
        "sender",
        "onlineUserOnly",
        "disablePush",
        "customWithoutDesc",
        "loggedOut",
        "foreground",
        "noDevice",
        "openPushOff",
        "mutedGroup",
        "mutedUser",
        "mentionOnly",
        "dnd",
    ]
    steps = [
        (bob(config={"openPush": False}, state="foreground", devices=()), SkipReason.FOREGROUND),
        (bob(config={"openPush": False}, devices=()), SkipReason.NO_DEVICE),
        (bob(config={"openPush": False, "mutedGroups": ["g1"]}), SkipReason.OPEN_PUSH_OFF),
        (bob(config={"mutedGroups": ["g1"], "mutedUsers": ["alice"]}), SkipReason.MUTED_GROUP),
        (bob(config={"mutedUsers": ["alice"], **dnd(0, 24)}), SkipReason.MUTED_USER),
    ]
    for recipient, expected in steps:
        assert decide(group_event(), recipient, now=NOON_UTC).skip_reason == expected


def test_a_skipped_recipient_still_reports_device_skips() -> None:
    disabled = DeviceView(token="cc" * 32, certificate_id=1, push_enabled=False)
    decision = decide(event(), bob(state="foreground", devices=(PHONE, disabled)), now=NOON_UTC)
    assert decision.skip_reason == SkipReason.FOREGROUND and decision.targets == ()
    assert decision.device_skips == ((disabled.token, "pushDisabled"),)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({}, None),
        ({"onlineUserOnly": True}, SkipReason.ONLINE_USER_ONLY),
        ({"offlinePushInfo": {"disablePush": True}}, SkipReason.DISABLE_PUSH),
        ({"elems": [{"type": "custom"}]}, SkipReason.CUSTOM_WITHOUT_DESC),
        ({"forcePush": True, "offlinePushInfo": {"disablePush": True}}, SkipReason.DISABLE_PUSH),
    ],
)
def test_message_skip_reason_lets_the_fan_out_stop_early(
    message: dict[str, Any], expected: SkipReason | None
) -> None:
    assert message_skip_reason(event(**message)) == expected


def test_skip_reasons_are_the_strings_the_deliveries_api_reports() -> None:
    assert {str(r) for r in SkipReason} == {
        "sender",
        "onlineUserOnly",
        "disablePush",
        "customWithoutDesc",
        "foreground",
        "loggedOut",
        "noDevice",
        "openPushOff",
        "mutedGroup",
        "mutedUser",
        "mentionOnly",
        "dnd",
    }
    assert {str(r) for r in DeviceSkipReason} == {"pushDisabled", "invalidToken"}
