"""Recall and edit rules (pure): the edited event, and which devices of a chunk get a replacement.

A recall or an edit replaces what each phone shows: every device that was sent the message gets a
notification with the same apns-collapse-id (``render.render_recall`` / ``render.render_edit``).
Which devices those are is read from the original chunk's ledger: the latest attempt's outcome per
device, ``sent`` (and, for an edit, not already sent that edit's content at the time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.models.ledger import ChunkAttempt, Outcome
from chalicelib.models.lifecycle import MessageEdit
from chalicelib.models.message import MessageEvent


def apply_edit(event: MessageEvent, edit: dict[str, Any]) -> MessageEvent:
    """``event`` with an edit's content (the stored MessageEdit body): new elems, and new
    offlinePushInfo when the edit gives one. Without one, the original's other settings stay but its
    ``desc`` and ``title`` do not: they described the old text, and the replacement shows the new."""
    change = MessageEdit.model_validate(edit)
    update: dict[str, Any] = {"elems": change.elems}
    if change.offline_push_info is not None:
        update["offline_push_info"] = change.offline_push_info
    else:
        update["offline_push_info"] = event.offline_push_info.model_copy(update={"desc": None, "title": None})
    return event.model_copy(update=update)


def edit_rev_of(code: str) -> int:
    """The edit whose content a sent outcome carried ("edit2" -> 2); 0 = the original content."""
    return int(code[4:]) if code.startswith("edit") and code[4:].isdigit() else 0


@dataclass(frozen=True, slots=True)
class ChunkState:
    """The original chunk as a replacement job sees it once every attempt is done."""

    recipients: list[str]  # attempt 0's, sorted: positions are the report's and the replacements' indexes
    sent: list[tuple[int, str]]  # (recipient position, device token) of every device sent the message
    counted: frozenset[int]  # positions of recipients whose badge the original counted
    unfinished: bool  # an attempt is still queued or being sent: wait


def chunk_state(attempts: Sequence[ChunkAttempt], *, edit_rev: int = 0) -> ChunkState:
    """What the original's attempts of one chunk did. ``edit_rev``: for an edit, devices already sent
    this edit's content (or a later one) need no replacement and are left out of ``sent``."""
    ordered = sorted(attempts, key=lambda a: a.ref.attempt)
    if not ordered or ordered[0].ref.attempt != 0:
        return ChunkState([], [], frozenset(), unfinished=not ordered)
    first = ordered[0]
    position = {u: i for i, u in enumerate(first.recipients)}
    latest: dict[tuple[int, str], Outcome] = {}
    counted: set[int] = set()
    for a in ordered:
        for o in a.outcomes:
            if o.device_token is not None and o.index < len(a.recipients):
                latest[(position[a.recipients[o.index]], o.device_token)] = o
        for index in a.badges or {}:
            if index < len(a.recipients):
                counted.add(position[a.recipients[index]])
    sent = sorted(
        key
        for key, o in latest.items()
        if o.status == "sent" and (not edit_rev or edit_rev_of(o.code) < edit_rev)
    )
    return ChunkState(
        first.recipients,
        sent,
        frozenset(counted),
        unfinished=any(a.status != "done" for a in ordered),
    )
