"""Message intake (POST .../messages) and the delivery report ("why didn't user X get message Y?")."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.errors import NotFound
from chalicelib.models.message import MessageEvent
from chalicelib.models.sending import (
    Delivery,
    DeliveryList,
    DeliveryQuery,
    GroupMember,
    GroupMembersChange,
    GroupMembersPage,
    PageQuery,
)
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
        records, cursor = self.deliveries.records(
            app_id, message_id, query.user_id, query.cursor, query.limit
        )
        items = [
            Delivery(
                user_id=r.user_id,
                device_token=r.device_token,
                status=r.status,
                reason=r.reason,
                apns_id=r.apns_id,
            )
            for r in records
        ]
        if cursor is None:  # the last page also lists recipients whose chunk has not been sent yet
            waiting = self.deliveries.unfinished_first_attempts(app_id, message_id)
            seen = {r.user_id for r in records}
            items += [
                Delivery(user_id=u, status="pending", reason="queued for sending")
                for u in waiting
                if u not in seen and (query.user_id is None or u == query.user_id)
            ]
        return DeliveryList(items=items, next_cursor=cursor, recipient_count=int(summary["recipientCount"]))

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
