"""A fresh emulator with the service's resources, and the API (`chalice local` as `make run` starts
it) pointed at it, as real processes: what the load tests drive over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from devstack import resources
from devstack.__main__ import stage_env
from devstack.emulator import Emulator, free_port, wait_http
from devstack.fast_emulator import start_emulator

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_KEY = "load-test-operator-key-0123"


@dataclass
class LocalApi:
    url: str
    emulator: Emulator
    table: str
    ddb: Any

    def call(self, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw, status = resp.read(), resp.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        return status, (json.loads(raw) if raw else None)


def process_tree_rss_bytes(pid: int) -> int:
    """RSS of a process and all its descendants (the emulator is a server plus a worker process)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


@pytest.fixture
def local_api(tmp_path: Path) -> Iterator[LocalApi]:
    emulator = start_emulator()
    env = {
        **os.environ,
        **stage_env("local"),
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_OVERRIDE": emulator.url,
        "OPERATOR_KEY": OPERATOR_KEY,
        "PYTHONUNBUFFERED": "1",
    }
    creds = {"region_name": "us-east-1", "aws_access_key_id": "local", "aws_secret_access_key": "local"}
    ddb = boto3.client("dynamodb", endpoint_url=emulator.url, **creds)
    sqs = boto3.client("sqs", endpoint_url=emulator.url, **creds)
    port = free_port()
    api: subprocess.Popen[bytes] | None = None
    try:
        resources.create_all(
            ddb,
            sqs,
            env["TABLE_NAME"],
            env["INTAKE_QUEUE_NAME"],
            env["SEND_QUEUE_NAME"],
            webhook_queue=env["WEBHOOK_QUEUE_NAME"],
        )
        with (tmp_path / "api.log").open("ab") as log:
            api = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "devstack.api",
                    "--no-autoreload",
                    "--stage",
                    "local",
                    "--port",
                    str(port),
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_http(f"http://127.0.0.1:{port}/openapi.json", timeout_s=60, proc=api)
        yield LocalApi(url=f"http://127.0.0.1:{port}", emulator=emulator, table=env["TABLE_NAME"], ddb=ddb)
    finally:
        if api is not None:
            api.terminate()
            api.wait(10)
        emulator.stop()
