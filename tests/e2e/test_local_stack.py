"""`make run` for real: moto server, APNs sandbox, `chalice local` and the queue poller as processes;
a message sent with curl-like HTTP calls ends on the simulated phone."""

from __future__ import annotations

import os
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

from devstack.emulator import wait_http
from tests.localstack import (
    PORT_NAMES,
    app_with_credential,
    call,
    device_of,
    make_run_env,
    start_make_run,
    urls,
)

OPERATOR_KEY = "e2e-operator-key-0123456789"


def test_make_run_serves_the_whole_product(tmp_path: Path) -> None:
    env = make_run_env(tmp_path, OPERATOR_KEY)
    proc = start_make_run(env)
    api, sandbox = urls(env)
    try:
        wait_http(f"{api}/openapi.json", timeout_s=60, proc=proc)  # type: ignore[arg-type]
        app_id, admin, cert = app_with_credential(api, sandbox, OPERATOR_KEY)
        token = device_of(api, sandbox, app_id, admin, cert, "bob")
        call(
            "POST",
            f"{api}/v1/apps/{app_id}/messages",
            {
                "messageId": "m-1",
                "sendTime": int(time.time()),
                "sender": {"userId": "alice", "nickname": "Alice"},
                "to": {"userId": "bob"},
                "elems": [{"type": "text", "text": "hello from make run"}],
            },
            token=admin,
        )
        deadline = time.monotonic() + 30
        items: list[Any] = []
        while time.monotonic() < deadline and not items:
            items = call("GET", f"{sandbox}/sandbox/notifications?deviceToken={token}")["items"]
            time.sleep(0.2)
        assert items, "the notification never reached the sandbox"
        assert items[0]["payload"]["aps"]["alert"]["body"] == "Alice:hello from make run"
        report = call("GET", f"{api}/v1/apps/{app_id}/messages/m-1/deliveries", token=admin)
        assert report["items"][0]["status"] == "sent"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    text = out.decode()
    assert token not in (tmp_path / "logs" / "api.log").read_text()  # access log keeps a prefix only
    assert f"OPERATOR_KEY={OPERATOR_KEY}" in text
    assert proc.returncode == 0, text[-2000:]
    time.sleep(0.5)
    for name in PORT_NAMES:  # Ctrl-C stopped every child: nothing listens any more
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{env[name]}/", timeout=1)
        except OSError:
            continue
        raise AssertionError(f"port {env[name]} still answers after Ctrl-C")
