"""Who gets pushed: one test per rule, named after it, then the order and forced push."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib.models.message import MessageEvent
from chalicelib.models.push_config import AppState, ConversationSetting, DoNotDisturb, PushConfig
from chalicelib.services.policy import (
    FORCE_PUSH_OVERRIDES,
    RULES,
    Decision,
    DeviceSkipReason,
    DeviceView,
    Recipient,
    SkipReason,
    conversations_of,
    decide,
    foreground_now,
    in_dnd_window,
    in_force,
    message_skip_reason,
    muted_lists,
    remind_type,
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
        "expired",
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
        "expired",
        "callCancelled",
        "online",
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
    assert {str(r) for r in DeviceSkipReason} == {"pushDisabled", "invalidToken", "voipToken", "callOnVoip"}


# ---- Version 2: presence lease, conversation settings, mentions ---------------------------------

NOON_S = int(NOON_UTC.timestamp())
NOON_MS = NOON_S * 1000


def setting(kind: str, conversation_id: str, remind: str, until: int | None = None) -> ConversationSetting:
    return ConversationSetting.model_validate(
        {"kind": kind, "conversationId": conversation_id, "remindType": remind, "until": until}
    )


def bob_with(*settings: ConversationSetting, **kwargs: Any) -> Recipient:
    return replace(bob(**kwargs), conversations=settings)


# (foreground lease end relative to now in ms, offlineUsers, expected)
LEASE_CASES = [
    (+1, None, SkipReason.FOREGROUND),
    (+300_000, None, SkipReason.FOREGROUND),
    (0, None, None),  # the lease ends at foregroundUntil: at that instant the user is offline
    (-1, None, None),
    (-30 * 86_400_000, None, None),  # the case: a foreground report 30 days old
    (+300_000, ["bob"], None),
]


@pytest.mark.parametrize(
    ("until_delta_ms", "offline_users", "expected"),
    LEASE_CASES,
    ids=["just-held", "held", "ends-now", "just-lapsed", "thirty-days-old", "server-says-offline"],
)
def test_foreground_is_a_lease(
    until_delta_ms: int, offline_users: list[str] | None, expected: SkipReason | None
) -> None:
    # Given bob's app reported foreground with a lease ending at NOON + delta
    state = AppState(state="foreground", foreground_until=NOON_MS + until_delta_ms)
    recipient = replace(bob(), state=state)
    message = event(offlineUsers=offline_users) if offline_users is not None else event()
    # When a message comes at noon, Then he is skipped only while the lease holds
    assert foreground_now(state, NOON_UTC) is (until_delta_ms > 0)
    assert decide(message, recipient, now=NOON_UTC).skip_reason == expected
    # and a forced push changes nothing about it (the app shows the message itself)
    forced = event(forcePush=True, offlineUsers=offline_users) if offline_users else event(forcePush=True)
    assert decide(forced, recipient, now=NOON_UTC).skip_reason == expected


def test_conversations_of_a_message() -> None:
    # A group message is decided by its group and by the sender's one-to-one conversation
    assert conversations_of(group_event()) == (("group", "g1"), ("c2c", "alice"))
    # A one-to-one message by that conversation only
    assert conversations_of(event()) == (("c2c", "alice"),)


# (setting until relative to now in s, in force?)
@pytest.mark.parametrize(
    ("until_delta_s", "expected"),
    [(None, True), (3600, True), (1, True), (0, False), (-1, False)],
    ids=["until-changed", "an-hour-left", "a-second-left", "ends-now", "lapsed"],
)
def test_a_setting_lapses_by_itself(until_delta_s: int | None, expected: bool) -> None:
    until = None if until_delta_s is None else NOON_S + until_delta_s
    muted = setting("group", "g1", "none", until)
    assert in_force(muted, NOON_UTC) is expected
    reason = decide(group_event(), bob_with(muted), now=NOON_UTC).skip_reason
    assert reason == (SkipReason.MUTED_GROUP if expected else None)


# API.md "Conversation settings" and "Mentions": (group setting, sender's c2c setting, the message,
# expected). `group(...)` builds a group message, `c2c(...)` a one-to-one one.
def group(**extra: Any) -> MessageEvent:
    return group_event(**extra)


def c2c(**extra: Any) -> MessageEvent:
    return event(**extra)


BOB_MENTIONED = {"mentions": {"userIds": ["bob"]}}
ALL_MENTIONED = {"mentions": {"all": True}}
CAROL_MENTIONED = {"mentions": {"userIds": ["carol"]}}

REMIND_CASES: list[tuple[str, str | None, str | None, MessageEvent, SkipReason | None]] = [
    ("group-all", "all", None, group(), None),
    ("group-mentionOnly-not-mentioned", "mentionOnly", None, group(), SkipReason.MENTION_ONLY),
    ("group-mentionOnly-other-mentioned", "mentionOnly", None, group(**CAROL_MENTIONED), "mentionOnly"),
    ("group-mentionOnly-mentioned", "mentionOnly", None, group(**BOB_MENTIONED), None),
    ("group-mentionOnly-at-all", "mentionOnly", None, group(**ALL_MENTIONED), None),
    ("group-mentionOnly-forced", "mentionOnly", None, group(forcePush=True), None),
    ("group-none", "none", None, group(), SkipReason.MUTED_GROUP),
    ("group-none-mentioned", "none", None, group(**BOB_MENTIONED), SkipReason.MUTED_GROUP),
    ("group-none-at-all", "none", None, group(**ALL_MENTIONED), SkipReason.MUTED_GROUP),
    ("group-none-forced", "none", None, group(forcePush=True), None),
    ("c2c-mentionOnly", None, "mentionOnly", c2c(), SkipReason.MENTION_ONLY),
    ("c2c-mentionOnly-mentions-ignored", None, "mentionOnly", c2c(**BOB_MENTIONED), "mentionOnly"),
    ("c2c-mentionOnly-forced", None, "mentionOnly", c2c(forcePush=True), None),
    ("c2c-mentionOnly-is-not-a-group-rule", None, "mentionOnly", group(), None),
    ("c2c-none", None, "none", c2c(), SkipReason.MUTED_USER),
    ("c2c-none-mutes-in-groups", None, "none", group(**BOB_MENTIONED), SkipReason.MUTED_USER),
    ("c2c-none-other-sender", None, "none", c2c(sender={"userId": "carol"}), None),
    ("group-none-wins-over-c2c-none", "none", "none", group(), SkipReason.MUTED_GROUP),
    ("c2c-none-wins-over-group-mentionOnly", "mentionOnly", "none", group(), SkipReason.MUTED_USER),
]


@pytest.mark.parametrize(
    ("group_remind", "c2c_remind", "message", "expected"),
    [c[1:] for c in REMIND_CASES],
    ids=[c[0] for c in REMIND_CASES],
)
def test_conversation_settings_and_mentions(
    group_remind: str | None, c2c_remind: str | None, message: MessageEvent, expected: SkipReason | None
) -> None:
    # Given bob's settings for group g1 and for his one-to-one conversation with alice
    settings = []
    if group_remind is not None:
        settings.append(setting("group", "g1", group_remind))
    if c2c_remind is not None:
        settings.append(setting("c2c", "alice", c2c_remind))
    # When alice's message comes, Then the contract's reason (or a push)
    assert decide(message, bob_with(*settings), now=NOON_UTC).skip_reason == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"config": dnd(0, 24)}, SkipReason.DND),
        ({"config": {"openPush": False}}, SkipReason.OPEN_PUSH_OFF),
        ({"logged_out": True}, SkipReason.LOGGED_OUT),
        ({"state": "foreground"}, SkipReason.FOREGROUND),
    ],
    ids=["dnd", "openPushOff", "loggedOut", "foreground"],
)
def test_a_mention_gets_through_mention_only_and_nothing_else(
    given: dict[str, Any], expected: SkipReason
) -> None:
    # Given bob set g1 to mentionOnly and is also in this situation
    recipient = bob_with(setting("group", "g1", "mentionOnly"), **given)
    # When a message mentions him (by name or @all), Then the other rule still stops it
    for mentions in (BOB_MENTIONED, ALL_MENTIONED):
        assert decide(group(**mentions), recipient, now=NOON_UTC).skip_reason == expected
    # and only a forced push gets through do-not-disturb
    forced = decide(group(forcePush=True, **BOB_MENTIONED), recipient, now=NOON_UTC).skip_reason
    assert forced == (None if expected == SkipReason.DND else expected)


def test_a_timed_setting_lapses_back_to_all() -> None:
    # Given bob set g1 to mentionOnly for an hour
    recipient = bob_with(setting("group", "g1", "mentionOnly", NOON_S + 3600))
    # Then unmentioned messages are skipped during that hour and pushed from its end on
    assert decide(group(), recipient, now=NOON_UTC).skip_reason == SkipReason.MENTION_ONLY
    later = datetime.fromtimestamp(NOON_S + 3600, UTC)
    assert decide(group(), recipient, now=later).pushed


@pytest.mark.parametrize(
    ("legacy", "stored", "expected"),
    [
        ({"mutedGroups": ["g1"]}, None, SkipReason.MUTED_GROUP),
        ({"mutedUsers": ["alice"]}, None, SkipReason.MUTED_USER),
        ({"mutedGroups": ["g1"]}, setting("group", "g1", "none", NOON_S - 1), None),
        ({"mutedGroups": ["g1"]}, setting("group", "g1", "mentionOnly"), SkipReason.MENTION_ONLY),
    ],
    ids=["old-group-set", "old-user-set", "stored-lapsed-replaces-old", "stored-replaces-old"],
)
def test_mutes_kept_the_old_way_are_permanent_none(
    legacy: dict[str, Any], stored: ConversationSetting | None, expected: SkipReason | None
) -> None:
    recipient = bob_with(*([stored] if stored else []), config=legacy)
    assert decide(group(), recipient, now=NOON_UTC).skip_reason == expected


def test_muted_lists_are_the_none_settings_in_force() -> None:
    # Given settings of every kind, some timed, some lapsed, and an old-style mute set
    settings = [
        setting("group", "g1", "none"),
        setting("group", "g2", "none", NOON_S + 60),
        setting("group", "g3", "none", NOON_S),  # lapsed just now
        setting("group", "g4", "mentionOnly"),
        setting("c2c", "carol", "none"),
        setting("c2c", "dave", "mentionOnly", NOON_S + 60),
    ]
    legacy = PushConfig.model_validate({"mutedGroups": ["g0", "g3"], "mutedUsers": ["erin"]})
    # Then mutedGroups / mutedUsers list exactly the `none` in force, old-style ones included
    groups, users = muted_lists(settings, legacy, NOON_UTC)
    assert groups == ["g0", "g1", "g2"]
    assert users == ["carol", "erin"]
    # And remind_type agrees for each conversation
    recipient = bob_with(*settings, config=legacy.dump())
    assert [remind_type(recipient, "group", g, NOON_UTC) for g in ("g0", "g1", "g2", "g3", "g4", "g5")] == [
        "none",
        "none",
        "none",
        "all",
        "mentionOnly",
        "all",
    ]
