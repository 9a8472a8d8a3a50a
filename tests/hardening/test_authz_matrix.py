"""Authorization matrix: every operation of openapi.json x every kind of caller -> the expected status.

The operations and their access levels are read from the committed openapi.json (the sentence
chalicelib/api/openapi.py writes into each description), so a new endpoint is in the matrix as
soon as `make openapi` documents it. The rule is the one table EXPECTED below.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from tests.conftest import OPERATOR_KEY, Api
from tests.hardening.openapi_ops import Op, operations

OK = "ok"  # passed authentication and authorization: a 2xx, or a 4xx from validation / lookup

# The rule: (caller, operation access level) -> the expected answer.
#   operator = apps (create, list, console tokens, key rotation); admin = credentials, messages, groups;
#   user = devices, push-config, app-state (a user token for the user in the path, or an admin token);
#   appAdmin = app settings and statistics (an admin token of the app, or the operator key).
#   public = receipts (no token: the references prove themselves; any Authorization is ignored).
EXPECTED: dict[str, dict[str, int | str]] = {
    #                        operator  admin  user  appAdmin  public
    "no token": {"operator": 401, "admin": 401, "user": 401, "appAdmin": 401, "public": OK},
    "expired": {"operator": 401, "admin": 401, "user": 401, "appAdmin": 401, "public": OK},
    "forged signature": {"operator": 401, "admin": 401, "user": 401, "appAdmin": 401, "public": OK},
    "other app's admin": {"operator": 403, "admin": 403, "user": 403, "appAdmin": 403, "public": OK},
    "other user": {"operator": 403, "admin": 403, "user": 403, "appAdmin": 403, "public": OK},
    "user (own user)": {"operator": 403, "admin": 403, "user": OK, "appAdmin": 403, "public": OK},
    "admin": {"operator": 403, "admin": OK, "user": OK, "appAdmin": OK, "public": OK},
    "operator key": {"operator": OK, "admin": 403, "user": 403, "appAdmin": OK, "public": OK},
}
CALLERS = list(EXPECTED)
OPS = operations()

OWN_USER = "alice"
OTHER_USER = "mallory"
DEVICE = "ab" * 32
BUNDLE = "com.example.authz"


@dataclass
class Tenant:
    app_id: str
    secret_key: str

    def token(self, user_id: str, role: str, ttl_s: int = 3600) -> str:
        from chalicelib.services.auth import mint_token

        return mint_token(self.secret_key, self.app_id, user_id, role, ttl_s)  # type: ignore[arg-type]


@dataclass
class Matrix:
    api: Api
    app: Tenant
    other: Tenant
    credential_id: int
    victim_id: int  # the credential DELETE deletes, so the others keep answering 200

    def bearer(self, caller: str) -> str | None:
        now = int(time.time())
        forged_claims = {"app": self.app.app_id, "sub": "im-server", "role": "admin", "exp": now + 600}
        tokens: dict[str, Callable[[], str | None]] = {
            "no token": lambda: None,
            "expired": lambda: self.app.token("im-server", "admin", ttl_s=-60),
            "forged signature": lambda: jwt.encode(forged_claims, "not-the-apps-secret-key-" * 2, "HS256"),
            "other app's admin": lambda: self.other.token("im-server", "admin"),
            "other user": lambda: self.app.token(OTHER_USER, "user"),
            "user (own user)": lambda: self.app.token(OWN_USER, "user"),
            "admin": lambda: self.app.token("im-server", "admin"),
            "operator key": lambda: OPERATOR_KEY,
        }
        return tokens[caller]()

    def path(self, op: Op) -> str:
        values: dict[str, Any] = {
            "appId": self.app.app_id,
            "userId": OWN_USER,
            "otherUserId": "bob",
            "groupId": "g1",
            "messageId": "m-authz",
            "deviceToken": DEVICE,
            "certificateId": self.victim_id if op.method == "DELETE" else self.credential_id,
            "kind": "group",
            "conversationId": "g1",
        }
        return op.path.format(**{name: values.get(name, "x1") for name in op.path_params})

    def body(self, op: Op) -> Any:
        """A valid body for the operations known today; `{}` (a 400 once past auth) for new ones."""
        if not op.has_body:
            return None
        samples: dict[str, Any] = {
            "create_app": {"name": "Authz"},
            "issue_token": {"role": "admin", "ttlSeconds": 600},
            # a 400 once past auth: rotating the key here would end the other callers' tokens
            "rotate_secret_key": {"graceSeconds": -1},
            "upload_credential": {"type": "p8", "name": "x", "environment": "production"},  # 400
            "submit_message": {
                "messageId": "m-authz",
                "sendTime": 1763790000,
                "sender": {"userId": "bob"},
                "to": {"userId": OWN_USER},
                "elems": [{"type": "text", "text": "hi"}],
            },
            "edit_message": {"elems": [{"type": "text", "text": "edited"}]},
            "change_members": {"add": [{"userId": OWN_USER}]},
            "register_device": {"certificateId": self.credential_id},
            "patch_push_config": {"openPush": True},
            "put_app_state": {"state": "background", "unreadCount": 1},
            "put_conversation_setting": {"remindType": "mentionOnly"},
            "put_presence": {"users": [{"userId": OWN_USER, "state": "foreground"}]},
            "post_receipts": {"receipts": [{"r": "A" * 40, "event": "delivered"}]},
        }
        return samples.get(op.operation_id, {})


def _tenant(api: Api, name: str) -> Tenant:
    resp = api.call("POST", "/v1/apps", {"name": name}, token=OPERATOR_KEY)
    assert resp.status_code == 201, resp.body
    return Tenant(resp.data["appId"], resp.data["secretKey"])


@pytest.fixture(scope="module")
def matrix(chalice_client: Any, sandbox: Any) -> Matrix:
    api = Api(chalice_client)
    app, other = _tenant(api, "Authz"), _tenant(api, "Other")
    key = sandbox.issue_p8([BUNDLE])
    ids = []
    for name in ("authz-key", "authz-victim"):
        resp = api.call(
            "POST",
            f"/v1/apps/{app.app_id}/credentials",
            {
                "type": "p8",
                "name": name,
                "environment": "production",
                "p8": key["p8"],
                "keyId": key["keyId"],
                "teamId": key["teamId"],
                "bundleId": BUNDLE,
            },
            token=app.token("im-server", "admin"),
        )
        assert resp.status_code == 201, resp.body
        ids.append(int(resp.data["certificateId"]))
    return Matrix(api=api, app=app, other=other, credential_id=ids[0], victim_id=ids[1])


def test_every_operation_declares_401_and_403() -> None:
    assert len(OPS) >= 20
    for op in OPS:
        if op.access != "public":
            assert {401, 403} <= op.statuses, f"{op.label} does not document 401/403"


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("op", OPS, ids=[op.label for op in OPS])
def test_authorization(matrix: Matrix, op: Op, caller: str) -> None:
    expected = EXPECTED[caller][op.access]
    token = matrix.bearer(caller)
    resp = matrix.api.call(op.method, matrix.path(op), matrix.body(op), token=token or "")
    got = resp.status_code
    where = f"{op.label} as {caller} ({op.access} operation): {got} {resp.body[:300]!r}"
    assert got < 500, where
    if expected == OK:
        assert got not in (401, 403), where
        assert got in op.statuses, f"undocumented status: {where}"
    else:
        assert got == expected, f"expected {expected}: {where}"
        assert resp.data["error"]["code"] == ("Unauthorized" if got == 401 else "Forbidden"), where
