"""The webhook's secret (answered once, rotated, kept in Secrets Manager only), its test event and
the record of its last deliveries, against a real HTTP receiver on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.services.webhook_events import SIGNATURE_HEADER, verify
from tests.conftest import OPERATOR_KEY, AppContext
from tests.webhook_receiver import Receiver, receiver

EVENTS = ["device.invalidated", "recipient.failed", "message.completed"]


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


def _set(app_ctx: AppContext, url: str, events: list[str] | None = None) -> Any:
    body = {"webhook": {"url": url, "events": events or EVENTS}}
    return app_ctx.api.call("PATCH", app_ctx.path("/settings"), body, token=app_ctx.admin)


def test_the_first_webhook_answers_its_secret_once(app_ctx: AppContext, hook: Receiver) -> None:
    # Given an app without a webhook, When one is set, then changed
    first = _set(app_ctx, hook.url)
    second = _set(app_ctx, hook.url, ["message.completed"])
    # Then only the first answer carries the secret, and GET never does
    assert first.status_code == 200, first.body
    assert first.data["webhookSecret"].startswith("whsec_")
    assert second.status_code == 200 and "webhookSecret" not in second.data
    got = app_ctx.api.call("GET", app_ctx.path("/settings"), token=app_ctx.admin)
    assert "webhookSecret" not in got.data and got.data["webhook"]["events"] == ["message.completed"]


def test_the_secret_is_kept_in_secrets_manager_only(
    app_ctx: AppContext, hook: Receiver, stack_env: Any
) -> None:
    secret = _set(app_ctx, hook.url).data["webhookSecret"]
    ddb = boto3.client("dynamodb", endpoint_url=stack_env["AWS_ENDPOINT_OVERRIDE"])
    app_item = ddb.get_item(
        TableName=stack_env["TABLE_NAME"], Key={"pk": {"S": f"A#{app_ctx.app_id}"}, "sk": {"S": "APP"}}
    )
    assert secret not in json.dumps(app_item)
    sm = boto3.client("secretsmanager", endpoint_url=stack_env["AWS_ENDPOINT_OVERRIDE"])
    name = f"{stack_env['SECRETS_PREFIX']}{app_ctx.app_id}/webhook-secret"
    assert json.loads(sm.get_secret_value(SecretId=name)["SecretString"])["secret"] == secret


def test_removing_the_webhook_drops_its_secret_and_a_new_one_is_issued(
    app_ctx: AppContext, hook: Receiver
) -> None:
    old = _set(app_ctx, hook.url).data["webhookSecret"]
    app_ctx.api.call("PATCH", app_ctx.path("/settings"), {"webhook": None}, token=app_ctx.admin)
    new = _set(app_ctx, hook.url).data["webhookSecret"]
    assert new != old


def test_a_test_event_arrives_signed_with_the_current_secret(app_ctx: AppContext, hook: Receiver) -> None:
    # Given a webhook whose secret was rotated
    _set(app_ctx, hook.url)
    rotated = app_ctx.api.call("POST", app_ctx.path("/settings/webhook-secret/rotate"), token=OPERATOR_KEY)
    assert rotated.status_code == 200, rotated.body
    secret = rotated.data["webhookSecret"]
    # When a test event is sent
    resp = app_ctx.api.call("POST", app_ctx.path("/settings/webhook/test"), token=app_ctx.admin)
    # Then it arrived, signed with the new secret
    assert resp.status_code == 200, resp.body
    assert resp.data["delivered"] is True and resp.data["status"] == 200
    [request] = hook.requests
    assert verify(secret, request.headers[SIGNATURE_HEADER.lower()], request.body)
    [event] = request.events
    assert event["type"] == "webhook.test" and event["id"] == resp.data["eventId"]
    assert event["appId"] == app_ctx.app_id


def test_a_failing_test_event_says_why_and_the_deliveries_list_it(
    app_ctx: AppContext, hook: Receiver
) -> None:
    _set(app_ctx, hook.url)
    app_ctx.api.call("POST", app_ctx.path("/settings/webhook/test"), token=app_ctx.admin)
    hook.status = 503
    failed = app_ctx.api.call("POST", app_ctx.path("/settings/webhook/test"), token=app_ctx.admin)
    assert failed.data["delivered"] is False and failed.data["status"] == 503
    assert "503" in failed.data["error"]
    listed = app_ctx.api.call("GET", app_ctx.path("/settings/webhook/deliveries"), token=OPERATOR_KEY)
    assert listed.status_code == 200, listed.body
    assert [(d["delivered"], d["status"], d["outcome"]) for d in listed.data["items"]] == [
        (False, 503, "test"),
        (True, 200, "test"),
    ]


def test_an_unreachable_receiver_is_reported_not_a_500(app_ctx: AppContext) -> None:
    with receiver() as gone:
        url = gone.url
    _set(app_ctx, url)
    resp = app_ctx.api.call("POST", app_ctx.path("/settings/webhook/test"), token=app_ctx.admin)
    assert resp.status_code == 200, resp.body
    assert resp.data["delivered"] is False and resp.data["status"] is None
    assert resp.data["error"]


@pytest.mark.parametrize("path", ["/settings/webhook/test", "/settings/webhook-secret/rotate"])
def test_without_a_webhook_test_and_rotate_are_409(app_ctx: AppContext, path: str) -> None:
    resp = app_ctx.api.call("POST", app_ctx.path(path), token=app_ctx.admin)
    assert resp.status_code == 409, resp.body
    assert "set one first" in resp.data["error"]["message"]


def _readme_receiver() -> str:
    """The ten-line receiver the README shows, as written there."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Outcome webhooks and delivery receipts") :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```", start)]


@pytest.mark.parametrize("right_secret", [True, False])
def test_the_readmes_receiver_verifies_the_signature(app_ctx: AppContext, right_secret: bool) -> None:
    code = _readme_receiver()
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    server = namespace["hs"].HTTPServer(("127.0.0.1", 0), namespace["Hook"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        secret = _set(app_ctx, f"http://127.0.0.1:{server.server_address[1]}/hook").data["webhookSecret"]
        namespace["SECRET"] = secret.encode() if right_secret else b"whsec_not-the-secret"
        resp = app_ctx.api.call("POST", app_ctx.path("/settings/webhook/test"), token=app_ctx.admin)
    finally:
        server.shutdown()
        server.server_close()
    assert resp.data["delivered"] is right_secret
    assert resp.data["status"] == (200 if right_secret else 400)
