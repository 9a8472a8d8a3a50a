"""Fan-out: one message event -> its recipients (minus the sender) -> chunks on the send queue.

Recipients come from the event (one user, or a group's inline member list) or
from the stored membership, sorted, so each chunk holds a contiguous range and
the report finds one recipient in one chunk. Members the event lists in
``to.onlineUsers`` are settled here (``skipped``/``online``): stored once,
compressed, beside the summary, and no chunk carries them. The chunks are written to the
message's ledger before they are queued, so a redelivered event queues the
same chunks again and the send step's claim keeps every device to one
notification. An event for an app that does not exist is refused (it would
write a ledger nobody can read): the handler dead-letters it with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chalicelib import clock
from chalicelib.errors import NotFound, ValidationFailed
from chalicelib.models.ledger import ChunkRef
from chalicelib.models.message import GroupTarget, Mentions, MessageEvent, QueuedMessageEvent
from chalicelib.models.push_info import ext_refusal
from chalicelib.models.sending import SendChunk
from chalicelib.models.settings import AppSettings
from chalicelib.models.stats import DayCounts
from chalicelib.store.apps import AppRepository
from chalicelib.store.deliveries import DeliveryRepository
from chalicelib.store.groups import GroupRepository
from chalicelib.store.message_index import IndexEntry, MessageIndexRepository
from chalicelib.store.queues import Queues
from chalicelib.store.stats import StatsRepository, utc_day
from chalicelib.store.users import UserRepository


class UnknownApp(NotFound):
    """The event names an app that does not exist: it can never succeed."""


class RefusedEvent(ValidationFailed):
    """The event breaks a rule of its app's settings (an ext too large for its conventions): it can
    never succeed, so it is dead-lettered with this reason."""


@dataclass(frozen=True)
class FanoutResult:
    recipients: int
    chunks: int
    duplicate: bool


@dataclass
class FanoutService:
    groups: GroupRepository
    deliveries: DeliveryRepository
    queues: Queues
    users: UserRepository
    apps: AppRepository
    chunk_size: int = 250
    clock_ms: Callable[[], int] = clock.now_ms
    index: MessageIndexRepository | None = None  # the message list (one small item per message)
    stats: StatsRepository | None = None  # daily statistics (a message with no recipient counts here)

    def fan_out(self, queued: QueuedMessageEvent) -> FanoutResult:
        app_id = queued.app_id
        event: MessageEvent = queued
        now = self.clock_ms()
        app = self.apps.get_app(app_id)
        if app is None:
            raise UnknownApp(
                f"app '{app_id}' does not exist: create it (POST /v1/apps) or fix the record's appId"
            )
        # The app item is read here anyway: its settings travel in every chunk, so the send path
        # reads nothing more for them (a change applies to messages fanned out after it).
        send_settings = AppSettings.from_stored(app).for_send()
        refusal = ext_refusal(event.offline_push_info.ext, list(send_settings.payload_conventions))
        if refusal is not None:
            raise RefusedEvent(refusal)
        if event.call is not None and event.call.action == "cancel":
            # Before the cancel's own chunks go out: invite chunks claimed after this send nothing.
            self.deliveries.mark_call_cancelled(app_id, event.call.call_id, event.message_id, now)
        recipients = self.recipients(app_id, event)
        # Members the IM server says are online are settled here, read nothing and join no chunk.
        online = _online(event, recipients)
        pushed = [u for u in recipients if u not in online] if online else recipients
        chunks = [
            (ChunkRef(index=i, attempt=0), pushed[start : start + self.chunk_size])
            for i, start in enumerate(range(0, len(pushed), self.chunk_size))
        ]
        if isinstance(event.to, GroupTarget):
            event = self._with_sender_name_card(app_id, event)
            to = event.to.model_copy(update={"members": None, "online_users": None})
            event = event.model_copy(update={"to": to})
        # Agora's updatePushDisplayName: the sender's own setting, read once per message, not per chunk.
        display_name = self.users.get(app_id, event.sender.user_id).config.display_name if chunks else None
        # Kept with the summary for a later recall or edit, which renders its replacements from it.
        kept = {
            "event": event.model_dump(
                mode="json", by_alias=True, exclude_none=True, exclude={"offline_users", "app_id"}
            ),
            "senderDisplayName": display_name,
            "settings": send_settings.model_dump(mode="json", by_alias=True),
        }
        first = self.deliveries.create_summary(
            app_id,
            event.message_id,
            len(recipients),
            [users[0] for _, users in chunks],
            now,
            kept,
            len(online),
        )
        created = now
        if online:
            self.deliveries.put_online(app_id, event.message_id, sorted(online), now)
        if not first:
            stored_summary = self.deliveries.summary(app_id, event.message_id) or {}
            if stored_summary.get("enqueued"):
                return FanoutResult(len(recipients), len(chunks), duplicate=True)
            created = int(stored_summary.get("createdAt", now))
            # An earlier run stopped half way: queue exactly the chunks it wrote (a stored membership
            # may have changed since, and recomputed chunks would not line up with the ledger).
            stored = self.deliveries.first_chunks(app_id, event.message_id)
            if stored:
                chunks = stored
        self.deliveries.put_chunks(app_id, event.message_id, chunks, now)
        if self.index is not None:
            self.index.put(app_id, _index_entry(event, created, chunks))
        if first and not chunks and self.stats is not None:
            # Counted with its first chunk's outcomes otherwise (services/stats.py).
            self.stats.add(app_id, utc_day(now), DayCounts(messages=1))
        bodies = [
            SendChunk(
                app_id=app_id,
                message_id=event.message_id,
                index=ref.index,
                attempt=0,
                event=_for_chunk(event, users),
                recipients=users,
                sender_display_name=display_name,
                chunks=len(chunks),
                settings=send_settings,
            ).model_dump_json(by_alias=True, exclude_none=True)
            for ref, users in chunks
        ]
        self.queues.send_chunks(bodies)
        self.deliveries.mark_enqueued(app_id, event.message_id)
        return FanoutResult(len(recipients), len(chunks), duplicate=not first)

    def recipients(self, app_id: str, event: MessageEvent) -> list[str]:
        """Every target user except the sender, each once, sorted."""
        to = event.to
        if isinstance(to, GroupTarget):
            members = (
                to.members
                if to.members is not None
                else [m.user_id for m in self.groups.all_members(app_id, to.group_id)]
            )
        else:
            members = [to.user_id]
        return sorted(set(members) - {event.sender.user_id})

    def _with_sender_name_card(self, app_id: str, event: MessageEvent) -> MessageEvent:
        """A stored group knows its members' name cards: use the sender's when the event has none."""
        to = event.to
        if event.sender.name_card or not isinstance(to, GroupTarget) or to.members is not None:
            return event
        card = self.groups.name_card(app_id, to.group_id, event.sender.user_id)
        if card is None:
            return event
        return event.model_copy(update={"sender": event.sender.model_copy(update={"name_card": card})})


def _index_entry(event: MessageEvent, created: int, chunks: list[tuple[ChunkRef, list[str]]]) -> IndexEntry:
    to = event.to
    return IndexEntry(
        message_id=event.message_id,
        created_at=created,
        send_time=event.send_time,
        to_user=None if isinstance(to, GroupTarget) else to.user_id,
        to_group=to.group_id if isinstance(to, GroupTarget) else None,
        sender_id=event.sender.user_id,
        call=event.call is not None,
        recipient_count=sum(len(users) for _, users in chunks),
        bounds=tuple(users[0] for _, users in chunks),
        last=chunks[-1][1][-1] if chunks else None,
    )


def _online(event: MessageEvent, recipients: list[str]) -> set[str]:
    """The recipients the event lists in to.onlineUsers (with a stored membership, non-members are
    ignored: one may have left the group since the IM server looked)."""
    listed = event.to.online_users if isinstance(event.to, GroupTarget) else None
    return set(listed) & set(recipients) if listed else set()


def _for_chunk(event: MessageEvent, users: list[str]) -> MessageEvent:
    """Each chunk carries only its own recipients' offline flags and mentions: records stay small
    (1,000 mentioned IDs would otherwise travel in every chunk of the message)."""
    update: dict[str, object] = {}
    if event.offline_users:
        offline = set(event.offline_users)
        update["offline_users"] = [u for u in users if u in offline] or None
    if event.mentions is not None and event.mentions.user_ids:
        listed = set(event.mentions.user_ids)
        # A new object, not model_copy: Mentions caches its ID set.
        update["mentions"] = Mentions(user_ids=[u for u in users if u in listed], all=event.mentions.all)
    return event.model_copy(update=update) if update else event
