"""Read sync, send side: the job a read window queued (send queue, beside message chunks and
replacement jobs) claims its window, reads the user, and sends each device outside the foreground
the badge-only push (and with badgeAndClear the clearing background push) through the send wing's
APNs gateway.

At most once: the window is claimed before anything is sent, so a duplicate or late job sends
nothing; an unanswered push is not retried (the next message or read carries the badge). Outcomes
go to logs and metrics only (``ReadSync*``): read-sync pushes are not a message's deliveries and are
not counted in its report or the app's statistics. A token APNs rejects is cleaned up as a
message's would be.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from chalicelib import clock
from chalicelib.apns.client import ApnsResult
from chalicelib.apns.ids import apns_id
from chalicelib.apns.outcomes import Action, classify
from chalicelib.models.devices import Device
from chalicelib.models.read_sync import ReadSyncJob
from chalicelib.services.read_sync_rules import (
    READ_SYNC_EXPIRATION,
    READ_SYNC_PRIORITY,
    ReadSyncPush,
    devices_to_sync,
    read_sync_pushes,
)
from chalicelib.store.read_marks import ReadMarks
from chalicelib.store.users import UserRepository

log = logging.getLogger(__name__)


class RawPusher(Protocol):
    """The part of the send wing's APNs gateway (services/send/gateway.py) read sync uses: one request
    with a payload made here."""

    async def send_raw(
        self,
        app_id: str,
        device: Device,
        *,
        payload: dict[str, Any],
        push_type: str,
        priority: int,
        ident: str,
        expiration: int | None,
    ) -> ApnsResult: ...


@dataclass
class ReadSyncReport:
    outcome: str  # "sent" (requests went out), "skipped:<reason>", "superseded" (window not open)
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (status, reason) per request
    latencies_ms: list[float] = field(default_factory=list)


@dataclass
class ReadSyncSender:
    users: UserRepository
    marks: ReadMarks
    gateway: RawPusher
    clock_ms: Callable[[], int] = clock.now_ms

    async def sync(self, job: ReadSyncJob) -> ReadSyncReport:
        window = await asyncio.to_thread(self.marks.claim_window, job.app_id, job.user_id, job.held_ms)
        if window is None:
            return ReadSyncReport("superseded")
        user = await asyncio.to_thread(self.users.get, job.app_id, job.user_id)
        devices, skip = devices_to_sync(user, window.state, self.clock_ms())
        if skip is not None:
            return ReadSyncReport(f"skipped:{skip}")
        pushes = read_sync_pushes(job.mode, window.state.badge, window.conversations)
        report = ReadSyncReport("sent")
        await asyncio.gather(*(self._one(job, d, p, report) for d in devices for p in pushes))
        return report

    async def _one(
        self, job: ReadSyncJob, device: Device, push: ReadSyncPush, report: ReadSyncReport
    ) -> None:
        ident = apns_id(job.app_id, f"read:{job.user_id}:{job.held_ms}", device.device_token, push.op)
        result = await self.gateway.send_raw(
            job.app_id,
            device,
            payload=push.payload,
            push_type=push.push_type,
            priority=READ_SYNC_PRIORITY,
            ident=ident,
            expiration=READ_SYNC_EXPIRATION,
        )
        report.latencies_ms.append(result.latency_ms)
        action = classify(result.status, result.reason)
        report.counts[("sent" if action is Action.SENT else "failed", result.reason or "")] += 1
        if action is Action.UNREGISTERED and result.timestamp_ms is not None:
            await asyncio.to_thread(
                self.users.remove_device_if_registered_before,
                job.app_id,
                job.user_id,
                device.device_token,
                result.timestamp_ms,
            )
        elif action is Action.INVALID_TOKEN:
            await asyncio.to_thread(
                self.users.mark_device_invalid,
                job.app_id,
                job.user_id,
                device.device_token,
                result.reason or "invalid",
            )
        elif action is not Action.SENT:
            log.info(
                "read-sync %s push to a device of %s: %s (not retried)", push.op, job.user_id, result.reason
            )
