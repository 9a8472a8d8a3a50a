"""The plan of a chunk attempt: who is skipped and why, and every device to send to with its text
and badge. Reads every recipient in one concurrent round of BatchGetItem calls, decides with the
pure policy, renders once per distinct (language, style, sounds, mention), counts the badges.
On a takeover, whatever the earlier invocation recorded is left as it is.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chalicelib.models.ledger import ChunkAttempt, Claim, Outcome
from chalicelib.models.notification import Notification
from chalicelib.models.sending import SendChunk
from chalicelib.services.communication import with_communication
from chalicelib.services.policy import (
    Decision,
    DeviceView,
    Recipient,
    SkipReason,
    conversations_of,
    decide,
    message_skip_reason,
)
from chalicelib.services.render import render_for
from chalicelib.services.send.badges import Badges
from chalicelib.services.send.target import Target
from chalicelib.store.send_ledger import SendLedger
from chalicelib.store.user_codec import UserRecord
from chalicelib.store.users import UserRepository

RECALLED = "recalled"  # the skip reason of a recipient not yet sent when the message was recalled

Plan = tuple[list[Outcome], list[tuple[Target, Notification]]]


@dataclass
class Planner:
    users: UserRepository
    ledger: SendLedger
    badges: Badges

    async def plan(
        self, chunk: SendChunk, claim: Claim, earlier: ChunkAttempt, now_ms: int, recalled: bool = False
    ) -> Plan:
        """The outcomes known without APNs (skips), and the devices to send to, each with its text."""
        event = chunk.event
        done = {o.key for o in earlier.outcomes}
        position = {u: i for i, u in enumerate(chunk.recipients)}
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        skip_all = await self._skip_all(chunk, now, recalled)
        if skip_all is not None:
            return [o for o in _settle_all(chunk, position, skip_all) if o.key not in done], []

        users = await asyncio.to_thread(
            self.users.batch_get, chunk.app_id, chunk.recipients, conversations_of(event)
        )
        skips: list[Outcome] = []
        pushed: list[tuple[Decision, UserRecord]] = []
        for user_id in chunk.recipients:
            user, index = users[user_id], position[user_id]
            decision = decide(event, recipient(user, chunk.devices), now=now)
            skips += [Outcome(index, t, "skipped", str(r)) for t, r in decision.device_skips]
            if decision.skip_reason is not None:
                if chunk.devices is not None:
                    # A retry: these devices are "pending" from the earlier attempt; settle them.
                    skipped = {t for t, _ in decision.device_skips}
                    skips += [
                        Outcome(index, t, "skipped", str(decision.skip_reason))
                        for t in chunk.devices.get(user_id, ())
                        if t not in skipped
                    ]
                elif decision.skip_reason != "noDevice" or not decision.device_skips:
                    skips.append(Outcome(index, None, "skipped", str(decision.skip_reason)))
            else:
                devices = tuple(t for t in decision.targets if (index, t.token) not in done)
                if devices:
                    pushed.append((Decision(decision.user_id, devices, None, ()), user))
        skips = [o for o in skips if o.key not in done]

        badges = await self.badges.for_message(chunk, claim, [u for _, u in pushed], position, earlier)
        targets: list[tuple[Target, Notification]] = []
        rendered: dict[tuple[Any, ...], Notification] = {}
        for decision, user in pushed:
            cfg = user.config
            mention = event.mention_of(decision.user_id)
            key = (cfg.language, cfg.display_style, cfg.c2c_sound, cfg.group_sound, mention)
            if key not in rendered:
                n = render_for(
                    event,
                    cfg,
                    sender_display_name=chunk.sender_display_name,
                    mention=mention,
                    conventions=chunk.settings.payload_conventions,
                )
                rendered[key] = with_communication(n, event, chunk.sender_display_name, chunk.settings)
            index = position[decision.user_id]
            badge = badges.get(decision.user_id)
            targets += [(Target(index, decision.user_id, d, badge), rendered[key]) for d in decision.targets]
        return skips, targets

    async def _skip_all(self, chunk: SendChunk, now: datetime, recalled: bool) -> str | None:
        """Why nobody in this chunk is pushed (recalled, expired, a retry of what may not be retried,
        a cancelled call), or None."""
        if recalled:
            return RECALLED
        skip_all = message_skip_reason(chunk.event, now=now, retry=chunk.attempt > 0)
        call = chunk.event.call
        # The cancel's fan-out marks the call before its own chunks go out (README, "Calls").
        if (
            skip_all is None
            and call is not None
            and call.action == "invite"
            and await self.ledger.call_cancelled(chunk.app_id, call.call_id)
        ):
            return str(SkipReason.CALL_CANCELLED)
        return None if skip_all is None else str(skip_all)


def _settle_all(chunk: SendChunk, position: dict[str, int], reason: str) -> list[Outcome]:
    """Everyone skipped for one reason; a retry (a recall, an expiry or a cancel can come between
    attempts) settles its pending devices one by one."""
    if chunk.devices is None:
        return [Outcome(i, None, "skipped", reason) for i in range(len(chunk.recipients))]
    return [
        Outcome(position[u], t, "skipped", reason) for u in chunk.recipients for t in chunk.devices.get(u, ())
    ]


def recipient(user: UserRecord, only: dict[str, list[str]] | None) -> Recipient:
    """The policy's view of a stored user (only some devices on a retry)."""
    devices = user.devices
    if only is not None:
        allowed = set(only.get(user.user_id, ()))
        devices = tuple(d for d in devices if d.device_token in allowed)
    return Recipient(
        user_id=user.user_id,
        config=user.config,
        state=user.state,
        devices=tuple(
            DeviceView(d.device_token, d.certificate_id, d.push_enabled, d.invalid_reason, d.type)
            for d in devices
        ),
        logged_out=user.logged_out,
        conversations=user.conversations,
    )
