"""One-to-one latency through `make run`'s path: API -> intake queue -> fan-out -> send queue -> send ->
the APNs sandbox receiving it (its own receive time, so polling for it adds nothing).

``BENCH_C2C_N`` (200) sequential messages to one user with one phone, after one warm-up message
(a cold start: its figure is printed apart). `make bench` prints:

    c2c_latency_p50_ms / c2c_latency_p99_ms

    python -m bench.c2c_latency
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

OPERATOR_KEY = "bench-c2c-operator-key-0123456789"


def main() -> None:
    from devstack.emulator import wait_http
    from tests.localstack import app_with_credential, call, device_of, make_run_env, start_make_run, urls

    n = int(os.environ.get("BENCH_C2C_N", "200"))
    state = Path(tempfile.mkdtemp(prefix="bench-c2c-"))
    env = make_run_env(state, OPERATOR_KEY)
    log = (state / "make-run.log").open("wb")
    proc = start_make_run(env, out=log)
    api, sandbox = urls(env)
    try:
        wait_http(f"{api}/openapi.json", timeout_s=120, proc=proc)  # type: ignore[arg-type]
        app_id, admin, cert = app_with_credential(api, sandbox, OPERATOR_KEY)
        token = device_of(api, sandbox, app_id, admin, cert, "bob")

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
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
