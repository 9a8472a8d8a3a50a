"""The app's recent messages, newest first, or those one user received ("why didn't Bob get it?").

Walks the per-day index partitions backwards (store/message_index.py). With a user, a message is
a match when its recipient ranges hold the user and the one chunk that would hold them lists
them: one Query of that chunk's ledger, which also gives the user's own outcomes. A request
looks at no more than ``max_examined`` messages, so a user's page may hold fewer matches than
``limit`` and still have a ``nextCursor``. Cursors say only where to go on (a day and a
position in it): no user ID, no device token.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib import clock
from chalicelib.errors import ValidationFailed
from chalicelib.models.sending import DeliverySummary
from chalicelib.models.stats import GroupRef, MessageList, MessageListItem, MessageListQuery, UserRef
from chalicelib.services import report
from chalicelib.store.deliveries import DeliveryRepository
from chalicelib.store.message_index import IndexEntry, MessageIndexRepository
from chalicelib.store.stats import utc_day

_SK = re.compile(r"^\d{13}#.+$")
_BAD_CURSOR = "cursor is not one this API returned: pass nextCursor unchanged"


@dataclass(frozen=True)
class _Position:
    day: dt.date
    before: str | None  # the last index entry already looked at on that day (None: none yet)


@dataclass
class MessageListService:
    index: MessageIndexRepository
    deliveries: DeliveryRepository
    retention_days: int  # index entries live as long as the messages' ledgers
    clock_ms: Callable[[], int] = field(default=clock.now_ms)
    max_examined: int = 200  # index entries looked at per request
    max_checked: int = 50  # chunks read per request to check a user's membership

    def list(self, app_id: str, query: MessageListQuery) -> MessageList:
        today = utc_day(self.clock_ms())
        oldest = today - dt.timedelta(days=self.retention_days)
        pos = decode_cursor(query.cursor) if query.cursor else _Position(today, None)
        out: list[MessageListItem] = []
        examined = checked = 0

        def room() -> bool:
            return len(out) < query.limit and examined < self.max_examined and checked < self.max_checked

        while pos.day >= oldest and room():
            want = query.limit - len(out) if query.user_id is None else self.max_examined - examined
            entries, more = self.index.newest(app_id, pos.day, pos.before, min(want, 100))
            for entry in entries:
                examined += 1
                pos = _Position(pos.day, entry.sk)
                if query.user_id is not None and entry.may_hold(query.user_id):
                    checked += 1
                item = self._item(app_id, entry, query.user_id)
                if item is not None:
                    out.append(item)
                if not room():
                    break
            else:
                if not more:  # this day is done: go on with the one before
                    pos = _Position(pos.day - dt.timedelta(days=1), None)
        return MessageList(items=out, next_cursor=encode_cursor(pos) if pos.day >= oldest else None)

    def _item(self, app_id: str, entry: IndexEntry, user_id: str | None) -> MessageListItem | None:
        if user_id is None:
            rows = report.rows(self.deliveries.attempts(app_id, entry.message_id))
        else:
            if not entry.may_hold(user_id):
                return None
            chunk = self.deliveries.chunk_of(list(entry.bounds), user_id)
            attempts = [] if chunk is None else self.deliveries.attempts(app_id, entry.message_id, chunk)
            first = next((a for a in attempts if a.ref.attempt == 0), None)
            if first is None or user_id not in first.recipients:
                return None
            rows = [r for r in report.rows(attempts) if r.user_id == user_id]
        to: UserRef | GroupRef = (
            UserRef(user_id=entry.to_user)
            if entry.to_user is not None
            else GroupRef(group_id=entry.to_group or "")
        )
        return MessageListItem(
            message_id=entry.message_id,
            send_time=entry.send_time,
            created_at=entry.created_at,
            to=to,
            sender_id=entry.sender_id,
            kind="call" if entry.call else "message",
            recipient_count=entry.recipient_count,
            summary=DeliverySummary.model_validate(report.summary(rows)),
        )


def encode_cursor(pos: _Position) -> str:
    raw = json.dumps({"d": pos.day.isoformat(), "k": pos.before}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> _Position:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        day = dt.date.fromisoformat(raw["d"])
        before = raw["k"]
        if before is not None and (not isinstance(before, str) or not _SK.match(before)):
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ValidationFailed(_BAD_CURSOR, details={"field": "cursor"}) from None
    return _Position(day, before)
