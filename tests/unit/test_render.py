"""What the notification says: tables taken from the seeds' push-format sections."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.models.message import MessageEvent
from chalicelib.models.notification import Notification
from chalicelib.models.push_config import Language, PushConfig
from chalicelib.services.render import render, render_for, resolve_sound


def event(**overrides: Any) -> MessageEvent:
    data: dict[str, Any] = {
        "messageId": "373360335316321408",
        "sendTime": 1763790000,
        "sender": {"userId": "denny", "nickname": "Denny"},
        "to": {"userId": "vinson"},
        "elems": [{"type": "text", "text": "Text message"}],
    }
    data.update(overrides)
    return MessageEvent.model_validate(data)


# (language, sender, displayName, expected body) -- seed: 昵称:内容 / "Nickname: content";
# "如果未设置昵称,则只显示内容" / "If the nickname is not specified, only the content is displayed."
C2C_CASES = [
    ("zh", {"userId": "denny", "nickname": "Denny"}, None, "Denny:Text message"),
    ("en", {"userId": "denny", "nickname": "Denny"}, None, "Denny: Text message"),
    ("zh", {"userId": "denny"}, None, "Text message"),
    ("en", {"userId": "denny", "nickname": ""}, None, "Text message"),
    ("zh", {"userId": "denny", "nickname": "   "}, None, "Text message"),
    ("zh", {"userId": "denny", "nickname": "Denny"}, "Boss", "Boss:Text message"),
    ("en", {"userId": "denny"}, "Boss", "Boss: Text message"),
    ("zh", {"userId": "denny", "nickname": "Denny", "nameCard": "Lead"}, None, "Denny:Text message"),
]


@pytest.mark.parametrize(
    ("language", "sender", "display_name", "expected"),
    C2C_CASES,
    ids=[
        "zh",
        "en",
        "no-nickname",
        "empty-nickname",
        "blank-nickname",
        "display-name",
        "display-only",
        "card",
    ],
)
def test_one_to_one_body(
    language: Language, sender: dict[str, Any], display_name: str | None, expected: str
) -> None:
    # Given a one-to-one text message from this sender
    message = event(sender=sender)
    # When rendered in the recipient's language, Then the body follows Tencent's one-to-one rule
    notification = render(message, language=language, sender_display_name=display_name)
    assert notification.body == expected


# (language, sender, groupName, displayName, expected body) -- seed: 名称(群名):内容, name =
# 群名片 > 昵称, "如果都没有,则不展示" / "Name (group name): content", "no name is displayed".
GROUP_CASES = [
    ("zh", {"nickname": "Alice", "nameCard": "Lead"}, "Dev", None, "Lead(Dev):hi"),
    ("zh", {"nickname": "Alice"}, "Dev", None, "Alice(Dev):hi"),
    ("zh", {}, "Dev", None, "(Dev):hi"),
    ("zh", {"nickname": "Alice"}, None, None, "Alice:hi"),
    ("zh", {}, None, None, "hi"),
    ("zh", {"nickname": "Alice"}, "Dev", "Boss", "Boss(Dev):hi"),
    ("zh", {"nickname": "Alice", "nameCard": "Lead"}, "Dev", "Boss", "Lead(Dev):hi"),
    ("en", {"nickname": "Alice", "nameCard": "Lead"}, "Dev", None, "Lead (Dev): hi"),
    ("en", {"nickname": "Alice"}, "Dev", None, "Alice (Dev): hi"),
    ("en", {}, "Dev", None, "(Dev): hi"),
    ("en", {"nickname": "Alice"}, None, None, "Alice: hi"),
    ("en", {}, None, None, "hi"),
    ("zh", {"nickname": "爱丽丝", "nameCard": "组长"}, "开发群", None, "组长(开发群):hi"),
]


@pytest.mark.parametrize(
    ("language", "sender", "group_name", "display_name", "expected"),
    GROUP_CASES,
    ids=[
        "zh-card",
        "zh-nickname",
        "zh-no-name",
        "zh-no-group-name",
        "zh-nothing",
        "zh-display-name",
        "zh-card-beats-display-name",
        "en-card",
        "en-nickname",
        "en-no-name",
        "en-no-group-name",
        "en-nothing",
        "zh-cjk",
    ],
)
def test_group_body(
    language: Language,
    sender: dict[str, Any],
    group_name: str | None,
    display_name: str | None,
    expected: str,
) -> None:
    # Given a group message from this sender in this group
    to: dict[str, Any] = {"groupId": "g1"}
    if group_name is not None:
        to["groupName"] = group_name
    message = event(sender={"userId": "alice", **sender}, to=to, elems=[{"type": "text", "text": "hi"}])
    # When rendered, Then the body follows Tencent's group rule
    body = render(message, language=language, sender_display_name=display_name).body
    assert body == expected


# Seed table: 文本 Elem 直接显示内容, 语音 [语音], 文件 [文件], 图片 [图片]; en [audio], [file], [image];
# video / location / face from SPEC section 5.
PLACEHOLDER_CASES = [
    ("sound", "[语音]", "[audio]"),
    ("file", "[文件]", "[file]"),
    ("image", "[图片]", "[image]"),
    ("video", "[视频]", "[video]"),
    ("location", "[位置]", "[location]"),
    ("face", "[表情]", "[sticker]"),
]


@pytest.mark.parametrize(("elem_type", "zh", "en"), PLACEHOLDER_CASES)
def test_element_placeholders(elem_type: str, zh: str, en: str) -> None:
    # Given a one-to-one message made of one non-text element
    message = event(elems=[{"type": elem_type}])
    # When rendered in each language, Then the body is the sender's name and the placeholder
    assert render(message, language="zh").body == f"Denny:{zh}"
    assert render(message, language="en").body == f"Denny: {en}"


def test_elements_are_concatenated_in_order() -> None:
    # Seed: "APNs 推送内容部分由消息体中各个 Elem 内容组成"
    message = event(
        elems=[
            {"type": "text", "text": "look "},
            {"type": "image"},
            {"type": "text", "text": " and listen "},
            {"type": "sound"},
            {"type": "custom", "desc": "[card]"},
        ]
    )
    assert render(message, language="zh").body == "Denny:look [图片] and listen [语音][card]"
    assert render(message, language="en").body == "Denny: look [image] and listen [audio][card]"


@pytest.mark.parametrize(
    ("overrides", "expected_title", "expected_body"),
    [
        # Tencent zh seed: info.title = @"Harvy"; info.desc = @"You hava a call invitation."
        (
            {"offlinePushInfo": {"title": "Harvy", "desc": "You hava a call invitation."}},
            "Harvy",
            "You hava a call invitation.",
        ),
        # title alone: shown on top of the default content, which is unchanged
        ({"offlinePushInfo": {"title": "push title"}}, "push title", "Denny:Text message"),
        # custom element: its push text is offlinePushInfo.desc
        (
            {"elems": [{"type": "custom", "data": "{}"}], "offlinePushInfo": {"desc": "New order"}},
            None,
            "New order",
        ),
        # Agora seed: em_apns_ext.em_push_content = "custom push content"
        ({"em_apns_ext": {"em_push_content": "custom push content"}}, None, "custom push content"),
        # a custom element's own desc (Tencent TIMCustomElem.desc) is its content
        ({"elems": [{"type": "custom", "desc": "a card"}]}, None, "Denny:a card"),
    ],
    ids=["title-and-desc", "title-only", "custom-desc", "agora-push-content", "element-desc"],
)
def test_offline_push_info_title_and_desc(
    overrides: dict[str, Any], expected_title: str | None, expected_body: str
) -> None:
    notification = render(event(**overrides), language="zh")
    assert notification.title == expected_title
    assert notification.body == expected_body


@pytest.mark.parametrize(
    ("language", "expected"), [("zh", "您有一条新消息"), ("en", "You have a new message")]
)
@pytest.mark.parametrize(
    "overrides",
    [{}, {"offlinePushInfo": {"desc": "secret"}}, {"to": {"groupId": "g1", "groupName": "Dev"}}],
    ids=["c2c", "desc", "group"],
)
def test_simple_banner_hides_the_content(
    overrides: dict[str, Any], language: Language, expected: str
) -> None:
    # Given the recipient chose Agora's SimpleBanner, When anything arrives, Then only the banner shows
    notification = render(event(**overrides), language=language, display_style="simpleBanner")
    assert notification.body == expected


# (message sound, recipient c2c sound, recipient group sound, group?, expected aps.sound)
SOUND_CASES = [
    (None, None, None, False, "default"),
    (None, "c2c.caf", "group.caf", False, "c2c.caf"),
    (None, "c2c.caf", "group.caf", True, "group.caf"),
    (None, None, "group.caf", False, "default"),
    ("msg.caf", "c2c.caf", "group.caf", False, "msg.caf"),
    ("msg.caf", "c2c.caf", "group.caf", True, "msg.caf"),
    ("push.no_sound", "c2c.caf", None, False, None),
    (None, "push.no_sound", None, False, None),
    ("default", "c2c.caf", None, False, "default"),
    ("msg.caf", "push.no_sound", None, False, "msg.caf"),
]


@pytest.mark.parametrize(
    ("message_sound", "c2c_sound", "group_sound", "is_group", "expected"),
    SOUND_CASES,
    ids=[
        "nothing-set",
        "c2c-user-sound",
        "group-user-sound",
        "group-sound-not-for-c2c",
        "message-beats-user",
        "message-beats-group-user",
        "message-no-sound",
        "user-no-sound",
        "message-default-beats-user",
        "message-beats-user-no-sound",
    ],
)
def test_sound_precedence(
    message_sound: str | None,
    c2c_sound: str | None,
    group_sound: str | None,
    is_group: bool,
    expected: str | None,
) -> None:
    # Given sounds at the message and recipient levels
    overrides: dict[str, Any] = {}
    if message_sound is not None:
        overrides["offlinePushInfo"] = {"sound": message_sound}
    if is_group:
        overrides["to"] = {"groupId": "g1"}
    # When rendered, Then per-message > user's c2c/group > default, and push.no_sound means no sound key
    notification = render(
        event(**overrides), recipient_c2c_sound=c2c_sound, recipient_group_sound=group_sound
    )
    assert notification.sound == expected
    assert resolve_sound(message_sound, group_sound if is_group else c2c_sound) == expected


def test_agora_custom_sound() -> None:
    # Agora seed: em_apns_ext.em_push_sound = "custom.caf" -> "sound":"custom.caf"
    assert render(event(em_apns_ext={"em_push_sound": "custom.caf"})).sound == "custom.caf"


def test_thread_id_is_the_conversation() -> None:
    # Given a one-to-one and a group message, Then the thread is Tencent's conversation ID for each
    assert render(event()).thread_id == "c2c_denny"
    assert render(event(to={"groupId": "@TGS#2J4SZEAEL"})).thread_id == "group_@TGS#2J4SZEAEL"


def test_ids_ext_and_flags_pass_through() -> None:
    # Given a group message with ext, mutableContent and normal priority
    message = event(
        to={"groupId": "1421300621769", "groupName": "Dev"},
        offlinePushInfo={"ext": "jump to denny", "mutableContent": True},
        priority="normal",
    )
    # When rendered, Then the notification carries what the payload needs
    assert render(message) == Notification(
        title=None,
        body="Denny(Dev):Text message",
        sound="default",
        thread_id="group_1421300621769",
        mutable_content=True,
        ext="jump to denny",
        sender_id="denny",
        group_id="1421300621769",
        message_id="373360335316321408",
        priority="normal",
    )
    assert render(message).apns_priority == 5
    assert render(event(offlinePushInfo={"ignoreBadge": True})).ignore_badge is True
    assert render(event()).group_id is None and render(event()).apns_priority == 10


def test_render_for_reads_the_recipients_push_config() -> None:
    # Given vinson's stored config (English, a c2c sound, message summaries)
    config = PushConfig.model_validate(
        {"language": "en", "c2cSound": "ding.caf", "displayStyle": "messageSummary"}
    )
    # When rendered for him, Then his language and sound apply
    notification = render_for(event(elems=[{"type": "image"}]), config, sender_display_name=None)
    assert (notification.body, notification.sound) == ("Denny: [image]", "ding.caf")
    banner = render_for(event(), PushConfig(display_style="simpleBanner"), sender_display_name="Boss")
    assert banner.body == "您有一条新消息"


# ---- mentions (API.md "Mentions") ------------------------------------------------------------------

LEAD_IN_DEV = {"userId": "alice", "nickname": "Alice", "nameCard": "Lead"}


def mentioning(mentions: dict[str, Any] | None, **extra: Any) -> MessageEvent:
    data: dict[str, Any] = {
        "sender": LEAD_IN_DEV,
        "to": {"groupId": "g1", "groupName": "Dev", "members": ["bob", "carol"]},
        "elems": [{"type": "text", "text": "hi"}],
    }
    if mentions is not None:
        data["mentions"] = mentions
    data.update(extra)
    return event(**data)


# (language, display style, mentions, desc, expected body for bob)
MENTION_CASES = [
    ("zh", "messageSummary", {"userIds": ["bob"]}, None, "[有人@我]Lead(Dev):hi"),
    ("en", "messageSummary", {"userIds": ["bob"]}, None, "[@Me]Lead (Dev): hi"),
    ("zh", "messageSummary", {"all": True}, None, "[@所有人]Lead(Dev):hi"),
    ("en", "messageSummary", {"all": True}, None, "[@All]Lead (Dev): hi"),
    ("zh", "messageSummary", {"userIds": ["bob"], "all": True}, None, "[有人@我]Lead(Dev):hi"),
    ("en", "messageSummary", {"userIds": ["carol"], "all": True}, None, "[@All]Lead (Dev): hi"),
    ("zh", "messageSummary", {"userIds": ["carol"]}, None, "Lead(Dev):hi"),
    ("zh", "messageSummary", {"userIds": [], "all": False}, None, "Lead(Dev):hi"),
    ("zh", "messageSummary", None, None, "Lead(Dev):hi"),
    ("zh", "simpleBanner", {"userIds": ["bob"]}, None, "[有人@我]您有一条新消息"),
    ("en", "simpleBanner", {"all": True}, None, "[@All]You have a new message"),
    ("en", "messageSummary", {"userIds": ["bob"]}, "Standup in 5", "[@Me]Standup in 5"),
]


@pytest.mark.parametrize(
    ("language", "style", "mentions", "desc", "expected"),
    MENTION_CASES,
    ids=[
        "zh-me",
        "en-me",
        "zh-all",
        "en-all",
        "me-wins-over-all",
        "all-when-someone-else-is-named",
        "someone-else",
        "empty-mentions",
        "no-mentions",
        "zh-simple-banner",
        "en-simple-banner-all",
        "desc",
    ],
)
def test_mention_prefix(
    language: Language, style: str, mentions: dict[str, Any] | None, desc: str | None, expected: str
) -> None:
    # Given a group message with these mentions
    info = {"offlinePushInfo": {"desc": desc}} if desc else {}
    message = mentioning(mentions, **info)
    # When rendered for bob in his language and display style
    config = PushConfig.model_validate({"language": language, "displayStyle": style})
    notification = render_for(message, config, sender_display_name=None, mention=message.mention_of("bob"))
    # Then the prefix stands before the rest of the body
    assert notification.body == expected


def test_mentions_are_ignored_on_one_to_one_messages() -> None:
    # Given a one-to-one message that carries mentions anyway
    message = event(mentions={"userIds": ["vinson"], "all": True})
    # Then nobody is mentioned and the body has no prefix
    assert message.mention_of("vinson") is None
    assert render(message, mention=message.mention_of("vinson")).body == "Denny:Text message"
