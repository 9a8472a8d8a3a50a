"""``offlinePushInfo``: the per-message push settings, in every vocabulary an IM server already speaks.

Our names (Tencent's V2TIMOfflinePushInfo as API.md lists them) are the canonical fields. Tencent's
SDK names (seeds 000-003), Tencent's REST names and Agora's ``em_apns_ext`` names (seed 004) are
accepted as aliases and folded into the canonical fields once validated; Android-only fields are
accepted and dropped. Two names for one setting that disagree are a 400 naming both; ``ApnsInfo``
(Tencent REST's iOS block) overrides the top level, as it does at Tencent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from chalicelib.errors import excerpt
from chalicelib.models.base import ApiModel
from chalicelib.models.push_config import SOUND_DEFAULT, SOUND_NONE, validate_sound_name
from chalicelib.models.text import MAX_TEXT, OptionalText, escaped_size, short, valid_unicode

MAX_EXPIRES_IN = 2_592_000  # 30 days: what APNs stores at most
InterruptionLevel = Literal["passive", "active", "time-sensitive", "critical"]
_HTTPS_URL_RE = re.compile(r"^https://[^\s/?#]+[^\s]*$")

# ext travels once per payload convention (tencent `ext`, agora `e`, tpns `custom`) and the payload
# must fit APNs' 4096 bytes next to the IDs, the aps dictionary and a body of at least "…". One copy
# may take 3,000 bytes (API.md); two or three copies share about as much, so any ext the app's
# conventions accept fits. Sizes are counted as ext stands in the payload: UTF-8, JSON escapes included.
EXT_LIMITS: dict[int, int] = {1: 3000, 2: 1536, 3: 1024}
MAX_EXT_BYTES = EXT_LIMITS[1]
ANDROID_PREFIXES = ("Android", "android")


def ext_limit(conventions: int) -> int:
    """The most bytes ext may take with ``conventions`` payload conventions (1-3)."""
    return EXT_LIMITS[max(1, min(conventions, 3))]


def ext_limit_message(size: int, conventions: Sequence[str]) -> str:
    limit = ext_limit(len(conventions))
    copies = "once" if len(conventions) == 1 else f"{len(conventions)} times"
    return (
        f"offlinePushInfo.ext is {size} bytes once JSON-escaped; this app's payloadConventions "
        f"({', '.join(conventions)}) carry it {copies}, so at most {limit} bytes fit (3000 with one "
        "convention, 1536 with two, 1024 with three): put an ID in ext and let the app fetch the rest, "
        "or choose fewer conventions (PATCH /v1/apps/{appId}/settings)"
    )


def ext_refusal(ext: str | None, conventions: Sequence[str]) -> str | None:
    """Why ``ext`` is too large for an app with these payload conventions, or None when it fits."""
    if ext is None:
        return None
    size = escaped_size(ext)
    return ext_limit_message(size, conventions) if size > ext_limit(len(conventions)) else None


def _ext_size(value: str | None) -> str | None:
    if value is not None:
        size = escaped_size(value)
        if size > MAX_EXT_BYTES:
            raise ValueError(
                f"ext is {size} bytes once JSON-escaped; at most {MAX_EXT_BYTES} bytes fit (with one payload "
                f"convention; {EXT_LIMITS[2]} with two, the default, {EXT_LIMITS[3]} with three): put an ID "
                "in ext and let the app fetch the rest"
            )
    return value


def _https(value: str | None) -> str | None:
    if value is not None and not _HTTPS_URL_RE.fullmatch(value):
        raise ValueError(f"must be an https URL (e.g. https://cdn.example.com/p/1.jpg), got {short(value)}")
    return value


def _zero_or_one(value: object) -> object:
    # Tencent's flags are integers; true/1.0/"1" would be coerced by Literal[0, 1] and hide a bug.
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        shown = excerpt(value) if isinstance(value, str) else json.dumps(value)[:20]
        raise ValueError(f"must be the integer 0 or 1, got {shown}")
    return value


Sound = Annotated[OptionalText, AfterValidator(validate_sound_name)]
Ext = Annotated[OptionalText, AfterValidator(_ext_size)]
HttpsUrl = Annotated[Annotated[str, AfterValidator(valid_unicode)] | None, AfterValidator(_https)]
ZeroOne = Annotated[Literal[0, 1] | None, BeforeValidator(_zero_or_one)]


class TencentIosConfig(ApiModel):
    """Seed 000's TIMIOSOfflinePushConfig (``iosConfig``): aliases of ``sound`` and ``ignoreBadge``."""

    model_config = ConfigDict(validate_by_name=False)

    sound: Sound = Field(None, alias="sound", description="= offlinePushInfo.sound.")
    ignore_badge: bool | None = Field(None, alias="ignoreBadge", description="= offlinePushInfo.ignoreBadge.")


class TencentApnsInfo(ApiModel):
    """Tencent REST OfflinePushInfo.ApnsInfo: iOS settings that override the top-level fields."""

    model_config = ConfigDict(validate_by_name=False)

    sound: Sound = Field(None, alias="Sound", description="Overrides sound.")
    badge_mode: ZeroOne = Field(
        None, alias="BadgeMode", description="0 = counts in the badge, 1 = no badge (overrides ignoreBadge)."
    )
    title: OptionalText = Field(None, alias="Title", max_length=1024, description="Overrides title.")
    sub_title: OptionalText = Field(
        None, alias="SubTitle", max_length=1024, description="Overrides subtitle."
    )
    image: HttpsUrl = Field(None, alias="Image", max_length=1024, description="Overrides image.")
    mutable_content: ZeroOne = Field(
        None, alias="MutableContent", description="1 = mutable-content: 1 (overrides mutableContent)."
    )


# canonical field -> its other names at the top level (an iosConfig field counts as top level: it is
# the SDK's older spelling of the same setting, not an override).
_SAME_LEVEL: dict[str, tuple[str, ...]] = {
    "title": ("em_push_title", "rest_title"),
    "desc": ("em_push_content", "rest_desc"),
    "ext": ("extern", "rest_ext"),
    "sound": ("em_push_sound", "ios_sound", "ios_config.sound"),
    "ignore_badge": ("ignore_ios_badge", "ios_config.ignore_badge"),
    "disable_push": ("push_flag", "rest_push_flag"),
    "mutable_content": ("em_push_mutable_content",),
}
# ApnsInfo field -> the canonical field it overrides.
_APNS_INFO: dict[str, str] = {
    "sound": "sound",
    "badge_mode": "ignore_badge",
    "title": "title",
    "sub_title": "subtitle",
    "image": "image",
    "mutable_content": "mutable_content",
}


class OfflinePushInfo(ApiModel):
    """Per-message push settings (Tencent V2TIMOfflinePushInfo; Agora em_apns_ext; Tencent REST
    OfflinePushInfo). Tencent's SDK and REST names and Agora's names are aliases of ours; Android-only
    fields (`AndroidInfo`, `androidConfig`, any name starting with `Android` / `android`) are accepted
    and ignored. Two names for one setting that disagree are a 400 naming both; `ApnsInfo`'s fields
    override the top-level ones."""

    model_config = ConfigDict(
        json_schema_extra={
            "patternProperties": {
                "^[Aa]ndroid": {
                    "description": "Android-only fields (e.g. TUIKit's AndroidOPPOChannelID, seed 001; "
                    "AndroidSound, seed 003): accepted and ignored."
                }
            }
        }
    )

    title: OptionalText = Field(
        default=None,
        max_length=1024,
        description="Alert title, shown above the usual body (the body is unchanged). Aliases: Title "
        "(Tencent REST), em_push_title (Agora). To fit APNs' 4096 bytes the body is shortened first; a "
        "title that leaves no room even for '…' as the body is itself shortened (at a grapheme boundary, "
        "ending in '…').",
    )
    desc: OptionalText = Field(
        default=None,
        max_length=MAX_TEXT,
        description="Replaces the whole body (no `nickname:` prefix); required to push a message with a "
        "custom element. Aliases: Desc (Tencent REST), em_push_content (Agora, seed 004).",
    )
    ext: Ext = Field(
        default=None,
        description="Opaque string (often JSON) for click-to-open, delivered once per payload convention "
        "of the app: top-level `ext` (tencent), `e` (agora), `custom` (tpns). At most 3000 bytes once "
        "JSON-escaped with one convention, 1536 with two (the default), 1024 with three; a larger ext "
        "is a 400 stating the app's limit. Never shortened to fit 4 KB (the body is). Aliases: Ext "
        "(Tencent REST), extern (Agora, seed 004).",
    )
    sound: Sound = Field(
        default=None,
        description=f"A sound file in the app bundle with its extension ('ding.caf'), '{SOUND_DEFAULT}' "
        f"(system sound) or '{SOUND_NONE}' (silent). Wins over the recipient's c2cSound/groupSound. "
        "Aliases: iOSSound (Tencent SDK, seeds 002/003), iosConfig.sound (seed 000), ApnsInfo.Sound "
        "(Tencent REST, overrides), em_push_sound (Agora, seed 004).",
    )
    ignore_badge: bool = Field(
        default=False,
        description="true = the notification carries no badge and does not count as unread. Aliases: "
        "ignoreIOSBadge (Tencent SDK), iosConfig.ignoreBadge (seed 000), ApnsInfo.BadgeMode 1 "
        "(Tencent REST, overrides).",
    )
    disable_push: bool = Field(
        default=False,
        description="true = this message is never pushed (skip reason disablePush), even if forced. "
        "Aliases: pushFlag (Tencent SDK, seed 000) and PushFlag (Tencent REST): 0 push, 1 no push.",
    )
    mutable_content: bool = Field(
        default=False,
        description="true = `mutable-content: 1`, so a Notification Service Extension may rewrite it. "
        "Aliases: ApnsInfo.MutableContent 1 (Tencent REST, overrides), em_push_mutable_content (Agora, "
        "seed 004).",
    )

    subtitle: OptionalText = Field(
        default=None,
        max_length=1024,
        description="`aps.alert.subtitle`, a line between title and body. Never shortened: when title "
        "and subtitle alone leave no room for the body within 4096 bytes, the body becomes '…' and "
        "then the title is shortened; a subtitle that still does not fit fails the device "
        "(PayloadTooLarge). Alias: ApnsInfo.SubTitle (Tencent REST, overrides).",
    )
    category: OptionalText = Field(
        default=None,
        max_length=256,
        description="`aps.category`: the notification category the app registered (its action buttons).",
    )
    interruption_level: InterruptionLevel | None = Field(
        default=None,
        description="`aps.interruption-level`: passive (no sound, no screen wake), active (the default), "
        "time-sensitive (breaks through Focus), critical (needs Apple's entitlement).",
    )
    relevance_score: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="`aps.relevance-score` (0-1): which notification of a summary stands out.",
    )
    image: HttpsUrl = Field(
        default=None,
        max_length=1024,
        description="An https URL of an image: top-level `image` in the payload plus "
        "`mutable-content: 1`, for a Notification Service Extension to download and attach. Alias: "
        "ApnsInfo.Image (Tencent REST, overrides).",
    )
    expires_in: int | None = Field(
        default=None,
        ge=0,
        le=MAX_EXPIRES_IN,
        description=f"Seconds the notification stays worth delivering (0-{MAX_EXPIRES_IN:,}): "
        "apns-expiration = sendTime + expiresIn (0 = header 0: APNs delivers now or never), and a "
        "recipient handled after that moment is skipped `expired`. Absent: APNs' default (stored and "
        "retried for a while).",
    )

    # ---- aliases: validated like their canonical field, folded into it, never dumped ----------------
    em_push_title: OptionalText = Field(
        None, alias="em_push_title", max_length=1024, exclude=True, description="Agora: = title."
    )
    em_push_content: OptionalText = Field(
        None,
        alias="em_push_content",
        max_length=MAX_TEXT,
        exclude=True,
        description="Agora (seed 004): = desc.",
    )
    extern: Ext = Field(None, alias="extern", exclude=True, description="Agora (seed 004): = ext.")
    em_push_sound: Sound = Field(
        None, alias="em_push_sound", exclude=True, description="Agora (seed 004): = sound."
    )
    em_push_mutable_content: bool | None = Field(
        None, alias="em_push_mutable_content", exclude=True, description="Agora (seed 004): = mutableContent."
    )
    ios_sound: Sound = Field(
        None,
        alias="iOSSound",
        exclude=True,
        description="Tencent SDK (V2TIMOfflinePushInfo, seeds 002/003): = sound.",
    )
    ignore_ios_badge: bool | None = Field(
        None,
        alias="ignoreIOSBadge",
        exclude=True,
        description="Tencent SDK (V2TIMOfflinePushInfo): = ignoreBadge.",
    )
    push_flag: ZeroOne = Field(
        None,
        alias="pushFlag",
        exclude=True,
        description="Tencent SDK (TIMOfflinePushInfo, seed 000): 0 = push, 1 = no push (disablePush).",
    )
    ios_config: TencentIosConfig | None = Field(
        None,
        alias="iosConfig",
        exclude=True,
        description="Tencent SDK (TIMIOSOfflinePushConfig, seed 000): {sound, ignoreBadge} = sound, "
        "ignoreBadge (same level: disagreeing with them is a 400).",
    )
    rest_push_flag: ZeroOne = Field(
        None, alias="PushFlag", exclude=True, description="Tencent REST: 0 = push, 1 = no push (disablePush)."
    )
    rest_title: OptionalText = Field(
        None, alias="Title", max_length=1024, exclude=True, description="Tencent REST: = title."
    )
    rest_desc: OptionalText = Field(
        None, alias="Desc", max_length=MAX_TEXT, exclude=True, description="Tencent REST: = desc."
    )
    rest_ext: Ext = Field(None, alias="Ext", exclude=True, description="Tencent REST: = ext.")
    apns_info: TencentApnsInfo | None = Field(
        None,
        alias="ApnsInfo",
        exclude=True,
        description="Tencent REST: iOS settings that override the top-level ones (Sound, BadgeMode, "
        "Title, SubTitle, Image, MutableContent); any other field is a 400.",
    )
    # Android-only fields are dropped before validation (_drop_android): any JSON value is accepted,
    # so the schema says so (a declared object type would promise a 400 that never comes).
    android_info: Any = Field(
        None,
        alias="AndroidInfo",
        exclude=True,
        description="Tencent REST: Android only, accepted (any JSON value) and ignored.",
    )
    android_config: Any = Field(
        None,
        alias="androidConfig",
        exclude=True,
        description="Tencent SDK (TIMAndroidOfflinePushConfig, seed 000): Android only, accepted (any "
        "JSON value) and ignored.",
    )

    @field_validator("expires_in", mode="before")
    @classmethod
    def _whole_seconds(cls, value: object) -> object:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"expiresIn must be a JSON integer of seconds, got {excerpt(value)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _drop_android(cls, data: Any) -> Any:
        # TUIKit always sets AndroidOPPOChannelID (seed 001); an IM server forwards it unchanged.
        if isinstance(data, dict) and any(
            isinstance(k, str) and k.startswith(ANDROID_PREFIXES) for k in data
        ):
            return {
                k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith(ANDROID_PREFIXES))
            }
        return data

    @model_validator(mode="after")
    def _fold_aliases(self) -> OfflinePushInfo:
        given = self.model_fields_set
        for canonical, others in _SAME_LEVEL.items():
            names = [canonical, *others] if canonical in given else list(others)
            values = [(name, self._alias_value(name)) for name in names]
            values = [(name, value) for name, value in values if value is not None]
            for name, value in values[1:]:
                if value != values[0][1]:
                    raise ValueError(
                        f"{_wire(values[0][0])} and {_wire(name)} are two names for one setting "
                        f"({_wire(canonical)}) and their values differ: send one of them"
                    )
            if values:
                setattr(self, canonical, values[0][1])
        if self.apns_info is not None:
            for field, canonical in _APNS_INFO.items():
                value = getattr(self.apns_info, field)
                if value is not None:
                    setattr(self, canonical, bool(value) if isinstance(value, int) else value)
        for name in _ALIAS_FIELDS:
            if name in self.model_fields_set:
                object.__setattr__(self, name, None)
                self.model_fields_set.discard(name)
        return self

    def _alias_value(self, name: str) -> object:
        if name.startswith("ios_config."):
            return None if self.ios_config is None else getattr(self.ios_config, name.split(".", 1)[1])
        value = getattr(self, name)
        if name in ("push_flag", "rest_push_flag") and value is not None:
            return bool(value)
        if name in _SAME_LEVEL and name not in self.model_fields_set:
            return None
        return value


_ALIAS_FIELDS = tuple(name for name, field in OfflinePushInfo.model_fields.items() if field.exclude)


def _wire(name: str) -> str:
    """A field's name as the caller wrote it (``ios_config.sound`` -> ``iosConfig.sound``)."""
    if name.startswith("ios_config."):
        inner = TencentIosConfig.model_fields[name.split(".", 1)[1]].alias
        return f"iosConfig.{inner}"
    field = OfflinePushInfo.model_fields[name]
    return field.alias or name
