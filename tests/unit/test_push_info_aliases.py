"""offlinePushInfo in the seeds' own vocabulary (API.md "The seeds' own vocabulary"): every alias folds
into its canonical field, Android-only fields are ignored, ApnsInfo overrides, disagreement and
unknown fields are 400s naming the fields."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from chalicelib.api.routing import validation_failed
from chalicelib.models.message import MessageEvent
from chalicelib.models.push_info import EXT_LIMITS, OfflinePushInfo, ext_limit

EVENT = TypeAdapter(MessageEvent)


def event_with(info: dict[str, Any]) -> bytes:
    return json.dumps(
        {
            "messageId": "m-1",
            "sendTime": 1763790000,
            "sender": {"userId": "alice"},
            "to": {"userId": "bob"},
            "elems": [{"type": "text", "text": "hi"}],
            "offlinePushInfo": info,
        }
    ).encode()


def accepted(info: dict[str, Any]) -> OfflinePushInfo:
    # The API validates request bodies as JSON in strict mode: do the same.
    return EVENT.validate_json(event_with(info), strict=True).offline_push_info


def refused(info: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        EVENT.validate_json(event_with(info), strict=True)
    return validation_failed(caught.value).message


ALIASES = [
    # (seed / source, the alias as sent, the canonical field, its value)
    ("Tencent SDK, seeds 002/003", {"iOSSound": "phone_ringing.mp3"}, "sound", "phone_ringing.mp3"),
    ("Tencent SDK V2", {"ignoreIOSBadge": True}, "ignore_badge", True),
    ("Tencent SDK, seed 000", {"pushFlag": 1}, "disable_push", True),
    ("Tencent SDK, seed 000", {"pushFlag": 0}, "disable_push", False),
    ("Tencent SDK, seed 000", {"iosConfig": {"sound": "ding.caf"}}, "sound", "ding.caf"),
    ("Tencent SDK, seed 000", {"iosConfig": {"ignoreBadge": True}}, "ignore_badge", True),
    ("Tencent REST", {"PushFlag": 1}, "disable_push", True),
    ("Tencent REST", {"Title": "T"}, "title", "T"),
    ("Tencent REST", {"Desc": "D"}, "desc", "D"),
    ("Tencent REST", {"Ext": "E"}, "ext", "E"),
    ("Tencent REST", {"ApnsInfo": {"Sound": "s.caf"}}, "sound", "s.caf"),
    ("Tencent REST", {"ApnsInfo": {"BadgeMode": 1}}, "ignore_badge", True),
    ("Tencent REST", {"ApnsInfo": {"BadgeMode": 0}}, "ignore_badge", False),
    ("Tencent REST", {"ApnsInfo": {"Title": "T"}}, "title", "T"),
    ("Tencent REST", {"ApnsInfo": {"SubTitle": "S"}}, "subtitle", "S"),
    (
        "Tencent REST",
        {"ApnsInfo": {"Image": "https://cdn.example.com/a.png"}},
        "image",
        "https://cdn.example.com/a.png",
    ),
    ("Tencent REST", {"ApnsInfo": {"MutableContent": 1}}, "mutable_content", True),
    ("Agora, seed 004", {"em_push_title": "T"}, "title", "T"),
    ("Agora, seed 004", {"em_push_content": "D"}, "desc", "D"),
    ("Agora, seed 004", {"extern": "E"}, "ext", "E"),
    ("Agora, seed 004", {"em_push_sound": "custom.caf"}, "sound", "custom.caf"),
    ("Agora, seed 004", {"em_push_mutable_content": True}, "mutable_content", True),
]


@pytest.mark.parametrize(
    ("source", "info", "field", "value"), ALIASES, ids=[json.dumps(a[1]) for a in ALIASES]
)
def test_every_alias_sets_its_canonical_field(
    source: str, info: dict[str, Any], field: str, value: Any
) -> None:
    # Given push info in a vendor's own names / When it is validated
    parsed = accepted(info)
    # Then the canonical field holds the value, and the event travels on in our names only
    assert getattr(parsed, field) == value, source
    dumped = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert not set(dumped) & {"iOSSound", "pushFlag", "iosConfig", "PushFlag", "Title", "ApnsInfo", "extern"}
    assert OfflinePushInfo.model_validate(dumped) == parsed


@pytest.mark.parametrize(
    "android",
    [
        {"AndroidOPPOChannelID": "tuikit"},  # seed 001, always set by TUIKit
        {"AndroidSound": "phone_ringing"},  # seed 003
        {"androidConfig": {"title": "t", "sound": "s", "notifyMode": 1}},  # seed 000
        {"AndroidInfo": {"Sound": "x", "OPPOChannelID": "c", "XiaoMiChannelID": "m"}},  # Tencent REST
        {"androidVIVOClassification": 1},
    ],
    ids=lambda d: next(iter(d)),
)
def test_android_only_fields_are_accepted_and_ignored(android: dict[str, Any]) -> None:
    # Given push info carrying an Android-only field beside iOS ones
    parsed = accepted({"desc": "hello", **android})
    # Then it is accepted, and nothing of it reaches the iOS settings
    assert parsed.desc == "hello"
    assert parsed.model_dump(by_alias=True, exclude_defaults=True) == {"desc": "hello"}


def test_apns_info_overrides_the_top_level_fields() -> None:
    # Given Tencent REST push info whose ApnsInfo differs from the top level
    parsed = accepted(
        {
            "Title": "top",
            "Desc": "body",
            "ApnsInfo": {"Title": "ios", "Sound": "ios.caf", "BadgeMode": 1, "MutableContent": 1},
            "sound": "top.caf",
        }
    )
    # Then ApnsInfo wins for iOS, as it does at Tencent
    assert (parsed.title, parsed.desc, parsed.sound) == ("ios", "body", "ios.caf")
    assert parsed.ignore_badge and parsed.mutable_content


@pytest.mark.parametrize(
    ("info", "names"),
    [
        ({"sound": "a.caf", "iOSSound": "b.caf"}, ("sound", "iOSSound")),
        ({"pushFlag": 1, "disablePush": False}, ("disablePush", "pushFlag")),
        ({"PushFlag": 0, "pushFlag": 1}, ("pushFlag", "PushFlag")),
        ({"title": "a", "Title": "b"}, ("title", "Title")),
        ({"ext": "a", "extern": "b"}, ("ext", "extern")),
        ({"ignoreBadge": False, "ignoreIOSBadge": True}, ("ignoreBadge", "ignoreIOSBadge")),
        ({"iOSSound": "a.caf", "iosConfig": {"sound": "b.caf"}}, ("iOSSound", "iosConfig.sound")),
        ({"desc": "a", "Desc": "b"}, ("desc", "Desc")),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, tuple) else None,
)
def test_two_names_that_disagree_are_a_400_naming_both(info: dict[str, Any], names: tuple[str, str]) -> None:
    # When two names for one setting at the same level carry different values
    message = refused(info)
    # Then the 400 names both
    assert f"{names[0]} and {names[1]} are two names for one setting" in message, message


def test_two_names_that_agree_are_accepted() -> None:
    parsed = accepted(
        {"sound": "a.caf", "iOSSound": "a.caf", "pushFlag": 1, "disablePush": True, "Title": ""}
    )
    assert (parsed.sound, parsed.disable_push, parsed.title) == ("a.caf", True, None)


@pytest.mark.parametrize(
    ("info", "field"),
    [
        ({"ApnsInfo": {"Foo": 1}}, "offlinePushInfo.ApnsInfo.Foo"),
        ({"iosConfig": {"badge": 1}}, "offlinePushInfo.iosConfig.badge"),
        ({"Foo": 1}, "offlinePushInfo.Foo"),
        ({"ApnsInfo": {"sound": "a.caf"}}, "offlinePushInfo.ApnsInfo.sound"),  # REST names are PascalCase
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_any_other_unknown_field_is_a_400_naming_it(info: dict[str, Any], field: str) -> None:
    assert f"{field}: unknown field" in refused(info)


@pytest.mark.parametrize(
    ("info", "expected"),
    [
        ({"pushFlag": True}, "offlinePushInfo.pushFlag: must be the integer 0 or 1, got true"),
        ({"PushFlag": 2}, "offlinePushInfo.PushFlag: Input should be 0 or 1"),
        ({"ApnsInfo": {"BadgeMode": "1"}}, "offlinePushInfo.ApnsInfo.BadgeMode: must be the integer 0 or 1"),
        (
            {"ApnsInfo": {"Image": "http://x.example/a.png"}},
            "offlinePushInfo.ApnsInfo.Image: must be an https URL",
        ),
        ({"iOSSound": "ding"}, "offlinePushInfo.iOSSound: must be a sound file name"),
    ],
)
def test_alias_values_are_checked_like_their_field(info: dict[str, Any], expected: str) -> None:
    assert expected in refused(info)


def test_every_alias_is_in_the_openapi_schema_with_its_source() -> None:
    # Given the request schema of offlinePushInfo
    schema = OfflinePushInfo.model_json_schema()
    props = schema["properties"]
    # Then every alias is a documented property naming where it comes from
    for name, source in [
        ("iOSSound", "seeds 002/003"),
        ("ignoreIOSBadge", "Tencent SDK"),
        ("pushFlag", "seed 000"),
        ("iosConfig", "seed 000"),
        ("PushFlag", "Tencent REST"),
        ("Title", "Tencent REST"),
        ("Desc", "Tencent REST"),
        ("Ext", "Tencent REST"),
        ("ApnsInfo", "Tencent REST"),
        ("AndroidInfo", "Tencent REST"),
        ("androidConfig", "seed 000"),
        ("extern", "seed 004"),
        ("em_push_content", "seed 004"),
    ]:
        assert source in props[name]["description"], name
    assert "seed 001" in schema["patternProperties"]["^[Aa]ndroid"]["description"]


@pytest.mark.parametrize(("count", "limit"), [(1, 3000), (2, 1536), (3, 1024)])
def test_ext_limit_per_number_of_conventions(count: int, limit: int) -> None:
    assert ext_limit(count) == EXT_LIMITS[count] == limit


def test_ext_of_3000_bytes_is_accepted_and_3001_refused() -> None:
    assert accepted({"ext": "x" * 3000}).ext == "x" * 3000
    assert accepted({"Ext": "字" * 1000}).ext == "字" * 1000
    assert "ext is 3001 bytes" in refused({"ext": "x" * 3001})
