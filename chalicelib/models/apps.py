"""Apps: the tenant of everything else; each has its own token-signing secret."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from chalicelib.models.base import ApiModel


class AppCreate(ApiModel):
    name: str = Field(min_length=1, max_length=128, description="A display name for the app.")


class AppCreated(ApiModel):
    app_id: str = Field(description="The app's ID, used in every path.")
    name: str
    secret_key: str = Field(
        description="HS256 key for app tokens. Shown once: store it with the IM server's secrets."
    )


class AppSummary(ApiModel):
    app_id: str
    name: str
    created_at: datetime


class AppList(ApiModel):
    items: list[AppSummary]


MAX_CONSOLE_TOKEN_TTL_S = 12 * 3600
MAX_GRACE_S = 7 * 86400


class TokenRequest(ApiModel):
    role: Literal["admin"] = Field(description="Only 'admin': the console acts as the app's IM server.")
    ttl_seconds: int = Field(
        3600, ge=60, le=MAX_CONSOLE_TOKEN_TTL_S, description="Lifetime, 60 s to 12 h (default 1 h)."
    )


class TokenIssued(ApiModel):
    token: str = Field(description="An admin app token (HS256 JWT) for the app: keep it in memory only.")
    expires_at: datetime


class KeyRotation(ApiModel):
    grace_seconds: int = Field(
        3600,
        ge=0,
        le=MAX_GRACE_S,
        description="How long tokens signed with the previous key keep working (default 1 h; 0 = stop now).",
    )


class KeyRotated(ApiModel):
    secret_key: str = Field(description="The new HS256 key. Shown once: give it to the IM server.")
    previous_valid_until: datetime = Field(
        description="Tokens signed with the previous key are refused (401) from this moment."
    )
