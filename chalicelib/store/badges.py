"""Badge counts, changed atomically with the send path's asyncio client, answered as numbers.

The badge lives on the folded user item, so an increment costs 1 write unit while that item stays
under 1 KB (README, "Cost"). Each change carries its message ID and is applied once per message
(``user_fold.badge_change_request``): a retry after an ambiguous answer, or a second invocation
counting the same message, finds its mark and answers the badge the first one produced.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiodynamo.errors import ConditionalCheckFailed

from chalicelib.store import items
from chalicelib.store.dynamo_async import AsyncDynamo
from chalicelib.store.user_codec import UserRecord
from chalicelib.store.user_fold import (
    FOLD,
    MARKS,
    badge_change_request,
    badge_of_mark,
    mark_of,
    mark_probe_request,
)
from chalicelib.store.users import UserRepository

INCREMENT, RECALL = "i", "r"


@dataclass
class BadgeCounter:
    users: UserRepository
    dynamo: AsyncDynamo

    async def increment(self, app_id: str, user: UserRecord, message_id: str) -> int:
        """Add 1 for this message (once) and answer the badge it produced."""
        return await self._change(app_id, user, message_id, INCREMENT)

    async def decrement(self, app_id: str, user: UserRecord, message_id: str) -> int:
        """Take 1 off for this message's recall (once, never below 0) and answer the badge."""
        return await self._change(app_id, user, message_id, RECALL)

    async def _change(self, app_id: str, user: UserRecord, message_id: str, op: str) -> int:
        key = items.user_key(app_id, user.user_id)
        if not user.folded:
            await asyncio.to_thread(self.users.fold, app_id, user.user_id)
        for _attempt in range(2):
            request = badge_change_request(self.users.table, key, op, message_id, user.marks)
            try:
                resp = await self.dynamo.call("UpdateItem", request)
                return int(resp["Attributes"]["badge"]["N"])
            except ConditionalCheckFailed:
                pass
            # Refused: counted already (a retry, a takeover), a recall at 0, or the item not folded.
            probe = await self.dynamo.call(
                "GetItem", mark_probe_request(self.users.table, key, op, message_id)
            )
            item = probe.get("Item", {})
            if FOLD not in item:
                await asyncio.to_thread(self.users.fold, app_id, user.user_id)
                continue
            mark = item.get(MARKS, {}).get("M", {}).get(mark_of(op, message_id))
            if mark is not None:
                return badge_of_mark(int(mark["N"]))
            return int(item.get("badge", {}).get("N", "0"))
        raise RuntimeError(f"the badge of user {user.user_id!r} could not be changed: its item is not folded")
