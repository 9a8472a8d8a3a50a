"""The SQS-triggered handlers: parse each record, call one service, report partial batch failures.

A record that can never succeed (not JSON, not a valid event) goes to the
queue's dead-letter queue at once, with the reason, and does not fail its
batch. A record that failed for a passing reason (DynamoDB, a chunk claimed
elsewhere) is reported in ``batchItemFailures`` so SQS delivers it again,
and after maxReceiveCount redrives it to the dead-letter queue.

(Powertools' AsyncBatchProcessor would run each batch under ``asyncio.run``
outside Lambda, a new loop per batch; aioapns clients are bound to the loop
they were created on, so the send handler keeps one loop per container.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from chalicelib.deps import services
from chalicelib.models.lifecycle import ReplaceJob, SendRecord
from chalicelib.models.message import QueuedMessageEvent
from chalicelib.models.read_sync import ReadSyncJob
from chalicelib.models.sending import SendChunk
from chalicelib.observability import emit_metrics
from chalicelib.store.retry import is_retryable

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)


def _parse(records: list[dict[str, Any]], model: type[M], queue: str) -> list[tuple[str, M]]:
    """Valid records as models; the others dead-lettered with the validation error as reason."""
    out: list[tuple[str, M]] = []
    for record in records:
        try:
            out.append((record["messageId"], model.model_validate_json(record.get("body") or "")))
        except ValidationError as exc:
            reason = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(body)'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)[:5]
            )
            log.warning("dead-lettering record %s from %s: %s", record.get("messageId"), queue, reason)
            services().queues.dead_letter(
                queue, record.get("body") or "", f"invalid record: {reason}", record.get("messageId")
            )
    return out


def _failures(ids: list[str]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": i} for i in ids]}


def handle_intake_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    from chalicelib.services.fanout import RefusedEvent, UnknownApp

    svc = services()
    failed: list[str] = []
    bodies = {r["messageId"]: r.get("body") or "" for r in records}
    queue = svc.settings.intake_queue_name
    for record_id, event in _parse(records, QueuedMessageEvent, queue):
        try:
            result = svc.fanout.fan_out(event)
        except UnknownApp as exc:
            log.warning("dead-lettering record %s from %s: %s", record_id, queue, exc)
            svc.queues.dead_letter(queue, bodies[record_id], f"unknown app: {exc}", record_id)
            continue
        except RefusedEvent as exc:
            log.warning("dead-lettering record %s from %s: %s", record_id, queue, exc)
            svc.queues.dead_letter(queue, bodies[record_id], f"invalid event: {exc}", record_id)
            continue
        except Exception:
            log.exception("fan-out of message %s failed; SQS will retry it", event.message_id)
            failed.append(record_id)
            continue
        log.info(
            "fanned out message %s: %d recipients in %d chunks%s",
            event.message_id,
            result.recipients,
            result.chunks,
            " (duplicate)" if result.duplicate else "",
            extra={
                "appId": event.app_id,
                "messageId": event.message_id,
                "recipients": result.recipients,
                "chunks": result.chunks,
                "duplicate": result.duplicate,
            },
        )
    return _failures(failed)


def handle_send_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    from chalicelib.apns.client import run  # aioapns: imported by the send function only
    from chalicelib.services.send.attempt import ChunkBusy, LeaseLost

    svc = services()
    parsed = [(i, r.root) for i, r in _parse(records, SendRecord, svc.settings.send_queue_name)]

    def send(job: SendChunk | ReplaceJob | ReadSyncJob) -> Any:
        # A recall's or edit's replacements, and read sync's jobs, travel the same queue as the chunks.
        if isinstance(job, ReadSyncJob):
            return svc.read_syncer.sync(job)
        return svc.replacer.replace_chunk(job) if isinstance(job, ReplaceJob) else svc.sender.send_chunk(job)

    results = run(_send_all([chunk for _, chunk in parsed], send))
    failed: list[str] = []
    counts: dict[tuple[str, str], int] = {}
    latencies: list[float] = []
    by_id = {r["messageId"]: r for r in records}
    for (record_id, chunk), result in zip(parsed, results, strict=True):
        if isinstance(chunk, ReadSyncJob):
            if _read_synced(chunk, result, counts):
                failed.append(record_id)
        elif isinstance(result, ChunkBusy) or (isinstance(result, Exception) and is_retryable(result)):
            # No progress for now (AWS throttling, or another invocation holds it): come back later.
            if not _defer(by_id[record_id], result):
                failed.append(record_id)
        elif isinstance(result, LeaseLost):
            # This invocation stalled past its lease; the one that took the attempt over finishes it
            # and deletes the record (received again, under its own receipt handle): not deleted here.
            log.warning(
                "chunk %d.%d: lease lost (%s); its new holder finishes it", chunk.index, chunk.attempt, result
            )
            failed.append(record_id)
        elif isinstance(result, BaseException):
            log.error(
                "chunk %d.%d of message %s failed: %r; SQS will retry it",
                chunk.index,
                chunk.attempt,
                chunk.message_id,
                result,
            )
            failed.append(record_id)
        else:
            outcomes = dict(sorted((f"{s}:{r}" if r else s, n) for (s, r), n in result.counts.items()))
            log.info(
                "chunk %d.%d of message %s: %s %s",
                chunk.index,
                chunk.attempt,
                chunk.message_id,
                result.outcome,
                outcomes,
                extra={
                    "appId": chunk.app_id,
                    "messageId": chunk.message_id,
                    "chunk": f"{chunk.index}.{chunk.attempt}",
                    "outcome": result.outcome,
                    "deliveries": outcomes,
                    "retried": result.retried,
                },
            )
            for key, n in result.counts.items():
                counts[key] = counts.get(key, 0) + n
            latencies += result.latencies_ms
    emit_metrics(
        {(s if s.startswith("ReadSync") else _metric_name(s), r): n for (s, r), n in counts.items()},
        latencies,
        svc.settings.metrics_namespace,
    )
    return _failures(failed)


def _read_synced(job: ReadSyncJob, result: Any, counts: dict[tuple[str, str], int]) -> bool:
    """Log a read-sync job's result and count its pushes apart from messages' (ReadSyncSent /
    ReadSyncFailed); True when SQS should deliver it again."""
    if isinstance(result, BaseException):
        log.error("read sync of user %s failed: %r; SQS will retry it", job.user_id, result)
        return True
    log.info(
        "read sync of user %s: %s %s",
        job.user_id,
        result.outcome,
        dict(result.counts),
        extra={"appId": job.app_id, "readSync": result.outcome},
    )
    for (status, reason), n in result.counts.items():
        key = ("ReadSyncSent" if status == "sent" else "ReadSyncFailed", reason if status != "sent" else "")
        counts[key] = counts.get(key, 0) + n
    return False


def _string_attributes(record: dict[str, Any]) -> dict[str, str]:
    raw = record.get("messageAttributes") or {}
    return {k: str(v["stringValue"]) for k, v in raw.items() if v.get("stringValue") is not None}


def _defer(record: dict[str, Any], why: BaseException) -> bool:
    """Queue the record again with back-off (deferral.py); False: let SQS deliver it again instead."""
    from chalicelib.services.send.deferral import (
        DEFERRALS_ATTRIBUTE,
        MAX_DEFERRALS,
        deferral_delay_s,
        deferrals_of,
    )

    attributes = _string_attributes(record)
    deferrals = deferrals_of(attributes) + 1
    if deferrals > MAX_DEFERRALS:
        log.warning(
            "record %s: %r after %d deferrals; SQS will retry it", record["messageId"], why, MAX_DEFERRALS
        )
        return False
    delay = deferral_delay_s(deferrals)
    try:
        services().queues.defer(
            record.get("body") or "", delay, {**attributes, DEFERRALS_ATTRIBUTE: str(deferrals)}
        )
    except Exception as exc:
        log.warning(
            "record %s: %r, and deferring it failed (%r); SQS will retry it", record["messageId"], why, exc
        )
        return False
    log.info(
        "record %s: %s; deferred %d s (deferral %d of %d)",
        record["messageId"],
        why,
        delay,
        deferrals,
        MAX_DEFERRALS,
    )
    return True


def handle_send_dead_letters(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The send queue's dead letters: the report's still-pending devices marked failed (nothing is
    sent), then each record parked for a redrive (services/send/dead_letters.py)."""
    from chalicelib.services.send.dead_letters import DeadLetterBusy

    svc = services()
    failed: list[str] = []
    for record in records:
        body = record.get("body") or ""
        attributes = _string_attributes(record)
        try:
            settled = svc.dead_letters.settle(body)
            svc.queues.park(body, {**attributes, "settled": settled.describe()})
        except DeadLetterBusy as exc:
            log.info("dead letter %s: %s; SQS will deliver it again", record["messageId"], exc)
            failed.append(record["messageId"])
            continue
        except Exception:
            log.exception("dead letter %s could not be settled; SQS will retry it", record["messageId"])
            failed.append(record["messageId"])
            continue
        log.warning(
            "dead letter %s of the send queue settled (%s) and parked for a redrive; reason: %s",
            record["messageId"],
            settled.describe(),
            attributes.get("reason") or "the queue's redrive (maxReceiveCount)",
            extra={"deadLetter": record["messageId"], "settled": settled.what, "marked": settled.marked},
        )
    return _failures(failed)


def _metric_name(status: str) -> str:
    return {"sent": "Sent", "skipped": "Skipped", "failed": "Failed", "pending": "Retried"}[status]


async def _send_all(
    chunks: list[SendChunk | ReplaceJob | ReadSyncJob],
    send: Callable[[SendChunk | ReplaceJob | ReadSyncJob], Any],
) -> list[Any]:
    return list(await asyncio.gather(*(send(c) for c in chunks), return_exceptions=True))


def handle_webhook_records(records: list[dict[str, Any]]) -> dict[str, Any]:
    """POST each record's events to its app's webhook, concurrently (one receiver's timeout must not
    hold up the others). A failed POST is queued again with back-off by the service; only an error
    of our own (SQS, DynamoDB) fails the record, for SQS to deliver it again."""
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib.models.webhooks import WebhookBatch

    svc = services()
    parsed = _parse(records, WebhookBatch, svc.settings.webhook_queue_name)
    failed: list[str] = []
    if not parsed:
        return _failures(failed)
    with ThreadPoolExecutor(max_workers=min(10, len(parsed))) as pool:
        # each in a copy of this context (what the caller set, e.g. the suite's action recorder, holds)
        futures = [
            (record_id, pool.submit(contextvars.copy_context().run, svc.webhooks.deliver, batch))
            for record_id, batch in parsed
        ]
    counts: dict[tuple[str, str], int] = {}
    for (record_id, future), (_, batch) in zip(futures, parsed, strict=True):
        try:
            outcome = future.result()
        except Exception:
            log.exception("webhook batch of %s failed; SQS will retry it", batch.app_id)
            failed.append(record_id)
            continue
        key = ("Webhook" + outcome[0].upper() + outcome[1:], "")
        counts[key] = counts.get(key, 0) + 1
    emit_metrics(counts, [], svc.settings.metrics_namespace)
    return _failures(failed)


def report_expiring_credentials() -> int:
    """Daily: log every push certificate that expires within 30 days, and emit the count as a metric."""
    svc = services()
    found = svc.credentials.expiring()
    for app_id, cred in found:
        log.warning(
            "push certificate %d (%s, %s, %s) of app %s expires %s: upload a renewed one before then",
            cred.certificate_id,
            cred.name,
            cred.bundle_id,
            cred.environment,
            app_id,
            cred.expires_at.isoformat() if cred.expires_at else "?",
        )
    emit_metrics({("CredentialsExpiringSoon", ""): len(found)}, [], svc.settings.metrics_namespace)
    return len(found)
