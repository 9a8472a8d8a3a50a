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
MAX_TOKEN_LIFETIME_S = 30 * 86400  # an app token whose exp lies further ahead is refused


class Access(Enum):
    """What an operation needs."""

    OPERATOR = "operator"  # the operator key (creating apps)
    ADMIN = "admin"  # an admin token of the app in the path (the IM server)
    USER = "user"  # a user token for the user in the path, or an admin token of the app
    APP_ADMIN = "appAdmin"  # an admin token of the app in the path, or the operator key (settings, stats)
    PUBLIC = "public"  # no token: the request proves itself (receipts carry HMAC'd references)


@dataclass(frozen=True)
class Principal:
    kind: Literal["operator", "admin", "user", "anonymous"]
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
    app_keys: Callable[[str], list[str] | None],
    now_s: Callable[[], float] = time.time,
) -> Principal:
    """Identify the caller; ``app_keys(appId)`` answers the app's valid signing keys (the current one
    first, then a rotated-out one still in its grace period) or None when the app does not exist."""
    token = bearer_token(header)
    if operator_key and hmac.compare_digest(token.encode(), operator_key.encode()):
        return Principal(kind="operator")
    try:
        unverified = jwt.decode(token, options={"verify_signature": False, "verify_exp": False})
    except jwt.PyJWTError:
        raise Unauthorized(
            "the bearer token is neither the operator key nor a JWT: mint an app token signed with the "
            "app's secretKey (HS256, claims app, sub, exp, role)"
        ) from None
    if not isinstance(unverified, dict):
        raise Unauthorized("the token's payload must be a JSON object of claims (app, sub, exp, role)")
    app_id = unverified.get("app")
    if not isinstance(app_id, str) or not app_id:
        raise Unauthorized("the token has no 'app' claim: put the app ID in the 'app' claim")
    if not APP_ID_RE.fullmatch(app_id):
        # Checked before any lookup: an unauthenticated caller must not make us query Secrets Manager
        # with arbitrary names (nor see its input echoed back).
        raise Unauthorized("the token's 'app' claim is not an app ID such as 'app-1a2b3c4d5e6f'")
    _check_exp(unverified.get("exp"), now_s())
    keys = app_keys(app_id)
    if keys is None:
        raise Unauthorized(f"the token's app '{app_id}' does not exist")
    claims = _verify(token, keys)
    role, sub = claims.get("role"), claims.get("sub")
    if role not in ("user", "admin"):
        raise Unauthorized("the token's 'role' claim must be 'user' or 'admin'")
    if not isinstance(sub, str) or not sub:
        raise Unauthorized("the token's 'sub' claim must be the user ID (a non-empty string)")
    return Principal(kind=role, app_id=app_id, user_id=sub)


def _check_exp(exp: Any, now: float) -> None:
    """``exp`` must be an integer number of seconds at most 30 days ahead: a token that never
    expires (year 9999) could never be revoked short of rotating the app's key."""
    if exp is None:
        raise Unauthorized("the token lacks the 'exp' claim (required: app, sub, exp, role)")
    if isinstance(exp, bool) or not isinstance(exp, int):
        raise Unauthorized("the token's 'exp' claim must be an integer number of seconds since the epoch")
    if exp > now + MAX_TOKEN_LIFETIME_S:
        raise Unauthorized(
            "the token's 'exp' lies more than 30 days ahead: mint tokens that expire within 30 days"
        )


def _verify(token: str, keys: list[str]) -> dict[str, Any]:
    """The verified claims, with the first key whose signature matches."""
    for key in keys:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=["HS256"], options={"require": _REQUIRED_CLAIMS}
            )
            return claims
        except jwt.InvalidSignatureError:
            continue
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired: mint a new one") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(
                f"the token lacks the '{exc.claim}' claim (required: app, sub, exp, role)"
            ) from None
        except jwt.InvalidAlgorithmError:
            raise Unauthorized("app tokens are signed with HS256") from None
        except jwt.PyJWTError:
            break
    raise Unauthorized(
        "the token's signature does not verify with the app's secretKey (after a rotation, tokens "
        "signed with the previous key stop working at its previousValidUntil)"
    )


def authorize(principal: Principal, access: Access, app_id: str | None, user_id: str | None) -> None:
    """Raise Forbidden unless the principal may perform an operation of this access level here."""
    if access is Access.PUBLIC:
        return
    if access is Access.OPERATOR:
        if principal.kind != "operator":
            raise Forbidden("only the operator key may do this")
        return
    if principal.kind == "operator":
        if access is Access.APP_ADMIN:
            return
        raise Forbidden(
            "the operator key only manages apps: use an admin token of the app (POST /v1/apps/{appId}/tokens)"
        )
    if principal.app_id != app_id:
        raise Forbidden(f"the token belongs to app '{principal.app_id}', not to app '{app_id}'")
    if principal.kind == "admin":
        return
    if access in (Access.ADMIN, Access.APP_ADMIN):
        raise Forbidden("this needs an admin token (role 'admin'): user tokens cannot do it")
    if user_id is not None and principal.user_id != user_id:
        raise Forbidden(f"a user token may only touch its own user ('{principal.user_id}'), not '{user_id}'")


def mint_token(
    secret: str, app_id: str, user_id: str, role: Role = "user", ttl_s: int = 3600, now_s: int | None = None
) -> str:
    """An app token as the IM server (admin) or the IM server on a user's behalf (user) would mint it."""
    now = int(time.time()) if now_s is None else now_s
    claims = {"app": app_id, "sub": user_id, "role": role, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, secret, algorithm="HS256")
