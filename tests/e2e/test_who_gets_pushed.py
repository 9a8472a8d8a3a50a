"""SPEC section 5 "who receives it", end to end: every rule skips with its reason and sends nothing.

Each case sets bob up (Given), sends alice's message (When), then checks the
sandbox and the delivery report (Then).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.e2e.conftest import PushApp, Stack, payloads


def _dnd_now(app: PushApp) -> None:
    hour = datetime.now(UTC).hour
    app.call(
        "PATCH",
        "/users/bob/push-config",
        {"doNotDisturb": {"enabled": True, "startHour": hour, "endHour": (hour + 2) % 24, "timezone": "UTC"}},
        user="bob",
    )


def _dnd_across_midnight_in_shanghai(app: PushApp) -> None:
    # The window covers "now" in Asia/Shanghai and crosses midnight there.
    from zoneinfo import ZoneInfo

    local = datetime.now(ZoneInfo("Asia/Shanghai")).hour
    start = (local - 1) % 24
    end = (local + 1) % 24 if (local + 1) % 24 < start else (start + 23) % 24
    app.call(
        "PATCH",
        "/users/bob/push-config",
        {"doNotDisturb": {"enabled": True, "startHour": start, "endHour": end, "timezone": "Asia/Shanghai"}},
        user="bob",
    )


GROUP = {"groupId": "g1", "groupName": "Dev", "members": ["bob"]}
Setup = Callable[[PushApp], Any]


def _foreground(a: PushApp) -> Any:
    return a.call("PUT", "/users/bob/app-state", {"state": "foreground"}, user="bob")


def _open_push_off(a: PushApp) -> Any:
    return a.call("PATCH", "/users/bob/push-config", {"openPush": 2}, user="bob")


def _mute_group(a: PushApp) -> Any:
    return a.call("PUT", "/users/bob/push-config/muted-groups/g1", user="bob")


def _mute_alice(a: PushApp) -> Any:
    return a.call("PUT", "/users/bob/push-config/muted-users/alice", user="bob")


def _logout(a: PushApp) -> Any:
    return a.call("DELETE", "/users/bob/devices", user="bob")


def _group_set_to(remind: str, until_in_s: int | None = None) -> Setup:
    def given(a: PushApp) -> Any:
        until = None if until_in_s is None else int(time.time()) + until_in_s
        body = {"remindType": remind, "until": until}
        resp = a.call("PUT", "/users/bob/push-config/conversations/group/g1", body, user="bob")
        assert resp.status_code == 200, resp.body
        return resp

    return given


def _alice_set_to_mention_only(a: PushApp) -> Any:
    body = {"remindType": "mentionOnly"}
    return a.call("PUT", "/users/bob/push-config/conversations/c2c/alice", body, user="bob")


def _mention_only_and(setup: Setup) -> Setup:
    def given(a: PushApp) -> Any:
        _group_set_to("mentionOnly")(a)
        return setup(a)

    return given


BOB_MENTIONED = {"mentions": {"userIds": ["bob"]}}


CASES: list[tuple[str, Setup, dict[str, Any], dict[str, Any], str]] = [
    # name, given, to, message extras, reason
    ("foreground", _foreground, {"userId": "bob"}, {}, "foreground"),
    ("openPushOff", _open_push_off, {"userId": "bob"}, {}, "openPushOff"),
    ("mutedGroup", _mute_group, GROUP, {}, "mutedGroup"),
    ("mutedUser", _mute_alice, {"userId": "bob"}, {}, "mutedUser"),
    ("dnd", _dnd_now, {"userId": "bob"}, {}, "dnd"),
    ("dndAcrossMidnightInTimeZone", _dnd_across_midnight_in_shanghai, {"userId": "bob"}, {}, "dnd"),
    ("loggedOut", _logout, {"userId": "bob"}, {}, "loggedOut"),
    ("onlineUserOnly", lambda a: None, {"userId": "bob"}, {"onlineUserOnly": True}, "onlineUserOnly"),
    (
        "disablePush",
        lambda a: None,
        {"userId": "bob"},
        {"offlinePushInfo": {"disablePush": True}},
        "disablePush",
    ),
    (
        "customWithoutDesc",
        lambda a: None,
        {"userId": "bob"},
        {"elems": [{"type": "custom", "data": "x"}]},
        "customWithoutDesc",
    ),
    (
        "forcePushStillRespectsOpenPushOff",
        _open_push_off,
        {"userId": "bob"},
        {"forcePush": True},
        "openPushOff",
    ),
    ("forcePushStillRespectsLogout", _logout, {"userId": "bob"}, {"forcePush": True}, "loggedOut"),
    # Version 2: conversation settings and mentions (API.md)
    ("mentionOnlyWithoutMention", _group_set_to("mentionOnly"), GROUP, {}, "mentionOnly"),
    ("mentionOnlyOneToOne", _alice_set_to_mention_only, {"userId": "bob"}, BOB_MENTIONED, "mentionOnly"),
    ("timedNone", _group_set_to("none", 3600), GROUP, {}, "mutedGroup"),
    ("mentionDoesNotPassNone", _group_set_to("none"), GROUP, BOB_MENTIONED, "mutedGroup"),
    ("mentionDoesNotPassDnd", _mention_only_and(_dnd_now), GROUP, BOB_MENTIONED, "dnd"),
    ("mentionDoesNotPassOpenPushOff", _mention_only_and(_open_push_off), GROUP, BOB_MENTIONED, "openPushOff"),
    ("mentionDoesNotPassLogout", _mention_only_and(_logout), GROUP, BOB_MENTIONED, "loggedOut"),
    ("mentionDoesNotPassForeground", _mention_only_and(_foreground), GROUP, BOB_MENTIONED, "foreground"),
]


@pytest.mark.parametrize(
    ("given", "to", "extra", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rule_skips_with_reason(
    stack: Stack, push_app: PushApp, given: Setup, to: dict, extra: dict, reason: str
) -> None:
    token = push_app.device("bob")
    given(push_app)
    body = push_app.message(to, **extra)
    assert push_app.call("POST", "/messages", body).status_code == 202
    stack.pump()
    assert payloads(stack.sandbox, token) == []
    [d] = push_app.deliveries(body["messageId"])
    assert (d["userId"], d["status"], d["reason"]) == ("bob", "skipped", reason)


def test_no_device(stack: Stack, push_app: PushApp) -> None:
    body = push_app.message({"userId": "bob"})
    push_app.call("POST", "/messages", body)
    stack.pump()
    [d] = push_app.deliveries(body["messageId"])
    assert (d["status"], d["reason"], d["deviceToken"]) == ("skipped", "noDevice", None)


def test_device_push_disabled_is_skipped_per_device(stack: Stack, push_app: PushApp) -> None:
    off = push_app.device("bob", push_enabled=False)
    on = push_app.device("bob")
    body = push_app.message({"userId": "bob"})
    push_app.call("POST", "/messages", body)
    stack.pump()
    assert payloads(stack.sandbox, off) == []
    assert len(payloads(stack.sandbox, on)) == 1
    by_token = {d["deviceToken"]: (d["status"], d["reason"]) for d in push_app.deliveries(body["messageId"])}
    assert by_token == {off: ("skipped", "pushDisabled"), on: ("sent", None)}


@pytest.mark.parametrize(
    "given",
    [_dnd_now, _mute_group, _mute_alice, _group_set_to("mentionOnly"), _group_set_to("none", 3600)],
    ids=["dnd", "mutedGroup", "mutedUser", "mentionOnly", "timedNone"],
)
def test_force_push_ignores_dnd_and_mutes(stack: Stack, push_app: PushApp, given: Setup) -> None:
    token = push_app.device("bob")
    given(push_app)
    push_app.call("POST", "/messages", push_app.message(GROUP, forcePush=True))
    stack.pump()
    assert len(payloads(stack.sandbox, token)) == 1


def test_im_server_can_say_a_foreground_user_is_offline(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    _foreground(push_app)
    push_app.call("POST", "/messages", push_app.message({"userId": "bob"}, offlineUsers=["bob"]))
    stack.pump()
    assert len(payloads(stack.sandbox, token)) == 1


def test_user_settings_shape_the_notification(stack: Stack, push_app: PushApp) -> None:
    token = push_app.device("bob")
    push_app.call(
        "PATCH",
        "/users/bob/push-config",
        {"language": "en", "displayStyle": "simpleBanner", "c2cSound": "bell.caf"},
        user="bob",
    )
    push_app.call("PATCH", "/users/alice/push-config", {"displayName": "Ally"}, user="alice")
    push_app.call("POST", "/messages", push_app.message({"userId": "bob"}, elems=[{"type": "image"}]))
    stack.pump()
    push_app.call("PATCH", "/users/bob/push-config", {"displayStyle": "messageSummary"}, user="bob")
    push_app.call(
        "POST",
        "/messages",
        push_app.message(
            {"userId": "bob"}, elems=[{"type": "image"}], offlinePushInfo={"sound": "push.no_sound"}
        ),
    )
    stack.pump()
    first, second = payloads(stack.sandbox, token)
    assert first["aps"]["alert"]["body"] == "You have a new message"
    assert first["aps"]["sound"] == "bell.caf"
    assert second["aps"]["alert"]["body"] == "Ally: [image]"
    assert "sound" not in second["aps"]
