"""Apps: the tenant of everything else; each has its own token-signing secret."""

from __future__ import annotations

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
