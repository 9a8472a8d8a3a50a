"""The message event model: what the IM server may send, and what it is told when it is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from chalicelib.models.elems import CustomElem, TextElem
from chalicelib.models.message import (
    C2CTarget,
    GroupTarget,
    MessageEvent,
    QueuedMessageEvent,
)


def body(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "messageId": "m-1",
        "sendTime": 1763790000,
        "sender": {"userId": "alice", "nickname": "Alice"},
        "to": {"userId": "bob"},
        "elems": [{"type": "text", "text": "hi"}],
    }
    data.update(overrides)
    return data


def errors(data: dict[str, Any], model: type[MessageEvent] = MessageEvent) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in caught.value.errors()]


def test_minimal_one_to_one_event_gets_the_documented_defaults() -> None:
    # Given the smallest valid body, When it is validated
    event = MessageEvent.model_validate(body())
    # Then the target is one user and every flag has its default
    assert isinstance(event.to, C2CTarget)
    assert event.to.user_id == "bob"
    assert not event.is_group and event.group_id is None
    assert event.priority == "high" and event.apns_priority == 10
    assert not event.force_push and not event.online_user_only
    assert event.offline_users is None
    info = event.offline_push_info
    assert (info.title, info.desc, info.ext, info.sound) == (None, None, None, None)
    assert not (info.ignore_badge or info.disable_push or info.mutable_content)


def test_the_api_md_example_parses_with_every_element_type() -> None:
    # Given API.md's example with every element type and a full offlinePushInfo
    data = body(
        sender={"userId": "alice", "nickname": "Alice", "nameCard": "Team lead"},
        to={"groupId": "g1", "groupName": "Dev", "members": ["bob", "carol"]},
        elems=[
            {"type": "text", "text": "hi"},
            {"type": "image"},
            {"type": "sound"},
            {"type": "file"},
            {"type": "video"},
            {"type": "location"},
            {"type": "face"},
            {"type": "custom", "data": "...", "desc": "a card"},
        ],
        offlinePushInfo={
            "title": "T",
            "desc": "D",
            "ext": '{"entity":{"action":1}}',
            "sound": "push.no_sound",
            "ignoreBadge": True,
            "disablePush": False,
            "mutableContent": True,
        },
        forcePush=False,
        onlineUserOnly=False,
        priority="normal",
    )
    # When it is validated
    event = MessageEvent.model_validate(data)
    # Then it is a group message with its members, and it dumps back to the same camelCase body
    assert isinstance(event.to, GroupTarget)
    assert event.group_id == "g1" and event.to.members == ["bob", "carol"]
    assert event.apns_priority == 5
    assert [e.type for e in event.elems] == [
        "text",
        "image",
        "sound",
        "file",
        "video",
        "location",
        "face",
        "custom",
    ]
    dumped = event.dump()
    assert dumped["offlinePushInfo"]["ignoreBadge"] is True
    assert MessageEvent.model_validate(dumped) == event


def test_group_without_members_uses_the_stored_membership() -> None:
    event = MessageEvent.model_validate(body(to={"groupId": "@TGS#2J4SZEAEL"}))
    assert isinstance(event.to, GroupTarget) and event.to.members is None


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ({"userId": "bob", "groupId": "g1"}, "not both"),
        ({}, "needs userId (one-to-one message) or groupId"),
        ({"groupName": "Dev"}, "needs userId (one-to-one message) or groupId"),
        ("bob", "exactly one of userId"),
    ],
    ids=["both", "neither", "only-group-name", "not-an-object"],
)
def test_target_needs_exactly_one_of_user_or_group(to: Any, expected: str) -> None:
    # Given a target that is neither clearly one user nor one group, Then the error says how to fix it
    (message,) = errors(body(to=to))
    assert message.startswith("to") and expected in message


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ([], "omit members to use the stored group membership"),
        (["bob", "bob"], "lists 'bob' more than once"),
        ([f"u{i}" for i in range(10_001)], "at most 10000"),
        (["b o b"], "no spaces"),
    ],
    ids=["empty", "duplicate", "too-many", "bad-id"],
)
def test_group_members_are_checked(members: list[str], expected: str) -> None:
    (message,) = errors(body(to={"groupId": "g1", "members": members}))
    assert expected in message


def test_ten_thousand_members_are_accepted() -> None:
    members = [f"u{i}" for i in range(10_000)]
    event = MessageEvent.model_validate(body(to={"groupId": "g1", "members": members}))
    assert isinstance(event.to, GroupTarget) and len(event.to.members or []) == 10_000


@pytest.mark.parametrize(
    ("elems", "expected"),
    [
        ([], "elems is empty: send at least one element"),
        ([{"type": "gif"}], "one of: text, image, sound, file, video, location, face, custom"),
        ([{"text": "hi"}], "each element needs a type"),
        ([{"type": "text", "text": ""}], "at least 1 character"),
        ([{"type": "text", "text": "x" * 12_001}], "at most 12000"),
        ([{"type": "image", "url": "x"}], "Extra inputs are not permitted"),
    ],
    ids=["none", "unknown-type", "no-type", "empty-text", "text-too-long", "unknown-field"],
)
def test_elements_are_checked(elems: list[Any], expected: str) -> None:
    messages = errors(body(elems=elems))
    assert any(expected in m for m in messages), messages


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("messageId", "a b", "is not valid: use 1-128 characters"),
        ("messageId", "x" * 129, "is not valid"),
        ("messageId", "a/b", "is not valid"),
        ("messageId", "m-1\n", "is not valid"),
        ("to", {"userId": "bob\n"}, "is not valid"),
        ("to", {"groupId": "g\ud800"}, "unpaired UTF-16 surrogate"),
        ("sendTime", 1763790000000, "looks like milliseconds: send epoch seconds (e.g. 1763790000)"),
        ("sendTime", True, "must be a JSON integer of epoch seconds"),
        ("sendTime", "1763790000", "must be a JSON integer of epoch seconds"),
        ("sendTime", -1, "greater than or equal to 0"),
        ("priority", "urgent", "'high' or 'normal'"),
        ("sender", {"userId": "a/b"}, "no spaces, control characters or '/'"),
        ("sender", {"userId": ""}, "is not valid"),
        ("offlineUsers", ["bob", "bob"], "offlineUsers lists 'bob' more than once"),
    ],
)
def test_scalar_fields_say_what_is_wrong(field: str, value: Any, expected: str) -> None:
    messages = errors(body(**{field: value}))
    assert any(expected in m for m in messages), messages


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"sound": "ding"}, "sound file name in the app bundle with its extension"),
        ({"sound": "../x.caf"}, "sound file name"),
        ({"ext": "x" * 3001}, "ext is 3001 bytes once JSON-escaped; at most 3000 bytes fit"),
        ({"ext": '"' * 1600}, "ext is 3200 bytes once JSON-escaped"),
        ({"title": "x" * 1025}, "at most 1024"),
        ({"desc": "a", "em_push_content": "b"}, "desc and em_push_content are two names for one setting"),
        ({"sound": "a.caf", "em_push_sound": "b.caf"}, "sound and em_push_sound are two names"),
        ({"title": "\ud83d"}, "unpaired UTF-16 surrogate"),
        ({"badge": 1}, "Extra inputs are not permitted"),
    ],
    ids=[
        "sound-no-ext",
        "sound-path",
        "ext-too-big",
        "ext-escaped-too-big",
        "title-too-long",
        "desc-twice",
        "sound-twice",
        "lone-surrogate",
        "unknown-field",
    ],
)
def test_offline_push_info_is_checked(info: dict[str, Any], expected: str) -> None:
    messages = errors(body(offlinePushInfo=info))
    assert any(expected in m for m in messages), messages


@pytest.mark.parametrize("sound", ["default", "push.no_sound", "ding.caf", "phone_ringing.mp3"])
def test_sound_markers_and_file_names_are_accepted(sound: str) -> None:
    event = MessageEvent.model_validate(body(offlinePushInfo={"sound": sound}))
    assert event.offline_push_info.sound == sound


def test_empty_strings_mean_not_set() -> None:
    # Given an IM server that sends "" for unset fields (Tencent: "如果未设置昵称")
    data = body(
        sender={"userId": "alice", "nickname": "", "nameCard": ""},
        offlinePushInfo={"title": "", "desc": "", "ext": "", "sound": ""},
    )
    # When it is validated, Then they are None, as if absent
    event = MessageEvent.model_validate(data)
    assert event.sender.nickname is None and event.sender.name_card is None
    info = event.offline_push_info
    assert (info.title, info.desc, info.ext, info.sound) == (None, None, None, None)


def test_agora_field_names_are_accepted() -> None:
    # Given an event in Agora's shape (message.ext = {em_apns_ext: {...}, em_force_notification: YES})
    data = body(
        em_apns_ext={
            "em_push_title": "Title",
            "em_push_content": "custom push content",
            "extern": "custom string",
            "em_push_sound": "custom.caf",
            "em_push_mutable_content": True,
        },
        em_force_notification=True,
    )
    # When it is validated
    event = MessageEvent.model_validate(data)
    # Then the Agora names land on our fields, and it dumps with our names
    info = event.offline_push_info
    assert info.title == "Title"
    assert info.desc == "custom push content"
    assert info.ext == "custom string"
    assert info.sound == "custom.caf"
    assert info.mutable_content is True
    assert event.force_push is True
    dumped = event.dump()
    assert dumped["forcePush"] is True and dumped["offlinePushInfo"]["desc"] == "custom push content"
    assert "em_apns_ext" not in dumped


@pytest.mark.parametrize(
    "extra",
    [
        {"offlinePushInfo": {}, "em_apns_ext": {}},
        {"forcePush": True, "em_force_notification": True},
    ],
    ids=["push-info-twice", "force-twice"],
)
def test_one_setting_under_two_names_is_refused(extra: dict[str, Any]) -> None:
    messages = errors(body(**extra))
    assert any("send only one of them" in m for m in messages), messages


def test_unknown_top_level_field_is_refused() -> None:
    messages = errors(body(appId="a1"))
    assert messages == ["appId: Extra inputs are not permitted"]


def test_custom_element_keeps_data_and_desc() -> None:
    event = MessageEvent.model_validate(body(elems=[{"type": "custom", "data": '{"k":1}', "desc": "card"}]))
    (elem,) = event.elems
    assert isinstance(elem, CustomElem) and elem.data == '{"k":1}' and elem.desc == "card"


def test_queued_event_carries_its_app_id() -> None:
    # Given the queue form, When appId is missing or bad, Then it is refused; When valid, it round-trips
    assert errors(body(), QueuedMessageEvent) == ["appId: Field required"]
    (message,) = errors(body(appId="a b"), QueuedMessageEvent)
    assert "use the appId that POST /v1/apps returned" in message
    queued = QueuedMessageEvent.model_validate(body(appId="app-1"))
    assert queued.app_id == "app-1" and isinstance(queued, MessageEvent)
    assert isinstance(queued.elems[0], TextElem)
    assert QueuedMessageEvent.model_validate_json(json.dumps(queued.dump())) == queued


def test_json_schema_is_camel_case_and_describes_every_field() -> None:
    # Given the published JSON Schema of the API body
    schema = MessageEvent.model_json_schema(by_alias=True)
    # Then the properties have the wire names, the target is a oneOf, and every field is described
    assert set(schema["properties"]) == {
        "messageId",
        "sendTime",
        "sender",
        "to",
        "elems",
        "offlinePushInfo",
        "forcePush",
        "onlineUserOnly",
        "priority",
        "mentions",
        "call",
        "offlineUsers",
    }
    # elems may be left out of a call event (checked by the model, not the schema's `required`)
    assert schema["required"] == ["messageId", "sendTime", "sender", "to"]
    assert len(schema["properties"]["to"]["oneOf"]) == 2
    assert schema["examples"][0]["messageId"] == "m-1"
    MessageEvent.model_validate(schema["examples"][0])
    undocumented = [
        f"{name}.{prop}"
        for name, model in [("MessageEvent", schema), *schema["$defs"].items()]
        for prop, spec in model.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert undocumented == []
    queued = QueuedMessageEvent.model_json_schema(by_alias=True)
    assert "appId" in queued["required"]


GROUP_TO = {"groupId": "g1", "members": ["bob", "carol"]}


@pytest.mark.parametrize(
    ("mentions", "fragment"),
    [
        ({"userIds": ["bob", "bob"]}, "lists 'bob' more than once"),
        ({"userIds": [f"u{i}" for i in range(1001)]}, "at most 1000 items"),
        ({"userIds": ["a b"]}, "is not valid"),
        ({"all": "maybe"}, "valid boolean"),
        ({"userIds": ["bob"], "everyone": True}, "Extra inputs"),
    ],
    ids=["duplicate", "too-many", "bad-id", "all-not-bool", "unknown-field"],
)
def test_mentions_are_validated(mentions: dict[str, Any], fragment: str) -> None:
    (message,) = errors(body(to=GROUP_TO, mentions=mentions))
    assert message.startswith("mentions.") and fragment in message


def test_mentions_name_who_is_mentioned_in_groups_only() -> None:
    event = MessageEvent.model_validate(body(to=GROUP_TO, mentions={"userIds": ["bob"], "all": True}))
    assert (event.mention_of("bob"), event.mention_of("carol")) == ("me", "all")
    named = MessageEvent.model_validate(body(to=GROUP_TO, mentions={"userIds": ["bob"]}))
    assert (named.mention_of("bob"), named.mention_of("carol")) == ("me", None)
    one_to_one = MessageEvent.model_validate(body(mentions={"userIds": ["bob"]}))
    assert one_to_one.mention_of("bob") is None
    # a queued record round-trips its mentions
    queued = QueuedMessageEvent.model_validate(body(appId="app-1", to=GROUP_TO, mentions={"all": True}))
    assert QueuedMessageEvent.model_validate_json(json.dumps(queued.dump())).mention_of("x") == "all"


def test_each_chunk_carries_only_its_own_recipients_mentions() -> None:
    from chalicelib.services.fanout import _for_chunk

    event = MessageEvent.model_validate(
        body(to=GROUP_TO, mentions={"userIds": ["bob", "zed"], "all": True}, offlineUsers=["carol"])
    )
    chunk = _for_chunk(event, ["bob", "carol"])
    assert chunk.mentions is not None and chunk.mentions.user_ids == ["bob"] and chunk.mentions.all
    assert chunk.offline_users == ["carol"]
    assert (chunk.mention_of("bob"), chunk.mention_of("carol")) == ("me", "all")
    other = _for_chunk(event, ["dave"])
    assert other.mentions is not None and other.mentions.user_ids == [] and other.offline_users is None
