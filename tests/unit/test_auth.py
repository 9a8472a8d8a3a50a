"""Authentication and authorization rules (API.md Authentication), pure."""

from __future__ import annotations

import time
from collections.abc import Callable

import jwt
import pytest

from chalicelib.errors import Forbidden, Unauthorized
from chalicelib.services.auth import Access, Principal, authenticate, authorize, mint_token

SECRETS = {"app-000000000001": "k" * 43, "app-000000000002": "z" * 43}
OPERATOR = "operator-key-0123456789"


def keys(app_id: str) -> list[str] | None:
    return [SECRETS[app_id]] if app_id in SECRETS else None


def auth(header: str | None) -> Principal:
    return authenticate(header, OPERATOR, keys)


def test_operator_key() -> None:
    assert auth(f"Bearer {OPERATOR}") == Principal(kind="operator")


@pytest.mark.parametrize("role", ["user", "admin"])
def test_app_token(role: str) -> None:
    p = auth("Bearer " + mint_token(SECRETS["app-000000000001"], "app-000000000001", "bob", role))  # type: ignore[arg-type]
    assert p == Principal(kind=role, app_id="app-000000000001", user_id="bob")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "needle"),
    [
        (None, "Authorization: Bearer"),
        ("Basic abc", "Bearer <token>"),
        ("Bearer ", "Bearer <token>"),
        ("Bearer not-a-jwt", "neither the operator key nor a JWT"),
        (
            "Bearer " + mint_token(SECRETS["app-000000000001"], "app-000000000001", "bob", ttl_s=-10),
            "expired",
        ),
        ("Bearer " + mint_token("w" * 43, "app-000000000001", "bob"), "signature"),
        ("Bearer " + mint_token(SECRETS["app-000000000001"], "app-000000000404", "bob"), "does not exist"),
        (
            "Bearer "
            + jwt.encode(
                {"app": "app-000000000001", "sub": "bob", "role": "user"}, SECRETS["app-000000000001"]
            ),
            "'exp'",
        ),
        (
            "Bearer "
            + jwt.encode(
                {"app": "app-000000000001", "sub": "bob", "exp": int(time.time()) + 3600},
                SECRETS["app-000000000001"],
            ),
            "'role'",
        ),
        (
            "Bearer "
            + jwt.encode(
                {"sub": "bob", "exp": int(time.time()) + 3600, "role": "user"}, SECRETS["app-000000000001"]
            ),
            "'app'",
        ),
        (
            "Bearer "
            + jwt.encode(
                {"app": "app-000000000001", "sub": "b", "exp": int(time.time()) + 3600, "role": "root"},
                SECRETS["app-000000000001"],
            ),
            "'role'",
        ),
        (
            "Bearer "
            + jwt.encode(
                {"app": "app-000000000001", "sub": "b", "exp": int(time.time()) + 3600, "role": "user"},
                SECRETS["app-000000000001"],
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
        {"app": "app-000000000001", "sub": "b", "exp": int(time.time()) + 3600, "role": "admin"},
        None,
        algorithm="none",
    )
    with pytest.raises(Unauthorized):
        auth("Bearer " + token)


OPERATOR_P = Principal("operator")
ADMIN = Principal("admin", "app-000000000001", "im-server")
BOB = Principal("user", "app-000000000001", "bob")


@pytest.mark.parametrize(
    ("principal", "access", "app", "user", "allowed"),
    [
        (OPERATOR_P, Access.OPERATOR, None, None, True),
        (ADMIN, Access.OPERATOR, None, None, False),
        (OPERATOR_P, Access.ADMIN, "app-000000000001", None, False),
        (ADMIN, Access.ADMIN, "app-000000000001", None, True),
        (ADMIN, Access.ADMIN, "app-000000000002", None, False),
        (BOB, Access.ADMIN, "app-000000000001", None, False),
        (BOB, Access.USER, "app-000000000001", "bob", True),
        (BOB, Access.USER, "app-000000000001", "alice", False),
        (BOB, Access.USER, "app-000000000002", "bob", False),
        (ADMIN, Access.USER, "app-000000000001", "alice", True),
        (OPERATOR_P, Access.USER, "app-000000000001", "bob", False),
        (OPERATOR_P, Access.APP_ADMIN, "app-000000000001", None, True),
        (ADMIN, Access.APP_ADMIN, "app-000000000001", None, True),
        (ADMIN, Access.APP_ADMIN, "app-000000000002", None, False),
        (BOB, Access.APP_ADMIN, "app-000000000001", None, False),
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


@pytest.mark.parametrize("claim", ["x" * 5000, "app-../../etc", "APP-000000000001", "app-xyz"])
def test_app_claim_must_look_like_an_app_id_before_any_lookup(claim: str) -> None:
    looked_up: list[str] = []

    def secret(app_id: str) -> list[str] | None:
        looked_up.append(app_id)
        return None

    token = jwt.encode({"app": claim, "sub": "b", "exp": int(time.time()) + 3600, "role": "user"}, "k" * 43)
    with pytest.raises(Unauthorized, match="not an app ID") as exc:
        authenticate("Bearer " + token, OPERATOR, secret)
    assert looked_up == []
    assert claim not in exc.value.message


# ---- exp limits (API.md "Operator access"): integer seconds, at most 30 days ahead ----------------


def _signed(exp: object) -> str:
    claims = {"app": "app-000000000001", "sub": "bob", "role": "user", "exp": exp}
    return jwt.encode(claims, SECRETS["app-000000000001"], algorithm="HS256")


@pytest.mark.parametrize(
    "exp",
    # the year 9999; 30 days and 2 minutes from when the test runs (not when it was collected)
    [lambda: 253402300799, lambda: int(time.time()) + 30 * 86400 + 120],
    ids=["year-9999", "just-over-30-days"],
)
def test_exp_more_than_30_days_ahead_is_refused(exp: Callable[[], int]) -> None:
    with pytest.raises(Unauthorized, match="more than 30 days ahead"):
        auth("Bearer " + _signed(exp()))


def test_exp_just_under_30_days_is_accepted() -> None:
    assert auth("Bearer " + _signed(int(time.time()) + 30 * 86400 - 120)).user_id == "bob"


@pytest.mark.parametrize(
    "exp",
    [str(int(time.time()) + 600), float(int(time.time()) + 600), True, None, [1]],
    ids=["string", "float", "bool", "null", "list"],
)
def test_exp_must_be_an_integer(exp: object) -> None:
    with pytest.raises(Unauthorized, match="'exp'"):
        auth("Bearer " + _signed(exp))


def test_exp_checked_before_the_app_key_is_looked_up() -> None:
    looked_up: list[str] = []

    def keys_of(app_id: str) -> list[str] | None:
        looked_up.append(app_id)
        return ["k" * 43]

    with pytest.raises(Unauthorized):
        authenticate("Bearer " + _signed(253402300799), OPERATOR, keys_of)
    assert looked_up == []


def test_token_signed_with_any_valid_key_is_accepted_and_others_refused() -> None:
    old, new = "o" * 43, "n" * 43
    app = "app-000000000001"
    both = authenticate("Bearer " + mint_token(old, app, "bob"), OPERATOR, lambda a: [new, old])
    assert both.user_id == "bob"
    with pytest.raises(Unauthorized, match="previous key"):
        authenticate("Bearer " + mint_token(old, app, "bob"), OPERATOR, lambda a: [new])
