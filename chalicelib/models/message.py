"""The "a message was sent" event the IM server submits (API.md "Messages", SPEC section 5).

``MessageEvent`` is the body of ``POST /v1/apps/{appId}/messages``; ``QueuedMessageEvent`` is the same
event put straight on the SQS queue, which must also say which app it belongs to. Both accept
Tencent's names (``offlinePushInfo``) and Agora's (``em_apns_ext``, ``em_push_content`` ...).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

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
from chalicelib.models.elems import Elem
from chalicelib.models.push_info import OfflinePushInfo
from chalicelib.models.text import OptionalText, empty_is_unset, escaped_size, valid_unicode
from chalicelib.models.text import short as _short

MAX_MEMBERS = 10_000

_MESSAGE_ID_RE = re.compile(r"^[A-Za-z0-9._:@=+-]{1,128}$")
_APP_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# User and group IDs come from the IM vendor (Tencent group IDs look like "@TGS#2J4SZEAEL"), so any
# visible character is allowed except "/" (they become URL path segments) and whitespace.
_ENTITY_ID_RE = re.compile(ENTITY_ID_PATTERN)


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


_ENTITY_ID_SCHEMA = WithJsonSchema(
    {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[^\s/\x00-\x1f\x7f]+$"}
)
UserId = Annotated[str, AfterValidator(valid_unicode), _entity_id("userId"), _ENTITY_ID_SCHEMA]
GroupId = Annotated[str, AfterValidator(valid_unicode), _entity_id("groupId"), _ENTITY_ID_SCHEMA]
Priority = Literal["high", "normal"]

# apns-priority: 10 = deliver now (wakes the device), 5 = may be delayed to save power.
APNS_PRIORITY: dict[str, int] = {"high": 10, "normal": 5}


MAX_FACE_URL = 1024


def _https_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or any(c.isspace() for c in value):
        raise ValueError(
            f"{_short(value)} is not an https URL: give the picture's https address (iOS loads "
            "notification pictures over https only), e.g. https://cdn.example.com/face/alice.png"
        )
    return value


# A picture for communication notifications (Tencent's faceUrl): https only, whatever the app's setting.
FaceUrl = Annotated[
    str | None, BeforeValidator(empty_is_unset), AfterValidator(lambda v: v if v is None else _https_url(v))
]


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
    face_url: FaceUrl = Field(
        default=None,
        max_length=MAX_FACE_URL,
        description="The sender's picture (https, Tencent's faceUrl): with the app's "
        "communicationNotifications on, the payload's sender.faceUrl for the Notification Service "
        "Extension; any other scheme is a 400.",
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
    group_face_url: FaceUrl = Field(
        default=None,
        max_length=MAX_FACE_URL,
        description="The group's picture (https, Tencent's faceUrl): with the app's "
        "communicationNotifications on, the payload's conversation.faceUrl; any other scheme is a 400.",
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


MAX_CALL_DATA_BYTES = 2048
MAX_INVITED = 100


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
    invited_list: Annotated[list[UserId], _unique_ids("call.invitedList")] | None = Field(
        default=None,
        max_length=MAX_INVITED,
        description=f"Who the call invites (at most {MAX_INVITED} user IDs, each once): TUIKit's "
        "`invited_list`, passed through in the tpns entity's `content` (seed 001's handler sets the "
        "signaling invitee list from it); absent = `[]`. Who is pushed is still `to`.",
    )

    @field_validator("data")
    @classmethod
    def _data_size(cls, value: str | None) -> str | None:
        if value is not None:
            size = escaped_size(value)
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
        """Whether pushing it adds 1 to the recipient's badge: any message and a call invitation (seed
        003: "+1 per push"), not with ignoreBadge; never a call's cancel (it neither adds nor takes
        back: a missed call stays unread)."""
        if self.offline_push_info.ignore_badge:
            return False
        return self.call is None or self.call.action == "invite"

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
