"""`make bench`: the warm send handler against raw aioapns, same sandbox, same run.

1. pipeline: N notifications (N/100 chunks of 100 recipients, 10 chunks per SQS
   batch as Lambda would hand them over) through ``handle_send_records``: the
   chunk ledger, the recipients' BatchGetItem calls against the emulator, badge
   increments, rendering, aioapns over HTTP/2 + TLS to the sandbox, delivery
   records.
2. raw aioapns: the same number of pre-built notifications, one client, the
   same concurrency, the same sandbox.
3. a 10,000-member stored group: submit -> intake queue -> fan-out -> send
   queue -> send -> the sandbox's last notification.
4. memory over many sends on one long-lived connection (aioapns keeps per-request state).

Prints each rate, memory, DynamoDB calls per chunk, and last
``pipeline_vs_raw_aioapns: <ratio>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import json
import os
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BUNDLE = "com.example.bench"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class CallCounter:
    """Counts DynamoDB API calls at the botocore level (every page and retry included)."""

    def __init__(self, client: Any) -> None:
        self.calls: dict[str, int] = {}
        client.meta.events.register("before-call.dynamodb.*", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] = self.calls.get(model.name, 0) + 1

    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()


def start_stack(tmp: Path) -> tuple[Any, Any, dict[str, str]]:
    from apns_sandbox.testing import start_sandbox
    from devstack import resources
    from devstack.fast_emulator import start_emulator

    emulator = start_emulator()
    sandbox = start_sandbox(tmp / "sandbox")
    issuers = tmp / "issuers.pem"
    issuers.write_bytes(sandbox.ca_path.read_bytes())
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_OVERRIDE": emulator.url,
        "STAGE": "bench",
        "TABLE_NAME": "apns-push-bench",
        "INTAKE_QUEUE_NAME": "apns-push-intake-bench",
        "SEND_QUEUE_NAME": "apns-push-send-bench",
        "SECRETS_PREFIX": "apns-push/bench/",
        "OPERATOR_KEY": "bench-operator-key-0123456789",
        "TRUSTED_PUSH_ISSUERS_FILE": str(issuers),
        **sandbox.service_env(),
        "LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    os.environ.update(env)
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=emulator.url)
    sqs = boto3.client("sqs", endpoint_url=emulator.url)
    resources.create_all(ddb, sqs, env["TABLE_NAME"], env["INTAKE_QUEUE_NAME"], env["SEND_QUEUE_NAME"])
    return emulator, sandbox, env


def create_devices(sandbox: Any, n: int) -> list[str]:
    """n simulated phones in the sandbox (bulk when the sandbox offers it)."""
    try:
        resp = sandbox.request(
            "POST", "/sandbox/devices", {"bundleId": BUNDLE, "environment": "production", "count": n}
        )
        if isinstance(resp, dict) and "deviceTokens" in resp:
            return list(resp["deviceTokens"])
        first = [resp["deviceToken"]]
    except Exception:
        first = []
    with ThreadPoolExecutor(8) as pool:
        rest = list(pool.map(lambda _: sandbox.create_device(BUNDLE, "production"), range(n - len(first))))
    return first + rest


def seed_users(ddb: Any, table: str, app_id: str, cert_id: int, tokens: list[str]) -> list[str]:
    """One user per token (user item + state item), written with BatchWriteItem (the API's per-device
    transaction is for people)."""
    from chalicelib.store import items

    now = int(time.time() * 1000)
    users = [f"user{i:06d}" for i in range(len(tokens))]
    requests = []
    for user, token in zip(users, tokens, strict=True):
        item = {
            **items.user_key(app_id, user),
            **items.to_item(
                {
                    items.DEVICE_PREFIX + token: {
                        "certificateId": cert_id,
                        "bundleId": BUNDLE,
                        "environment": "production",
                        "pushEnabled": True,
                        "registeredAt": now,
                    },
                }
            ),
        }
        requests.append({"PutRequest": {"Item": item}})
        state = {
            **items.state_key(app_id, user),
            **items.to_item({"appState": "background", "badge": 3, "stateAt": now}),
        }
        requests.append({"PutRequest": {"Item": state}})
    items.batch_write(ddb, table, requests)
    return users


def sqs_batch(bodies: list[str]) -> list[dict[str, Any]]:
    return [{"messageId": str(uuid.uuid4()), "body": b} for b in bodies]


def bench_pipeline(
    svc: Any,
    app_id: str,
    users: list[str],
    n: int,
    counter: CallCounter,
    *,
    ignore_badge: bool = False,
    tag: str = "",
) -> dict[str, Any]:
    from chalicelib.handlers import handle_send_records
    from chalicelib.models.message import MessageEvent
    from chalicelib.models.sending import SendChunk

    def chunk_bodies(message_id: str, recipients: list[str]) -> list[str]:
        event = MessageEvent.model_validate(
            {
                "messageId": message_id,
                "sendTime": int(time.time()),
                "sender": {"userId": "bench-sender", "nickname": "Bench"},
                "to": {"groupId": "bench-group", "groupName": "Bench"},
                "elems": [{"type": "text", "text": "The quick brown fox jumps over the lazy dog"}],
                "offlinePushInfo": {"ignoreBadge": ignore_badge},
            }
        )
        return [
            SendChunk(
                app_id=app_id, message_id=message_id, index=i, event=event, recipients=recipients[s : s + 100]
            ).model_dump_json(by_alias=True, exclude_none=True)
            for i, s in enumerate(range(0, len(recipients), 100))
        ]

    # Warm-up: connections, credential cache, imports (a warm Lambda container has all of these).
    with contextlib.redirect_stdout(io.StringIO()):
        handle_send_records(sqs_batch(chunk_bodies(f"warmup{tag}", users[:1000])))
    targets = (users * (n // len(users) + 1))[:n]
    bodies = chunk_bodies(f"bench-1{tag}", targets[: len(users)])
    if n > len(users):
        bodies += chunk_bodies(f"bench-2{tag}", targets[len(users) :])
    counter.reset()
    gc.collect()
    rss_before = rss_mb()
    started = time.perf_counter()
    failures = 0
    with contextlib.redirect_stdout(io.StringIO()):  # the handler's EMF metric lines (still produced)
        for start in range(0, len(bodies), 10):
            failures += len(handle_send_records(sqs_batch(bodies[start : start + 10]))["batchItemFailures"])
    elapsed = time.perf_counter() - started
    return {
        "notifications": n,
        "seconds": elapsed,
        "rate": n / elapsed,
        "chunks": len(bodies),
        "failed_chunks": failures,
        "dynamodb_calls_per_chunk": counter.total() / len(bodies),
        "dynamodb_calls": dict(counter.calls),  # type: ignore[dict-item]
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_mb(),
    }


def bench_raw(
    settings: Any, key: dict[str, str], tokens: list[str], n: int, concurrency: int
) -> dict[str, float]:
    """Raw aioapns: pre-built notifications, one client, the same sandbox and concurrency."""
    from aioapns import APNs, NotificationRequest, PushType

    from chalicelib.apns.client import protocol_class, run, ssl_context

    async def main() -> float:
        client = APNs(
            key=key["p8"],
            key_id=key["keyId"],
            team_id=key["teamId"],
            topic=BUNDLE,
            ssl_context=ssl_context(settings),
            max_connections=settings.apns_max_connections,
        )
        client.pool.protocol_class = protocol_class(settings, "production")
        requests = [
            NotificationRequest(
                device_token=tokens[i % len(tokens)],
                message={
                    "aps": {
                        "alert": {"title": "Bench", "body": "Bench(Bench):The quick brown fox"},
                        "badge": 4,
                        "sound": "default",
                        "thread-id": "group_bench",
                    },
                    "f": "bench-sender",
                    "t": f"user{i:06d}",
                    "g": "bench-group",
                    "m": f"raw-{i}",
                },
                push_type=PushType.ALERT,
                priority=10,
            )
            for i in range(n + 1000)
        ]
        sem = asyncio.Semaphore(concurrency)

        async def one(req: Any) -> str:
            async with sem:
                return str((await client.send_notification(req)).status)

        await asyncio.gather(*(one(r) for r in requests[:1000]))  # warm-up
        started = time.perf_counter()
        statuses = await asyncio.gather(*(one(r) for r in requests[1000:]))
        elapsed = time.perf_counter() - started
        assert all(s == "200" for s in statuses), set(statuses)
        return elapsed

    elapsed = run(main())
    return {"notifications": n, "seconds": elapsed, "rate": n / elapsed}


def bench_big_group(
    svc: Any, sandbox: Any, ddb: Any, env: dict[str, str], app_id: str, users: list[str]
) -> dict:
    """Submit one message to a stored 10,000-member group; time until the sandbox has the last one."""
    import boto3

    from chalicelib import handlers
    from chalicelib.models.message import MessageEvent
    from chalicelib.store import items
    from devstack.poller import QueuePoller

    members = users[:10_000]
    items.batch_write(
        ddb,
        env["TABLE_NAME"],
        [
            {"PutRequest": {"Item": items.to_item({"pk": items.group_pk(app_id, "big"), "sk": f"M#{u}"})}}
            for u in members
        ],
    )
    sqs = boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_OVERRIDE"])
    pollers = [
        QueuePoller(
            sqs=sqs,
            queue_url=sqs.get_queue_url(QueueName=env[q])["QueueUrl"],
            name=q,
            wait_s=0,
            handler=lambda e, c, h=h: h(e["Records"]),
        )
        for q, h in (
            ("INTAKE_QUEUE_NAME", handlers.handle_intake_records),
            ("SEND_QUEUE_NAME", handlers.handle_send_records),
        )
    ]
    sandbox.request("DELETE", "/sandbox/notifications")
    before = sandbox.stats()["accepted"]
    event = MessageEvent.model_validate(
        {
            "messageId": "big-group-1",
            "sendTime": int(time.time()),
            "sender": {"userId": "bench-sender"},
            "to": {"groupId": "big", "groupName": "Everyone"},
            "elems": [{"type": "text", "text": "all hands"}],
        }
    )
    started = time.perf_counter()
    svc.messages.submit(app_id, event)
    with contextlib.redirect_stdout(io.StringIO()):
        while sandbox.stats()["accepted"] - before < len(members):
            if not sum(p.poll_once() for p in pollers):
                time.sleep(0.05)
            if time.perf_counter() - started > 900:
                raise TimeoutError("big group did not finish in 15 minutes")
    return {"members": len(members), "seconds": time.perf_counter() - started}


def bench_memory(settings: Any, key: dict[str, str], tokens: list[str], n: int) -> dict[str, float]:
    """RSS and aioapns' per-request maps over n sends on the service's client (with its bookkeeping fix)."""
    from datetime import UTC, datetime

    from chalicelib.apns.client import ApnsClients, run
    from chalicelib.models.credentials import Credential

    clients = ApnsClients(settings)
    cred = Credential(
        certificate_id=1,
        name="k",
        type="p8",
        bundle_id=BUNDLE,
        environment="production",
        created_at=datetime.now(UTC),
        fingerprint_sha256="mem",
    )
    secret = {"type": "p8", "p8": key["p8"], "keyId": key["keyId"], "teamId": key["teamId"]}
    samples: list[tuple[int, float]] = []

    async def main() -> int:
        client = clients.get("mem", cred, secret)
        sem = asyncio.Semaphore(500)

        async def one(i: int) -> None:
            async with sem:
                await clients.send(
                    client,
                    token=tokens[i % len(tokens)],
                    message={"aps": {"alert": "m"}, "m": str(i)},
                    notification_id=str(uuid.uuid4()).upper(),
                    priority=10,
                    collapse="m",
                )

        for start in range(0, n, 10_000):
            await asyncio.gather(*(one(i) for i in range(start, min(n, start + 10_000))))
            gc.collect()
            samples.append((min(n, start + 10_000), rss_mb()))
        return sum(len(c.request_streams) + len(c.requests) for c in client.pool.connections)

    leftover = run(main())
    first = samples[0][1]
    return {
        "sends": n,
        "rss_after_10k_mb": first,
        "rss_after_all_mb": samples[-1][1],
        "growth_mb": samples[-1][1] - first,
        "per_request_entries_left": leftover,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=int(os.environ.get("BENCH_N", 20_000)))
    parser.add_argument(
        "--memory-sends", type=int, default=int(os.environ.get("BENCH_MEMORY_SENDS", 100_000))
    )
    parser.add_argument("--skip-group", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="apns-bench-"))
    emulator, sandbox, env = start_stack(tmp)
    try:
        from chalicelib import deps

        deps.reset()
        svc = deps.services()
        settings = svc.settings
        ddb = svc.user_repo.client
        counter = CallCounter(ddb)
        app = svc.apps.create(
            __import__("chalicelib.models.apps", fromlist=["AppCreate"]).AppCreate(name="bench")
        )
        key = sandbox.issue_p8([BUNDLE])
        from chalicelib.models.credentials import P8Upload

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
        n_users = min(args.n, 20_000)
        print(f"setting up {n_users} users with one device each ...", flush=True)
        tokens = create_devices(sandbox, n_users)
        users = seed_users(ddb, env["TABLE_NAME"], app.app_id, cred.certificate_id, tokens)

        pipeline = bench_pipeline(svc, app.app_id, users, args.n, counter)
        no_badge = bench_pipeline(svc, app.app_id, users, args.n, counter, ignore_badge=True, tag="-nobadge")
        after_pipeline = sandbox.stats()  # the group run below clears the sandbox's counters
        raw = bench_raw(settings, key, tokens, args.n, settings.apns_concurrency)
        group = None if args.skip_group else bench_big_group(svc, sandbox, ddb, env, app.app_id, users)
        memory = bench_memory(settings, key, tokens, args.memory_sends) if args.memory_sends else None
        stats = sandbox.stats()

        print()
        print(
            f"pipeline (warm send handler): {pipeline['notifications']} notifications in "
            f"{pipeline['seconds']:.2f} s = {pipeline['rate']:.0f}/s "
            f"({pipeline['chunks']} chunks, {pipeline['failed_chunks']} failed)"
        )
        print(
            f"  DynamoDB calls per chunk of 100: {pipeline['dynamodb_calls_per_chunk']:.1f} "
            f"{json.dumps(pipeline['dynamodb_calls'])}"
        )
        print(f"  RSS {pipeline['rss_before_mb']:.0f} MB -> {pipeline['rss_after_mb']:.0f} MB")
        print(
            f"pipeline with ignoreBadge (no per-user badge write): {no_badge['rate']:.0f}/s, "
            f"{no_badge['dynamodb_calls_per_chunk']:.1f} DynamoDB calls per chunk "
            f"(ratio {no_badge['rate'] / raw['rate']:.2f})"
        )
        print(
            f"raw aioapns (pre-built, concurrency {settings.apns_concurrency}): {raw['notifications']} in "
            f"{raw['seconds']:.2f} s = {raw['rate']:.0f}/s"
        )
        if group:
            print(f"10,000-member stored group: last delivery {group['seconds']:.2f} s after submit")
        if memory:
            print(
                f"memory over {memory['sends']} sends on one client: RSS {memory['rss_after_10k_mb']:.0f} MB "
                f"after 10k -> {memory['rss_after_all_mb']:.0f} MB (growth {memory['growth_mb']:.1f} MB), "
                f"aioapns per-request entries left: {memory['per_request_entries_left']}"
            )
        print(
            f"sandbox after the pipeline runs: accepted {after_pipeline['accepted']}, "
            f"duplicates {after_pipeline.get('duplicates')}, rejected {after_pipeline.get('rejected')}"
        )
        print(
            f"sandbox after the group and memory runs: accepted {stats['accepted']}, "
            f"duplicates {stats.get('duplicates')}, rejected {stats.get('rejected')}"
        )
        print(f"pipeline_vs_raw_aioapns: {pipeline['rate'] / raw['rate']:.2f}")
    finally:
        sandbox.stop()
        emulator.stop()


if __name__ == "__main__":
    main()
