"""Who gets pushed (SPEC sections 4 and 5): one rule per function, each naming why a recipient is skipped.

The rules are pure: they read the message event, the recipient's stored config, app state and devices,
and ``now`` (passed in, never read from the clock). ``decide`` runs them in one fixed order and the first
reason wins, so "why didn't user X get message Y?" always has one answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from chalicelib.models.elems import CustomElem
from chalicelib.models.message import MessageEvent
from chalicelib.models.push_config import (
    AppState,
    ConversationKind,
    ConversationSetting,
    DoNotDisturb,
    PushConfig,
    RemindType,
)


class SkipReason(StrEnum):
    """Why a recipient gets no push for a message; the values are what the deliveries API reports."""

    SENDER = "sender"
    ONLINE_USER_ONLY = "onlineUserOnly"
    DISABLE_PUSH = "disablePush"
    # Handled after the message's expiration (a call's timeout, offlinePushInfo.expiresIn): too late.
    EXPIRED = "expired"
    # A call invitation whose cancel was fanned out before this chunk was sent (send path, not a rule).
    CALL_CANCELLED = "callCancelled"
    # Listed in the event's to.onlineUsers: settled at fan-out, nothing of theirs read (not a rule).
    ONLINE = "online"
    CUSTOM_WITHOUT_DESC = "customWithoutDesc"
    LOGGED_OUT = "loggedOut"
    FOREGROUND = "foreground"
    NO_DEVICE = "noDevice"
    OPEN_PUSH_OFF = "openPushOff"
    MUTED_GROUP = "mutedGroup"
    MUTED_USER = "mutedUser"
    MENTION_ONLY = "mentionOnly"
    DND = "dnd"


class DeviceSkipReason(StrEnum):
    """Why one of a recipient's devices is left out while the others may still be pushed."""

    PUSH_DISABLED = "pushDisabled"  # registered with pushEnabled false: Tencent setAPNS(nil)
    # APNs refused the token before (BadDeviceToken, DeviceTokenNotForTopic).
    INVALID_TOKEN = "invalidToken"  # noqa: S105 (a reason, not a password)
    # A PushKit (voip) token: it gets call events only, never an ordinary message.
    VOIP_TOKEN = "voipToken"  # noqa: S105
    # An alert token of a user who has an active voip token: the call rings there (CallKit) only.
    CALL_ON_VOIP = "callOnVoip"


@dataclass(frozen=True, slots=True)
class DeviceView:
    """What policy needs to know about one registered device."""

    token: str
    certificate_id: int
    push_enabled: bool
    invalid_reason: str | None = None
    kind: str = "alert"  # "voip" = a PushKit token

    @property
    def active(self) -> bool:
        return self.push_enabled and self.invalid_reason is None


@dataclass(frozen=True, slots=True)
class Recipient:
    """One candidate recipient, as read from the store in a batch."""

    user_id: str
    config: PushConfig
    state: AppState
    devices: tuple[DeviceView, ...]
    logged_out: bool = False
    # The stored settings of the conversations this message concerns (its group, its sender), as read;
    # lapsed ones are ignored by the rules.
    conversations: tuple[ConversationSetting, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict for one recipient: the devices to push, or the reason nobody is pushed."""

    user_id: str
    targets: tuple[DeviceView, ...]
    skip_reason: SkipReason | None
    device_skips: tuple[tuple[str, str], ...]  # (token, DeviceSkipReason), also reported when skipped

    @property
    def pushed(self) -> bool:
        return self.skip_reason is None


Rule = Callable[[MessageEvent, Recipient, datetime], SkipReason | None]


def split_devices(
    devices: tuple[DeviceView, ...], *, call: bool = False
) -> tuple[tuple[DeviceView, ...], tuple[tuple[str, str], ...]]:
    """The devices that can be pushed, and (token, reason) for the ones that cannot.

    ``call``: the message is a call event. Voip (PushKit) tokens get call events only; a user with
    an active voip token gets the call there only (their alert tokens are skipped ``callOnVoip``),
    a user without one gets it on their alert tokens."""
    on_voip = call and any(d.kind == "voip" and d.active for d in devices)
    targets: list[DeviceView] = []
    skips: list[tuple[str, str]] = []
    for device in devices:
        # An invalid token is named first: turning push back on would not help it.
        if device.invalid_reason is not None:
            skips.append((device.token, DeviceSkipReason.INVALID_TOKEN))
        elif not device.push_enabled:
            skips.append((device.token, DeviceSkipReason.PUSH_DISABLED))
        elif device.kind == "voip" and not call:
            skips.append((device.token, DeviceSkipReason.VOIP_TOKEN))
        elif device.kind != "voip" and on_voip:
            skips.append((device.token, DeviceSkipReason.CALL_ON_VOIP))
        else:
            targets.append(device)
    return tuple(targets), tuple(skips)


def in_dnd_window(dnd: DoNotDisturb, now: datetime) -> bool:
    """Whether ``now`` falls in the recipient's quiet hours, read on their wall clock.

    The window is ``[start, end)`` in whole hours of local time in ``dnd.timezone`` (DST-aware):
    start < end is the same day (9 -> 17); start > end crosses midnight (22 -> 7 = 22:00-06:59);
    0 -> 24 is all day; start == end is an empty window, no quiet hours (Agora: 00:00-00:00 turns the
    do-not-disturb window off). 24 stands for midnight at the end of the day, so 24 -> 7 = 0 -> 7.
    """
    if not dnd.enabled:
        return False
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(timezone.utc))")
    hour = now.astimezone(ZoneInfo(dnd.timezone)).hour
    start, end = dnd.start_hour, dnd.end_hour
    if start == end:
        return False
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


def conversations_of(event: MessageEvent) -> tuple[tuple[ConversationKind, str], ...]:
    """The conversation settings that decide this message for every recipient, as (kind, id): a group
    message its group and the sender's one-to-one conversation (a muted user stays muted in groups),
    a one-to-one message that conversation. The send path reads exactly these, per recipient."""
    sender: tuple[ConversationKind, str] = ("c2c", event.sender.user_id)
    group_id = event.group_id
    return (("group", group_id), sender) if group_id is not None else (sender,)


def in_force(setting: ConversationSetting, now: datetime) -> bool:
    """A setting holds until ``until`` (epoch seconds) and lapses by itself at that instant: nothing has
    to run to end it, every send compares with its own ``now``."""
    return setting.until is None or setting.until > now.timestamp()


def remind_type(
    recipient: Recipient, kind: ConversationKind, conversation_id: str, now: datetime
) -> RemindType:
    """The recipient's setting for one conversation now: a stored setting in force, else a mute kept
    the old way (the mutedGroups / mutedUsers sets of the user item = a permanent ``none``), else
    ``all``."""
    for setting in recipient.conversations:
        if setting.kind == kind and setting.conversation_id == conversation_id:
            # A stored setting replaces an old-style mute of the same conversation, lapsed or not.
            return setting.remind_type if in_force(setting, now) else "all"
    legacy = recipient.config.muted_groups if kind == "group" else recipient.config.muted_users
    return "none" if conversation_id in legacy else "all"


def muted_lists(
    settings: list[ConversationSetting], config: PushConfig, now: datetime
) -> tuple[list[str], list[str]]:
    """mutedGroups and mutedUsers as the API shows them: the ``none`` settings in force (timed ones
    too, while they hold), plus mutes kept the old way that no stored setting replaces."""
    out: dict[str, set[str]] = {"group": set(), "c2c": set()}
    stored = {(s.kind, s.conversation_id) for s in settings}
    for s in settings:
        if s.remind_type == "none" and in_force(s, now):
            out[s.kind].add(s.conversation_id)
    for kind, legacy in (("group", config.muted_groups), ("c2c", config.muted_users)):
        out[kind].update(c for c in legacy if (kind, c) not in stored)
    return sorted(out["group"]), sorted(out["c2c"])


def foreground_now(state: AppState, now: datetime) -> bool:
    """Foreground is a lease: it holds until ``foregroundUntil`` (epoch ms), then the user counts as
    offline, so an app killed or crashed in the foreground is pushed again (seed 003). A state without
    a lease end (never stored that way) holds."""
    if state.state != "foreground":
        return False
    return state.foreground_until is None or state.foreground_until > now.timestamp() * 1000


# --- the rules: each returns its reason when it applies, else None ------------------------------


def check_sender(event: MessageEvent, recipient: Recipient, now: datetime) -> SkipReason | None:
    """The sender is never pushed their own message (the fan-out drops them too)."""
    return SkipReason.SENDER if recipient.user_id == event.sender.user_id else None


def check_online_user_only(event: MessageEvent, recipient: Recipient, now: datetime) -> SkipReason | None:
    """Tencent onlineUserOnly: the message is for online users only and is never pushed offline."""
    return SkipReason.ONLINE_USER_ONLY if event.online_user_only else None


def check_disable_push(event: MessageEvent, recipient: Recipient, now: datetime) -> SkipReason | None:
    """offlinePushInfo.disablePush: the sender asked for no push for this message."""
    return SkipReason.DISABLE_PUSH if event.offline_push_info.disable_push else None


def check_expired(event: MessageEvent, recipient: Recipient, now: datetime) -> SkipReason | None:
    """Handled at or after the message's apns-expiration (a call's sendTime + timeoutSeconds, or
    sendTime + offlinePushInfo.expiresIn): APNs would drop it anyway, and an invitation that rings
    after its caller gave up is worse than none."""
    return SkipReason.EXPIRED if event.expired(now.timestamp()) else None


def check_custom_without_desc(event: MessageEvent, recipient: Recipient, now: datetime) -> SkipReason | None:
    """A custom element the service cannot read, and no text to show for it: not pushed.

    Seed (Tencent): "自定义 Elem | 显示 desc 字段内容,若自定义消息 desc 为空,则该消息不进行离线推送".
    offlinePushInfo.desc replaces the whole body, so it covers every element; otherwise each custom
    element needs its own desc (Tencent TIMCustomElem.desc). One bare custom element is enough to skip
    the message, even next to text: the seed says the message is not pushed.
    """
    if event.offline_push_info.desc is not None or event.call is not None:
        return None  # a call shows its own placeholder, whatever elements come with it
    for elem in event.elems:
        if isinstance(elem, CustomElem) and elem.desc is None:
            return SkipReason.CUSTOM_WITHOUT_DESC
    return None


def check_logged_out(event: MessageEvent, recipient: Recipient, now: datetime) -> SkipReason | None:
    """A user who logged out or was kicked offline gets no offline push (seed: 正常或强制退出均收不到)."""
    return SkipReason.LOGGED_OUT if recipient.logged_out else None


def check_foreground(event: MessageEvent, recipient: Recipient, now: datetime) -> SkipReason | None:
    """An app in the foreground gets the message over its long connection, unless the IM server says the
    user is offline (``offlineUsers``) or the foreground lease has passed. "background" and "unknown"
    (never reported) both count as offline.
    """
    if not foreground_now(recipient.state, now):
        return None
    if event.offline_users is not None and recipient.user_id in event.offline_users:
        return None
    return SkipReason.FOREGROUND


def check_no_device(event: MessageEvent, recipient: Recipient, now: datetime) -> SkipReason | None:
    """No registered device, or every device is individually skipped (push disabled, invalid token)."""
    targets, _ = split_devices(recipient.devices, call=event.call is not None)
    return None if targets else SkipReason.NO_DEVICE


def check_open_push_off(event: MessageEvent, recipient: Recipient, now: datetime) -> SkipReason | None:
    """The user turned offline push off (Tencent openPush = 2); a forced push does not override it."""
    return None if recipient.config.open_push else SkipReason.OPEN_PUSH_OFF


def check_muted_group(event: MessageEvent, recipient: Recipient, now: datetime) -> SkipReason | None:
    """The user set this group to ``none`` (Agora silent mode NONE, updatePushServiceForGroups /
    noPushGroups), for good or until a time that has not come: a mention does not get through."""
    group_id = event.group_id
    if group_id is not None and remind_type(recipient, "group", group_id, now) == "none":
        return SkipReason.MUTED_GROUP
    return None


def check_muted_user(event: MessageEvent, recipient: Recipient, now: datetime) -> SkipReason | None:
    """The user set the one-to-one conversation with the sender to ``none`` (Agora
    updatePushServiceForUsers / noPushUIds): none of the sender's messages, in any conversation."""
    if remind_type(recipient, "c2c", event.sender.user_id, now) == "none":
        return SkipReason.MUTED_USER
    return None


def check_mention_only(event: MessageEvent, recipient: Recipient, now: datetime) -> SkipReason | None:
    """``mentionOnly`` (Agora MENTION_ONLY, Tencent "receive but only @ notifies"): a group set so pushes
    only messages that mention the recipient (listed, or @all); a one-to-one conversation set so pushes
    nothing (a one-to-one message mentions nobody). The sender's c2c ``mentionOnly`` concerns that
    conversation only, not the sender's messages in groups. A call addresses each recipient personally:
    its invitation (and the cancel that replaces it) gets through mentionOnly, as a mention does."""
    if event.call is not None:
        return None
    group_id = event.group_id
    if group_id is not None:
        if remind_type(recipient, "group", group_id, now) != "mentionOnly":
            return None
        return None if event.mention_of(recipient.user_id) else SkipReason.MENTION_ONLY
    if remind_type(recipient, "c2c", event.sender.user_id, now) == "mentionOnly":
        return SkipReason.MENTION_ONLY
    return None


def check_dnd(event: MessageEvent, recipient: Recipient, now: datetime) -> SkipReason | None:
    """Do-not-disturb hours in the recipient's time zone (Agora disableOfflinePushStart:end:)."""
    return SkipReason.DND if in_dnd_window(recipient.config.do_not_disturb, now) else None


# The order the rules run in; the first that applies is the reported reason. Facts about the message
# come first (they hold for every recipient), then whether the user can be reached at all (logged in,
# offline, has a device), then the user's own choices, the ones a forced push overrides last.
RULES: tuple[tuple[SkipReason, Rule], ...] = (
    (SkipReason.SENDER, check_sender),
    (SkipReason.ONLINE_USER_ONLY, check_online_user_only),
    (SkipReason.DISABLE_PUSH, check_disable_push),
    (SkipReason.EXPIRED, check_expired),
    (SkipReason.CUSTOM_WITHOUT_DESC, check_custom_without_desc),
    (SkipReason.LOGGED_OUT, check_logged_out),
    (SkipReason.FOREGROUND, check_foreground),
    (SkipReason.NO_DEVICE, check_no_device),
    (SkipReason.OPEN_PUSH_OFF, check_open_push_off),
    (SkipReason.MUTED_GROUP, check_muted_group),
    (SkipReason.MUTED_USER, check_muted_user),
    (SkipReason.MENTION_ONLY, check_mention_only),
    (SkipReason.DND, check_dnd),
)

# What a forced push (Agora em_force_notification) ignores. Seed (Agora): "设置强制推送后,用户发送消息时会
# 忽略接收方的免打扰设置" -- the receiver's do-not-disturb settings, which in Agora's push manager are the
# quiet hours and the per-group / per-user "免打扰" lists, so also the weaker mentionOnly (a forced push gets
# through `none`, so it gets through "only when mentioned" too). Not openPush off (the user turned push off
# entirely), not logout, not a foreground app, not the message's own onlineUserOnly / disablePush.
FORCE_PUSH_OVERRIDES: frozenset[SkipReason] = frozenset(
    {SkipReason.MUTED_GROUP, SkipReason.MUTED_USER, SkipReason.MENTION_ONLY, SkipReason.DND}
)

# Rules that depend on the message alone: the fan-out can stop before reading any recipient.
MESSAGE_RULES: tuple[tuple[SkipReason, Rule], ...] = tuple(
    rule
    for rule in RULES
    if rule[0] in {SkipReason.ONLINE_USER_ONLY, SkipReason.DISABLE_PUSH, SkipReason.CUSTOM_WITHOUT_DESC}
)


def message_skip_reason(
    event: MessageEvent, *, now: datetime | None = None, retry: bool = False
) -> SkipReason | None:
    """The reason nobody at all is pushed for this message, or None: lets the fan-out stop early.
    With ``now`` (the send path) also ``expired``; ``retry`` = a later attempt of a chunk, which is
    too late for an expiresIn 0 ("now or never") message."""
    nobody = Recipient(user_id="", config=PushConfig(), state=AppState(), devices=())
    sent = datetime.fromtimestamp(event.send_time, tz=UTC)  # unused by these rules
    for _, rule in MESSAGE_RULES:
        reason = rule(event, nobody, sent)
        if reason is not None:
            return reason
    if now is not None and event.expired(now.timestamp(), retry=retry):
        return SkipReason.EXPIRED
    return None


def decide(event: MessageEvent, recipient: Recipient, *, now: datetime) -> Decision:
    """Whether ``recipient`` is pushed for ``event`` at ``now``, and on which devices.

    Runs the rules in ``RULES`` order and reports the first that applies: sender, onlineUserOnly,
    disablePush, expired, customWithoutDesc, loggedOut, foreground, noDevice, openPushOff, mutedGroup,
    mutedUser, mentionOnly, dnd. A forced push skips the rules in ``FORCE_PUSH_OVERRIDES`` (mutedGroup,
    mutedUser, mentionOnly, dnd). Devices skipped one by one are reported in ``device_skips`` either way.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (e.g. datetime.now(timezone.utc))")
    targets, device_skips = split_devices(recipient.devices, call=event.call is not None)
    for name, rule in RULES:
        if event.force_push and name in FORCE_PUSH_OVERRIDES:
            continue
        reason = rule(event, recipient, now)
        if reason is not None:
            return Decision(recipient.user_id, (), reason, device_skips)
    return Decision(recipient.user_id, targets, None, device_skips)
