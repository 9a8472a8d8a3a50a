"""The plan of a replacement job: every device the original was sent (and that has no outcome in
this job yet), with the recall's or edit's text, and for a recall the badges taken down."""

from __future__ import annotations

import asyncio

from chalicelib.models.ledger import ChunkAttempt, Claim, Outcome
from chalicelib.models.lifecycle import ReplaceJob
from chalicelib.models.notification import Notification
from chalicelib.models.sending import SendChunk
from chalicelib.services.communication import with_communication
from chalicelib.services.lifecycle import ChunkState
from chalicelib.services.policy import DeviceView
from chalicelib.services.render import render_edit, render_recall
from chalicelib.services.send.plan import Plan
from chalicelib.services.send.target import Target
from chalicelib.services.send.wing import SendWing


async def plan_replacements(
    wing: SendWing, job: ReplaceJob, chunk: SendChunk, state: ChunkState, earlier: ChunkAttempt, claim: Claim
) -> Plan:
    done = {o.key for o in earlier.outcomes}
    todo = [(i, t) for i, t in state.sent if (i, t) not in done]
    counted = state.counted if job.op == "recall" else frozenset()
    wanted = sorted({i for i, _ in todo} | set(counted))
    users = await asyncio.to_thread(
        wing.users.batch_get, chunk.app_id, [state.recipients[i] for i in wanted], ()
    )
    badges = await wing.badges.for_recall(
        chunk, claim, [users[state.recipients[i]] for i in sorted(counted)], state.recipients, earlier
    )
    rendered: dict[int, Notification] = {}
    skips: list[Outcome] = []
    targets: list[tuple[Target, Notification]] = []
    for index, token in todo:
        user_id = state.recipients[index]
        user = users[user_id]
        device = next((d for d in user.devices if d.device_token == token), None)
        if device is None:  # logged out or moved to another user since: no credential to reach it
            skips.append(Outcome(index, token, "skipped", "noDevice"))
            continue
        if index not in rendered:
            if job.op == "recall":
                n = render_recall(
                    chunk.event,
                    user.config,
                    sender_display_name=chunk.sender_display_name,
                    conventions=chunk.settings.payload_conventions,
                )
            else:
                n = render_edit(
                    chunk.event,
                    user.config,
                    sender_display_name=chunk.sender_display_name,
                    mention=chunk.event.mention_of(user_id),
                    conventions=chunk.settings.payload_conventions,
                )
            rendered[index] = with_communication(n, chunk.event, chunk.sender_display_name, chunk.settings)
        view = DeviceView(device.device_token, device.certificate_id, device.push_enabled, None)
        targets.append((Target(index, user_id, view, badges.get(user_id)), rendered[index]))
    return skips, targets
