"""`make run` for real: moto server, APNs sandbox, `chalice local` and the queue poller as processes;
a message sent with curl-like HTTP calls ends on the simulated phone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from devstack.emulator import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]


def call(method: str, url: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def test_make_run_serves_the_whole_product(tmp_path: Path) -> None:
    ports = {
        name: free_port()
        for name in (
            "API_PORT",
            "AWS_EMULATOR_PORT",
            "APNS_SANDBOX_PRODUCTION_PORT",
            "APNS_SANDBOX_DEVELOPMENT_PORT",
            "APNS_SANDBOX_UI_PORT",
        )
    }
    env = {
        **os.environ,
        **{k: str(v) for k, v in ports.items()},
        "DEVSTACK_STATE_DIR": str(tmp_path),
        "OPERATOR_KEY": "e2e-operator-key-0123456789",
    }
    for name in (
        "AWS_ENDPOINT_OVERRIDE",
        "TABLE_NAME",
        "INTAKE_QUEUE_NAME",
        "SEND_QUEUE_NAME",
        "SECRETS_PREFIX",
        "TRUSTED_PUSH_ISSUERS_FILE",
        "STAGE",
    ):
        env.pop(name, None)  # the stack sets its own, as on a developer's machine
    proc = subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{ports['API_PORT']}"
    sandbox = f"http://127.0.0.1:{ports['APNS_SANDBOX_UI_PORT']}"
    try:
        wait_http(f"{api}/openapi.json", timeout_s=60, proc=proc)  # type: ignore[arg-type]
        app = call("POST", f"{api}/v1/apps", {"name": "Chat"}, token=env["OPERATOR_KEY"])
        from chalicelib.services.auth import mint_token

        admin = mint_token(app["secretKey"], app["appId"], "im-server", "admin")
        key = call("POST", f"{sandbox}/sandbox/credentials/p8", {"bundleIds": ["com.example.chat"]})
        cred = call(
            "POST",
            f"{api}/v1/apps/{app['appId']}/credentials",
            {
                "type": "p8",
                "name": "k",
                "environment": "production",
                "p8": key["p8"],
                "keyId": key["keyId"],
                "teamId": key["teamId"],
                "bundleId": "com.example.chat",
            },
            token=admin,
        )
        token = call("POST", f"{sandbox}/sandbox/devices", {"bundleId": "com.example.chat"})["deviceToken"]
        call(
            "PUT",
            f"{api}/v1/apps/{app['appId']}/users/bob/devices/{token}",
            {"certificateId": cred["certificateId"]},
            token=admin,
        )
        call(
            "POST",
            f"{api}/v1/apps/{app['appId']}/messages",
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
        report = call("GET", f"{api}/v1/apps/{app['appId']}/messages/m-1/deliveries", token=admin)
        assert report["items"][0]["status"] == "sent"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    text = out.decode()
    assert token not in (tmp_path / "logs" / "api.log").read_text()  # access log keeps a prefix only
    assert "OPERATOR_KEY=e2e-operator-key" in text
    assert proc.returncode == 0, text[-2000:]
    time.sleep(0.5)
    for port in ports.values():  # Ctrl-C stopped every child: nothing listens any more
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        except OSError:
            continue
        raise AssertionError(f"port {port} still answers after Ctrl-C")
