"""App settings: GET answers every setting with its default; PATCH changes a subset, validates each
field by name, and the fan-out carries the settings to the send path in every chunk."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import OPERATOR_KEY, AppContext

DEFAULTS = {
    "payloadConventions": ["tencent", "agora"],
    "foregroundLeaseSeconds": 300,
    "communicationNotifications": False,
    "readSync": "badge",
    "webhook": None,
}


def test_new_app_has_the_default_settings(app_ctx: AppContext) -> None:
    resp = app_ctx.api.call("GET", app_ctx.path("/settings"), token=app_ctx.admin)
    assert resp.status_code == 200, resp.body
    assert resp.data == DEFAULTS


def test_patch_changes_only_the_given_settings_and_answers_all(app_ctx: AppContext) -> None:
    # Given an app, When one setting is changed and then another
    first = app_ctx.api.call(
        "PATCH", app_ctx.path("/settings"), {"payloadConventions": ["tpns"]}, token=app_ctx.admin
    )
    second = app_ctx.api.call(
        "PATCH",
        app_ctx.path("/settings"),
        {"readSync": "badgeAndClear", "foregroundLeaseSeconds": 0},
        token=OPERATOR_KEY,
    )
    # Then each answer has every setting, and the second kept the first's change
    assert first.status_code == 200, first.body
    assert first.data == {**DEFAULTS, "payloadConventions": ["tpns"]}
    assert second.status_code == 200, second.body
    expected = {
        **DEFAULTS,
        "payloadConventions": ["tpns"],
        "readSync": "badgeAndClear",
        "foregroundLeaseSeconds": 0,
    }
    assert second.data == expected
    assert app_ctx.api.call("GET", app_ctx.path("/settings"), token=OPERATOR_KEY).data == expected


def test_webhook_is_set_and_removed_with_null(app_ctx: AppContext) -> None:
    hook = {"url": "https://im.example.com/push-events", "events": ["device.invalidated"]}
    resp = app_ctx.api.call("PATCH", app_ctx.path("/settings"), {"webhook": hook}, token=app_ctx.admin)
    assert resp.status_code == 200, resp.body
    assert resp.data["webhook"] == hook
    resp = app_ctx.api.call("PATCH", app_ctx.path("/settings"), {"webhook": None}, token=app_ctx.admin)
    assert resp.data["webhook"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payloadConventions": []}, "payloadConventions"),
        ({"payloadConventions": ["tencent", "tencent"]}, "payloadConventions"),
        ({"payloadConventions": ["wechat"]}, "payloadConventions.0"),
        ({"foregroundLeaseSeconds": 5}, "foregroundLeaseSeconds"),
        ({"foregroundLeaseSeconds": 86_401}, "foregroundLeaseSeconds"),
        ({"readSync": "sometimes"}, "readSync"),
        ({"communicationNotifications": "yes"}, "communicationNotifications"),
        ({"webhook": {"url": "ftp://x.example.com", "events": ["device.invalidated"]}}, "webhook.url"),
        ({"webhook": {"url": "http://im.example.com/x", "events": ["device.invalidated"]}}, "webhook.url"),
        ({"webhook": {"url": "https://im.example.com/x", "events": []}}, "webhook.events"),
        ({"webhook": {"url": "https://im.example.com/x", "events": ["message.sent"]}}, "webhook.events.0"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_setting_is_400_naming_the_field(app_ctx: AppContext, body: dict[str, Any], field: str) -> None:
    resp = app_ctx.api.call("PATCH", app_ctx.path("/settings"), body, token=app_ctx.admin)
    assert resp.status_code == 400, resp.body
    fields = [e["field"] for e in resp.data["error"]["details"]["errors"]]
    assert field in fields, fields


@pytest.mark.parametrize(
    "body", [{}, {"readSync": None}, {"foregroundLeaseSeconds": None}, {"payloadConventions": None}]
)
def test_empty_or_null_patch_is_400_saying_what_to_give(app_ctx: AppContext, body: dict[str, Any]) -> None:
    resp = app_ctx.api.call("PATCH", app_ctx.path("/settings"), body, token=app_ctx.admin)
    assert resp.status_code == 400, resp.body
    assert (next(iter(body), None) or "readSync") in resp.data["error"]["message"]


def test_user_token_cannot_read_or_change_settings(app_ctx: AppContext) -> None:
    user = app_ctx.token("bob")
    assert app_ctx.api.call("GET", app_ctx.path("/settings"), token=user).status_code == 403
    resp = app_ctx.api.call("PATCH", app_ctx.path("/settings"), {"readSync": "off"}, token=user)
    assert resp.status_code == 403


def test_settings_of_an_unknown_app_are_404(app_ctx: AppContext) -> None:
    resp = app_ctx.api.call("GET", "/v1/apps/app-000000000000/settings", token=OPERATOR_KEY)
    assert resp.status_code == 404


def test_fan_out_carries_the_settings_in_every_chunk(app_ctx: AppContext) -> None:
    """The send path reads no item for settings: the fan-out's one read of the app item gives them."""
    from chalicelib.deps import services
    from chalicelib.models.message import QueuedMessageEvent

    hook = {"url": "https://im.example.com/e", "events": ["recipient.failed", "message.completed"]}
    body = {"payloadConventions": ["tpns", "agora"], "communicationNotifications": True, "webhook": hook}
    assert app_ctx.api.call("PATCH", app_ctx.path("/settings"), body, token=app_ctx.admin).status_code == 200
    event = QueuedMessageEvent.model_validate(
        {
            "appId": app_ctx.app_id,
            "messageId": "m-settings",
            "sendTime": 1_795_320_000,
            "sender": {"userId": "alice"},
            "to": {"groupId": "g1", "members": [f"u{i:03d}" for i in range(300)]},
            "elems": [{"type": "text", "text": "hi"}],
        }
    )
    svc = services()
    sent: list[str] = []
    original = svc.queues.send_chunks
    svc.queues.send_chunks = sent.extend  # type: ignore[method-assign]
    try:
        result = svc.fanout.fan_out(event)
    finally:
        svc.queues.send_chunks = original  # type: ignore[method-assign]
    assert result.chunks == 2
    for body_text in sent:
        assert json.loads(body_text)["settings"] == {
            "payloadConventions": ["tpns", "agora"],
            "communicationNotifications": True,
            "webhookEvents": ["recipient.failed", "message.completed"],
        }
