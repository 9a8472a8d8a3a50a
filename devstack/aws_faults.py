"""AWS's everyday faults, on demand: an HTTP proxy in front of the emulator that the functions'
clients (boto3 and the async DynamoDB client alike) talk to instead of it.

``AWS_FAULTS`` (or ``PUT /_faults`` with the same text) says what happens, each request drawn at
random:

    throttle:0.1          10 % answered with the service's throttling error (not forwarded)
    error:0.01            1 % answered 500 InternalServerError (not forwarded)
    applied-error:0.01    1 % forwarded (applied!) and then answered 500: an ambiguous write
    unprocessed:0.3       BatchGetItem/BatchWriteItem: each key/item left unprocessed with p=0.3
                          (forwarded without it, handed back in UnprocessedKeys/UnprocessedItems)
    latency:5-50          every request waits 5-50 ms (uniform) first
    ...@UpdateItem|PutItem  any rule limited to these operations (e.g. applied-error:0.05@UpdateItem)

``off`` (or an empty text) forwards everything untouched. ``GET /_faults`` answers the rules and
what was injected so far. Run as ``python -m devstack.aws_faults --port P --upstream URL``;
`make run` starts it when ``AWS_FAULTS`` is set (devstack/__main__.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import re
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("devstack.aws_faults")

KINDS = ("throttle", "error", "applied-error", "unprocessed", "latency")
_RULE = re.compile(r"^(?P<kind>[a-z-]+):(?P<value>[0-9.]+(?:-[0-9.]+)?)(?:ms)?(?:@(?P<ops>[A-Za-z|]+))?$")
# The throttling error each service answers (DynamoDB has three; drawn in turn).
_THROTTLE_CODES = {
    "dynamodb": ("ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded"),
    "sqs": ("RequestThrottled",),
    "secretsmanager": ("ThrottlingException",),
}
_JSON_PREFIX = {
    "dynamodb": "com.amazonaws.dynamodb.v20120810#",
    "sqs": "com.amazonaws.sqs#",
    "secretsmanager": "",
}
_HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


class BadFaults(ValueError):
    """``AWS_FAULTS`` that cannot be read; the message says how to write it."""


@dataclass(frozen=True)
class Rule:
    kind: str
    low: float
    high: float
    ops: frozenset[str] = frozenset()

    def applies(self, op: str) -> bool:
        return not self.ops or op in self.ops


@dataclass
class Faults:
    rules: list[Rule] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    @classmethod
    def parse(cls, text: str | None) -> Faults:
        rules: list[Rule] = []
        for part in (text or "").replace(" ", "").split(","):
            if not part or part == "off":
                continue
            m = _RULE.match(part)
            if m is None or m["kind"] not in KINDS:
                raise BadFaults(
                    f"AWS_FAULTS: cannot read {part!r}: write kind:probability[@Op|Op] with kind one of "
                    f"{', '.join(KINDS[:-1])} (e.g. throttle:0.1), or latency:MIN-MAX in ms "
                    "(e.g. latency:5-50)"
                )
            low, _, high = m["value"].partition("-")
            lo, hi = float(low), float(high or low)
            if m["kind"] != "latency" and not 0 <= lo <= 1:
                raise BadFaults(f"AWS_FAULTS: {part!r}: a probability is between 0 and 1")
            ops = frozenset(m["ops"].split("|")) if m["ops"] else frozenset()
            rules.append(Rule(m["kind"], lo, hi, ops))
        return cls(rules)

    def chance(self, kind: str, op: str) -> float:
        return max((r.low for r in self.rules if r.kind == kind and r.applies(op)), default=0.0)

    def latency_s(self, op: str) -> float:
        spans = [(r.low, r.high) for r in self.rules if r.kind == "latency" and r.applies(op)]
        return sum(random.uniform(lo, hi) for lo, hi in spans) / 1000  # noqa: S311 (fault dice)

    def describe(self) -> dict[str, Any]:
        return {
            "rules": [
                f"{r.kind}:{r.low:g}" + (f"-{r.high:g}" if r.high != r.low else "") for r in self.rules
            ],
            "injected": dict(self.counts),
        }


def roll(p: float) -> bool:
    return p > 0 and random.random() < p  # noqa: S311 (fault dice)


def service_and_op(headers: Any, body: bytes) -> tuple[str, str]:
    """("dynamodb", "UpdateItem") from the SigV4 credential scope and X-Amz-Target (or Action=)."""
    auth = headers.get("Authorization", "")
    m = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", auth)
    service = m.group(1) if m else ""
    target = headers.get("X-Amz-Target", "")
    if target:
        return service, target.rsplit(".", 1)[-1]
    m2 = re.search(rb"(?:^|&)Action=([A-Za-z]+)", body)
    return service, m2.group(1).decode() if m2 else ""


def error_body(service: str, code: str, status: int) -> tuple[int, dict[str, str], bytes]:
    message = f"injected by the fault layer (AWS_FAULTS): {code}"
    body = json.dumps({"__type": _JSON_PREFIX.get(service, "") + code, "message": message}).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "fault-layer"}
    if service == "sqs":
        headers["x-amzn-query-error"] = f"{code};{'Receiver' if status >= 500 else 'Sender'}"
    return status, headers, body


def split_batch(op: str, body: bytes, p: float) -> tuple[bytes, dict[str, Any]] | None:
    """The request without the keys/items left unprocessed, and what to hand back; None: none left."""
    data = json.loads(body)
    requests = data.get("RequestItems") or {}
    kept: dict[str, Any] = {}
    left: dict[str, Any] = {}
    total = 0
    for table, spec in requests.items():
        entries = spec["Keys"] if op == "BatchGetItem" else spec
        keep, drop = [], []
        for entry in entries:
            (drop if roll(p) else keep).append(entry)
        total += len(keep)
        if op == "BatchGetItem":
            if keep:
                kept[table] = {**spec, "Keys": keep}
            if drop:
                left[table] = {**spec, "Keys": drop}
        else:
            if keep:
                kept[table] = keep
            if drop:
                left[table] = drop
    if not left:
        return None
    if total == 0:  # AWS processes at least something (or throttles the whole call): keep one
        table = next(iter(left))
        if op == "BatchGetItem":
            first, rest = left[table]["Keys"][0], left[table]["Keys"][1:]
            kept[table] = {**left[table], "Keys": [first]}
            left[table] = {**left[table], "Keys": rest}
        else:
            first, rest = left[table][0], left[table][1:]
            kept[table] = [first]
            left[table] = rest
        if not left[table] or (op == "BatchGetItem" and not left[table]["Keys"]):
            del left[table]
        if not left:
            return None
    data["RequestItems"] = kept
    return json.dumps(data).encode(), left


def merge_unprocessed(op: str, body: bytes, left: dict[str, Any]) -> bytes:
    data = json.loads(body)
    name = "UnprocessedKeys" if op == "BatchGetItem" else "UnprocessedItems"
    merged = dict(data.get(name) or {})
    for table, spec in left.items():
        if op == "BatchGetItem":
            if table in merged:
                merged[table] = {**merged[table], "Keys": merged[table]["Keys"] + spec["Keys"]}
            else:
                merged[table] = spec
        else:
            merged[table] = merged.get(table, []) + spec
    data[name] = merged
    return json.dumps(data).encode()


class FaultProxy:
    def __init__(self, upstream: str, faults: Faults) -> None:
        self.upstream = upstream.rstrip("/")
        self.faults = faults
        self._session: Any = None

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        if request.path == "/_faults":
            return await self._control(request)
        body = await request.read()
        service, op = service_and_op(request.headers, body)
        faults = self.faults
        delay = faults.latency_s(op)
        if delay:
            await asyncio.sleep(delay)
        if roll(faults.chance("throttle", op)):
            codes = _THROTTLE_CODES.get(service, ("ThrottlingException",))
            faults.counts["throttle"] += 1
            return self._answer(*error_body(service, codes[faults.counts["throttle"] % len(codes)], 400))
        if roll(faults.chance("error", op)):
            faults.counts["error"] += 1
            return self._answer(*error_body(service, "InternalServerError", 500))
        left: dict[str, Any] | None = None
        if op in ("BatchGetItem", "BatchWriteItem") and (p := faults.chance("unprocessed", op)):
            split = split_batch(op, body, p)
            if split is not None:
                body, left = split
                faults.counts["unprocessed"] += sum(
                    len(v["Keys"]) if op == "BatchGetItem" else len(v) for v in left.values()
                )
        status, headers, answer = await self._forward(request, body)
        if roll(faults.chance("applied-error", op)):
            faults.counts["applied-error"] += 1
            return self._answer(*error_body(service, "InternalServerError", 500))
        if left is not None and status == 200:
            answer = merge_unprocessed(op, answer, left)
            if "x-amz-crc32" in {k.lower() for k in headers}:
                headers = {k: v for k, v in headers.items() if k.lower() != "x-amz-crc32"}
                headers["x-amz-crc32"] = str(zlib.crc32(answer) & 0xFFFFFFFF)
        return web.Response(status=status, headers=headers, body=answer)

    async def _forward(self, request: Any, body: bytes) -> tuple[int, dict[str, str], bytes]:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=60),
                connector=aiohttp.TCPConnector(limit=256),
            )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as resp:
            answer = await resp.read()
            out = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP}
            return resp.status, out, answer

    @staticmethod
    def _answer(status: int, headers: dict[str, str], body: bytes) -> Any:
        from aiohttp import web

        return web.Response(status=status, headers=headers, body=body)

    async def _control(self, request: Any) -> Any:
        from aiohttp import web

        if request.method == "PUT":
            text = (await request.read()).decode()
            try:
                self.faults = Faults.parse(text)
            except BadFaults as exc:
                return web.json_response({"error": str(exc)}, status=400)
            log.info("faults now: %s", text or "off")
        elif request.method == "DELETE":
            self.faults = Faults()
        return web.json_response(self.faults.describe())


async def serve(port: int, upstream: str, faults: Faults, host: str = "127.0.0.1") -> None:
    from aiohttp import web

    proxy = FaultProxy(upstream, faults)
    server = web.Server(proxy.handle, access_log=None)
    runner = web.ServerRunner(server, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, reuse_address=True)
    await site.start()
    print(f"AWS fault layer on http://{host}:{port} -> {upstream}: {faults.describe()['rules']}", flush=True)
    await asyncio.Event().wait()


@dataclass
class FaultLayer:
    """The proxy as a subprocess (tests, bench): its URL, and its rules changed while it runs."""

    port: int
    proc: Any

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, text: str) -> dict[str, Any]:
        return self._call("PUT", text.encode())

    def stats(self) -> dict[str, Any]:
        return self._call("GET", None)

    def _call(self, method: str, data: bytes | None) -> dict[str, Any]:
        import urllib.request

        req = urllib.request.Request(self.url + "/_faults", data=data, method=method)  # noqa: S310
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (loopback only)
            answer: dict[str, Any] = json.loads(resp.read())
        return answer

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def start_fault_layer(upstream: str, faults: str = "", port: int = 0) -> FaultLayer:
    import subprocess
    import sys
    from pathlib import Path

    from devstack.emulator import free_port, wait_http

    port = port or free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devstack.aws_faults",
            "--port",
            str(port),
            "--upstream",
            upstream,
            "--faults",
            faults,
        ],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/_faults", proc=proc)
    return FaultLayer(port, proc)


def main(argv: list[str] | None = None) -> None:
    import os

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the emulator's URL")
    parser.add_argument("--faults", default=os.environ.get("AWS_FAULTS", ""))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s aws-faults %(levelname)s %(message)s")
    try:
        faults = Faults.parse(args.faults)
    except BadFaults as exc:
        raise SystemExit(str(exc)) from None
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.upstream, faults))


if __name__ == "__main__":
    main()
