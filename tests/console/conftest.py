"""`make run` as processes (emulator, sandbox, `chalice local`, poller) for the console's tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack.emulator import wait_http
from tests.localstack import call, make_run_env, start_make_run, urls

OPERATOR_KEY = "console-operator-key-0123456789"


@dataclass
class LocalStack:
    api: str
    sandbox: str
    operator_key: str
    log: Path
    emulator: str = ""  # the AWS emulator's URL (tests that seed data directly)

    def call(self, method: str, url: str, body: Any = None, token: str | None = None) -> Any:
        return call(method, url, body, token)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    state = tmp_path_factory.mktemp("console-stack")
    env = make_run_env(state, OPERATOR_KEY)
    log = state / "make-run.log"
    with log.open("wb") as out:
        proc = start_make_run(env, out)
    api, sandbox = urls(env)
    stack = LocalStack(
        api=api,
        sandbox=sandbox,
        operator_key=OPERATOR_KEY,
        log=log,
        emulator=f"http://127.0.0.1:{env['AWS_EMULATOR_PORT']}",
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
