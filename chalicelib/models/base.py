"""The one base model: camelCase on the wire, snake_case in Python, unknown fields refused."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

# User, group and message IDs come from the IM vendor (Tencent group IDs look like "@TGS#2J4SZEAEL"):
# any visible character but "/" (they become URL path segments) and whitespace. One pattern for all.
ENTITY_ID_PATTERN = r"^[^\s/\x00-\x1f\x7f]{1,128}$"


class ApiModel(BaseModel):
    """Base of every model that crosses the API or a queue.

    Unknown fields are refused so that a typo (``opnPush``) is a clear 400
    instead of a silently ignored setting.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        str_strip_whitespace=False,
    )

    def dump(self) -> dict[str, Any]:
        """JSON-ready dict with camelCase keys, as the API answers it."""
        return self.model_dump(mode="json", by_alias=True)
