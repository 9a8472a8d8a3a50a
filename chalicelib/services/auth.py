"""Who is calling: the operator key and HS256 app tokens, and what each may touch (API.md Authentication)."""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal

import jwt

from chalicelib.errors import Forbidden, Unauthorized

Role = Literal["user", "admin"]
APP_ID_RE = re.compile(r"^app-[0-9a-f]{12}$")  # what AppService.create generates
_REQUIRED_CLAIMS = ["app", "sub", "exp", "role"]


class Access(Enum):
    """What an operation needs."""

    OPERATOR = "operator"  # the operator key (creating apps)
    ADMIN = "admin"  # an admin token of the app in the path (the IM server)
    USER = "user"  # a user token for the user in the path, or an admin token of the app


@dataclass(frozen=True)
class Principal:
    kind: Literal["operator", "admin", "user"]
    app_id: str | None = None
    user_id: str | None = None


def bearer_token(header: str | None) -> str:
    if not header:
        raise Unauthorized("send 'Authorization: Bearer <token>': an app token, or the operator key")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return token.strip()


def authenticate(
    header: str | None,
    operator_key: str | None,
    app_secret: Callable[[str], str | None],
) -> Principal:
    """Identify the caller; ``app_secret(appId)`` answers the app's signing key or None."""
    token = bearer_token(header)
    if operator_key and hmac.compare_digest(token.encode(), operator_key.encode()):
        return Principal(kind="operator")
    try:
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise Unauthorized(
            "the bearer token is neither the operator key nor a JWT: mint an app token signed with the "
            "app's secretKey (HS256, claims app, sub, exp, role)"
        ) from None
    app_id = unverified.get("app") if isinstance(unverified, dict) else None
    if not isinstance(app_id, str) or not app_id:
        raise Unauthorized("the token has no 'app' claim: put the app ID in the 'app' claim")
    if not APP_ID_RE.fullmatch(app_id):
        # Checked before any lookup: an unauthenticated caller must not make us query Secrets Manager
        # with arbitrary names (nor see its input echoed back).
        raise Unauthorized("the token's 'app' claim is not an app ID such as 'app-1a2b3c4d5e6f'")
    secret = app_secret(app_id)
    if secret is None:
        raise Unauthorized(f"the token's app '{app_id}' does not exist")
    try:
        claims: dict[str, Any] = jwt.decode(
            token, secret, algorithms=["HS256"], options={"require": _REQUIRED_CLAIMS}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("the token has expired: mint a new one") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(
            f"the token lacks the '{exc.claim}' claim (required: app, sub, exp, role)"
        ) from None
    except jwt.InvalidAlgorithmError:
        raise Unauthorized("app tokens are signed with HS256") from None
    except jwt.PyJWTError:
        raise Unauthorized("the token's signature does not verify with the app's secretKey") from None
    role, sub = claims.get("role"), claims.get("sub")
    if role not in ("user", "admin"):
        raise Unauthorized("the token's 'role' claim must be 'user' or 'admin'")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("the token's 'sub' claim must be the user ID (a non-empty string)")
    return Principal(kind=role, app_id=app_id, user_id=sub)


def authorize(principal: Principal, access: Access, app_id: str | None, user_id: str | None) -> None:
    """Raise Forbidden unless the principal may perform an operation of this access level here."""
    if access is Access.OPERATOR:
        if principal.kind != "operator":
            raise Forbidden("only the operator key may do this")
        return
    if principal.kind == "operator":
        raise Forbidden("the operator key only creates apps: use an admin token of the app")
    if principal.app_id != app_id:
        raise Forbidden(f"the token belongs to app '{principal.app_id}', not to app '{app_id}'")
    if principal.kind == "admin":
        return
    if access is Access.ADMIN:
        raise Forbidden("this needs an admin token (role 'admin'): user tokens cannot do it")
    if user_id is not None and principal.user_id != user_id:
        raise Forbidden(f"a user token may only touch its own user ('{principal.user_id}'), not '{user_id}'")


def mint_token(secret: str, app_id: str, user_id: str, role: Role = "user", ttl_s: int = 3600) -> str:
    """An app token as the IM server (admin) or the IM server on a user's behalf (user) would mint it."""
    now = int(time.time())
    claims = {"app": app_id, "sub": user_id, "role": role, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, secret, algorithm="HS256")
