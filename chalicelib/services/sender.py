"""Sending one chunk: who gets pushed, what it says, APNs, and what became of every recipient.

Per chunk attempt: claim its lease (a redelivered chunk sends nothing), read
every recipient (user, state and conversation-setting items) in one
concurrent round of BatchGetItem calls, decide and render with the pure
rule modules, add 1 to each pushed user's badge atomically and save the
badges given, send every device's notification concurrently over the
credential's HTTP/2 connections, act on APNs' answers through the outcome
table, retry only the devices that can succeed later (SQS delay), and
checkpoint the outcomes as they come (``checkpoint.py``).

After a crash the lease runs out and a redelivery takes the attempt over: it
sends only the devices with no outcome in this attempt's pages, with the
badges saved before the crash, so a device gets the message twice only if it
was in flight or answered after the last checkpoint; the copy has the same
apns-id, badge and collapse-id.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib import clock
from chalicelib.apns.client import ApnsClients, ApnsResult
from chalicelib.apns.ids import apns_id, collapse_id
from chalicelib.apns.outcomes import Action, classify, explain
from chalicelib.apns.payload import PayloadTooLargeError, build_message
from chalicelib.errors import NotFound
from chalicelib.models.credentials import Credential
from chalicelib.models.sending import SendChunk
from chalicelib.services import receipt_refs
from chalicelib.services.checkpoint import Checkpointer
from chalicelib.services.credentials import CredentialService
from chalicelib.services.lifecycle import apply_edit
from chalicelib.services.policy import (
    Decision,
    DeviceView,
    Recipient,
    SkipReason,
    conversations_of,
    decide,
    message_skip_reason,
)
from chalicelib.services.render import Notification, render_for
from chalicelib.settings import Settings
from chalicelib.store.deliveries import ChunkAttempt, ChunkRef, DeliveryRepository, MessageOps
from chalicelib.store.dynamo_async import AsyncDynamo
from chalicelib.store.ledger_codec import Outcome
from chalicelib.store.queues import Queues
from chalicelib.store.receipts import ReceiptKeys
from chalicelib.store.users import UserRecord, UserRepository

if TYPE_CHECKING:
    from chalicelib.services.outcome_events import OutcomeEvents

log = logging.getLogger(__name__)


_NO_ANSWER = ("Timeout", "ConnectionError")  # ApnsResult reasons of a request APNs did not answer

_RECALL_CHECK_S = 0.25  # how often a chunk being sent re-reads whether its message was recalled
RECALLED = "recalled"  # the skip reason of a recipient not yet sent when the message was recalled


@dataclass
class _Live:
    """What happened to the message meanwhile, re-read at each checkpoint while sending."""

    ops: MessageOps
    sent_code: str = ""  # the code of a sent outcome: "edit<n>" = it was sent the n-th edit's content
    checked_at: float = field(default_factory=time.monotonic)


class ChunkBusy(Exception):
    """Another invocation holds this chunk's claim: let SQS deliver it again later."""


@dataclass
class ChunkReport:
    """What one chunk did: counts for metrics and logs."""

    message_id: str
    outcome: str = "sent"
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    retried: int = 0

    def count(self, outcomes: list[Outcome]) -> None:
        for o in outcomes:
            self.counts[(o.status, o.code if o.status != "sent" else "")] += 1


@dataclass(frozen=True, slots=True)
class _Target:
    index: int  # the recipient's position in the chunk attempt
    user_id: str
    device: DeviceView
    badge: int | None


@dataclass
class _CredentialCache:
    """Credential metadata + secret per certificate, kept for a few minutes per container."""

    credentials: CredentialService
    ttl_s: float = 300.0
    _entries: dict[tuple[str, int], tuple[float, Credential | None, dict[str, Any] | None]] = field(
        default_factory=dict
    )
    _locks: dict[tuple[str, int], asyncio.Lock] = field(default_factory=dict)

    def cached(
        self, app_id: str, certificate_id: int
    ) -> tuple[Credential | None, dict[str, Any] | None] | None:
        """The entry if it is fresh (no I/O), else None."""
        hit = self._entries.get((app_id, certificate_id))
        if hit and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1], hit[2]
        return None

    def get(self, app_id: str, certificate_id: int) -> tuple[Credential | None, dict[str, Any] | None]:
        hit = self.cached(app_id, certificate_id)
        if hit is not None:
            return hit
        try:
            cred: Credential | None = self.credentials.get(app_id, certificate_id)
        except NotFound:
            cred = None
        secret = self.credentials.secret(app_id, certificate_id) if cred else None
        self._entries[(app_id, certificate_id)] = (time.monotonic(), cred, secret)
        return cred, secret

    async def fetch(
        self, app_id: str, certificate_id: int
    ) -> tuple[Credential | None, dict[str, Any] | None]:
        """From the cache (no thread hop), else read once however many sends miss at the same time."""
        hit = self.cached(app_id, certificate_id)
        if hit is not None:
            return hit
        lock = self._locks.setdefault((app_id, certificate_id), asyncio.Lock())
        async with lock:
            hit = self.cached(app_id, certificate_id)
            if hit is not None:
                return hit
            return await asyncio.to_thread(self.get, app_id, certificate_id)

    def forget(self, app_id: str, certificate_id: int) -> None:
        self._entries.pop((app_id, certificate_id), None)


@dataclass
class SendService:
    settings: Settings
    users: UserRepository
    credentials: CredentialService
    deliveries: DeliveryRepository
    queues: Queues
    clients: ApnsClients
    dynamo: AsyncDynamo
    clock_ms: Callable[[], int] = clock.now_ms
    lease_ms: int = 120_000
    receipt_keys: ReceiptKeys | None = None  # every notification's `r`
    events: OutcomeEvents | None = None  # outcome webhooks: queued once a chunk attempt settles
    _creds: _CredentialCache = field(init=False)
    _semaphore: asyncio.Semaphore | None = field(default=None, init=False)
    _unrecorded: asyncio.Semaphore | None = field(default=None, init=False)
    _no_answer_streak: int = field(default=0, init=False)
    _pause_until: float = field(default=0.0, init=False)
    _refresh_locks: dict[tuple[str, int], asyncio.Lock] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self._creds = _CredentialCache(self.credentials)

    async def send_chunk(self, chunk: SendChunk) -> ChunkReport:
        report = ChunkReport(message_id=chunk.message_id)
        ref = ChunkRef(chunk.index, chunk.attempt)
        app_id, message_id = chunk.app_id, chunk.message_id
        now_ms = self.clock_ms()
        claim = await self._db(self.deliveries.claim, app_id, message_id, ref, now_ms, self.lease_ms)
        if claim == "done":
            report.outcome = "duplicate"
            return report
        if claim == "busy":
            raise ChunkBusy(f"chunk {ref.sk} of message {message_id} is being sent by another invocation")
        try:
            # Recalled or edited since it was sent (checked after the claim, so a recall's replacement
            # job, which waits for this lease to be done, sees every device this attempt sends).
            live = _Live(
                self.deliveries.ops_of((await self.dynamo.call("GetItem", self._ops_req(chunk))).get("Item"))
            )
            if live.ops.edit_rev and live.ops.edit and not live.ops.recalled:
                chunk = chunk.model_copy(update={"event": apply_edit(chunk.event, live.ops.edit)})
                live.sent_code = f"edit{live.ops.edit_rev}"
            if self.receipt_keys is not None:  # read (or created) once per app per container
                await self._db(self.receipt_keys.get_or_create, app_id)
            earlier = ChunkAttempt(ref)
            if claim == "takeover":  # a previous invocation died mid-chunk: keep what it recorded
                found = await self._db(self.deliveries.attempts, app_id, message_id, None, ref)
                earlier = found[0] if found else earlier
                report.outcome = "takeover"
            skips, targets = await self._plan(chunk, earlier, now_ms, recalled=live.ops.recalled)
        except Exception:
            await self._db(self.deliveries.release, app_id, message_id, ref)
            raise

        async def write(seq: int, outcomes: list[Outcome]) -> None:
            page = self.deliveries.page_item(app_id, message_id, ref, seq, outcomes, self.clock_ms())
            if live.ops.recalled or time.monotonic() - live.checked_at < _RECALL_CHECK_S:
                await self.dynamo.call("PutItem", page, binary=True)
                return
            # A recall stops the rest of this chunk (see _deliver): read it beside a page, at most
            # every _RECALL_CHECK_S (the recall's 202 also waits for chunks being sent to finish).
            live.checked_at = time.monotonic()
            results: list[Any] = await asyncio.gather(
                self.dynamo.call("PutItem", page, binary=True),
                self.dynamo.call("GetItem", self._ops_req(chunk)),
                return_exceptions=True,
            )
            put, found = results
            if isinstance(put, BaseException):
                raise put
            if isinstance(found, BaseException):  # the next checkpoint reads it again
                log.warning("could not check %s for a recall: %r", message_id, found)
            else:
                live.ops = self.deliveries.ops_of(found.get("Item"))

        async def settled(outcomes: list[Outcome]) -> None:
            if self.events is not None:
                certificates = {(t.index, t.device.token): t.device.certificate_id for t, _ in targets}
                await self.events.settled(
                    app_id,
                    message_id,
                    chunk.index,
                    chunk.chunks,
                    chunk.recipients,
                    list(chunk.settings.webhook_events),
                    outcomes,
                    certificates,
                )

        await self._run_attempt(
            chunk,
            ref,
            earlier,
            skips,
            write,
            lambda cp: self._deliver(chunk, targets, cp, report, live),
            report,
            settled if chunk.settings.webhook_events else None,
        )
        return report

    async def _run_attempt(
        self,
        chunk: SendChunk,
        ref: ChunkRef,
        earlier: ChunkAttempt,
        skips: list[Outcome],
        write: Callable[[int, list[Outcome]], Awaitable[None]],
        deliver: Callable[[Checkpointer], Awaitable[None]],
        report: ChunkReport,
        settled: Callable[[list[Outcome]], Awaitable[None]] | None = None,
    ) -> None:
        """A claimed attempt's sending, checkpointed (pages numbered on from a takeover's), then done.
        ``settled`` gets all of the attempt's outcomes once written, before the lease is done (a crash
        in between calls it again from the takeover)."""
        checkpoints = Checkpointer(
            write,
            seq=earlier.pages,
            interval_s=self.settings.send_checkpoint_ms / 1000,
            max_outcomes=self.settings.send_checkpoint_outcomes,
            on_written=self._recorded,
        )
        checkpoints.extend(skips)
        try:
            await deliver(checkpoints)
        finally:
            await checkpoints.close()
        if settled is not None:
            await settled([*earlier.outcomes, *checkpoints.written])
        await self._db(self.deliveries.finish, chunk.app_id, chunk.message_id, ref)
        report.count(checkpoints.written)

    def _permits(self) -> asyncio.Semaphore:
        """This container's sends without a written outcome (created on the container's loop)."""
        if self._unrecorded is None:
            self._unrecorded = asyncio.Semaphore(self.settings.send_max_unrecorded)
        return self._unrecorded

    # ---- who, and what ------------------------------------------------------------------------

    def _ops_req(self, chunk: SendChunk) -> dict[str, Any]:
        return self.deliveries.ops_request(chunk.app_id, chunk.message_id)

    async def _plan(
        self, chunk: SendChunk, earlier: ChunkAttempt, now_ms: int, recalled: bool = False
    ) -> tuple[list[Outcome], list[tuple[_Target, Notification]]]:
        """The outcomes known without APNs (skips), and the devices to send to, each with its text.
        On a takeover, whatever the earlier invocation recorded is left as it is."""
        event = chunk.event
        done = {o.key for o in earlier.outcomes}
        position = {u: i for i, u in enumerate(chunk.recipients)}
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        skip_all = RECALLED if recalled else message_skip_reason(event, now=now, retry=chunk.attempt > 0)
        call = event.call
        # The cancel's fan-out marks the call before its own chunks go out (README, "Calls").
        if (
            skip_all is None
            and call is not None
            and call.action == "invite"
            and await self._db(self.deliveries.call_cancelled, chunk.app_id, call.call_id)
        ):
            skip_all = SkipReason.CALL_CANCELLED
        if skip_all is not None:
            settled = (
                # A retry (a recall, an expiry or a cancel can come between attempts): settle its
                # pending devices one by one.
                [
                    Outcome(position[u], t, "skipped", str(skip_all))
                    for u in chunk.recipients
                    for t in chunk.devices.get(u, ())
                ]
                if chunk.devices is not None
                else [Outcome(i, None, "skipped", str(skip_all)) for i in range(len(chunk.recipients))]
            )
            return [o for o in settled if o.key not in done], []

        users = await self._db(self.users.batch_get, chunk.app_id, chunk.recipients, conversations_of(event))
        sender_display = chunk.sender_display_name
        skips: list[Outcome] = []
        pushed: list[tuple[Decision, UserRecord]] = []
        for user_id in chunk.recipients:
            user, index = users[user_id], position[user_id]
            decision = decide(event, _recipient(user, chunk.devices), now=now)
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

        badges = await self._badges(chunk, [u for _, u in pushed], position, earlier)
        targets: list[tuple[_Target, Notification]] = []
        rendered: dict[tuple[Any, ...], Notification] = {}
        for decision, user in pushed:
            cfg = user.config
            mention = event.mention_of(decision.user_id)
            key = (cfg.language, cfg.display_style, cfg.c2c_sound, cfg.group_sound, mention)
            if key not in rendered:
                rendered[key] = render_for(event, cfg, sender_display_name=sender_display, mention=mention)
            index = position[decision.user_id]
            for device in decision.targets:
                targets.append(
                    (_Target(index, decision.user_id, device, badges.get(decision.user_id)), rendered[key])
                )
        return skips, targets

    async def _badges(
        self,
        chunk: SendChunk,
        users: list[UserRecord],
        position: dict[str, int],
        earlier: ChunkAttempt,
    ) -> dict[str, int | None]:
        """The badge each pushed user gets: +1 atomically per message (none with ignoreBadge), counted
        once per message: a retry reuses the first try's badges, a takeover the ones saved before
        the crash. The badges are saved before anything is sent."""
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
        values = await asyncio.gather(
            *(self._increment_badge(chunk.app_id, u.user_id) for u in counting), return_exceptions=True
        )
        for user, value in zip(counting, values, strict=True):
            if isinstance(value, BaseException):
                # Not counted: show what the count would be rather than fail (and later re-count) the chunk.
                log.warning("badge increment failed for a recipient of %s: %r", chunk.message_id, value)
                badges[user.user_id] = user.state.badge + 1
            else:
                badges[user.user_id] = value
        given = {position[u]: b for u, b in badges.items() if b is not None}
        ref = ChunkRef(chunk.index, chunk.attempt)
        saved_now = self.deliveries.badges_item(chunk.app_id, chunk.message_id, ref, given, self.clock_ms())
        await self.dynamo.call("PutItem", saved_now, binary=True)
        return badges

    async def _increment_badge(self, app_id: str, user_id: str) -> int:
        resp = await self.dynamo.call("UpdateItem", self.users.badge_increment_request(app_id, user_id))
        return int(resp["Attributes"]["badge"]["N"])

    # ---- APNs ---------------------------------------------------------------------------------

    async def _deliver(
        self,
        chunk: SendChunk,
        targets: list[tuple[_Target, Notification]],
        checkpoints: Checkpointer,
        report: ChunkReport,
        live: _Live | None = None,
    ) -> None:
        retry: list[tuple[_Target, ApnsResult]] = []
        unrecorded = self._permits()

        async def one(target: _Target, notification: Notification) -> None:
            # A send holds a permit until its outcome is written: what a crash can make us send
            # twice is at most send_max_unrecorded devices per invocation.
            await unrecorded.acquire()
            if live is not None and live.ops.recalled:  # recalled while this chunk was being sent
                checkpoints.add(
                    Outcome(target.index, target.device.token, "skipped", RECALLED), holds_permit=True
                )
                return
            if self._apns_paused():
                # APNs has not answered a whole window of requests: retry later rather than wait a
                # timeout per 20 devices (an outage would stall the invocation for minutes).
                unrecorded.release()
                ident = apns_id(chunk.app_id, chunk.message_id, target.device.token)
                retry.append((target, ApnsResult(0, "NotSent:ApnsNotAnswering", ident)))
                return
            try:
                result, cred = await self._send_one(chunk, target, notification, report)
            except Exception as exc:
                # e.g. Secrets Manager down on a cache miss: nothing was sent, so try again later.
                log.warning("sending to a device of %s failed: %r", chunk.message_id, exc)
                ident = apns_id(chunk.app_id, chunk.message_id, target.device.token)
                result, cred = ApnsResult(0, f"Error:{type(exc).__name__}", ident), None
            self._note_answer(result)
            try:
                outcome = await self._settle(chunk, target, result, cred)
            except BaseException:
                unrecorded.release()
                raise
            if outcome is None:  # not delivered (429, 5xx): nothing to lose, retried later
                unrecorded.release()
                retry.append((target, result))
            else:
                if live is not None and live.sent_code and outcome.status == "sent":
                    outcome = dataclasses.replace(outcome, code=live.sent_code)
                checkpoints.add(outcome, holds_permit=True)

        await asyncio.gather(*(one(t, n) for t, n in targets))
        if retry:
            try:
                checkpoints.extend(await self._retry_later(chunk, retry, report))
            except Exception as exc:
                log.error(
                    "could not schedule the retry of %d device(s) of %s: %r",
                    len(retry),
                    chunk.message_id,
                    exc,
                )
                checkpoints.extend(
                    [
                        Outcome(
                            t.index,
                            t.device.token,
                            "failed",
                            "RetryNotScheduled",
                            f"could not schedule a retry after {r.reason}",
                        )
                        for t, r in retry
                    ]
                )

    def _apns_paused(self) -> bool:
        return time.monotonic() < self._pause_until

    def _note_answer(self, result: ApnsResult) -> None:
        """Count requests APNs left unanswered in a row; a whole window of them pauses sending for a
        request timeout (the paused devices are retried with back-off, like the unanswered ones)."""
        if result.status != 0 or not result.reason or not result.reason.startswith(_NO_ANSWER):
            self._no_answer_streak = 0
            return
        self._no_answer_streak += 1
        if self._no_answer_streak >= self.settings.send_max_unrecorded and not self._apns_paused():
            self._pause_until = time.monotonic() + self.settings.apns_request_timeout_s
            log.warning(
                "APNs left %d requests in a row unanswered (%s): sending paused for %.0f s, the rest retried",
                self._no_answer_streak,
                result.reason,
                self.settings.apns_request_timeout_s,
            )

    def _recorded(self, permits: int) -> None:
        if self._unrecorded is not None:
            for _ in range(permits):
                self._unrecorded.release()

    async def _settle(
        self, chunk: SendChunk, target: _Target, result: ApnsResult, cred: Credential | None
    ) -> Outcome | None:
        """One answer through the outcome table: the device's outcome, or None to retry it later."""
        action = classify(result.status, result.reason)
        token = target.device.token
        if action is Action.SENT:
            return Outcome(target.index, token, "sent")
        if action is Action.RETRY:
            return None
        env = cred.environment if cred else "production"
        bundle = cred.bundle_id if cred else "?"
        reason = explain(result.reason, environment=env, bundle_id=bundle)
        try:  # the registration's clean-up is best effort: the outcome is recorded either way
            if action is Action.UNREGISTERED:
                await self._db(
                    self.users.remove_device_if_registered_before,
                    chunk.app_id,
                    target.user_id,
                    token,
                    result.timestamp_ms or self.clock_ms(),
                )
            elif action is Action.INVALID_TOKEN:
                await self._db(self.users.mark_device_invalid, chunk.app_id, target.user_id, token, reason)
        except Exception as exc:
            log.warning("could not update the registration after %s: %r", result.reason, exc)
        return Outcome(target.index, token, "failed", result.reason or str(result.status), reason)

    async def _send_one(
        self, chunk: SendChunk, target: _Target, notification: Notification, report: ChunkReport
    ) -> tuple[ApnsResult, Credential | None]:
        device = target.device
        ident = apns_id(chunk.app_id, chunk.message_id, device.token, notification.op)
        cred, secret = await self._creds.fetch(chunk.app_id, device.certificate_id)
        if cred is None or secret is None:
            return ApnsResult(-1, f"credential {device.certificate_id} no longer exists", ident), None
        voip = device.kind == "voip"
        if not cred.serves(device.kind):  # type: ignore[arg-type]
            return ApnsResult(
                -1, f"credential {device.certificate_id} cannot send {device.kind}", ident
            ), cred
        try:
            message = build_message(
                notification,
                recipient_user_id=target.user_id,
                badge=target.badge,
                voip=voip,
                extra=self._receipt(chunk, target),
            )
        except PayloadTooLargeError:
            return ApnsResult(-1, "PayloadTooLarge", ident), cred
        client = self.clients.get(chunk.app_id, cred, secret)
        voip_topic = cred.bundle_id + ".voip" if voip else None
        result = await self._post(chunk, client, device.token, message, ident, notification, voip_topic)
        if classify(result.status, result.reason) is Action.REFRESH_AUTH:
            # Provider token or certificate refused: rebuild the client (fresh JWT, new connection) once
            # per credential, however many requests were refused at the same time, then send again.
            await self._refresh(chunk.app_id, cred.certificate_id, client)
            cred2, secret2 = await self._creds.fetch(chunk.app_id, device.certificate_id)
            if cred2 is not None and secret2 is not None:
                client = self.clients.get(chunk.app_id, cred2, secret2)
                result = await self._post(
                    chunk, client, device.token, message, ident, notification, voip_topic
                )
        report.latencies_ms.append(result.latency_ms)
        return result, cred

    def _receipt(self, chunk: SendChunk, target: _Target) -> dict[str, str] | None:
        """The notification's top-level ``r`` (receipt_refs): a few microseconds of HMAC."""
        key = self.receipt_keys.cached(chunk.app_id) if self.receipt_keys is not None else None
        if key is None or not chunk.app_id:
            return None
        day = self.clock_ms() // 86_400_000
        ref = receipt_refs.issue(
            key,
            chunk.app_id,
            chunk.message_id,
            day,
            chunk.index,
            chunk.attempt,
            target.index,
            target.device.token,
        )
        return {"r": ref}

    async def _refresh(self, app_id: str, certificate_id: int, refused: Any) -> None:
        lock = self._refresh_locks.setdefault((app_id, certificate_id), asyncio.Lock())
        async with lock:
            if self.clients.current(app_id, certificate_id) is refused:  # nobody rebuilt it meanwhile
                self.clients.discard(app_id, certificate_id)
                self._creds.forget(app_id, certificate_id)

    async def _post(
        self,
        chunk: SendChunk,
        client: Any,
        token: str,
        message: dict[str, Any],
        ident: str,
        notification: Notification,
        voip_topic: str | None = None,
    ) -> ApnsResult:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.settings.apns_concurrency)
        async with self._semaphore:
            return await self.clients.send(
                client,
                token=token,
                message=message,
                notification_id=ident,
                priority=10 if voip_topic else notification.apns_priority,
                collapse=notification.collapse_id or collapse_id(chunk.message_id),
                expiration=notification.expiration,
                voip_topic=voip_topic,
            )

    async def _retry_later(
        self, chunk: SendChunk, failed: list[tuple[_Target, ApnsResult]], report: ChunkReport
    ) -> list[Outcome]:
        """429 / 5xx / no answer: send again later, only to these devices; give up after the last attempt."""
        attempt = chunk.attempt + 1
        now = self.clock_ms()
        last = failed[0][1]
        why = f"{last.status or 'no answer'} {last.reason or ''}".strip()
        if attempt >= self.settings.max_send_attempts:
            reason = f"gave up after {attempt} attempts: {why}"
            body = chunk.model_copy(
                update={
                    "recipients": sorted({t.user_id for t, _ in failed}),
                    "devices": _devices_of(t for t, _ in failed),
                }
            ).model_dump_json(by_alias=True, exclude_none=True)
            await asyncio.to_thread(
                self.queues.dead_letter, self.settings.send_queue_name, body, reason, chunk.message_id
            )
            return [Outcome(t.index, t.device.token, "failed", "RetriesExhausted", reason) for t, _ in failed]
        users = sorted({t.user_id for t, _ in failed})
        retry = chunk.model_copy(
            update={
                "attempt": attempt,
                "recipients": users,
                "devices": _devices_of(t for t, _ in failed),
                "badges": {t.user_id: t.badge for t, _ in failed},
            }
        )
        ref = ChunkRef(chunk.index, attempt)
        await self._db(self.deliveries.put_chunks, chunk.app_id, chunk.message_id, [(ref, users)], now)
        delay = min(900, math.ceil(self.settings.retry_base_delay_s * 2 ** (attempt - 1)))
        body = retry.model_dump_json(by_alias=True, exclude_none=True)
        await asyncio.to_thread(self.queues.send_chunks, [body], delay)
        report.retried += len(failed)
        reason = (
            f"retrying in {delay} s (attempt {attempt + 1} of {self.settings.max_send_attempts}) after {why}"
        )
        return [
            Outcome(t.index, t.device.token, "pending", r.reason or "NoAnswer", reason) for t, r in failed
        ]

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A blocking boto3 call off the event loop, so other chunks' APNs traffic goes on meanwhile."""
        return await asyncio.to_thread(fn, *args)


def _recipient(user: UserRecord, only: dict[str, list[str]] | None) -> Recipient:
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


def _devices_of(targets: Any) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for t in targets:
        out.setdefault(t.user_id, []).append(t.device.token)
    return out
