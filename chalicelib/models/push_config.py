"""Per-user push configuration (SPEC section 3) and app state (section 4)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import Field, field_validator, model_validator

from chalicelib.errors import excerpt
from chalicelib.models.base import ApiModel

DisplayStyle = Literal["simpleBanner", "messageSummary"]
Language = Literal["zh", "en"]
Hour = Annotated[
    int, Field(ge=0, le=24, description="Hour of the day, 0-24 (24 = midnight at the end of the day).")
]

_SOUND_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# The markers of offlinePushInfo.sound that are not file names.
SOUND_DEFAULT = "default"
SOUND_NONE = "push.no_sound"


def validate_sound_name(value: str | None) -> str | None:
    """A sound is a file name in the app bundle (with extension), or a marker."""
    if value is None or value in (SOUND_DEFAULT, SOUND_NONE):
        return value
    if not _SOUND_RE.match(value) or "." not in value.strip("."):
        raise ValueError(
            "must be a sound file name in the app bundle with its extension (e.g. 'ding.caf'), "
            f"'{SOUND_DEFAULT}', or '{SOUND_NONE}' for no sound"
        )
    return value


def validate_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {excerpt(value)}: use an IANA name such as 'Asia/Shanghai' or 'Europe/Berlin'"
        ) from None
    if value not in available_timezones() and value != "UTC":
        raise ValueError(f"unknown time zone {excerpt(value)}: use an IANA name such as 'Asia/Shanghai'")
    return value


class DoNotDisturb(ApiModel):
    """Quiet hours in the user's time zone; start > end means across midnight (22 -> 7)."""

    enabled: bool = False
    start_hour: Hour = 22
    end_hour: Hour = 7
    timezone: str = "UTC"

    _tz = field_validator("timezone")(classmethod(lambda cls, v: validate_timezone(v)))


class PushConfig(ApiModel):
    """What GET push-config answers; defaults are what a user who never set anything has."""

    open_push: bool = True
    c2c_sound: str | None = Field(default=None, alias="c2cSound")
    group_sound: str | None = None
    display_name: str | None = Field(default=None, max_length=64)
    display_style: DisplayStyle = "messageSummary"
    do_not_disturb: DoNotDisturb = Field(default_factory=DoNotDisturb)
    language: Language = "zh"
    muted_groups: list[str] = Field(default_factory=list)
    muted_users: list[str] = Field(default_factory=list)


class DoNotDisturbPatch(ApiModel):
    enabled: bool | None = None
    start_hour: Hour | None = None
    end_hour: Hour | None = None
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        return None if v is None else validate_timezone(v)


class PushConfigPatch(ApiModel):
    """PATCH body: any subset. ``openPush`` also takes Tencent's 0 (unchanged) / 1 (on) / 2 (off)."""

    open_push: bool | Literal[0, 1, 2] | None = Field(
        default=None,
        description="true/false, or Tencent's 0 = leave unchanged, 1 = on, 2 = off.",
    )
    c2c_sound: str | None = Field(default=None, alias="c2cSound")
    group_sound: str | None = None
    display_name: str | None = Field(default=None, max_length=64)
    display_style: DisplayStyle | None = None
    do_not_disturb: DoNotDisturbPatch | None = None
    language: Language | None = None
    muted_groups: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        default=None, max_length=1000
    )
    muted_users: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        default=None, max_length=1000
    )

    @field_validator("open_push", mode="before")
    @classmethod
    def _open_push(cls, v: object) -> object:
        # bool is an int in Python: keep true/false as booleans, map Tencent's integers.
        if isinstance(v, bool) or v is None:
            return v
        if v in (0, 1, 2) and isinstance(v, int):
            return {0: None, 1: True, 2: False}[v]
        raise ValueError("must be true/false or Tencent's 0 (leave unchanged), 1 (on), 2 (off)")

    @field_validator("c2c_sound", "group_sound")
    @classmethod
    def _sound(cls, v: str | None) -> str | None:
        return validate_sound_name(v)

    @model_validator(mode="after")
    def _non_empty(self) -> PushConfigPatch:
        return self


class AppStateIn(ApiModel):
    """``{state: background, unreadCount}`` or ``{state: foreground}`` (Tencent doBackground/doForeground)."""

    state: Literal["background", "foreground"]
    unread_count: int | None = Field(default=None, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _count_only_in_background(self) -> AppStateIn:
        if self.state == "background" and self.unread_count is None:
            raise ValueError(
                "state 'background' needs unreadCount (an integer >= 0): it becomes the badge base"
            )
        if self.state == "foreground" and self.unread_count is not None:
            raise ValueError(
                "unreadCount is only meaningful with state 'background'; drop it for 'foreground'"
            )
        return self


class AppState(ApiModel):
    """Stored state: ``unknown`` until the app first reports (treated as offline)."""

    state: Literal["background", "foreground", "unknown"] = "unknown"
    badge: int = 0
    updated_at: int | None = None
