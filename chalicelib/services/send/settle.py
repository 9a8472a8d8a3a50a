"""APNs' answer for one device, through the outcome table: its outcome, or None to retry it later.

A 410 (the app was uninstalled) drops the registration unless the app registered again since; a
bad token marks the device invalid. That clean-up is best effort: the outcome is recorded either way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib import clock
from chalicelib.apns.client import ApnsResult
from chalicelib.apns.outcomes import Action, classify, explain
from chalicelib.models.credentials import Credential
from chalicelib.models.ledger import Outcome
from chalicelib.services.send.target import Target
from chalicelib.store.users import UserRepository

log = logging.getLogger(__name__)


@dataclass
class Settler:
    users: UserRepository
    clock_ms: Callable[[], int] = clock.now_ms

    async def settle(
        self, app_id: str, target: Target, result: ApnsResult, cred: Credential | None
    ) -> Outcome | None:
        action = classify(result.status, result.reason)
        token = target.device.token
        if action is Action.SENT:
            return Outcome(target.index, token, "sent")
        if action is Action.RETRY:
            return None
        env = cred.environment if cred else "production"
        bundle = cred.bundle_id if cred else "?"
        reason = explain(result.reason, environment=env, bundle_id=bundle)
        try:
            if action is Action.UNREGISTERED:
                await asyncio.to_thread(
                    self.users.remove_device_if_registered_before,
                    app_id,
                    target.user_id,
                    token,
                    result.timestamp_ms or self.clock_ms(),
                )
            elif action is Action.INVALID_TOKEN:
                await asyncio.to_thread(self.users.mark_device_invalid, app_id, target.user_id, token, reason)
        except Exception as exc:
            log.warning("could not update the registration after %s: %r", result.reason, exc)
        return Outcome(target.index, token, "failed", result.reason or str(result.status), reason)
