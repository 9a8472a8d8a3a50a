"""Per-user push configuration (SPEC section 3) and app state (section 4)."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import Field, field_validator, model_validator

from chalicelib.errors import excerpt
from chalicelib.models.base import ENTITY_ID_PATTERN, ApiModel

DisplayStyle = Literal["simpleBanner", "messageSummary"]
Language = Literal["zh", "en"]
UserIdField = Annotated[str, Field(min_length=1, max_length=128, pattern=ENTITY_ID_PATTERN)]
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


LEASE_MIN_S = 10
LEASE_MAX_S = 86_400


class AppStateIn(ApiModel):
    """``{state: background, unreadCount}`` or ``{state: foreground, leaseSeconds?}`` (Tencent
    doBackground/doForeground). Foreground is a lease: it holds ``leaseSeconds``, then the user counts
    as offline again unless the app reports again."""

    state: Literal["background", "foreground"]
    unread_count: int | None = Field(default=None, ge=0, le=1_000_000)
    lease_seconds: int | None = Field(
        default=None,
        ge=LEASE_MIN_S,
        le=LEASE_MAX_S,
        description=f"foreground only: how long it holds, {LEASE_MIN_S}-{LEASE_MAX_S:,} s (default: the "
        "app's foregroundLeaseSeconds setting, else FOREGROUND_LEASE_DEFAULT_S, 300; with the setting 0, "
        "foreground holds until the app reports background). An app killed or crashed in the foreground "
        "counts as offline once it passes; report again to renew it.",
    )

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
        if self.state == "background" and self.lease_seconds is not None:
            raise ValueError(
                "leaseSeconds is only meaningful with state 'foreground' (how long it holds); drop it "
                "for 'background'"
            )
        return self


class AppState(ApiModel):
    """Stored state: ``unknown`` until the app first reports (treated as offline)."""

    state: Literal["background", "foreground", "unknown"] = "unknown"
    badge: int = 0
    updated_at: int | None = None
    foreground_until: int | None = Field(
        default=None,
        description="foreground only: epoch ms when the foreground lease ends; after it the user counts "
        "as offline (pushed) until the app reports again. null in the foreground = no lease (the app's "
        "foregroundLeaseSeconds is 0): foreground holds until the app reports background.",
    )


MAX_PRESENCE_ENTRIES = 500


class PresenceEntry(AppStateIn):
    """One user's app state as the IM server sees it (it holds the long connections)."""

    user_id: UserIdField


class PresenceBulk(ApiModel):
    """``PUT /v1/apps/{appId}/presence``: up to 500 users' app state in one call."""

    users: list[PresenceEntry] = Field(
        min_length=1,
        max_length=MAX_PRESENCE_ENTRIES,
        description=f"1-{MAX_PRESENCE_ENTRIES} entries, each user once; the same rules as app-state. "
        "Split larger updates into several calls.",
    )

    @field_validator("users")
    @classmethod
    def _each_user_once(cls, users: list[PresenceEntry]) -> list[PresenceEntry]:
        seen: set[str] = set()
        for i, entry in enumerate(users):
            if entry.user_id in seen:
                raise ValueError(f"users[{i}] repeats userId {entry.user_id!r}: list each user once")
            seen.add(entry.user_id)
        return users


class PresenceResult(ApiModel):
    updated: int = Field(description="How many users' state was written.")


# ---- conversation settings (Agora silent mode, Tencent receive options) ----------------------------

RemindType = Literal["all", "mentionOnly", "none"]
ConversationKind = Literal["group", "c2c"]
CONVERSATION_KINDS: tuple[ConversationKind, ...] = ("group", "c2c")
MAX_UNTIL_AHEAD_S = 366 * 86_400


class ConversationSettingIn(ApiModel):
    """``PUT .../push-config/conversations/{kind}/{conversationId}``."""

    remind_type: RemindType = Field(
        description="`all` = every message is pushed (clears the setting); `mentionOnly` = a group pushes "
        "only messages that mention the user (skip reason mentionOnly); a one-to-one conversation set so "
        "pushes nothing (mentionOnly), and does not change how that user's group messages are pushed; "
        "`none` = no push for this conversation, mentions included (mutedGroup; c2c: mutedUser, also for "
        "that user's messages in groups). A forced push (forcePush) gets through both."
    )
    until: int | None = Field(
        default=None,
        ge=0,
        description="When the setting lapses by itself, in epoch seconds: in the future and at most 366 "
        "days ahead. null or absent = until changed. Not allowed with `all`.",
    )

    @model_validator(mode="after")
    def _until_needs_a_setting(self) -> ConversationSettingIn:
        if self.remind_type == "all" and self.until is not None:
            raise ValueError(
                "until has no meaning with remindType 'all' (it clears the setting): drop until, or "
                "set 'mentionOnly' / 'none' until that time"
            )
        return self


class ConversationSetting(ApiModel):
    """One conversation's notification setting; ``all`` is what a conversation without one has."""

    kind: ConversationKind = Field(description="`group`, or `c2c` (one-to-one).")
    conversation_id: str = Field(description="The group ID, or for c2c the other user's ID.")
    remind_type: RemindType
    until: int | None = Field(default=None, description="Epoch seconds when it lapses; null = until changed.")


class ConversationSettingList(ApiModel):
    items: list[ConversationSetting] = Field(description="The settings in force now (lapsed ones omitted).")
