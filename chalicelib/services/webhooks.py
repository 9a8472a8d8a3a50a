"""Outcome webhooks: the app's signing secret, and delivering queued event batches to its URL.

The send path only queues events (``webhook_events.py``); this runs in the webhook function (and,
for a test event, in the API). A batch is POSTed once per queue record; a non-2xx answer or no
answer within the timeout puts it back on the queue with a delay that doubles from
``webhook_retry_base_s`` (at most SQS's 900 s), until ``webhook_retry_for_s`` after its first try;
then it is dead-lettered with the reason. Each POST is recorded for the console (``WebhookLog``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import urllib3

from chalicelib import clock
from chalicelib.errors import Conflict, NotFound
from chalicelib.models.settings import AppSettings, AppSettingsPatch, WebhookSetting
from chalicelib.models.webhooks import (
    WebhookBatch,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookSecretIssued,
    WebhookTestResult,
)
from chalicelib.services import webhook_events as ev
from chalicelib.store.queues import MAX_DELAY_S, Queues
from chalicelib.store.secrets import SecretStore
from chalicelib.store.webhook_log import WebhookLog

log = logging.getLogger(__name__)

SECRET_NAME = "webhook-secret"  # noqa: S105 (a secret's name, not a secret)
USER_AGENT = "apns-push-webhooks/1"


@dataclass(frozen=True, slots=True)
class PostResult:
    delivered: bool
    status: int | None
    error: str | None
    duration_ms: int


@dataclass
class WebhookService:
    secrets: SecretStore
    queues: Queues
    log_store: WebhookLog
    settings_of: Callable[[str], AppSettings]  # SettingsService.cached
    fresh_settings_of: Callable[[str], AppSettings]  # SettingsService.get (a cache miss, or to be sure)
    summary_of: Callable[[str, str], dict[str, Any]]  # a message's report summary
    timeout_s: float = 5.0
    retry_base_s: int = 10
    retry_for_s: int = 3900
    clock_ms: Callable[[], int] = clock.now_ms
    _http: urllib3.PoolManager = field(
        default_factory=lambda: urllib3.PoolManager(num_pools=50, maxsize=4, retries=False), repr=False
    )

    # ---- the signing secret ------------------------------------------------------------------

    def _name(self, app_id: str) -> str:
        return self.secrets.name(app_id, SECRET_NAME)

    def issue_secret_if_new(self, app_id: str) -> str | None:
        """A new secret when the app has none (its webhook is being set for the first time)."""
        secret = ev.new_secret()
        created = self.secrets.create(
            self._name(app_id), {"secret": secret}, description=f"webhook signing secret of {app_id}"
        )
        return secret if created else None

    def after_settings_change(
        self, app_id: str, patch: AppSettingsPatch, settings: AppSettings
    ) -> str | None:
        """The webhook was set or removed by this PATCH: issue its secret (answered once) or delete it."""
        if "webhook" not in patch.model_fields_set:
            return None
        if settings.webhook is None:
            self.forget_secret(app_id)
            return None
        return self.issue_secret_if_new(app_id)

    def rotate(self, app_id: str, settings: AppSettings) -> WebhookSecretIssued:
        if settings.webhook is None:
            raise Conflict(
                "the app has no webhook: set one first (PATCH .../settings {webhook: {url, events}})"
            )
        secret = ev.new_secret()
        self.secrets.put(
            self._name(app_id), {"secret": secret}, description=f"webhook signing secret of {app_id}"
        )
        return WebhookSecretIssued(webhook_secret=secret)

    def forget_secret(self, app_id: str) -> None:
        """The webhook was removed: its secret goes too (setting one again issues a new one)."""
        self.secrets.delete(self._name(app_id))

    def secret(self, app_id: str) -> str | None:
        # Cached per container (SecretStore's TTL); a rotation reaches warm containers within it.
        value = self.secrets.get(self._name(app_id), max_age_s=60)
        return None if value is None else str(value.get("secret") or "") or None

    # ---- delivering ---------------------------------------------------------------------------

    def deliver(self, batch: WebhookBatch) -> str:
        """POST one queued batch; answers what became of it: delivered, retrying, deadLettered or
        dropped (the app no longer has a webhook, or no longer wants these types)."""
        app_id = batch.app_id
        hook = self.settings_of(app_id).webhook
        if hook is None or any(e.get("type") not in hook.events for e in batch.events):
            # The cache may predate the webhook (events are queued from the settings the fan-out read):
            # read again before dropping anything.
            hook = self._fresh_hook(app_id)
        secret = self.secret(app_id) if hook is not None else None
        if hook is not None and secret is None:
            value = self.secrets.get(self._name(app_id), fresh=True)
            secret = str(value.get("secret") or "") or None if value else None
        events = [e for e in batch.events if hook is not None and e.get("type") in hook.events]
        if hook is None or secret is None or not events:
            log.info(
                "dropping %d webhook event(s) of %s: no webhook wants them now", len(batch.events), app_id
            )
            return "dropped"
        if batch.attempt == 1:
            events = [self._complete(app_id, e) for e in events]
        result = self.post(hook.url, secret, events)
        now = self.clock_ms()
        if result.delivered:
            outcome = "delivered"
        elif now - batch.first_at >= self.retry_for_s * 1000:
            outcome = "deadLettered"
            reason = (
                f"not delivered after {batch.attempt} tries over {(now - batch.first_at) // 1000} s; "
                f"last: {result.error}"
            )
            body = batch.model_copy(update={"events": events}).model_dump_json(by_alias=True)
            self.queues.dead_letter(self.queues.webhook_name, body, reason)
            log.warning("dead-lettered %d webhook event(s) of %s: %s", len(events), app_id, reason)
        else:
            outcome = "retrying"
            delay = min(MAX_DELAY_S, self.retry_base_s * 2 ** (batch.attempt - 1))
            again = batch.model_copy(update={"events": events, "attempt": batch.attempt + 1})
            self.queues.send_webhook([again.model_dump_json(by_alias=True)], delay_s=delay)
            log.info(
                "webhook of %s not delivered (%s): try %d in %d s",
                app_id,
                result.error,
                batch.attempt + 1,
                delay,
            )
        self._record(app_id, events, result, batch.attempt, outcome, now)
        return outcome

    def _fresh_hook(self, app_id: str) -> WebhookSetting | None:
        try:
            return self.fresh_settings_of(app_id).webhook
        except NotFound:
            return None

    def _complete(self, app_id: str, event: dict[str, Any]) -> dict[str, Any]:
        """message.completed gets the message's summary at its first try (retries carry it as is)."""
        if event.get("type") != ev.MESSAGE_COMPLETED or "summary" in event:
            return event
        return {**event, "summary": self.summary_of(app_id, str(event["messageId"]))}

    def post(self, url: str, secret: str, events: list[dict[str, Any]]) -> PostResult:
        body = json.dumps({"events": events}, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            ev.SIGNATURE_HEADER: ev.sign(secret, body),
        }
        start = time.monotonic()
        try:
            resp = self._http.request(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=min(self.timeout_s, 3.0), read=self.timeout_s),
                redirect=False,
                preload_content=False,
            )
            resp.drain_conn()
            resp.release_conn()
        except urllib3.exceptions.TimeoutError:
            return PostResult(False, None, f"no answer within {self.timeout_s:g} s", _ms_since(start))
        except urllib3.exceptions.HTTPError as exc:
            return PostResult(False, None, _connection_error(exc), _ms_since(start))
        ok = 200 <= resp.status < 300
        return PostResult(ok, resp.status, None if ok else f"answered HTTP {resp.status}", _ms_since(start))

    def _record(
        self,
        app_id: str,
        events: list[dict[str, Any]],
        result: PostResult,
        attempt: int,
        outcome: str,
        now: int,
    ) -> None:
        entry = WebhookDelivery(
            at=now,
            delivered=result.delivered,
            status=result.status,
            error=result.error,
            attempt=attempt,
            events=len(events),
            types=sorted({str(e.get("type")) for e in events}),
            duration_ms=result.duration_ms,
            outcome=outcome,
        )
        try:  # the console's record is best effort: the delivery itself is what counts
            self.log_store.record(app_id, entry.model_dump(mode="json", by_alias=True, exclude_none=True))
        except Exception as exc:
            log.warning("could not record a webhook delivery of %s: %r", app_id, exc)

    # ---- the console's view ---------------------------------------------------------------------

    def send_test(self, app_id: str, settings: AppSettings) -> WebhookTestResult:
        """POST one ``webhook.test`` event now (not queued, not retried) and say how it went."""
        if settings.webhook is None:
            raise Conflict(
                "the app has no webhook: set one first (PATCH .../settings {webhook: {url, events}})"
            )
        secret = self.secret(app_id)
        if secret is None:
            raise Conflict(
                "the app's webhook has no signing secret: rotate it (POST .../webhook-secret/rotate)"
            )
        event = ev.test_event(app_id, self.clock_ms())
        result = self.post(settings.webhook.url, secret, [event])
        self._record(app_id, [event], result, 1, "test", self.clock_ms())
        return WebhookTestResult(
            delivered=result.delivered,
            status=result.status,
            error=result.error,
            duration_ms=result.duration_ms,
            event_id=str(event["id"]),
        )

    def deliveries(self, app_id: str) -> WebhookDeliveryList:
        return WebhookDeliveryList(
            items=[WebhookDelivery.model_validate(e) for e in self.log_store.latest(app_id)]
        )


def _ms_since(start: float) -> int:
    return int((time.monotonic() - start) * 1000)


def _connection_error(exc: Exception) -> str:
    text = str(getattr(exc, "reason", None) or exc)
    if "refused" in text.lower():
        return "connection refused"
    return f"could not connect: {text[:200]}"
