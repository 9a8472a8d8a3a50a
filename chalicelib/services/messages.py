"""Message intake (POST .../messages) and the delivery report ("why didn't user X get message Y?")."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib import clock
from chalicelib.apns.ids import apns_id
from chalicelib.errors import Conflict, NotFound, ValidationFailed
from chalicelib.models.ledger import RECALL_PREFIX, ChunkAttempt, edit_prefix
from chalicelib.models.lifecycle import MessageChangeAccepted, MessageEdit, ReplaceJob, ReplaceOp
from chalicelib.models.message import MessageEvent
from chalicelib.models.push_info import ext_refusal
from chalicelib.models.sending import (
    Delivery,
    DeliveryList,
    DeliveryQuery,
    DeliverySummary,
    GroupMember,
    GroupMembersChange,
    GroupMembersPage,
    PageQuery,
    Replacement,
)
from chalicelib.models.settings import DEFAULT_CONVENTIONS
from chalicelib.services import receipts as receipt_rules
from chalicelib.services import report
from chalicelib.services.lifecycle import apply_edit, edit_rev_of
from chalicelib.services.policy import message_skip_reason
from chalicelib.services.settings import SettingsService
from chalicelib.store.deliveries import DeliveryRepository
from chalicelib.store.groups import GroupRepository, Member
from chalicelib.store.queues import Queues
from chalicelib.store.receipts import ReceiptRepository


@dataclass
class MessageService:
    queues: Queues
    deliveries: DeliveryRepository
    groups: GroupRepository
    clock_ms: Callable[[], int] = field(default=clock.now_ms)
    # A recall answers once the chunks being sent when it arrived have stopped (they see the recall
    # at their next checkpoint and finish their requests in flight), for at most this long.
    recall_wait_s: float = 10.0
    sleep: Callable[[float], None] = field(default=time.sleep)
    # The app's payload conventions decide how large ext may be (one read per app per 30 s).
    settings: SettingsService | None = None
    receipts: ReceiptRepository | None = None

    def submit(self, app_id: str, event: MessageEvent) -> str:
        """Queue the event for fan-out, in the same form the IM server may put on the queue itself."""
        if self.settings is not None:
            conventions = list(self.settings.cached(app_id).payload_conventions)
            _check_ext(event.offline_push_info.ext, conventions)
        body = event.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.queues.send_intake({"appId": app_id, **body})
        return event.message_id

    # ---- recall and edit -------------------------------------------------------------------------

    def recall(self, app_id: str, message_id: str) -> MessageChangeAccepted:
        """Mark the message recalled and queue one replacement job per chunk; a second recall is a no-op."""
        summary = self._changeable(app_id, message_id)
        if not self.deliveries.mark_recalled(app_id, message_id, self.clock_ms()):
            return MessageChangeAccepted(message_id=message_id, op="recall", changed=False)
        chunks = int(summary.get("chunkCount", 0))
        self._queue_jobs(app_id, message_id, "recall", 0, chunks)
        return MessageChangeAccepted(
            message_id=message_id,
            op="recall",
            changed=True,
            stopped=self._stopped(app_id, message_id, chunks),
        )

    def _stopped(self, app_id: str, message_id: str, chunks: int) -> bool:
        """Wait until no chunk of the original is being sent: a chunk claimed before the recall stops
        at its next checkpoint and ends once its requests in flight are answered; a chunk claimed
        after it sees the recall at its claim. True = nothing of the original leaves any more."""
        deadline = time.monotonic() + self.recall_wait_s
        delay = 0.02
        while self.deliveries.chunks_being_sent(app_id, message_id, chunks):
            if time.monotonic() >= deadline:
                return False
            self.sleep(delay)
            delay = min(0.25, delay * 2)
        return True

    def edit(self, app_id: str, message_id: str, change: MessageEdit) -> MessageChangeAccepted:
        summary = self._changeable(app_id, message_id)
        stored = self.deliveries.stored_event(summary) or {}
        if change.offline_push_info is not None:
            kept = stored.get("settings") or {}
            _check_ext(
                change.offline_push_info.ext, list(kept.get("payloadConventions", DEFAULT_CONVENTIONS))
            )
        edited = apply_edit(MessageEvent.model_validate(stored["event"]), change.model_dump(by_alias=True))
        if message_skip_reason(edited) == "customWithoutDesc":
            raise ValidationFailed(
                "the edited message has a custom element and no offlinePushInfo.desc: give desc, the text "
                "its notification shows"
            )
        body = change.model_dump(mode="json", by_alias=True, exclude_none=True)
        rev = self.deliveries.mark_edited(app_id, message_id, body, self.clock_ms())
        if rev is None:
            raise Conflict(f"message '{message_id}' was recalled: a recalled message cannot be edited")
        self._queue_jobs(app_id, message_id, "edit", rev, int(summary.get("chunkCount", 0)))
        return MessageChangeAccepted(message_id=message_id, op="edit", changed=True)

    def _changeable(self, app_id: str, message_id: str) -> dict[str, Any]:
        summary = self.deliveries.summary(app_id, message_id)
        if summary is None:
            raise NotFound(
                f"message '{message_id}' is unknown, or still queued for fan-out (try again in a moment)"
            )
        if self.deliveries.stored_event(summary) is None:
            raise Conflict(
                f"message '{message_id}' was sent before recall and edit existed: it cannot be replaced"
            )
        return summary

    def _queue_jobs(self, app_id: str, message_id: str, op: ReplaceOp, rev: int, chunks: int) -> None:
        """One job per original chunk on the send queue: a group of 10,000 is 40 small records."""
        self.queues.send_chunks(
            [
                ReplaceJob(app_id=app_id, message_id=message_id, op=op, rev=rev, index=i).model_dump_json(
                    by_alias=True
                )
                for i in range(chunks)
            ]
        )

    def deliveries_of(self, app_id: str, message_id: str, query: DeliveryQuery) -> DeliveryList:
        summary = self.deliveries.summary(app_id, message_id)
        if summary is None:
            raise NotFound(
                f"no deliveries for message '{message_id}': it is unknown, or still queued for fan-out "
                "(try again in a moment)"
            )
        online_count = int(summary.get("onlineCount", 0))
        online = self.deliveries.online(app_id, message_id, online_count) if online_count else []
        settled = report.online_rows(online, int(summary.get("chunkCount", 0)))
        if query.user_id is not None:
            # Recipients are sorted and chunks hold contiguous ranges: one chunk holds this user.
            index = self.deliveries.chunk_of(list(summary.get("bounds", [])), query.user_id)
            if any(r.user_id == query.user_id for r in settled):
                index = None
            attempts = [] if index is None else self.deliveries.attempts(app_id, message_id, index)
            rows = [r for r in report.rows(attempts) + settled if r.user_id == query.user_id]
        else:
            index = None
            attempts = self.deliveries.attempts(app_id, message_id)
            rows = report.rows(attempts) + settled
        ops = self.deliveries.ops_in(summary)
        recalls = (
            self._replacements(app_id, message_id, index, RECALL_PREFIX, attempts) if ops.recalled else {}
        )
        edits = (
            self._replacements(app_id, message_id, index, edit_prefix(ops.edit_rev), attempts)
            if ops.edit_rev
            else {}
        )
        times = self._receipt_times(app_id, message_id, index, attempts)
        start = report.decode_cursor(query.cursor) if query.cursor else report.Position()
        keep = (lambda r: r.status == query.status) if query.status else (lambda _r: True)
        listed, next_start = report.page(rows, start, query.limit, keep)
        return DeliveryList(
            items=[
                Delivery(
                    user_id=r.user_id,
                    device_token=r.device_token,
                    status=r.status,
                    reason=_reason(r),
                    code=r.code or None,
                    apns_id=apns_id(app_id, message_id, r.device_token)
                    if r.device_token and r.status != "skipped"
                    else None,
                    delivered_at=_times(times, r)[0],
                    opened_at=_times(times, r)[1],
                    recall=_replacement(recalls, r, app_id, message_id, "recall") if ops.recalled else None,
                    edit=_replacement(edits, r, app_id, message_id, "edit", ops.edit_rev)
                    if ops.edit_rev
                    else None,
                )
                for r in listed
            ],
            next_cursor=report.encode_cursor(next_start) if next_start else None,
            recipient_count=int(summary["recipientCount"]),
            summary=_summary(rows, times),
        )

    def summary_of(self, app_id: str, message_id: str) -> dict[str, Any]:
        """The report's summary of a whole message (what message.completed carries)."""
        attempts = self.deliveries.attempts(app_id, message_id)
        rows = report.rows(attempts)
        return _summary(rows, self._receipt_times(app_id, message_id, None, attempts)).dump()

    def _receipt_times(
        self, app_id: str, message_id: str, index: int | None, attempts: list[ChunkAttempt]
    ) -> receipt_rules.DeviceTimes:
        if self.receipts is None or not attempts:
            return {}
        return receipt_rules.by_device(attempts, self.receipts.of_message(app_id, message_id, index))

    def _replacements(
        self, app_id: str, message_id: str, index: int | None, prefix: str, original: list[ChunkAttempt]
    ) -> dict[tuple[str, str], report.Replaced]:
        if index is None and not original:
            return {}
        found = self.deliveries.attempts(app_id, message_id, index, prefix=prefix)
        return report.replacements(original, found)

    def change_members(self, app_id: str, group_id: str, change: GroupMembersChange) -> None:
        self.groups.change(
            app_id,
            group_id,
            [Member(m.user_id, m.name_card) for m in change.add],
            list(change.remove),
        )

    def members(self, app_id: str, group_id: str, query: PageQuery) -> GroupMembersPage:
        members, cursor = self.groups.page(app_id, group_id, query.cursor, query.limit)
        return GroupMembersPage(
            items=[GroupMember(user_id=m.user_id, name_card=m.name_card) for m in members], next_cursor=cursor
        )


def _times(times: receipt_rules.DeviceTimes, row: report.Row) -> tuple[int | None, int | None]:
    if row.device_token is None or row.status != "sent":
        return None, None
    return times.get((row.chunk, row.user_id, row.device_token[:4]), (None, None))


def _summary(rows: list[report.Row], times: receipt_rules.DeviceTimes) -> DeliverySummary:
    found = [_times(times, r) for r in rows] if times else []
    return DeliverySummary.model_validate(
        {
            **report.summary(rows),
            "delivered": sum(1 for d, _ in found if d is not None),
            "opened": sum(1 for _, o in found if o is not None),
        }
    )


def _reason(row: report.Row) -> str | None:
    if row.reason:
        return row.reason
    if row.code == report.QUEUED:
        return "queued for sending"
    if row.code == report.SENDING:
        return "being sent"
    return row.code or None


def _replacement(
    found: dict[tuple[str, str], report.Replaced],
    row: report.Row,
    app_id: str,
    message_id: str,
    op: str,
    rev: int = 0,
) -> Replacement | None:
    """A device row's replacement: its outcome, or ``pending`` while its job has not decided it;
    None for a device that needs none (never sent the original, or sent the edited content)."""
    if row.device_token is None:
        return None
    hit = found.get((row.user_id, row.device_token))
    if hit is None:
        if row.status == "sent" and not (op == "edit" and edit_rev_of(row.code) >= rev):
            return Replacement(status="pending", code=report.QUEUED, reason="queued for sending")
        return None
    status, code, reason = hit
    return Replacement(
        status=status,
        code=code or None,
        reason=reason or code or None,
        apns_id=apns_id(app_id, message_id, row.device_token, op) if status != "skipped" else None,
    )


def _check_ext(ext: str | None, conventions: Sequence[str]) -> None:
    refusal = ext_refusal(ext, conventions)
    if refusal is not None:
        raise ValidationFailed(refusal, details={"field": "offlinePushInfo.ext"})
