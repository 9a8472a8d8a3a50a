"""One-to-one latency through `make run`'s path: API -> intake queue -> fan-out -> send queue -> send ->
the APNs sandbox receiving it (its own receive time, so polling for it adds nothing).

``BENCH_C2C_N`` (200) sequential messages to one user with one phone, after one warm-up message
(a cold start: its figure is printed apart). `make bench` prints:

    c2c_latency_p50_ms / c2c_latency_p99_ms

    python -m bench.c2c_latency
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

OPERATOR_KEY = "bench-c2c-operator-key-0123456789"


def main() -> None:
    from tests.localstack import call, device_of, running_stack

    n = int(os.environ.get("BENCH_C2C_N", "200"))
    state = Path(tempfile.mkdtemp(prefix="bench-c2c-"))
    with running_stack(state, OPERATOR_KEY, start_timeout_s=120) as stack:
        api, sandbox, app_id, admin = stack.api, stack.sandbox, stack.app_id, stack.admin
        token = device_of(api, sandbox, app_id, admin, stack.cert, "bob")

        def one(i: int) -> float:
            message_id = f"c2c-{i}-{time.time_ns()}"
            body = {
                "messageId": message_id,
                "sendTime": int(time.time()),
                "sender": {"userId": "alice", "nickname": "Alice"},
                "to": {"userId": "bob"},
                "elems": [{"type": "text", "text": f"hi {i}"}],
            }
            submitted_ms = time.time() * 1000
            call("POST", f"{api}/v1/apps/{app_id}/messages", body, token=admin)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                got = call("GET", f"{sandbox}/sandbox/notifications?deviceToken={token}&limit=5")["items"]
                for item in got:
                    if item["payload"].get("m") == message_id:
                        return float(item["receivedAtMs"]) - submitted_ms
                time.sleep(0.002)
            raise TimeoutError(f"message {i} did not reach the sandbox in 30 s")

        first = one(0)
        latencies = sorted(one(i) for i in range(1, n + 1))
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, round(0.99 * len(latencies)) - 1)]
        print(
            f"one-to-one through make run's path, {n} sequential messages (submit -> sandbox receipt): "
            f"p50 {p50:.0f} ms, p90 {latencies[round(0.9 * len(latencies)) - 1]:.0f} ms, p99 {p99:.0f} ms, "
            f"max {latencies[-1]:.0f} ms (first message, cold: {first:.0f} ms)"
        )
        print(f"c2c_latency_p50_ms: {p50:.0f}")
        print(f"c2c_latency_p99_ms: {p99:.0f}")


if __name__ == "__main__":
    main()
