"""``python -m bench.webhooks``: what outcome webhooks and delivery receipts cost the send path.

1. Send throughput (the warm send handler, as bench.send_pipeline measures it) with 10 % of the
   devices uninstalled (410 Unregistered): for an app without a webhook, and for an app whose
   webhook wants every event type and whose receiver answers 500 to everything (the webhook
   function runs beside it, retrying every second): the send path only queues events.
2. Receipts, metered by item size (bench/cost.py): write units per receipt when each phone posts
   its own (batches of 1), and when 100 receipts of one chunk come in one batch; a repeat.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
import time
import uuid
from pathlib import Path

BUNDLE = "com.example.bench"
ALL = ["device.invalidated", "recipient.failed", "message.completed"]


def _bodies(app_id: str, message_id: str, users: list[str], size: int, wanted: list[str]) -> list[str]:
    from chalicelib.models.message import MessageEvent
    from chalicelib.models.sending import SendChunk
    from chalicelib.models.settings import SendSettings

    event = MessageEvent.model_validate(
        {
            "messageId": message_id,
            "sendTime": int(time.time()),
            "sender": {"userId": "bench-sender", "nickname": "Bench"},
            "to": {"groupId": "bench-group", "groupName": "Bench"},
            "elems": [{"type": "text", "text": "The quick brown fox jumps over the lazy dog"}],
            "offlinePushInfo": {"ignoreBadge": True},
        }
    )
    ordered = sorted(users)
    starts = range(0, len(ordered), size)
    return [
        SendChunk(
            app_id=app_id,
            message_id=message_id,
            index=i,
            event=event,
            recipients=ordered[s : s + size],
            settings=SendSettings(webhook_events=wanted),  # type: ignore[arg-type]
            **({"chunks": len(starts)} if "chunks" in SendChunk.model_fields else {}),
        ).model_dump_json(by_alias=True, exclude_none=True)
        for i, s in enumerate(starts)
    ]


def _send(bodies: list[str]) -> float:
    from chalicelib.handlers import handle_send_records

    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        for start in range(0, len(bodies), 10):
            batch = [{"messageId": str(uuid.uuid4()), "body": b} for b in bodies[start : start + 10]]
            handle_send_records(batch)
    return time.perf_counter() - started


def main() -> None:
    from bench.send_pipeline import start_stack

    n = int(os.environ.get("BENCH_HOOKS_N", 5000))
    tmp = Path(tempfile.mkdtemp(prefix="apns-bench-hooks-"))
    emulator, sandbox, env = start_stack(tmp)
    try:
        import boto3

        from bench.cost import CostMeter
        from chalicelib import deps
        from chalicelib.handlers import handle_webhook_records
        from chalicelib.models import receipt_refs
        from chalicelib.models.apps import AppCreate
        from chalicelib.models.credentials import P8Upload
        from chalicelib.models.receipts import ReceiptBatch, ReceiptIn
        from chalicelib.models.settings import AppSettingsPatch
        from devstack import resources
        from devstack.poller import QueuePoller
        from devstack.seed import bulk_devices, seed_users
        from tests.webhook_receiver import receiver

        sqs = boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_OVERRIDE"])
        hook_queue = resources.create_queue_with_dlq(
            sqs, os.environ.get("WEBHOOK_QUEUE_NAME", "apns-push-webhook-local")
        )[0]
        deps.reset()
        svc = deps.services()
        svc.webhooks.retry_base_s = 1
        app = svc.apps.create(AppCreate(name="bench-hooks"))
        key = sandbox.issue_p8([BUNDLE])
        cred = svc.credentials.upload(
            app.app_id,
            P8Upload(
                type="p8",
                name="bench",
                environment="production",
                p8=key["p8"],
                key_id=key["keyId"],
                team_id=key["teamId"],
                bundle_id=BUNDLE,
            ),
        )
        print(f"setting up {n} users with one device each, 10 % of them uninstalled ...", flush=True)
        tokens = bulk_devices(sandbox, BUNDLE, n)
        users = seed_users(
            svc.user_repo.client, env["TABLE_NAME"], app.app_id, cred.certificate_id, BUNDLE, tokens
        )
        size = svc.settings.send_chunk_size
        by_user = dict(zip(users, tokens, strict=True))

        def run(label: str, wanted: list[str], offset: int) -> float:
            # A fresh 10 % uninstalled each run (a 410 removes the registration: gone next time)
            for user in users[offset::10]:
                sandbox.uninstall(by_user[user])
            return n / _send(_bodies(app.app_id, f"m-{offset}", users, size, wanted))

        with receiver() as hook:
            hook.status = 500
            patch = AppSettingsPatch.model_validate({"webhook": {"url": hook.url, "events": ALL}})
            svc.webhooks.after_settings_change(
                app.app_id, patch, svc.settings_service.patch(app.app_id, patch)
            )
            stop = threading.Event()
            poller = QueuePoller(
                sqs=sqs,
                queue_url=hook_queue,
                handler=lambda event, _ctx: handle_webhook_records(event["Records"]),
                name="webhook",
                wait_s=1,
                stop_event=stop,
            )
            thread = poller.start()
            run("warm-up", [], 0)
            rates: dict[str, list[float]] = {"no webhook": [], "webhook, receiver failing": []}
            for i in range(4):
                label = "no webhook" if i % 2 == 0 else "webhook, receiver failing"
                rates[label].append(run(label, [] if i % 2 == 0 else ALL, i + 1))
            time.sleep(3)  # the webhook function keeps retrying: let it show in the counts
            stop.set()
            thread.join(5)
            posts = len(hook.requests)
            events = len({e["id"] for e in hook.events()})

        print()
        for label, values in rates.items():
            print(f"send pipeline, {label}: " + ", ".join(f"{r:.0f}" for r in values) + " notifications/s")
        none, failing = (sum(v) / len(v) for v in rates.values())
        print(f"webhook_failing_vs_none: {failing / none:.2f}")
        print(f"  (the failing receiver got {posts} POSTs carrying {events} distinct events meanwhile)")

        # ---- receipts, metered ----
        probe = boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_OVERRIDE"])
        meter = CostMeter(probe)
        meter.attach_dynamodb(svc.user_repo.client)
        rkey = svc.receipt_keys.get_or_create(app.app_id)
        day = int(time.time()) // 86400
        sent = [(i // size, i % size, t) for i, t in enumerate(sorted(tokens)) if i % 10]

        def refs(message_id: str) -> list[str]:
            return [receipt_refs.issue(rkey, app.app_id, message_id, day, c, 0, i, t) for c, i, t in sent]

        def post(rs: list[str], event: str, per_batch: int) -> float:
            meter.reset()
            for start in range(0, len(rs), per_batch):
                batch = ReceiptBatch(
                    receipts=[ReceiptIn(r=r, event=event) for r in rs[start : start + per_batch]]
                )  # type: ignore[arg-type]
                svc.receipts.record(app.app_id, batch)
            totals = meter.reset()
            return sum(t.wru for t in totals.values()) / len(rs)

        one = refs("receipts-1")
        print()
        print(f"receipts, one per request (each phone posts its own), {len(one)} devices:")
        print(f"  delivered: {post(one, 'delivered', 1):.2f} WRU per receipt")
        print(f"  opened (after delivered): {post(one, 'opened', 1):.2f} WRU per receipt")
        print(f"  a repeat: {post(one[:500], 'opened', 1):.2f} WRU per receipt")
        hundred = refs("receipts-100")
        print(f"receipts, 100 per request: {post(hundred, 'delivered', 100):.2f} WRU per receipt")
        print(f"wru_per_receipt: {post(refs('receipts-x'), 'delivered', 1):.2f}")
    finally:
        sandbox.stop()
        emulator.stop()


if __name__ == "__main__":
    main()
