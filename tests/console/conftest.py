"""`make run` as processes (emulator, sandbox, `chalice local`, poller) for the console's tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_KEY = "console-operator-key-0123456789"


@dataclass
class LocalStack:
    api: str
    sandbox: str
    operator_key: str
    log: Path

    def call(self, method: str, url: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state = tmp_path_factory.mktemp("console-stack")
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
        "DEVSTACK_STATE_DIR": str(state),
        "OPERATOR_KEY": OPERATOR_KEY,
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
    log = state / "make-run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = LocalStack(
        api=f"http://127.0.0.1:{ports['API_PORT']}",
        sandbox=f"http://127.0.0.1:{ports['APNS_SANDBOX_UI_PORT']}",
        operator_key=OPERATOR_KEY,
        log=log,
    )
    try:
        wait_http(f"{stack.api}/openapi.json", timeout_s=90, proc=proc)  # type: ignore[arg-type]
        yield stack
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def raw_request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of any answer, errors included."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()
