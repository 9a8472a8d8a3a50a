"""The one door to APNs: credential cache, payload, HTTP/2 concurrency, 403 refresh, no-answer pause.

``send`` takes a target and its notification and answers APNs' result (and the credential it
used, for the outcome's wording); it never raises for APNs' sake. ``paused`` tells the delivery
loops that APNs has left a whole window of requests unanswered: they retry those devices later
instead of waiting a timeout per 20 devices (an outage would stall the invocation for minutes).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from chalicelib.apns.client import ApnsClients, ApnsResult
from chalicelib.apns.ids import apns_id, collapse_id
from chalicelib.apns.outcomes import Action, classify
from chalicelib.apns.payload import PayloadTooLargeError, build_message
from chalicelib.models.credentials import Credential
from chalicelib.models.devices import Device
from chalicelib.models.notification import Notification
from chalicelib.services.send.credentials import CredentialCache
from chalicelib.services.send.target import Target
from chalicelib.settings import Settings

log = logging.getLogger(__name__)

_NO_ANSWER = ("Timeout", "ConnectionError")  # ApnsResult reasons of a request APNs did not answer


@dataclass
class ApnsGateway:
    settings: Settings
    clients: ApnsClients
    creds: CredentialCache
    _semaphore: asyncio.Semaphore | None = field(default=None, init=False)
    _no_answer_streak: int = field(default=0, init=False)
    _pause_until: float = field(default=0.0, init=False)
    _refresh_locks: dict[tuple[str, int], asyncio.Lock] = field(default_factory=dict, init=False)

    async def send(
        self,
        app_id: str,
        message_id: str,
        target: Target,
        notification: Notification,
        latencies_ms: list[float],
        extra: dict[str, Any] | None = None,
    ) -> tuple[ApnsResult, Credential | None]:
        """One device's notification; the latency of what went out is appended to latencies_ms."""
        device = target.device
        ident = apns_id(app_id, message_id, device.token, notification.op)
        cred, secret = await self.creds.fetch(app_id, device.certificate_id)
        if cred is None or secret is None:
            return ApnsResult(-1, f"credential {device.certificate_id} no longer exists", ident), None
        voip = device.kind == "voip"
        if not cred.serves(device.kind):  # type: ignore[arg-type]
            return ApnsResult(
                -1, f"credential {device.certificate_id} cannot send {device.kind}", ident
            ), cred
        try:
            message = build_message(
                notification, recipient_user_id=target.user_id, badge=target.badge, voip=voip, extra=extra
            )
        except PayloadTooLargeError:
            return ApnsResult(-1, "PayloadTooLarge", ident), cred
        client = self.clients.get(app_id, cred, secret)
        voip_topic = cred.bundle_id + ".voip" if voip else None
        collapse = notification.collapse_id or collapse_id(message_id)
        result = await self._post(client, device.token, message, ident, notification, collapse, voip_topic)
        if classify(result.status, result.reason) is Action.REFRESH_AUTH:
            # Provider token or certificate refused: rebuild the client (fresh JWT, new connection) once
            # per credential, however many requests were refused at the same time, then send again.
            await self._refresh(app_id, cred.certificate_id, client)
            cred2, secret2 = await self.creds.fetch(app_id, device.certificate_id)
            if cred2 is not None and secret2 is not None:
                client = self.clients.get(app_id, cred2, secret2)
                result = await self._post(
                    client, device.token, message, ident, notification, collapse, voip_topic
                )
        latencies_ms.append(result.latency_ms)
        return result, cred

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
    ) -> ApnsResult:
        """One request with a payload made by the caller (read sync's badge-only and clearing pushes):
        no collapse-id; ``push_type`` "background" or "alert"; the same connections, permits and 403
        refresh as messages. Its latency is in the result."""
        cred, secret = await self.creds.fetch(app_id, device.certificate_id)
        if cred is None or secret is None:
            return ApnsResult(-1, f"credential {device.certificate_id} no longer exists", ident)
        background = push_type == "background"
        for attempt in range(2):
            client = self.clients.get(app_id, cred, secret)
            result = await self._request(
                client,
                token=device.device_token,
                message=payload,
                notification_id=ident,
                priority=priority,
                collapse=None,
                expiration=expiration,
                background=background,
            )
            if attempt or classify(result.status, result.reason) is not Action.REFRESH_AUTH:
                return result
            await self._refresh(app_id, cred.certificate_id, client)
            cred, secret = await self.creds.fetch(app_id, device.certificate_id)
            if cred is None or secret is None:
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def paused(self) -> bool:
        return time.monotonic() < self._pause_until

    def note_answer(self, result: ApnsResult) -> None:
        """Count requests APNs left unanswered in a row; a whole window of them pauses sending for a
        request timeout (the paused devices are retried with back-off, like the unanswered ones)."""
        if result.status != 0 or not result.reason or not result.reason.startswith(_NO_ANSWER):
            self._no_answer_streak = 0
            return
        self._no_answer_streak += 1
        if self._no_answer_streak >= self.settings.send_max_unrecorded and not self.paused():
            self._pause_until = time.monotonic() + self.settings.apns_request_timeout_s
            log.warning(
                "APNs left %d requests in a row unanswered (%s): sending paused for %.0f s, the rest retried",
                self._no_answer_streak,
                result.reason,
                self.settings.apns_request_timeout_s,
            )

    async def _refresh(self, app_id: str, certificate_id: int, refused: Any) -> None:
        lock = self._refresh_locks.setdefault((app_id, certificate_id), asyncio.Lock())
        async with lock:
            if self.clients.current(app_id, certificate_id) is refused:  # nobody rebuilt it meanwhile
                self.clients.discard(app_id, certificate_id)
                self.creds.forget(app_id, certificate_id)

    async def _post(
        self,
        client: Any,
        token: str,
        message: dict[str, Any],
        ident: str,
        notification: Notification,
        collapse: str,
        voip_topic: str | None,
    ) -> ApnsResult:
        return await self._request(
            client,
            token=token,
            message=message,
            notification_id=ident,
            priority=10 if voip_topic else notification.apns_priority,
            collapse=collapse,
            expiration=notification.expiration,
            voip_topic=voip_topic,
        )

    async def _request(self, client: Any, **request: Any) -> ApnsResult:
        """One request within the container's APNs concurrency (the permits all sends share)."""
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.settings.apns_concurrency)
        async with self._semaphore:
            return await self.clients.send(client, **request)
