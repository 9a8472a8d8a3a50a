"""Bad input the schema-driven fuzzer is unlikely to build: it must get a documented 4xx, never a 500.

Each case here was found (or first suspected) while fuzzing; they stay as regression tests.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from tests.conftest import OPERATOR_KEY, AppContext
from tests.e2e import conftest as e2e
from tests.hardening.openapi_ops import operations

stack = e2e.stack  # the e2e fixture: the SQS handlers pumped synchronously
DOCUMENTED = {(op.method, op.path): op.statuses for op in operations()}


def cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


def assert_refused(resp: Any, method: str, template: str, allowed: tuple[int, ...] = (400,)) -> None:
    where = f"{method} {template}: {resp.status_code} {resp.body[:300]!r}"
    assert resp.status_code in allowed, where
    assert resp.status_code in DOCUMENTED[(method, template)], f"undocumented status: {where}"
    if resp.status_code >= 400:
        assert set(resp.data) == {"error"} and {"code", "message"} <= set(resp.data["error"]), where


FORGED_CURSORS = {
    "plain strings": {"pk": "x", "sk": "y"},
    "number attribute": {"pk": {"N": "1"}, "sk": {"S": "M#u1"}},
    "list attribute": {"pk": {"S": "G#a#g"}, "sk": {"L": []}},
    "nulls": {"pk": None, "sk": None},
    "two types": {"pk": {"S": "x", "N": "1"}, "sk": {"S": "y"}},
    "another group's key": {"pk": {"S": "G#app-000000000000#other"}, "sk": {"S": "M#u1"}},
}


@pytest.mark.parametrize("name", list(FORGED_CURSORS))
def test_forged_members_cursor_is_400(app_ctx: AppContext, name: str) -> None:
    a = app_ctx
    a.api.call(
        "PUT", a.path("/groups/g1/members"), {"add": [{"userId": f"u{i}"} for i in range(3)]}, token=a.admin
    )
    resp = a.api.call(
        "GET", a.path(f"/groups/g1/members?limit=1&cursor={cursor(FORGED_CURSORS[name])}"), token=a.admin
    )
    assert_refused(resp, "GET", "/v1/apps/{appId}/groups/{groupId}/members")


@pytest.mark.parametrize("name", list(FORGED_CURSORS))
def test_forged_deliveries_cursor_is_400(stack: e2e.Stack, app_ctx: AppContext, name: str) -> None:
    a = app_ctx
    body = {
        "messageId": f"m-cursor-{list(FORGED_CURSORS).index(name)}",
        "sendTime": int(time.time()),
        "sender": {"userId": "alice"},
        "to": {"groupId": "g", "members": ["bob", "carol"]},
        "elems": [{"type": "text", "text": "hi"}],
    }
    assert a.api.call("POST", a.path("/messages"), body, token=a.admin).status_code == 202
    stack.pump()
    path = a.path(f"/messages/{body['messageId']}/deliveries")
    assert a.api.call("GET", path, token=a.admin).status_code == 200
    resp = a.api.call("GET", f"{path}?limit=1&cursor={cursor(FORGED_CURSORS[name])}", token=a.admin)
    assert_refused(resp, "GET", "/v1/apps/{appId}/messages/{messageId}/deliveries")


@pytest.mark.parametrize(
    "change",
    [
        {"remove": ["bob", "bob"]},
        {"add": [{"userId": "carol"}], "remove": ["bob"] * 30},
    ],
    ids=["remove twice", "remove 30 times"],
)
def test_duplicate_user_ids_in_members_change(app_ctx: AppContext, change: dict[str, Any]) -> None:
    a = app_ctx
    resp = a.api.call("PUT", a.path("/groups/g1/members"), change, token=a.admin)
    assert_refused(resp, "PUT", "/v1/apps/{appId}/groups/{groupId}/members", allowed=(204, 400))


@pytest.mark.parametrize(
    "dnd",
    [{"enabled": None}, {"endHour": 23, "enabled": None}, {"timezone": None}, {"startHour": None}],
    ids=["enabled null", "hour and enabled null", "timezone null", "startHour null"],
)
def test_null_inside_do_not_disturb_patch(app_ctx: AppContext, dnd: dict[str, Any]) -> None:
    """The schema allows null in every DoNotDisturbPatch field: it must mean 'unchanged' (or a 400)."""
    a = app_ctx
    resp = a.api.call("PATCH", a.path("/users/bob/push-config"), {"doNotDisturb": dnd}, token=a.admin)
    assert_refused(resp, "PATCH", "/v1/apps/{appId}/users/{userId}/push-config", allowed=(200, 400))


NESTED = {
    "array": b"[" * 100_000 + b"]" * 100_000,
    "object in a field": b'{"name": ' + b'{"a": ' * 20_000 + b"1" + b"}" * 20_000 + b"}",
}


@pytest.mark.parametrize("shape", list(NESTED))
@pytest.mark.parametrize(
    ("method", "template", "suffix", "operator"),
    [
        ("POST", "/v1/apps", None, True),
        ("POST", "/v1/apps/{appId}/messages", "/messages", False),
        ("PATCH", "/v1/apps/{appId}/users/{userId}/push-config", "/users/bob/push-config", False),
    ],
    ids=["create app", "submit message", "patch push-config"],
)
def test_deeply_nested_json_under_the_size_limit_is_400(
    app_ctx: AppContext, shape: str, method: str, template: str, suffix: str | None, operator: bool
) -> None:
    a = app_ctx
    raw = NESTED[shape]
    assert len(raw) < 256 * 1024  # under MAX_BODY_BYTES: it reaches the JSON parser
    path = a.path(suffix) if suffix else template
    resp = a.api.call(method, path, raw=raw, token=OPERATOR_KEY if operator else a.admin)
    assert_refused(resp, method, template)


def test_overlong_app_claim_is_401(app_ctx: AppContext) -> None:
    import jwt

    claims = {"app": "x" * 5000, "sub": "bob", "role": "admin", "exp": int(time.time()) + 60}
    token = jwt.encode(claims, "k" * 40, algorithm="HS256")
    resp = app_ctx.api.call("GET", app_ctx.path("/credentials"), token=token)
    assert_refused(resp, "GET", "/v1/apps/{appId}/credentials", allowed=(401,))
