"""Per-app settings: the payload conventions the app's clients read, the foreground lease, and what
the app wants beyond delivery (communication notifications, read sync, outcome webhooks).

Stored on the app item (one attribute per setting, absent = the default); the fan-out reads that
item once per message anyway, so it stamps ``SendSettings`` (what the send path needs) into every
send-queue chunk and the send path reads nothing more for them.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from chalicelib.models.base import ApiModel

PayloadConvention = Literal["tencent", "agora", "tpns"]
ReadSyncMode = Literal["off", "badge", "badgeAndClear"]
WebhookEventType = Literal["device.invalidated", "recipient.failed", "message.completed"]

DEFAULT_CONVENTIONS: tuple[PayloadConvention, ...] = ("tencent", "agora")
DEFAULT_FOREGROUND_LEASE_S = 300
MIN_FOREGROUND_LEASE_S = 10
MAX_FOREGROUND_LEASE_S = 86_400
LOCAL_WEBHOOK_HOSTS = ("127.0.0.1", "localhost")


def _conventions(value: list[PayloadConvention] | None) -> list[PayloadConvention] | None:
    if value is None:
        return None  # a PATCH's null: refused with the field's name by AppSettingsPatch
    if not value:
        raise ValueError("name at least one of 'tencent', 'agora', 'tpns'")
    if len(set(value)) != len(value):
        raise ValueError("each convention may be named once")
    return value


def _lease(value: int | None) -> int | None:
    if value is None:
        return None
    if value != 0 and not MIN_FOREGROUND_LEASE_S <= value <= MAX_FOREGROUND_LEASE_S:
        raise ValueError(
            f"give 0 (foreground holds until the app reports background) or {MIN_FOREGROUND_LEASE_S}-"
            f"{MAX_FOREGROUND_LEASE_S} seconds"
        )
    return value


class WebhookSetting(ApiModel):
    url: str = Field(
        max_length=2048,
        description="Where outcome events are POSTed: https (plain http only to 127.0.0.1 or localhost, "
        "and only in the local stage).",
    )
    events: list[WebhookEventType] = Field(
        min_length=1, description="The event types to send (only these are sent)."
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise ValueError("give an absolute https URL, e.g. https://im.example.com/push-events")
        if parts.scheme == "http" and parts.hostname not in LOCAL_WEBHOOK_HOSTS:
            raise ValueError("use https (plain http is allowed only to 127.0.0.1 or localhost, locally)")
        if parts.username or parts.password:
            raise ValueError("put no credentials in the URL: requests are signed (X-Push-Signature)")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[WebhookEventType]) -> list[WebhookEventType]:
        if len(set(value)) != len(value):
            raise ValueError("each event type may be named once")
        return value

    @property
    def is_plain_http(self) -> bool:
        return urlsplit(self.url).scheme == "http"


class AppSettings(ApiModel):
    """Every setting with its value (defaults filled in): what GET and PATCH answer."""

    payload_conventions: list[PayloadConvention] = Field(
        default_factory=lambda: list(DEFAULT_CONVENTIONS),
        description="The payload's keys for the app's clients: 'tencent' top-level ext, 'agora' f t g m e, "
        "'tpns' top-level custom (TUIKit's click handler: the ext, or for an event without ext TUIKit's "
        "entity, action 1 for messages and 2 for calls). Each convention carries ext once, so ext may "
        "be 3000 bytes (JSON-escaped UTF-8) with one convention, 1536 with two, 1024 with three; a "
        "larger ext is a 400 stating the app's limit. Over 4 KB the body and the entity's content are "
        "shortened, never ext.",
    )
    foreground_lease_seconds: int = Field(
        DEFAULT_FOREGROUND_LEASE_S,
        description="How long a foreground report holds: 0 = until the app reports background; 10-86,400 s.",
    )
    communication_notifications: bool = Field(
        False, description="Put sender and conversation objects (names, pictures) in the payload."
    )
    read_sync: ReadSyncMode = Field(
        "badge", description="What a read on another device sends the user's phones."
    )
    webhook: WebhookSetting | None = Field(None, description="Where outcome events go (null = nowhere).")

    _check_conventions = field_validator("payload_conventions")(_conventions)
    _check_lease = field_validator("foreground_lease_seconds")(_lease)

    @classmethod
    def from_stored(cls, attrs: dict[str, Any]) -> AppSettings:
        """The settings from the app item's attributes (absent ones are defaults)."""
        known = {name: attrs[alias] for name, alias in _ALIASES.items() if attrs.get(alias) is not None}
        return cls.model_validate(known)

    def to_stored(self, fields: set[str]) -> dict[str, Any]:
        """The given fields as app-item attributes (camelCase; None = remove the attribute)."""
        dumped = self.model_dump(mode="json", by_alias=True)
        return {_ALIASES[f]: dumped[_ALIASES[f]] for f in fields}

    def for_send(self) -> SendSettings:
        return SendSettings(
            payload_conventions=list(self.payload_conventions),
            communication_notifications=self.communication_notifications,
            webhook_events=list(self.webhook.events) if self.webhook else [],
        )


_ALIASES = {name: field.alias or name for name, field in AppSettings.model_fields.items()}


class AppSettingsPatch(ApiModel):
    """Any subset of the settings; a field left out keeps its value, ``webhook: null`` removes it."""

    payload_conventions: list[PayloadConvention] | None = None
    foreground_lease_seconds: int | None = None
    communication_notifications: bool | None = None
    read_sync: ReadSyncMode | None = None
    webhook: WebhookSetting | None = None

    _check_conventions = field_validator("payload_conventions")(_conventions)
    _check_lease = field_validator("foreground_lease_seconds")(_lease)

    @model_validator(mode="after")
    def _something(self) -> AppSettingsPatch:
        if not self.model_fields_set:
            raise ValueError(
                "give at least one setting to change: payloadConventions, foregroundLeaseSeconds, "
                "communicationNotifications, readSync, webhook"
            )
        for name in self.model_fields_set - {"webhook"}:
            if getattr(self, name) is None:
                raise ValueError(
                    f"{_ALIASES[name]} cannot be null: give a value (its default is "
                    f"{AppSettings.model_fields[name].get_default(call_default_factory=True)!r})"
                )
        return self

    def applied_to(self, current: AppSettings) -> AppSettings:
        return current.model_copy(update={f: getattr(self, f) for f in self.model_fields_set})


class SendSettings(ApiModel):
    """What the send path needs of the app's settings, as the fan-out read them for this message."""

    payload_conventions: list[PayloadConvention] = Field(default_factory=lambda: list(DEFAULT_CONVENTIONS))
    communication_notifications: bool = False
    webhook_events: list[WebhookEventType] = Field(default_factory=list)
