"""The "a message was sent" event the IM server submits (API.md "Messages", SPEC section 5).

``MessageEvent`` is the body of ``POST /v1/apps/{appId}/messages``; ``QueuedMessageEvent`` is the same
event put straight on the SQS queue, which must also say which app it belongs to. Both accept
Tencent's names (``offlinePushInfo``) and Agora's (``em_apns_ext``, ``em_push_content`` ...).
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema

from chalicelib.errors import excerpt
from chalicelib.models.base import ENTITY_ID_PATTERN, ApiModel
from chalicelib.models.push_config import SOUND_DEFAULT, SOUND_NONE, validate_sound_name

MAX_MEMBERS = 10_000
MAX_TEXT = 12_000  # Tencent's limit for one message is 12 KB; a text longer than this is a bug upstream.
# ext travels twice in every payload (Tencent's `ext` and Agora's `e`) and the whole payload must fit
# APNs' 4096 bytes next to IDs, title and body: 1536 bytes each leaves room for the rest.
MAX_EXT_BYTES = 1536

_MESSAGE_ID_RE = re.compile(r"^[A-Za-z0-9._:@=+-]{1,128}$")
_APP_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# User and group IDs come from the IM vendor (Tencent group IDs look like "@TGS#2J4SZEAEL"), so any
# visible character is allowed except "/" (they become URL path segments) and whitespace.
_ENTITY_ID_RE = re.compile(ENTITY_ID_PATTERN)


def _short(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def _valid_unicode(value: str) -> str:
    # json.loads (what Chalice uses) lets an unpaired surrogate such as "\ud800" through; it cannot be
    # encoded as UTF-8, so it would only fail later, while building the APNs payload.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            "contains an unpaired UTF-16 surrogate (e.g. a lone \\ud83d): send valid Unicode text"
        ) from None
    return value


def _empty_is_unset(value: object) -> object:
    # IM servers often send "" for "not set" (Tencent: "如果未设置昵称"); treat both alike.
    return None if value == "" else value


def _message_id(value: str) -> str:
    if not _MESSAGE_ID_RE.fullmatch(value):
        raise ValueError(
            f"messageId {_short(value)} is not valid: use 1-128 characters from A-Z a-z 0-9 and "
            ". _ : @ = + - (it appears in URLs and keys), e.g. the IM server's own message ID"
        )
    return value


def _app_id(value: str) -> str:
    if not _APP_ID_RE.fullmatch(value):
        raise ValueError(
            f"appId {_short(value)} is not valid: use the appId that POST /v1/apps returned "
            "(1-64 characters from A-Z a-z 0-9 . _ -)"
        )
    return value


def _entity_id(kind: str) -> AfterValidator:
    def check(value: str) -> str:
        if not _ENTITY_ID_RE.fullmatch(value):
            raise ValueError(
                f"{kind} {_short(value)} is not valid: use 1-128 visible characters with no spaces, "
                "control characters or '/', exactly as the IM server knows it"
            )
        return value

    return AfterValidator(check)


Text = Annotated[str, AfterValidator(_valid_unicode)]
OptionalText = Annotated[Text | None, BeforeValidator(_empty_is_unset)]
_ENTITY_ID_SCHEMA = WithJsonSchema(
    {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[^\s/\x00-\x1f\x7f]+$"}
)
UserId = Annotated[str, AfterValidator(_valid_unicode), _entity_id("userId"), _ENTITY_ID_SCHEMA]
GroupId = Annotated[str, AfterValidator(_valid_unicode), _entity_id("groupId"), _ENTITY_ID_SCHEMA]
Priority = Literal["high", "normal"]

# apns-priority: 10 = deliver now (wakes the device), 5 = may be delayed to save power.
APNS_PRIORITY: dict[str, int] = {"high": 10, "normal": 5}


def _unique_ids(field: str) -> AfterValidator:
    def check(values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            seen: set[str] = set()
            for value in values:
                if value in seen:
                    raise ValueError(f"{field} lists {_short(value)} more than once: send each user ID once")
                seen.add(value)
        return values

    return AfterValidator(check)


class Sender(ApiModel):
    """Who sent the message, with the names the notification may show."""

    user_id: UserId = Field(description="The sender's user ID (Agora's `f` in the payload).")
    nickname: OptionalText = Field(
        default=None,
        max_length=256,
        description="The sender's nickname: one-to-one notifications read `nickname:content`. "
        "Empty or absent = no name, the body is the content only. The sender's push-config "
        "`displayName` (Agora) takes its place when set.",
    )
    name_card: OptionalText = Field(
        default=None,
        max_length=256,
        description="The sender's name card in the target group (Tencent 群名片): shown before the "
        "nickname in group notifications `nameCard(groupName):content`. Ignored for one-to-one messages.",
    )


MAX_MENTIONS = 1000
Mention = Literal["me", "all"]


class Mentions(ApiModel):
    """Who a group message @-mentions (Tencent GroupAtInfo, Agora em_at_list)."""

    user_ids: Annotated[list[UserId], _unique_ids("mentions.userIds")] = Field(
        default_factory=list,
        max_length=MAX_MENTIONS,
        description=f"The users the message @-mentions (at most {MAX_MENTIONS:,}, each once): their "
        "notification starts with [有人@我] / [@Me] and gets through a group set to mentionOnly.",
    )
    all: bool = Field(
        default=False,
        description='@all (Tencent AT_ALL_TAG, Agora em_at_list "ALL"): every recipient is mentioned; '
        "those not listed in userIds read [@所有人] / [@All].",
    )

    @cached_property
    def _listed(self) -> frozenset[str]:
        return frozenset(self.user_ids)

    def of(self, user_id: str) -> Mention | None:
        """``me`` when the user is listed, else ``all`` when everyone is mentioned, else None."""
        if user_id in self._listed:
            return "me"
        return "all" if self.all else None


class C2CTarget(ApiModel):
    """A one-to-one message to one user."""

    user_id: UserId = Field(description="The receiving user's ID.")


class GroupTarget(ApiModel):
    """A group message; without ``members`` the stored membership is used."""

    group_id: GroupId = Field(description="The group's ID (Agora's `g` in the payload).")
    group_name: OptionalText = Field(
        default=None,
        max_length=256,
        description="The group's name, shown in parentheses: `name(groupName):content`.",
    )
    members: (
        Annotated[list[UserId], Field(min_length=1, max_length=MAX_MEMBERS), _unique_ids("to.members")] | None
    ) = Field(
        default=None,
        description=f"Inline member list (at most {MAX_MEMBERS:,} user IDs, each once). Omit it to use "
        "the membership stored with PUT /groups/{groupId}/members. The sender may be listed: they are "
        "never pushed.",
    )
    online_users: Annotated[list[UserId], _unique_ids("to.onlineUsers")] | None = Field(
        default=None,
        max_length=MAX_MEMBERS,
        description=f"Members the IM server holds a live connection to (at most {MAX_MEMBERS:,}; with "
        "inline `members`, a subset of them). They are settled at fan-out without reading anything of "
        "theirs: status `skipped`, code `online` in the report and its summary; forcePush does not "
        "override it. With the stored membership, IDs that are not members are ignored.",
    )

    @model_validator(mode="after")
    def _online_are_members(self) -> GroupTarget:
        if self.online_users and self.members is not None:
            members = set(self.members)
            strangers = [u for u in self.online_users if u not in members]
            if strangers:
                raise ValueError(
                    f"to.onlineUsers lists {len(strangers)} user(s) that are not in to.members (first: "
                    f"{_short(strangers[0])}): list only members the IM server holds a connection to"
                )
        return self

    @field_validator("members", mode="before")
    @classmethod
    def _not_empty(cls, value: object) -> object:
        if isinstance(value, list) and not value:
            raise ValueError(
                "members is an empty list, so nobody would be notified: omit members to use the stored "
                "group membership, or list the members"
            )
        return value


def _target_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        has_user = "userId" in value or "user_id" in value
        has_group = "groupId" in value or "group_id" in value
        if has_user != has_group:
            return "c2c" if has_user else "group"
        return None
    if isinstance(value, C2CTarget):
        return "c2c"
    if isinstance(value, GroupTarget):
        return "group"
    return None


Target = Annotated[
    Annotated[C2CTarget, Tag("c2c")] | Annotated[GroupTarget, Tag("group")],
    Discriminator(
        _target_kind,
        custom_error_type="invalid_target",
        custom_error_message="to must be an object with exactly one of userId (one-to-one message) or "
        'groupId (group message), e.g. {"userId": "bob"} or {"groupId": "g1", "groupName": "Dev"}',
    ),
]


class TextElem(ApiModel):
    type: Literal["text"] = Field(description="A text element: the notification shows the text itself.")
    text: Text = Field(min_length=1, max_length=MAX_TEXT, description=f"The text, 1-{MAX_TEXT:,} characters.")


class ImageElem(ApiModel):
    type: Literal["image"] = Field(description="An image: shown as [图片] / [image].")


class SoundElem(ApiModel):
    type: Literal["sound"] = Field(description="A voice message: shown as [语音] / [audio].")


class FileElem(ApiModel):
    type: Literal["file"] = Field(description="A file: shown as [文件] / [file].")


class VideoElem(ApiModel):
    type: Literal["video"] = Field(description="A video: shown as [视频] / [video].")


class LocationElem(ApiModel):
    type: Literal["location"] = Field(description="A location: shown as [位置] / [location].")


class FaceElem(ApiModel):
    type: Literal["face"] = Field(description="A face / sticker: shown as [表情] / [sticker].")


class CustomElem(ApiModel):
    """An app-defined element: the service cannot read it, so it needs a description to be pushed."""

    type: Literal["custom"] = Field(
        description="A custom element: shown as offlinePushInfo.desc (else this element's own desc); "
        "with neither, the message is not pushed (skip reason customWithoutDesc)."
    )
    data: OptionalText = Field(
        default=None, max_length=MAX_TEXT, description="The app's payload (opaque; never shown)."
    )
    desc: OptionalText = Field(
        default=None,
        max_length=MAX_TEXT,
        description="Tencent TIMCustomElem.desc: the text a notification shows for this element when "
        "offlinePushInfo.desc is not set (offlinePushInfo.desc wins).",
    )


ELEM_TYPES = ("text", "image", "sound", "file", "video", "location", "face", "custom")


def _elem_kind(value: Any) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if kind in ELEM_TYPES else None


Elem = Annotated[
    Annotated[TextElem, Tag("text")]
    | Annotated[ImageElem, Tag("image")]
    | Annotated[SoundElem, Tag("sound")]
    | Annotated[FileElem, Tag("file")]
    | Annotated[VideoElem, Tag("video")]
    | Annotated[LocationElem, Tag("location")]
    | Annotated[FaceElem, Tag("face")]
    | Annotated[CustomElem, Tag("custom")],
    Discriminator(
        _elem_kind,
        custom_error_type="invalid_elem",
        custom_error_message="each element needs a type, one of: "
        + ", ".join(ELEM_TYPES)
        + ' (e.g. {"type": "text", "text": "hi"})',
    ),
]

MAX_CALL_DATA_BYTES = 2048
MAX_EXPIRES_IN = 2_592_000  # 30 days: what APNs stores at most
InterruptionLevel = Literal["passive", "active", "time-sensitive", "critical"]
_HTTPS_URL_RE = re.compile(r"^https://[^\s/?#]+[^\s]*$")


# Agora names for the same offlinePushInfo fields (message.ext.em_apns_ext in the Agora SDK).
_AGORA_PAIRS = (
    ("title", "em_push_title"),
    ("desc", "em_push_content"),
    ("ext", "extern"),
    ("sound", "em_push_sound"),
    ("mutableContent", "em_push_mutable_content"),
)


class OfflinePushInfo(ApiModel):
    """Per-message push settings (Tencent V2TIMOfflinePushInfo; Agora em_apns_ext)."""

    title: OptionalText = Field(
        default=None,
        max_length=1024,
        validation_alias=AliasChoices("title", "em_push_title"),
        description="Alert title, shown above the usual body (the body is unchanged). Agora: em_push_title. "
        "To fit APNs' 4096 bytes the body is shortened first; a title that leaves no room even for '…' "
        "as the body is itself shortened (at a grapheme boundary, ending in '…').",
    )
    desc: OptionalText = Field(
        default=None,
        max_length=MAX_TEXT,
        validation_alias=AliasChoices("desc", "em_push_content"),
        description="Replaces the whole body (no `nickname:` prefix); required to push a message with a "
        "custom element. Agora: em_push_content.",
    )
    ext: OptionalText = Field(
        default=None,
        validation_alias=AliasChoices("ext", "extern"),
        description=f"Opaque string (often JSON) for click-to-open, delivered as top-level `ext` (Tencent) "
        f"and `e` (Agora) in the payload; at most {MAX_EXT_BYTES} bytes once JSON-escaped, because it "
        "travels twice within APNs' 4096 bytes. Agora: extern.",
    )
    sound: OptionalText = Field(
        default=None,
        validation_alias=AliasChoices("sound", "em_push_sound"),
        description=f"A sound file in the app bundle with its extension ('ding.caf'), '{SOUND_DEFAULT}' "
        f"(system sound) or '{SOUND_NONE}' (silent). Wins over the recipient's c2cSound/groupSound. "
        "Agora: em_push_sound.",
    )
    ignore_badge: bool = Field(
        default=False, description="true = the notification carries no badge and does not count as unread."
    )
    disable_push: bool = Field(
        default=False,
        description="true = this message is never pushed (skip reason disablePush), even if forced.",
    )
    mutable_content: bool = Field(
        default=False,
        validation_alias=AliasChoices("mutableContent", "em_push_mutable_content"),
        description="true = `mutable-content: 1`, so a Notification Service Extension may rewrite it. "
        "Agora: em_push_mutable_content.",
    )

    subtitle: OptionalText = Field(
        default=None,
        max_length=1024,
        description="`aps.alert.subtitle`, a line between title and body. Never shortened: when title "
        "and subtitle alone leave no room for the body within 4096 bytes, the body becomes '…' and "
        "then the title is shortened; a subtitle that still does not fit fails the device "
        "(PayloadTooLarge).",
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
    image: Annotated[str, AfterValidator(_valid_unicode)] | None = Field(
        default=None,
        max_length=1024,
        description="An https URL of an image: top-level `image` in the payload plus "
        "`mutable-content: 1`, for a Notification Service Extension to download and attach.",
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

    @field_validator("image")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not _HTTPS_URL_RE.fullmatch(value):
            raise ValueError(
                f"image must be an https URL (e.g. https://cdn.example.com/p/1.jpg), got {_short(value)}"
            )
        return value

    @field_validator("expires_in", mode="before")
    @classmethod
    def _whole_seconds(cls, value: object) -> object:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"expiresIn must be a JSON integer of seconds, got {excerpt(value)}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _one_name_per_field(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for ours, agora in _AGORA_PAIRS:
                if ours in data and agora in data:
                    raise ValueError(
                        f"offlinePushInfo has both {ours} and {agora}, which are the same setting "
                        f"({agora} is Agora's name): send only one of them"
                    )
        return data

    @field_validator("sound")
    @classmethod
    def _sound(cls, value: str | None) -> str | None:
        return validate_sound_name(value)

    @field_validator("ext")
    @classmethod
    def _ext_size(cls, value: str | None) -> str | None:
        if value is not None:
            size = len(json.dumps(value, ensure_ascii=False).encode("utf-8")) - 2
            if size > MAX_EXT_BYTES:
                raise ValueError(
                    f"ext is {size} bytes once JSON-escaped; at most {MAX_EXT_BYTES} fit, because it is "
                    "sent twice (as `ext` and `e`) within APNs' 4096-byte payload: put an ID in ext and "
                    "let the app fetch the rest"
                )
        return value


class CallInfo(ApiModel):
    """An audio / video call invitation or its cancellation (TPNS "action 2", TUIKit's call push)."""

    call_id: Annotated[str, AfterValidator(_message_id)] = Field(
        description="The call's ID, 1-128 characters of A-Z a-z 0-9 . _ : @ = + -: the invite and its "
        "cancel share it, and the notification's apns-collapse-id is `call-<callId>` (SHA-256 hex when "
        "over 64 bytes), so the cancel replaces the invite on the lock screen."
    )
    media: Literal["audio", "video"] = Field(
        description="`audio` ([语音通话] / [audio call]) or `video` ([视频通话] / [video call])."
    )
    action: Literal["invite", "cancel"] = Field(
        description="`invite` rings; `cancel` replaces the invite with [通话已取消] / [call cancelled] "
        "(no sound, no badge) and stops invite recipients not yet sent from getting it."
    )
    timeout_seconds: int = Field(
        default=60,
        ge=5,
        le=600,
        description="How long the invitation rings (5-600 s, default 60): apns-expiration = sendTime + "
        "timeoutSeconds, and a recipient handled later than that is skipped `expired`.",
    )
    room_id: OptionalText = Field(
        default=None, max_length=256, description="The room to join (passed through in `call`)."
    )
    data: OptionalText = Field(
        default=None,
        description=f"Opaque app data passed through in `call.data` (at most {MAX_CALL_DATA_BYTES} bytes "
        "once JSON-escaped).",
    )

    @field_validator("data")
    @classmethod
    def _data_size(cls, value: str | None) -> str | None:
        if value is not None:
            size = len(json.dumps(value, ensure_ascii=False).encode("utf-8")) - 2
            if size > MAX_CALL_DATA_BYTES:
                raise ValueError(
                    f"call.data is {size} bytes once JSON-escaped; at most {MAX_CALL_DATA_BYTES} fit in the "
                    "notification: pass an ID and let the app fetch the rest"
                )
        return value


class MessageEvent(ApiModel):
    """One message sent in the IM app: what ``POST /v1/apps/{appId}/messages`` takes."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "messageId": "m-1",
                    "sendTime": 1763790000,
                    "sender": {"userId": "alice", "nickname": "Alice", "nameCard": "Team lead"},
                    "to": {"groupId": "g1", "groupName": "Dev", "members": ["bob", "carol"]},
                    "elems": [{"type": "text", "text": "hi"}, {"type": "image"}],
                    "offlinePushInfo": {"ext": '{"chat":"g1"}', "sound": "ding.caf"},
                    "forcePush": False,
                    "onlineUserOnly": False,
                    "priority": "high",
                }
            ]
        }
    )

    message_id: Annotated[
        str,
        AfterValidator(_message_id),
        WithJsonSchema({"type": "string", "pattern": _MESSAGE_ID_RE.pattern}),
    ] = Field(
        description="The IM server's message ID, 1-128 characters of A-Z a-z 0-9 . _ : @ = + -; the same "
        "ID submitted twice is one message (Agora's `m` in the payload)."
    )
    send_time: int = Field(
        ge=0, description="When the message was sent, in epoch seconds (not milliseconds)."
    )
    sender: Sender = Field(description="Who sent it.")
    to: Target = Field(
        description='`{"userId"}` for a one-to-one message, or `{"groupId", "groupName"?, "members"?}` '
        "for a group message: exactly one of userId / groupId."
    )
    call: CallInfo | None = Field(
        default=None,
        description="An audio / video call invitation or cancellation (TPNS action 2). The body is "
        "[语音通话] / [视频通话] ([audio call] / [video call]) with the usual name prefix, "
        "or [通话已取消] / [call cancelled] for a cancel; apns-collapse-id `call-<callId>`; "
        "apns-expiration sendTime + timeoutSeconds (a recipient handled later is skipped `expired`); "
        "interruption level time-sensitive; the payload carries a top-level `call` object. Users "
        "with an active voip (PushKit) token get it there only, as a voip push.",
    )
    elems: list[Elem] = Field(
        default_factory=list,
        validate_default=True,
        max_length=100,
        description="The message elements in order (1-100; may be empty or absent with `call`); the "
        "notification body concatenates their text: text as is, other types as placeholders, custom "
        "via desc.",
    )
    offline_push_info: OfflinePushInfo = Field(
        default_factory=OfflinePushInfo,
        validation_alias=AliasChoices("offlinePushInfo", "em_apns_ext"),
        description="Per-message push settings (Tencent offlinePushInfo; Agora em_apns_ext is accepted "
        "under its own name, with its em_push_* / extern fields).",
    )
    force_push: bool = Field(
        default=False,
        validation_alias=AliasChoices("forcePush", "em_force_notification"),
        description="Agora em_force_notification: push even to recipients in do-not-disturb hours or who "
        "set the group or the sender to none or mentionOnly (muted). Does not override openPush off, "
        "logout, foreground, onlineUserOnly or disablePush.",
    )
    online_user_only: bool = Field(
        default=False,
        description="true = only online users get it; never pushed (skip reason onlineUserOnly).",
    )
    priority: Priority = Field(
        default="high",
        description="`high` = apns-priority 10 (deliver now), `normal` = 5 (APNs may delay it to save "
        "power). Default high: a chat message is expected at once.",
    )
    mentions: Mentions | None = Field(
        default=None,
        description="Group messages only (ignored on one-to-one messages): who the message @-mentions. "
        "A mentioned recipient's body starts with [有人@我] / [@Me] ([@所有人] / [@All] when only `all` "
        "applies); a mention gets through a conversation set to mentionOnly, not through none, "
        "do-not-disturb (unless forcePush), openPush off, logout or foreground.",
    )
    offline_users: Annotated[list[UserId], _unique_ids("offlineUsers")] | None = Field(
        default=None,
        max_length=MAX_MEMBERS,
        description="Users the IM server knows are offline (e.g. their long connection dropped) even if "
        "their app last reported foreground: they are pushed anyway.",
    )

    @field_validator("send_time", mode="before")
    @classmethod
    def _integer(cls, value: object) -> object:
        # bool is an int in Python and "1763790000" would be coerced: both hide a bug upstream.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(
                f"sendTime must be a JSON integer of epoch seconds (e.g. 1763790000), got {excerpt(value)}"
            )
        return value

    @field_validator("send_time")
    @classmethod
    def _seconds(cls, value: int) -> int:
        if value >= 100_000_000_000:  # year 5138 in seconds, or 1973 in milliseconds
            raise ValueError("sendTime looks like milliseconds: send epoch seconds (e.g. 1763790000)")
        return value

    @field_validator("to", mode="before")
    @classmethod
    def _exactly_one_target(cls, value: object) -> object:
        if isinstance(value, dict):
            has_user = "userId" in value or "user_id" in value
            has_group = "groupId" in value or "group_id" in value
            if has_user and has_group:
                raise ValueError(
                    'to has both userId and groupId: send {"userId": ...} for a one-to-one message or '
                    '{"groupId": ...} for a group message, not both'
                )
            if not has_user and not has_group:
                raise ValueError(
                    'to needs userId (one-to-one message) or groupId (group message), e.g. {"userId": "bob"}'
                )
        return value

    @model_validator(mode="before")
    @classmethod
    def _one_name_per_field(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for ours, agora in (("offlinePushInfo", "em_apns_ext"), ("forcePush", "em_force_notification")):
                if ours in data and agora in data:
                    raise ValueError(
                        f"the event has both {ours} and {agora}, which are the same setting "
                        f"({agora} is Agora's name): send only one of them"
                    )
        return data

    @model_validator(mode="after")
    def _online_not_offline(self) -> MessageEvent:
        online = self.to.online_users if isinstance(self.to, GroupTarget) else None
        if online and self.offline_users:
            both = sorted(set(online) & set(self.offline_users))
            if both:
                raise ValueError(
                    f"{len(both)} user(s) are in both to.onlineUsers and offlineUsers (first: "
                    f"{_short(both[0])}): a user is either online (not pushed) or offline (pushed), not both"
                )
        return self

    @field_validator("elems")
    @classmethod
    def _content(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        # `call` is declared before `elems`, so it is in info.data when it was given (and valid).
        if not value and info.data.get("call") is None:
            raise ValueError(
                'elems is empty: send at least one element (e.g. [{"type": "text", "text": "hi"}]), '
                "or a call object for a call invitation"
            )
        return value

    @property
    def is_group(self) -> bool:
        return isinstance(self.to, GroupTarget)

    @property
    def counts_in_badge(self) -> bool:
        """Whether pushing it adds 1 to the recipient's badge: not with ignoreBadge, never for a call
        event (signalling: the missed-call message the IM server sends afterwards is what counts)."""
        return not self.offline_push_info.ignore_badge and self.call is None

    @property
    def expiration(self) -> int | None:
        """apns-expiration in epoch seconds: a call's sendTime + timeoutSeconds, else sendTime +
        offlinePushInfo.expiresIn (0 stays 0: deliver now or never), else None (APNs' default)."""
        if self.call is not None:
            return self.send_time + self.call.timeout_seconds
        expires_in = self.offline_push_info.expires_in
        if expires_in is None:
            return None
        return 0 if expires_in == 0 else self.send_time + expires_in

    def expired(self, now_s: float, *, retry: bool = False) -> bool:
        """Whether a recipient handled at ``now_s`` is too late (skip reason ``expired``): at or past
        the expiration. expiresIn 0 ("now or never") has no moment to compare with, since sendTime is
        whole seconds from another clock: its first attempt is sent (with apns-expiration 0) and any
        later attempt (``retry``, after a 429 / 5xx) is too late."""
        if self.call is not None:
            return now_s >= self.send_time + self.call.timeout_seconds
        expires_in = self.offline_push_info.expires_in
        if expires_in is None:
            return False
        return retry if expires_in == 0 else now_s >= self.send_time + expires_in

    @property
    def group_id(self) -> str | None:
        return self.to.group_id if isinstance(self.to, GroupTarget) else None

    @property
    def apns_priority(self) -> int:
        return APNS_PRIORITY[self.priority]

    def mention_of(self, user_id: str) -> Mention | None:
        """How this message mentions ``user_id``: ``me``, ``all`` or None (always None one-to-one)."""
        if self.mentions is None or not isinstance(self.to, GroupTarget):
            return None
        return self.mentions.of(user_id)


class QueuedMessageEvent(MessageEvent):
    """The same event put straight on the SQS queue by the IM server: it also names its app."""

    app_id: Annotated[
        str, AfterValidator(_app_id), WithJsonSchema({"type": "string", "pattern": _APP_ID_RE.pattern})
    ] = Field(
        description="The app the message belongs to (the appId of the API path), 1-64 characters of "
        "A-Z a-z 0-9 . _ -.",
    )
