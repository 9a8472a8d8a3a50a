"""Badge counts, changed atomically with the send path's asyncio client, answered as numbers.

The badge lives in the user's small state item (``S``), so an increment writes a few dozen bytes:
1 write unit, whatever the size of the user item. The requests are built by ``UserRepository``.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiodynamo.errors import ConditionalCheckFailed

from chalicelib.store.dynamo_async import AsyncDynamo
from chalicelib.store.users import UserRepository


@dataclass
class BadgeCounter:
    users: UserRepository
    dynamo: AsyncDynamo

    async def increment(self, app_id: str, user_id: str) -> int:
        """Add 1 and answer the new badge."""
        resp = await self.dynamo.call("UpdateItem", self.users.badge_increment_request(app_id, user_id))
        return int(resp["Attributes"]["badge"]["N"])

    async def decrement(self, app_id: str, user_id: str) -> int:
        """Take 1 off, never below 0 (a recall), and answer the new badge."""
        try:
            resp = await self.dynamo.call("UpdateItem", self.users.badge_decrement_request(app_id, user_id))
        except ConditionalCheckFailed:
            return 0
        return int(resp["Attributes"]["badge"]["N"])
