"""`make bench`: the warm send handler against raw aioapns, same sandbox, same run; and the cost of a push.

Throughput (nothing metered):

1. pipeline: N notifications (chunks of SEND_CHUNK_SIZE recipients, 10 chunks per SQS batch
   as Lambda would hand them over) through ``handle_send_records``: the chunk lease, one round
   of BatchGetItem per chunk against the emulator, badge increments, rendering, aioapns over
   HTTP/2 + TLS to the sandbox, checkpoint pages. The bench process's CPU (the emulator and the
   sandbox are other processes) per notification.
2. raw aioapns: the same number of pre-built notifications, one client, the same concurrency,
   the same sandbox, CPU measured the same way.
3. a 10,000-member stored group: submit -> intake queue -> fan-out -> send queue -> send -> the
   sandbox's last notification.
4. memory over many sends on one long-lived connection (aioapns keeps per-request state).
5. cProfile (CPU clock) of one more pipeline run: where the send handler's CPU goes.

Cost (metered by ``bench/cost.py`` from item sizes, DynamoDB's documented rules; the emulator's
ConsumedCapacity is fake), each one message to a stored group through the real path, fan-out
included: (a) all pushed with badges, (b) ignoreBadge, (c) a 10,000-member group with 90 %
online, (d) all online (the cost of a skipped recipient). Then cost per million pushes of (a)
from the on-demand prices below.

Prints, last, ``wru_per_push``, ``wru_per_skipped_recipient``, ``send_cpu_vs_raw_aioapns``,
``cost_per_million_pushes_usd`` and ``pipeline_vs_raw_aioapns``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import math
import os
import pstats
import sys
import tempfile
import time
import uuid
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


FAR_APNS_MS = int(os.environ.get("BENCH_FAR_APNS_MS", 50))  # an APNs round trip from AWS, roughly


class CallCounter:
    """Counts DynamoDB API calls at the botocore level (every page and retry included) and on the
    send path's asyncio client (``aio:``), cheaply (no reads: the throughput runs use it). For
    the ledger's pages (checkpoints and each attempt's badges: new items, conditional PutItems)
    it also adds up the write units, to compare with the metered runs, which are slower."""

    def __init__(self, client: Any, dynamo: Any = None) -> None:
        self.calls: dict[str, int] = {}
        self.aio_put_wru = 0
        self.aio_put_bytes = 0
        client.meta.events.register("before-call.dynamodb.*", self._count)
        if dynamo is not None:
            dynamo.before_call.append(self._count_aio)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] = self.calls.get(model.name, 0) + 1

    def _count_aio(self, action: str, payload: dict[str, Any], _resp: Any) -> None:
        from bench.cost import item_size, write_units

        name = f"aio:{action}"
        self.calls[name] = self.calls.get(name, 0) + 1
        if action == "PutItem":
            size = item_size(payload["Item"])
            self.aio_put_wru += write_units(0, size)
            self.aio_put_bytes += size

    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        self.calls.clear()
        self.aio_put_wru = self.aio_put_bytes = 0


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
    profile: Any = None,
) -> dict[str, Any]:
    """N notifications as chunks of SEND_CHUNK_SIZE straight into the send handler, 10 per call.
    CPU: this process's (the emulator and the sandbox are other processes)."""
    from chalicelib.handlers import handle_send_records
    from chalicelib.models.message import MessageEvent
    from chalicelib.models.sending import SendChunk

    size = svc.settings.send_chunk_size

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
        ordered = sorted(recipients)
        return [
            SendChunk(
                app_id=app_id, message_id=message_id, index=i, event=event, recipients=ordered[s : s + size]
            ).model_dump_json(by_alias=True, exclude_none=True)
            for i, s in enumerate(range(0, len(ordered), size))
        ]

    # Warm-up: connections, credential cache, imports (a warm Lambda container has all of these).
    with contextlib.redirect_stdout(io.StringIO()):
        handle_send_records(sqs_batch(chunk_bodies(f"warmup{tag}", users[:1000])))
    targets = (users * (n // len(users) + 1))[:n]
    bodies: list[str] = []
    for part, start in enumerate(range(0, n, len(users))):
        bodies += chunk_bodies(f"bench-{part}{tag}", targets[start : start + len(users)])
    counter.reset()
    gc.collect()
    rss_before = rss_mb()
    cpu_started = time.process_time()
    started = time.perf_counter()
    failures = 0
    if profile is not None:
        profile.enable()
    with contextlib.redirect_stdout(io.StringIO()):  # the handler's EMF metric lines (still produced)
        for start in range(0, len(bodies), 10):
            failures += len(handle_send_records(sqs_batch(bodies[start : start + 10]))["batchItemFailures"])
    if profile is not None:
        profile.disable()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    return {
        "notifications": n,
        "seconds": elapsed,
        "rate": n / elapsed,
        "cpu_ms_per_notification": cpu * 1000 / n,
        "chunks": len(bodies),
        "chunk_size": size,
        "invocations": math.ceil(len(bodies) / 10),
        "failed_chunks": failures,
        "dynamodb_calls_per_chunk": counter.total() / len(bodies),
        "aio_put_wru_per_notification": counter.aio_put_wru / n,
        "aio_put_bytes_per_wru": counter.aio_put_bytes / max(counter.aio_put_wru, 1),
        "dynamodb_calls": dict(counter.calls),
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_mb(),
    }


def bench_raw(
    settings: Any, key: dict[str, str], tokens: list[str], n: int, concurrency: int
) -> dict[str, float]:
    """Raw aioapns: pre-built notifications, one client, the same sandbox and concurrency; CPU
    measured like the pipeline's (this process, the timed sends only)."""
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
        gc.collect()
        cpu_started = time.process_time()
        started = time.perf_counter()
        statuses = await asyncio.gather(*(one(r) for r in requests[1000:]))
        elapsed = time.perf_counter() - started
        cpu.append(time.process_time() - cpu_started)
        assert all(s == "200" for s in statuses), set(statuses)
        return elapsed

    cpu: list[float] = []
    elapsed = run(main())
    return {
        "notifications": n,
        "seconds": elapsed,
        "rate": n / elapsed,
        "cpu_ms_per_notification": cpu[0] * 1000 / n,
    }


class Pollers:
    """The intake and send queues polled as Lambda's event source mappings would (batches of 10),
    each handler timed (wall time: what Lambda bills) and named in the cost meter while it runs."""

    def __init__(self, env: dict[str, str], meter: Any = None) -> None:
        import boto3

        from chalicelib import handlers
        from devstack.poller import QueuePoller

        self.meter = meter
        self.seconds: dict[str, float] = {"fanout": 0.0, "send": 0.0}
        sqs = boto3.client("sqs", endpoint_url=env["AWS_ENDPOINT_OVERRIDE"])
        if meter is not None:
            meter.attach_sqs(sqs, "event-source")
        self.pollers = {
            phase: QueuePoller(
                sqs=sqs,
                queue_url=sqs.get_queue_url(QueueName=env[q])["QueueUrl"],
                name=q,
                wait_s=0,
                handler=self._timed(phase, h),
            )
            for phase, q, h in (
                ("fanout", "INTAKE_QUEUE_NAME", handlers.handle_intake_records),
                ("send", "SEND_QUEUE_NAME", handlers.handle_send_records),
            )
        }

    def _timed(self, phase: str, handler: Any) -> Any:
        def call(event: dict[str, Any], _context: Any) -> Any:
            if self.meter is not None:
                self.meter.phase = phase
            started = time.perf_counter()
            try:
                return handler(event["Records"])
            finally:
                self.seconds[phase] += time.perf_counter() - started
                if self.meter is not None:
                    self.meter.phase = "event-source"

        return call

    def invocations(self) -> dict[str, int]:
        return {phase: p.invocations for phase, p in self.pollers.items()}

    def drain(self, done: Any, settle: bool = True, timeout_s: float = 900) -> None:
        """Poll until done() and (settle) both queues answered empty twice in a row."""
        started = time.perf_counter()
        idle = 0
        with contextlib.redirect_stdout(io.StringIO()):
            while True:
                if self.meter is not None:
                    self.meter.phase = "event-source"
                if sum(p.poll_once() for p in self.pollers.values()):
                    idle = 0
                elif done():
                    idle += 1
                    if not settle or idle >= 2:
                        return
                else:
                    time.sleep(0.05)
                if not settle and done():
                    return
                if time.perf_counter() - started > timeout_s:
                    raise TimeoutError(f"the queues did not drain in {timeout_s:.0f} s")


def group_event(
    group_id: str, message_id: str, ignore_badge: bool = False, online_users: list[str] | None = None
) -> Any:
    from chalicelib.models.message import MessageEvent

    to: dict[str, Any] = {"groupId": group_id, "groupName": "Everyone"}
    if online_users:
        to["onlineUsers"] = online_users
    return MessageEvent.model_validate(
        {
            "messageId": message_id,
            "sendTime": int(time.time()),
            "sender": {"userId": "bench-sender", "nickname": "Bench"},
            "to": to,
            "elems": [{"type": "text", "text": "all hands"}],
            "offlinePushInfo": {"ignoreBadge": ignore_badge},
        }
    )


def store_group(svc: Any, app_id: str, group_id: str, members: list[str]) -> None:
    from chalicelib.store.groups import Member

    svc.groups.change(app_id, group_id, [Member(u) for u in members], [])


def bench_big_group(svc: Any, sandbox: Any, env: dict[str, str], app_id: str, users: list[str]) -> dict:
    """Submit one message to a stored 10,000-member group; time until the sandbox has the last one."""
    members = users[:10_000]
    store_group(svc, app_id, "big", members)
    pollers = Pollers(env)
    sandbox.request("DELETE", "/sandbox/notifications")
    before = sandbox.stats()["accepted"]
    event = group_event("big", "big-group-1")
    started = time.perf_counter()
    svc.messages.submit(app_id, event)
    pollers.drain(lambda: sandbox.stats()["accepted"] - before >= len(members), settle=False)
    return {
        "members": len(members),
        "seconds": time.perf_counter() - started,
        "fanout_seconds": pollers.seconds["fanout"],
        "send_seconds": pollers.seconds["send"],
    }


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


def package_of(file: str) -> str:
    """What a profiled function belongs to: a site-packages distribution, a chalicelib module,
    or the standard library's module."""
    if "site-packages/" in file:
        return file.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/chalicelib/" in file:
        return "chalicelib/" + file.split("/chalicelib/", 1)[1].removesuffix(".py")
    if file.startswith("~") or not file.endswith(".py"):
        return "builtins"
    parts = Path(file).parts
    return "stdlib:" + (
        parts[-2] if parts[-1] == "__init__.py" or parts[-2] == "asyncio" else Path(file).stem
    )


# ---- cost ------------------------------------------------------------------------------------

# On-demand prices, us-east-1, after the November 2024 DynamoDB on-demand cut (FINDINGS).
DYNAMODB_USD_PER_WRU = 0.625 / 1e6  # write request unit
DYNAMODB_USD_PER_RRU = 0.125 / 1e6  # read request unit
LAMBDA_USD_PER_GB_S = 0.0000166667  # x86, first pricing tier
LAMBDA_USD_PER_INVOCATION = 0.20 / 1e6
SQS_USD_PER_REQUEST = 0.40 / 1e6  # standard queue, per request (64 KB payload chunk), after the free tier
SNS_USD_PER_PUSH = 1.00 / 1e6  # SNS mobile push, for comparison: publish $0.50 + delivery $0.50 per million
# Provisioned capacity (us-east-1): per WCU-hour / RCU-hour, used at PROVISIONED_UTILISATION on average.
DYNAMODB_USD_PER_WCU_HOUR = 0.00065
DYNAMODB_USD_PER_RCU_HOUR = 0.00013
PROVISIONED_UTILISATION = 0.7
DYNAMODB_PROVISIONED_USD_PER_WRU = DYNAMODB_USD_PER_WCU_HOUR / (3600 * PROVISIONED_UTILISATION)
DYNAMODB_PROVISIONED_USD_PER_RRU = DYNAMODB_USD_PER_RCU_HOUR / (3600 * PROVISIONED_UTILISATION)


def lambda_memory_mb(function: str) -> int:
    """The function's configured memory in .chalice/config.json (prod stage first)."""
    cfg = json.loads((ROOT / ".chalice" / "config.json").read_text())
    stages = cfg.get("stages", {})
    for stage in ("prod", "dev", *stages):
        size = stages.get(stage, {}).get("lambda_functions", {}).get(function, {}).get("lambda_memory_size")
        if size:
            return int(size)
    return int(cfg.get("lambda_memory_size", 128))


def metered_message(
    svc: Any,
    sandbox: Any,
    pollers: Pollers,
    meter: Any,
    app_id: str,
    group_id: str,
    message_id: str,
    *,
    ignore_badge: bool = False,
    online_users: list[str] | None = None,
) -> dict[str, Any]:
    """One message to a stored group through the real path (submit -> intake queue -> fan-out ->
    send queue -> send), every DynamoDB and SQS call metered, per function."""
    from bench.cost import Totals

    before = sandbox.stats()["accepted"]
    invocations = pollers.invocations()
    seconds = dict(pollers.seconds)
    meter.reset()
    meter.enabled = True
    meter.phase = "api"
    svc.messages.submit(app_id, group_event(group_id, message_id, ignore_badge, online_users))
    pollers.drain(lambda: True)
    meter.enabled = False
    phases = meter.reset()
    summary = svc.deliveries.summary(app_id, message_id) or {}
    after = pollers.invocations()
    return {
        "recipients": int(summary.get("recipientCount", 0)),
        "pushes": sandbox.stats()["accepted"] - before,
        "phases": phases,
        "total": Totals.combined(phases.values()),
        "invocations": {k: after[k] - invocations[k] for k in after},
        "seconds": {k: pollers.seconds[k] - seconds[k] for k in seconds},
    }


def print_metered(name: str, run: dict[str, Any]) -> None:
    total, pushes, recipients = run["total"], run["pushes"], run["recipients"]
    per, unit = (pushes, "push") if pushes else (max(recipients, 1), "recipient")
    print(
        f"{name}: {recipients} recipients, {pushes} pushed; "
        f"WRU {total.wru:.0f} ({total.wru / per:.3f}/{unit}), "
        f"RRU {total.rru:.1f} ({total.rru / per:.3f}/{unit}), "
        f"SQS requests {total.sqs_total - total.sqs_empty_receives} "
        f"(+{total.sqs_empty_receives} empty receives); invocations {run['invocations']}"
    )
    for phase, t in sorted(run["phases"].items()):
        if t.wru or t.rru or t.sqs_total:
            sqs = ", ".join(f"{k} {v}" for k, v in sorted(t.sqs_requests.items()))
            print(f"  {phase:<12} WRU {t.wru:8.1f}  RRU {t.rru:8.1f}  calls {dict(t.calls)}  SQS {{{sqs}}}")
    for label, counter in (("WRU", total.wru_by_kind), ("RRU", total.rru_by_kind)):
        top = ", ".join(f"{k} {v:g}" for k, v in counter.most_common(8))
        print(f"  {label} by operation and item (key shape): {top}")


def group_cost(run: dict[str, Any]) -> float:
    """One group message's DynamoDB and SQS bill (the parts that grow with members)."""
    t = run["total"]
    sqs = t.sqs_total - t.sqs_empty_receives
    return float(t.wru * DYNAMODB_USD_PER_WRU + t.rru * DYNAMODB_USD_PER_RRU + sqs * SQS_USD_PER_REQUEST)


def group_cost_line(run: dict[str, Any]) -> str:
    t, pushes = run["total"], run["pushes"]
    return (
        f"{t.wru:.0f} WRU + {t.rru:.0f} RRU + {t.sqs_total - t.sqs_empty_receives} SQS requests = "
        f"${group_cost(run):.5f} for {pushes} pushes (SNS: ${pushes * SNS_USD_PER_PUSH:.5f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=int(os.environ.get("BENCH_N", 20_000)))
    parser.add_argument(
        "--memory-sends", type=int, default=int(os.environ.get("BENCH_MEMORY_SENDS", 100_000))
    )
    parser.add_argument(
        "--cost-n",
        type=int,
        default=int(os.environ.get("BENCH_COST_N", 3_000)),
        help="recipients of the metered messages (all pushed / ignoreBadge / all online)",
    )
    parser.add_argument(
        "--profile-n",
        type=int,
        default=int(os.environ.get("BENCH_PROFILE_N", 5_000)),
        help="notifications of an extra pipeline run under cProfile (0: none)",
    )
    parser.add_argument("--skip-group", action="store_true")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="apns-bench-"))
    emulator, sandbox, env = start_stack(tmp)
    try:
        import boto3

        from bench.cost import CostMeter
        from chalicelib import deps
        from chalicelib.models.apps import AppCreate
        from chalicelib.models.credentials import P8Upload
        from devstack.seed import bulk_devices, seed_users

        deps.reset()
        svc = deps.services()
        settings = svc.settings
        ddb = svc.user_repo.client
        counter = CallCounter(ddb, svc.send_wing.dynamo)
        app = svc.apps.create(AppCreate(name="bench"))
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
        # Users 0..9,999 make the big group (90 % of them go online for the metered run); the
        # metered all-pushed messages go to the last cost_n users, who stay in the background.
        n_users = max(min(args.n, 20_000), 10_000 + args.cost_n)
        print(f"setting up {n_users} users with one device each ...", flush=True)
        tokens = bulk_devices(sandbox, BUNDLE, n_users)
        users = seed_users(ddb, env["TABLE_NAME"], app.app_id, cred.certificate_id, BUNDLE, tokens)

        # ---- throughput (nothing metered) ----
        pipeline = bench_pipeline(svc, app.app_id, users, args.n, counter)
        no_badge = bench_pipeline(svc, app.app_id, users, args.n, counter, ignore_badge=True, tag="-nobadge")
        # As on AWS: APNs tens of ms away, the ledger's writes a few. Its pages per push, not its rate.
        sandbox.add_fault(latencyMs=FAR_APNS_MS)
        far_n = min(args.n, 3000)
        far = bench_pipeline(svc, app.app_id, users, far_n, counter, ignore_badge=True, tag="-far")
        sandbox.clear_faults()
        after_pipeline = sandbox.stats()  # the group run below clears the sandbox's counters
        raw = bench_raw(settings, key, tokens, args.n, settings.apns_concurrency)
        group = None if args.skip_group else bench_big_group(svc, sandbox, env, app.app_id, users)
        memory = bench_memory(settings, key, tokens, args.memory_sends) if args.memory_sends else None
        stats = sandbox.stats()
        profile = None
        if args.profile_n:
            profile = cProfile.Profile(time.process_time)  # CPU, not wall time (epoll waits)
            bench_pipeline(svc, app.app_id, users, args.profile_n, counter, tag="-profile", profile=profile)

        # ---- cost (metered: slower, so after the timed runs) ----
        probe = boto3.client("dynamodb", endpoint_url=env["AWS_ENDPOINT_OVERRIDE"])  # not hooked
        meter = CostMeter(probe)
        meter.enabled = False
        meter.attach_dynamodb(ddb)
        meter.attach_async(svc.send_wing.dynamo)
        meter.attach_sqs(svc.queues.client, "service")
        pollers = Pollers(env, meter)
        background = users[-args.cost_n :]
        store_group(svc, app.app_id, "cost-all", background)
        print(f"metering: {args.cost_n} pushed (badges, then ignoreBadge) ...", flush=True)
        pushed = metered_message(svc, sandbox, pollers, meter, app.app_id, "cost-all", "cost-a")
        ignore = metered_message(
            svc, sandbox, pollers, meter, app.app_id, "cost-all", "cost-b", ignore_badge=True
        )
        print("metering: the 10,000-member group, 90 % online; then all online ...", flush=True)
        members = users[:10_000]
        online = [u for i, u in enumerate(members) if i % 10]
        from chalicelib.store.user_codec import StateWrite

        now_ms = int(time.time() * 1000)
        lease_ms = 3_600_000  # online for the whole run (bulk presence, as the IM server reports it)
        svc.user_repo.put_states(
            app.app_id, [StateWrite(u, "foreground", 0, now_ms, now_ms + lease_ms) for u in online]
        )
        store_group(svc, app.app_id, "cost-big", members)
        big = metered_message(svc, sandbox, pollers, meter, app.app_id, "cost-big", "cost-c")
        # (c) again, the IM server naming the online members in the event (API.md, to.onlineUsers)
        big_in_event = metered_message(
            svc, sandbox, pollers, meter, app.app_id, "cost-big", "cost-c-event", online_users=online
        )
        store_group(svc, app.app_id, "cost-online", online[: args.cost_n])
        skipped = metered_message(svc, sandbox, pollers, meter, app.app_id, "cost-online", "cost-d")

        print()
        print(
            f"pipeline (warm send handler): {pipeline['notifications']} notifications in "
            f"{pipeline['seconds']:.2f} s = {pipeline['rate']:.0f}/s "
            f"({pipeline['chunks']} chunks of {pipeline['chunk_size']}, {pipeline['failed_chunks']} failed); "
            f"CPU {pipeline['cpu_ms_per_notification']:.3f} ms/notification"
        )
        print(
            f"  DynamoDB calls per chunk (aio: = the asyncio client): "
            f"{pipeline['dynamodb_calls_per_chunk']:.1f} {json.dumps(pipeline['dynamodb_calls'])}"
        )
        print(
            f"  ledger pages (checkpoints and badges: puts fenced by their page number) unmetered: "
            f"{pipeline['aio_put_wru_per_notification']:.3f} WRU/notification, "
            f"{pipeline['aio_put_bytes_per_wru']:.0f} bytes per write unit used (of 1024)"
        )
        print(f"  RSS {pipeline['rss_before_mb']:.0f} MB -> {pipeline['rss_after_mb']:.0f} MB")
        print(
            f"pipeline with ignoreBadge: {no_badge['rate']:.0f}/s "
            f"(ratio {no_badge['rate'] / raw['rate']:.2f}), "
            f"CPU {no_badge['cpu_ms_per_notification']:.3f} ms/notification"
        )
        print(
            f"pipeline with ignoreBadge, APNs answering in {FAR_APNS_MS} ms: {far['rate']:.0f}/s "
            f"({settings.send_max_unrecorded} sends without a written outcome at most: "
            f"{settings.send_max_unrecorded * 1000 / FAR_APNS_MS:.0f}/s at best); ledger pages "
            f"{far['aio_put_wru_per_notification']:.3f} WRU/notification"
        )
        print(
            f"raw aioapns (pre-built, concurrency {settings.apns_concurrency}): {raw['notifications']} in "
            f"{raw['seconds']:.2f} s = {raw['rate']:.0f}/s; "
            f"CPU {raw['cpu_ms_per_notification']:.3f} ms/notification"
        )
        if group:
            print(
                f"10,000-member stored group: last delivery {group['seconds']:.2f} s after submit "
                f"(fan-out handler {group['fanout_seconds']:.2f} s, "
                f"send handler {group['send_seconds']:.2f} s)"
            )
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
        if profile is not None:
            print()
            print(
                f"send handler CPU by function, cProfile (process CPU clock) of a "
                f"{args.profile_n}-notification pipeline run (worker threads' boto3 CPU lands "
                "in the loop's epoll wait). "
                "us per notification:"
            )
            st = pstats.Stats(profile)
            rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
            total_tt = sum(v[2] for _, v in rows)
            print(f"  total (profiled) {total_tt * 1e6 / args.profile_n:.0f} us")
            by_package: dict[str, float] = {}
            for (file, _line, _fn), (_cc, _nc, tt, _ct, _callers) in rows:
                by_package[package_of(file)] = by_package.get(package_of(file), 0.0) + tt
            top = sorted(by_package.items(), key=lambda kv: kv[1], reverse=True)[:14]
            print(
                "  own time by package: " + ", ".join(f"{k} {v * 1e6 / args.profile_n:.0f}" for k, v in top)
            )
            dump = tmp / "send.prof"
            profile.dump_stats(dump)
            print(f"  (pstats file: {dump}) top functions by own time:")
            for (file, line, fn), (_cc, nc, tt, ct, _callers) in rows[:20]:
                where = f"{Path(file).name}:{line}" if line else file
                print(
                    f"  {tt * 1e6 / args.profile_n:7.1f} own {ct * 1e6 / args.profile_n:8.1f} cum "
                    f"{nc / args.profile_n:6.2f} calls  {fn} ({where})"
                )

        print()
        print(
            "cost, metered from item sizes by DynamoDB's rules (bench/cost.py), every call of the real path:"
        )
        print(
            "submit (api) -> intake queue -> fan-out -> send queue -> send; "
            "event-source = Lambda's SQS polling"
        )
        for name, run in (
            ("(a) all pushed, badges", pushed),
            ("(b) ignoreBadge", ignore),
            ("(c) 10,000-member group, 90 % online", big),
            ("(c') the same, online members in the event (to.onlineUsers)", big_in_event),
            ("(d) all online (skipped)", skipped),
        ):
            print_metered(name, run)
        for w in meter.warnings:
            print(f"  warning: {w}")

        # ---- cost per million pushes, scenario (a) ----
        a, per = pushed["total"], max(pushed["pushes"], 1)
        send_mb, fanout_mb = lambda_memory_mb("send"), lambda_memory_mb("fan_out")
        send_s = pipeline["seconds"] / pipeline["notifications"]
        if group:
            fanout_s, fanout_src = group["fanout_seconds"] / group["members"], "10,000-member group run"
        else:
            fanout_s, fanout_src = pushed["seconds"]["fanout"] / per, "metered run (slowed by the meter)"
        sqs = a.sqs_total - a.sqs_empty_receives
        parts = {
            "DynamoDB writes": a.wru / per * DYNAMODB_USD_PER_WRU,
            "DynamoDB reads": a.rru / per * DYNAMODB_USD_PER_RRU,
            "Lambda send GB-s": send_mb / 1024 * send_s * LAMBDA_USD_PER_GB_S,
            "Lambda send invocations": pushed["invocations"]["send"] / per * LAMBDA_USD_PER_INVOCATION,
            "Lambda fan-out GB-s": fanout_mb / 1024 * fanout_s * LAMBDA_USD_PER_GB_S,
            "Lambda fan-out invocations": pushed["invocations"]["fanout"] / per * LAMBDA_USD_PER_INVOCATION,
            "SQS requests": sqs / per * SQS_USD_PER_REQUEST,
        }
        cost = sum(parts.values()) * 1e6
        print()
        print(
            f"cost per million pushes, scenario (a) ({pushed['pushes']} pushes in one group message; "
            f"us-east-1 on-demand prices):"
        )
        print(f"  DynamoDB: {a.wru / per:.3f} WRU + {a.rru / per:.3f} RRU per push")
        print(
            f"  Lambda send: {send_mb} MB x {send_s * 1000:.3f} ms per push (pipeline wall time), "
            f"{pushed['invocations']['send']} invocations; "
            f"fan-out: {fanout_mb} MB x {fanout_s * 1000:.3f} ms "
            f"per push ({fanout_src}), {pushed['invocations']['fanout']} invocation(s)"
        )
        print(
            f"  SQS: {sqs / per:.4f} requests per push ({a.sqs_empty_receives} empty receives left out: "
            "Lambda's idle polling is a fixed cost, not per push)"
        )
        for name, usd in parts.items():
            print(f"  {name:<28} ${usd * 1e6:.4f} per million")
        print()
        print(f"wru_per_push_ignore_badge: {ignore['total'].wru / max(ignore['pushes'], 1):.2f}")
        print(f"wru_per_push_group_90pct_online: {big['total'].wru / max(big['pushes'], 1):.2f}")
        print(f"wru_per_push: {a.wru / per:.2f}")
        # Beside it, what the operator-insight items add (day statistics, message list entry).
        insight = sum(v for k, v in a.wru_by_kind.items() if k.split(" ", 1)[-1].startswith(("ST/", "ML/")))
        print(f"wru_per_push_stats: {insight / per:.4f} (day statistics + message list, included above)")
        print(f"wru_per_skipped_recipient: {skipped['total'].wru / max(skipped['recipients'], 1):.2f}")
        print(
            f"send_cpu_vs_raw_aioapns: "
            f"{pipeline['cpu_ms_per_notification'] / raw['cpu_ms_per_notification']:.1f}"
        )
        print(f"cost_per_million_pushes_usd: {cost:.2f}")
        print(f"pipeline_vs_raw_aioapns: {pipeline['rate'] / raw['rate']:.2f}")

        # ---- the traffic users have: group messages to mostly online members (issue 17) ----
        provisioned = (
            cost
            + (
                a.wru / per * (DYNAMODB_PROVISIONED_USD_PER_WRU - DYNAMODB_USD_PER_WRU)
                + a.rru / per * (DYNAMODB_PROVISIONED_USD_PER_RRU - DYNAMODB_USD_PER_RRU)
            )
            * 1e6
        )
        online_wru = sum(v for k, v in big_in_event["total"].wru_by_kind.items() if "ON#" in k)
        print()
        print(
            "group message cost = DynamoDB (metered) + SQS requests (empty receives left out); "
            "SNS for the same pushes: $1.00 per million (publish $0.50 + mobile push $0.50)"
        )
        for name, run in (
            ("(c) presence via PUT /presence", big),
            ("(c') online in the event", big_in_event),
        ):
            print(f"  {name}: {group_cost_line(run)}")
        print(
            f"  provisioned, scenario (a): {a.wru / per:.3f} WRU at "
            f"${DYNAMODB_PROVISIONED_USD_PER_WRU * 1e6:.3f} + {a.rru / per:.3f} RRU at "
            f"${DYNAMODB_PROVISIONED_USD_PER_RRU * 1e6:.4f} per million "
            f"(WCU/RCU-hours at {PROVISIONED_UTILISATION:.0%} utilisation), Lambda and SQS as on demand"
        )
        print(f"rru_per_recipient: {big['total'].rru / max(big['recipients'], 1):.3f}")
        print(f"cost_per_group_message_usd: {group_cost(big):.5f}")
        print(f"cost_per_group_message_online_in_event_usd: {group_cost(big_in_event):.5f}")
        print(f"wru_per_online_member: {online_wru / max(len(online), 1):.4f}")
        print(f"cost_per_million_pushes_provisioned_usd: {provisioned:.2f}  (on demand: {cost:.2f})")
    finally:
        sandbox.stop()
        emulator.stop()


if __name__ == "__main__":
    main()
