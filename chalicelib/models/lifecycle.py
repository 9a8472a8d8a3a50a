"""Recall and edit of a message already sent: request bodies, and the replacement jobs on the send queue."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, ConfigDict, Field, RootModel

from chalicelib.models.base import ApiModel
from chalicelib.models.elems import Elem
from chalicelib.models.push_info import OfflinePushInfo
from chalicelib.models.read_sync import ReadSyncJob
from chalicelib.models.sending import SendChunk

ReplaceOp = Literal["recall", "edit"]


class MessageEdit(ApiModel):
    """The new content of an edited message: its elements, and optionally new push settings.

    Every device that was sent the message gets a replacement (same apns-collapse-id, so the phone
    replaces the notification) rendered from the new content by the usual rules, top-level
    `"op": "edit"`, no sound, no badge key (the count does not change). Recipients not sent yet get
    the edited message instead of the original (with its badge and sound). Editing again replaces the
    previous edit; a recalled message cannot be edited (409)."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"elems": [{"type": "text", "text": "lunch at 1?"}]}]}
    )

    elems: list[Elem] = Field(
        min_length=1, max_length=100, description="The edited message's elements (1-100), as in the event."
    )
    offline_push_info: OfflinePushInfo | None = Field(
        default=None,
        validation_alias=AliasChoices("offlinePushInfo", "em_apns_ext"),
        description="New per-message push settings (title, desc, ext ...); absent = the original's.",
    )


class MessageChangeAccepted(ApiModel):
    """Accepted: the replacements are queued, one job per chunk of the original's recipients.

    Recall: recipients not sent yet are skipped (`recalled`); every device that was sent the message
    gets a replacement with the same apns-collapse-id rendered as if its content were `[消息已撤回]` /
    `[Message recalled]` with the usual name prefix (simpleBanner: the placeholder alone), no sound,
    top-level `"op": "recall"`, and the badge one lower where the original counted (never below 0; no
    badge key otherwise). A second recall changes nothing and sends nothing. The delivery report shows
    each device's replacement under `recall` / `edit`. 404: no such message, or it is still queued for
    fan-out (try again in a moment)."""

    message_id: str
    op: ReplaceOp
    changed: bool = Field(
        description="false = nothing to do: the message was already recalled (a second recall is a no-op)."
    )
    stopped: bool = Field(
        True,
        description="Recall: true = no original of this message leaves any more (the call waits, up to "
        "10 s, until the chunks being sent when it arrived have stopped and their requests in flight "
        "are answered); false = a chunk was still being sent after 10 s (e.g. its sender crashed and "
        "its lease has not run out): it stops at its next checkpoint.",
    )


class ReplaceJob(ApiModel):
    """A send-queue record: send the replacements of one chunk of a recalled or edited message."""

    app_id: str
    message_id: str
    op: ReplaceOp
    rev: int = Field(0, ge=0, description="The edit's number (edits only).")
    index: int = Field(ge=0, description="The original's chunk number.")
    attempt: int = Field(0, ge=0, description="0 = first try; n = the n-th try of the replacements.")
    waits: int = Field(0, ge=0, description="How often it waited for the original's chunk to finish.")


class SendRecord(RootModel[ReadSyncJob | ReplaceJob | SendChunk]):
    """Any record of the send queue: a chunk of a message to send, a chunk's replacements, or a
    read-sync job (``"job": "readSync"``)."""
