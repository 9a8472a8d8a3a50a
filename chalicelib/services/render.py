"""What a notification says (SPEC section 5, Tencent's push format with Agora's display settings).

``render`` turns a message event and the recipient's language, display style and sounds into a
``Notification``: alert title and body, sound, thread, and the IDs the app needs to open the chat.
Pure and total: whether the message is pushed at all is policy's business, not this module's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from chalicelib.apns.ids import call_collapse_id
from chalicelib.models.elems import (
    CustomElem,
    FaceElem,
    FileElem,
    ImageElem,
    LocationElem,
    SoundElem,
    TextElem,
    VideoElem,
)
from chalicelib.models.message import CallInfo, GroupTarget, Mention, MessageEvent
from chalicelib.models.notification import Notification
from chalicelib.models.push_config import SOUND_DEFAULT, SOUND_NONE, DisplayStyle, Language, PushConfig
from chalicelib.models.settings import DEFAULT_CONVENTIONS
from chalicelib.services import tuikit

# Seeds: zh "语音 Elem 显示 [语音] ..."; en "Audio Elem | Display `[audio]`". Video, location and
# face are not in the seeds' table; SPEC section 5 names them.
PLACEHOLDERS: dict[str, dict[type, str]] = {
    "zh": {
        SoundElem: "[语音]",
        FileElem: "[文件]",
        ImageElem: "[图片]",
        VideoElem: "[视频]",
        LocationElem: "[位置]",
        FaceElem: "[表情]",
    },
    "en": {
        SoundElem: "[audio]",
        FileElem: "[file]",
        ImageElem: "[image]",
        VideoElem: "[video]",
        LocationElem: "[location]",
        FaceElem: "[sticker]",
    },
}

# Agora: "AgoraPushDisplayStyleSimpleBanner: 显示"您有一条新消息"".
SIMPLE_BANNER: dict[str, str] = {"zh": "您有一条新消息", "en": "You have a new message"}


# Call events (TUIKit's call pushes): what an invitation and its cancellation read as.
CALL_PLACEHOLDERS: dict[str, dict[tuple[str, str], str]] = {
    "zh": {
        ("audio", "invite"): "[语音通话]",
        ("video", "invite"): "[视频通话]",
        ("audio", "cancel"): "[通话已取消]",
        ("video", "cancel"): "[通话已取消]",
    },
    "en": {
        ("audio", "invite"): "[audio call]",
        ("video", "invite"): "[video call]",
        ("audio", "cancel"): "[call cancelled]",
        ("video", "cancel"): "[call cancelled]",
    },
}

# What a recalled message's replacement says in place of its content (Tencent/WeChat wording).
RECALLED: dict[str, str] = {"zh": "[消息已撤回]", "en": "[Message recalled]"}

# Tencent's @ reminders as the IM apps show them; "me" wins over "all" for a user who is both.
MENTION_PREFIXES: dict[str, dict[str, str]] = {
    "zh": {"me": "[有人@我]", "all": "[@所有人]"},
    "en": {"me": "[@Me]", "all": "[@All]"},
}


def elem_text(elem: object, language: Language) -> str:
    """What one element contributes to the body: text as is, a placeholder, a custom element's desc."""
    if isinstance(elem, TextElem):
        return elem.text
    if isinstance(elem, CustomElem):
        return elem.desc or ""  # without desc, policy skips the message (customWithoutDesc)
    return PLACEHOLDERS[language][type(elem)]


def content(event: MessageEvent, language: Language) -> str:
    """The elements' texts concatenated, in order (Tencent: "推送内容部分由消息体中各个 Elem 内容组成");
    a call event's placeholder instead ([语音通话], [通话已取消] ...), whatever elements come with it."""
    if event.call is not None:
        return call_placeholder(event.call, language)
    return "".join(elem_text(elem, language) for elem in event.elems)


def call_placeholder(call: CallInfo, language: Language) -> str:
    return CALL_PLACEHOLDERS[language][(call.media, call.action)]


def call_object(event: MessageEvent) -> dict[str, Any] | None:
    """The payload's top-level ``call``: what the app needs to ring (or stop ringing) and join."""
    call = event.call
    if call is None:
        return None
    return {
        "callId": call.call_id,
        "media": call.media,
        "action": call.action,
        "roomId": call.room_id,
        "data": call.data,
        "sendTime": event.send_time,
        "timeoutSeconds": call.timeout_seconds,
    }


def _named(value: str | None) -> str | None:
    # A whitespace-only name would render as "  :hi"; treat it as no name.
    return value if value is not None and value.strip() else None


def sender_name(event: MessageEvent, sender_display_name: str | None) -> str | None:
    """The name before the content, or None.

    One-to-one: the sender's push-config displayName (Agora updatePushDisplayName) else nickname.
    Group: name card first (seed: "名称展示优先级为消息发送者的 群名片>昵称"), then displayName standing
    for the nickname as in one-to-one messages, then nickname; none -> no name ("如果都没有,则不展示").
    """
    display = _named(sender_display_name)
    nickname = _named(event.sender.nickname)
    if isinstance(event.to, GroupTarget):
        return _named(event.sender.name_card) or display or nickname
    return display or nickname


def summary(
    event: MessageEvent, *, language: Language, sender_display_name: str | None, text: str | None = None
) -> str:
    """The Tencent body: ``昵称:内容`` / ``名称(群名):内容`` (zh) and ``Nickname: content`` /
    ``Name (group name): content`` (en), exactly as each language's seed writes it.

    A missing name drops only the name: a group message from a sender with no name card or nickname
    reads ``(群名):内容``; with no group name either, the content alone.
    """
    text = content(event, language) if text is None else text
    name = sender_name(event, sender_display_name)
    group_name = _named(event.to.group_name) if isinstance(event.to, GroupTarget) else None
    space = " " if language == "en" else ""
    label: str | None = name
    if group_name is not None:
        label = f"{name}{space}({group_name})" if name is not None else f"({group_name})"
    return text if label is None else f"{label}:{space}{text}"


def mention_prefix(mention: Mention | None, language: Language) -> str:
    """What stands before the body of a mentioned recipient: [有人@我] / [@Me] when named, [@所有人] /
    [@All] when only @all applies, nothing otherwise."""
    return "" if mention is None else MENTION_PREFIXES[language][mention]


def resolve_sound(message_sound: str | None, user_sound: str | None) -> str | None:
    """Per-message sound > the recipient's c2c/group sound > "default"; "push.no_sound" -> no sound."""
    sound = message_sound or user_sound or SOUND_DEFAULT
    return None if sound == SOUND_NONE else sound


def thread_id(event: MessageEvent) -> str:
    """The conversation as the recipient sees it, in Tencent's conversationID form, so iOS groups the
    notifications of one chat together: ``group_<groupId>``, or ``c2c_<senderId>`` for one-to-one
    (from the recipient's side the conversation is the one with the sender).
    """
    if isinstance(event.to, GroupTarget):
        return f"group_{event.to.group_id}"
    return f"c2c_{event.sender.user_id}"


def render(
    event: MessageEvent,
    *,
    language: Language = "zh",
    display_style: DisplayStyle = "messageSummary",
    recipient_c2c_sound: str | None = None,
    recipient_group_sound: str | None = None,
    sender_display_name: str | None = None,
    mention: Mention | None = None,
    conventions: Sequence[str] = DEFAULT_CONVENTIONS,
) -> Notification:
    """The notification one recipient sees for ``event``.

    Body precedence: the recipient's ``simpleBanner`` ("您有一条新消息" / "You have a new message",
    it hides whatever the message says, desc included) > offlinePushInfo.desc (replaces the whole
    body: "desc 设置后,推送内容会变成 desc 内容") > the Tencent summary. offlinePushInfo.title is
    the alert title on top of that body ("title 设置后,会在默认的推送内容上多展示 title 内容").
    A mention's prefix stands before whichever body it is: ``[有人@我]Lead(Dev):hi``.

    A call event reads as its placeholder with the usual name prefix (``Denny:[语音通话]``; simpleBanner:
    the placeholder alone, which tells nothing of a conversation); desc replaces an invitation's body,
    never a cancellation's. An invitation is time-sensitive; a cancellation replaces it (same
    collapse-id ``call-<callId>``) silently, without a badge.

    ``simpleBanner`` hides what the message says, so it shows no title, subtitle or image either,
    whatever offlinePushInfo says. ``conventions`` (the app's payloadConventions) choose the
    payload's keys; with ``tpns`` and no ext the notification carries TUIKit's entity.
    """
    info = event.offline_push_info
    call = event.call
    cancel = call is not None and call.action == "cancel"
    if call is not None and display_style == "simpleBanner":
        body = call_placeholder(call, language)
    elif display_style == "simpleBanner":
        body = SIMPLE_BANNER[language]
    elif info.desc is not None and not cancel:
        body = info.desc
    else:
        body = summary(event, language=language, sender_display_name=sender_display_name)
    body = mention_prefix(mention, language) + body
    banner = display_style == "simpleBanner"
    is_group = isinstance(event.to, GroupTarget)
    entity = None
    if "tpns" in conventions and info.ext is None:
        entity = tuikit.entity(event, content(event, language) or info.desc or "")
    sound = resolve_sound(info.sound, recipient_group_sound if is_group else recipient_c2c_sound)
    interruption = info.interruption_level
    if call is not None and not cancel and interruption is None:
        interruption = "time-sensitive"
    return Notification(
        title=None if banner else info.title,
        body=body,
        sound=None if cancel else sound,
        thread_id=thread_id(event),
        mutable_content=info.mutable_content,
        ext=info.ext,
        sender_id=event.sender.user_id,
        group_id=event.group_id,
        message_id=event.message_id,
        priority="high" if call is not None else event.priority,
        ignore_badge=info.ignore_badge or cancel,
        subtitle=None if banner else info.subtitle,
        category=info.category,
        interruption_level=interruption,
        relevance_score=info.relevance_score,
        image=None if banner else info.image,
        call=call_object(event),
        collapse_id=call_collapse_id(call.call_id) if call is not None else None,
        expiration=event.expiration,
        conventions=tuple(conventions),
        entity=entity,
    )


def render_for(
    event: MessageEvent,
    config: PushConfig,
    *,
    sender_display_name: str | None,
    mention: Mention | None = None,
    conventions: Sequence[str] = DEFAULT_CONVENTIONS,
) -> Notification:
    """``render`` with the recipient's settings taken from their stored push config; ``mention`` is how
    the message mentions this recipient (``event.mention_of(user_id)``); ``conventions`` the app's."""
    return render(
        event,
        language=config.language,
        display_style=config.display_style,
        recipient_c2c_sound=config.c2c_sound,
        recipient_group_sound=config.group_sound,
        sender_display_name=sender_display_name,
        mention=mention,
        conventions=conventions,
    )


def render_recall(
    event: MessageEvent,
    config: PushConfig,
    *,
    sender_display_name: str | None,
    conventions: Sequence[str] = DEFAULT_CONVENTIONS,
) -> Notification:
    """The replacement of a recalled message: rendered as if its content were ``[消息已撤回]`` /
    ``[Message recalled]`` with the usual name prefix (``Denny:[消息已撤回]``,
    ``Lead(Dev):[消息已撤回]``); the recipient's ``simpleBanner`` shows the placeholder alone.
    offlinePushInfo.desc (which would show the recalled text) and the mention prefix are dropped, the
    title and ext stay; no sound. The caller sets the badge (one lower where the original counted)."""
    placeholder = RECALLED[config.language]
    if config.display_style == "simpleBanner":
        body = placeholder
    else:
        body = summary(
            event, language=config.language, sender_display_name=sender_display_name, text=placeholder
        )
    base = render_for(event, config, sender_display_name=sender_display_name, conventions=conventions)
    entity = base.entity
    if entity is not None and entity.get("action") == tuikit.ACTION_MESSAGE:
        entity = {**entity, "content": placeholder}
    return replace(base, body=body, sound=None, op="recall", entity=entity)


def render_edit(
    edited: MessageEvent,
    config: PushConfig,
    *,
    sender_display_name: str | None,
    mention: Mention | None = None,
    conventions: Sequence[str] = DEFAULT_CONVENTIONS,
) -> Notification:
    """The replacement of an edited message: ``edited`` (the original with the new elems and
    offlinePushInfo) by the usual rules, mention prefix included; no sound, no badge change
    (``ignore_badge``: the payload carries no badge key, the phone keeps its count)."""
    base = render_for(
        edited, config, sender_display_name=sender_display_name, mention=mention, conventions=conventions
    )
    return replace(base, sound=None, op="edit", ignore_badge=True)
