"""Lambda's cold start and its freeze, measured (`make bench` prints both):

- ``cold_start_ms``: a new send container (devstack.lambda_runtime: a process importing the app)
  until it is ready, plus the first push on a fresh APNs connection (TLS, HTTP/2, provider token);
- ``first_push_after_freeze_ms``: a warm container's connection is silenced (the sandbox's
  ``{connections: "silent"}``, as a NAT or APNs drops a frozen container's connection without a
  word), nothing runs on its event loop for ``BENCH_FREEZE_S`` (60 s), then one push.

    python -m bench.freeze
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

BUNDLE = "com.example.bench"


def main() -> None:
    from apns_sandbox.testing import start_sandbox
    from chalicelib.apns.client import ApnsClients, run
    from chalicelib.models.credentials import Credential
    from chalicelib.settings import load_settings
    from devstack.lambda_runtime import Container

    freeze_s = float(os.environ.get("BENCH_FREEZE_S", "60"))
    sandbox = start_sandbox(Path(tempfile.mkdtemp(prefix="bench-freeze-")))
    container = Container("send", 60.0)
    try:
        os.environ.update(sandbox.service_env())
        container({"Records": []})  # cold: the container imports the app
        imports_ms = container.last_cold_start_ms
        settings = load_settings({**os.environ, "APNS_REQUEST_TIMEOUT_S": "10"})
        clients = ApnsClients(settings)
        key = sandbox.issue_p8([BUNDLE])
        cred = Credential(
            certificate_id=1,
            name="bench",
            type="p8",
            bundle_id=BUNDLE,
            environment="production",
            created_at=datetime.now(UTC),
            fingerprint_sha256="bench",
        )
        secret = {"type": "p8", "p8": key["p8"], "keyId": key["keyId"], "teamId": key["teamId"]}
        client = clients.get("bench", cred, secret)
        token = sandbox.create_device(BUNDLE)

        def push() -> tuple[float, int]:
            started = time.perf_counter()
            result = run(
                clients.send(
                    client,
                    token=token,
                    message={"aps": {"alert": "x"}},
                    notification_id=str(uuid.uuid4()).upper(),
                    priority=10,
                    collapse="c",
                )
            )
            return (time.perf_counter() - started) * 1000, result.status

        first_ms, _ = push()
        push()  # warm
        sandbox.request("PUT", "/sandbox/faults", {"connections": "silent"})
        time.sleep(freeze_s)  # frozen: nothing runs on the loop
        after_ms, status = push()
        print(
            f"cold_start_ms: {imports_ms + first_ms:.0f}  "
            f"(app import {imports_ms:.0f} + first push {first_ms:.0f})"
        )
        print(
            f"first_push_after_freeze_ms: {after_ms:.0f}  "
            f"(freeze {freeze_s:.0f} s, connection silenced; APNs {status})"
        )
    finally:
        container.discard()
        sandbox.stop()


if __name__ == "__main__":
    main()
