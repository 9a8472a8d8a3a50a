"""The badge each recipient is shown: +1 per message counted, -1 per recall, saved before sending.

A message counts once per recipient: a retry attempt reuses the first try's badges (carried in the
chunk), a takeover the ones saved before the crash, and each change carries the message ID so the
store applies it once (a retry after an ambiguous answer included); a failed increment shows what the
count would be rather than fail the chunk. A recall takes 1 off each recipient the original counted
(never below 0), once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chalicelib.models.ledger import ChunkAttempt, Claim
from chalicelib.models.sending import SendChunk
from chalicelib.store.badges import BadgeCounter
from chalicelib.store.send_ledger import SendLedger
from chalicelib.store.user_codec import UserRecord

log = logging.getLogger(__name__)


@dataclass
class Badges:
    counter: BadgeCounter
    ledger: SendLedger

    async def for_message(
        self,
        chunk: SendChunk,
        claim: Claim,
        users: list[UserRecord],
        position: dict[str, int],
        earlier: ChunkAttempt,
    ) -> dict[str, int | None]:
        """+1 for each pushed user (none with ignoreBadge), counted once per message."""
        if not chunk.event.counts_in_badge or not users:
            return {}
        if chunk.badges is not None:
            return {u.user_id: chunk.badges.get(u.user_id) for u in users}
        saved = earlier.badges or {}
        badges: dict[str, int | None] = {
            u.user_id: saved[position[u.user_id]] for u in users if position[u.user_id] in saved
        }
        counting = [u for u in users if u.user_id not in badges]
        if not counting:
            return badges
        values = await self._each(self.counter.increment, chunk.app_id, counting, chunk.message_id)
        for user, value in zip(counting, values, strict=True):
            if isinstance(value, BaseException):
                log.warning("badge increment failed for a recipient of %s: %r", chunk.message_id, value)
                badges[user.user_id] = user.state.badge + 1
            else:
                badges[user.user_id] = value
        await self._save(claim, earlier, badges, position)
        return badges

    async def for_recall(
        self,
        chunk: SendChunk,
        claim: Claim,
        users: list[UserRecord],
        recipients: list[str],
        earlier: ChunkAttempt,
    ) -> dict[str, int | None]:
        """1 off each counted recipient's badge (never below 0); a takeover reuses the saved values."""
        if not users:
            return {}
        position = {u: i for i, u in enumerate(recipients)}
        if earlier.badges is not None:
            return {u.user_id: earlier.badges.get(position[u.user_id]) for u in users}
        values = await self._each(self.counter.decrement, chunk.app_id, users, chunk.message_id)
        badges: dict[str, int | None] = {}
        for user, value in zip(users, values, strict=True):
            if isinstance(value, BaseException):
                log.warning("badge decrement failed for a recipient of %s: %r", chunk.message_id, value)
                badges[user.user_id] = None
            else:
                badges[user.user_id] = value
        await self._save(claim, earlier, badges, position)
        return badges

    async def _save(
        self,
        claim: Claim,
        earlier: ChunkAttempt,
        badges: dict[str, int | None],
        position: dict[str, int],
    ) -> None:
        """Saved under the claim, as the page after ``earlier``'s (fenced: a holder taken over
        meanwhile saves nothing and sends nothing)."""
        given = {position[u]: b for u, b in badges.items() if b is not None}
        await self.ledger.put_badges(claim, earlier, given)

    @staticmethod
    async def _each(
        change: Callable[[str, UserRecord, str], Awaitable[int]],
        app_id: str,
        users: list[UserRecord],
        message_id: str,
    ) -> list[int | BaseException]:
        return list(
            await asyncio.gather(*(change(app_id, u, message_id) for u in users), return_exceptions=True)
        )
