"""Message intake (POST .../messages) and the delivery report ("why didn't user X get message Y?")."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.apns.ids import apns_id
from chalicelib.errors import NotFound
from chalicelib.models.message import MessageEvent
from chalicelib.models.sending import (
    Delivery,
    DeliveryList,
    DeliveryQuery,
    DeliverySummary,
    GroupMember,
    GroupMembersChange,
    GroupMembersPage,
    PageQuery,
)
from chalicelib.services import report
from chalicelib.store.deliveries import DeliveryRepository
from chalicelib.store.groups import GroupRepository, Member
from chalicelib.store.queues import Queues


@dataclass
class MessageService:
    queues: Queues
    deliveries: DeliveryRepository
    groups: GroupRepository

    def submit(self, app_id: str, event: MessageEvent) -> str:
        """Queue the event for fan-out, in the same form the IM server may put on the queue itself."""
        body = event.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.queues.send_intake({"appId": app_id, **body})
        return event.message_id

    def deliveries_of(self, app_id: str, message_id: str, query: DeliveryQuery) -> DeliveryList:
        summary = self.deliveries.summary(app_id, message_id)
        if summary is None:
            raise NotFound(
                f"no deliveries for message '{message_id}': it is unknown, or still queued for fan-out "
                "(try again in a moment)"
            )
        if query.user_id is not None:
            # Recipients are sorted and chunks hold contiguous ranges: one chunk holds this user.
            index = self.deliveries.chunk_of(list(summary.get("bounds", [])), query.user_id)
            attempts = [] if index is None else self.deliveries.attempts(app_id, message_id, index)
            rows = [r for r in report.rows(attempts) if r.user_id == query.user_id]
        else:
            rows = report.rows(self.deliveries.attempts(app_id, message_id))
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
                )
                for r in listed
            ],
            next_cursor=report.encode_cursor(next_start) if next_start else None,
            recipient_count=int(summary["recipientCount"]),
            summary=DeliverySummary.model_validate(report.summary(rows)),
        )

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


def _reason(row: report.Row) -> str | None:
    if row.reason:
        return row.reason
    if row.code == report.QUEUED:
        return "queued for sending"
    if row.code == report.SENDING:
        return "being sent"
    return row.code or None
