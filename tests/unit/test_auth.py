"""Authentication and authorization rules (API.md Authentication), pure."""

from __future__ import annotations

import time

import jwt
import pytest

from chalicelib.errors import Forbidden, Unauthorized
from chalicelib.services.auth import Access, Principal, authenticate, authorize, mint_token

SECRETS = {"app-1": "k" * 43, "app-2": "z" * 43}
OPERATOR = "operator-key-0123456789"


def auth(header: str | None) -> Principal:
    return authenticate(header, OPERATOR, SECRETS.get)


def test_operator_key() -> None:
    assert auth(f"Bearer {OPERATOR}") == Principal(kind="operator")


@pytest.mark.parametrize("role", ["user", "admin"])
def test_app_token(role: str) -> None:
    p = auth("Bearer " + mint_token(SECRETS["app-1"], "app-1", "bob", role))  # type: ignore[arg-type]
    assert p == Principal(kind=role, app_id="app-1", user_id="bob")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        (None, "Authorization: Bearer"),
        ("Basic abc", "Bearer <token>"),
        ("Bearer ", "Bearer <token>"),
        ("Bearer not-a-jwt", "neither the operator key nor a JWT"),
        ("Bearer " + mint_token(SECRETS["app-1"], "app-1", "bob", ttl_s=-10), "expired"),
        ("Bearer " + mint_token("w" * 43, "app-1", "bob"), "signature"),
        ("Bearer " + mint_token(SECRETS["app-1"], "app-404", "bob"), "does not exist"),
        ("Bearer " + jwt.encode({"app": "app-1", "sub": "bob", "role": "user"}, SECRETS["app-1"]), "'exp'"),
        (
            "Bearer " + jwt.encode({"app": "app-1", "sub": "bob", "exp": time.time() + 3600}, SECRETS["app-1"]),
            "'role'",
        ),
        (
            "Bearer " + jwt.encode({"sub": "bob", "exp": time.time() + 3600, "role": "user"}, SECRETS["app-1"]),
            "'app'",
        ),
        (
            "Bearer "
            + jwt.encode(
                {"app": "app-1", "sub": "b", "exp": time.time() + 3600, "role": "root"}, SECRETS["app-1"]
            ),
            "'role'",
        ),
        (
            "Bearer "
            + jwt.encode(
                {"app": "app-1", "sub": "b", "exp": time.time() + 3600, "role": "user"},
                SECRETS["app-1"],
                algorithm="HS512",
            ),
            "HS256",
        ),
    ],
)
def test_bad_credentials_are_401(header: str | None, needle: str) -> None:
    with pytest.raises(Unauthorized, match=needle):
        auth(header)


def test_unsigned_token_is_refused() -> None:
    token = jwt.encode(
        {"app": "app-1", "sub": "b", "exp": time.time() + 3600, "role": "admin"}, None, algorithm="none"
    )
    with pytest.raises(Unauthorized):
        auth("Bearer " + token)


OPERATOR_P = Principal("operator")
ADMIN = Principal("admin", "app-1", "im-server")
BOB = Principal("user", "app-1", "bob")


@pytest.mark.parametrize(
    ("principal", "access", "app", "user", "allowed"),
    [
        (OPERATOR_P, Access.OPERATOR, None, None, True),
        (ADMIN, Access.OPERATOR, None, None, False),
        (OPERATOR_P, Access.ADMIN, "app-1", None, False),
        (ADMIN, Access.ADMIN, "app-1", None, True),
        (ADMIN, Access.ADMIN, "app-2", None, False),
        (BOB, Access.ADMIN, "app-1", None, False),
        (BOB, Access.USER, "app-1", "bob", True),
        (BOB, Access.USER, "app-1", "alice", False),
        (BOB, Access.USER, "app-2", "bob", False),
        (ADMIN, Access.USER, "app-1", "alice", True),
        (OPERATOR_P, Access.USER, "app-1", "bob", False),
    ],
)
def test_authorization_matrix(
    principal: Principal, access: Access, app: str, user: str, allowed: bool
) -> None:
    if allowed:
        authorize(principal, access, app, user)
    else:
        with pytest.raises(Forbidden):
            authorize(principal, access, app, user)
