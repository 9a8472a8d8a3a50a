"""`make run` (``python -m devstack``) as real processes for tests, and plain JSON calls to it: the one
place that knows how to start the whole local stack on free ports and give it an app to push with."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from devstack.aws_faults import FaultLayer
from devstack.emulator import free_port, wait_http

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = "com.example.chat"
PORT_NAMES = (
    "API_PORT",
    "AWS_EMULATOR_PORT",
    "APNS_SANDBOX_PRODUCTION_PORT",
    "APNS_SANDBOX_DEVELOPMENT_PORT",
    "APNS_SANDBOX_UI_PORT",
    "AWS_FAULTS_PORT",
)
# What the stack sets for itself, as on a developer's machine (the test session's values would leak in).
_STACK_OWNED = (
    "AWS_ENDPOINT_OVERRIDE",
    "AWS_EMULATOR_URL",
    "TABLE_NAME",
    "INTAKE_QUEUE_NAME",
    "SEND_QUEUE_NAME",
    "WEBHOOK_QUEUE_NAME",
    "SECRETS_PREFIX",
    "TRUSTED_PUSH_ISSUERS_FILE",
    "STAGE",
)


def call(method: str, url: str, body: Any = None, token: str | None = None, timeout_s: float = 30) -> Any:
    """One JSON request; the answer's JSON (None when empty). HTTP errors raise urllib's HTTPError."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def make_run_env(state_dir: Path, operator_key: str, **extra: str) -> dict[str, str]:
    """The environment of a `make run` on free ports, its state in ``state_dir``."""
    env = {
        **os.environ,
        **{name: str(free_port()) for name in PORT_NAMES},
        "DEVSTACK_STATE_DIR": str(state_dir),
        "OPERATOR_KEY": operator_key,
        **extra,
    }
    for name in _STACK_OWNED:
        env.pop(name, None)
    return env


def start_make_run(env: dict[str, str], out: IO[bytes] | int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """`make run`'s process, in its own process group (so a signal to the group reaches every part)."""
    return subprocess.Popen(
        [sys.executable, "-m", "devstack"],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def urls(env: dict[str, str]) -> tuple[str, str]:
    """(the API, the sandbox's control API) of a `make run` started with ``env``."""
    return f"http://127.0.0.1:{env['API_PORT']}", f"http://127.0.0.1:{env['APNS_SANDBOX_UI_PORT']}"


def app_with_credential(api: str, sandbox: str, operator_key: str) -> tuple[str, str, int]:
    """A new app with a production p8 credential from the sandbox: (appId, admin token, certificateId)."""
    from chalicelib.services.auth import mint_token

    app = call("POST", f"{api}/v1/apps", {"name": "Chat"}, token=operator_key)
    admin = mint_token(app["secretKey"], app["appId"], "im-server", "admin")
    key = call("POST", f"{sandbox}/sandbox/credentials/p8", {"bundleIds": [BUNDLE]})
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
            "bundleId": BUNDLE,
        },
        token=admin,
    )
    return app["appId"], admin, int(cred["certificateId"])


def device_of(api: str, sandbox: str, app_id: str, admin: str, cert_id: int, user: str) -> str:
    """A simulated phone registered for ``user``: its token."""
    token = str(call("POST", f"{sandbox}/sandbox/devices", {"bundleId": BUNDLE})["deviceToken"])
    call(
        "PUT",
        f"{api}/v1/apps/{app_id}/users/{user}/devices/{token}",
        {"certificateId": cert_id},
        token=admin,
    )
    return token


@dataclass
class RunningStack:
    """A running `make run` (its AWS fault layer off until a test sets it) and an app with a credential."""

    api: str
    sandbox: str
    layer: FaultLayer
    app_id: str
    admin: str
    cert: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes]

    @property
    def aws(self) -> str:
        """The emulator, direct (the tests' own calls are not faulted)."""
        return f"http://127.0.0.1:{self.env['AWS_EMULATOR_PORT']}"

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.aws,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )


@contextmanager
def running_stack(
    state_dir: Path, operator_key: str, start_timeout_s: float = 90, **extra: str
) -> Iterator[RunningStack]:
    """`make run` on free ports (``extra``: settings of its environment), up and with an app, then
    stopped (its whole process group) on the way out; its output in ``state_dir/make-run.log``."""
    env = make_run_env(state_dir, operator_key, **extra)
    log = (state_dir / "make-run.log").open("wb")
    proc = start_make_run(env, out=log)
    api, sandbox = urls(env)
    try:
        wait_http(f"{api}/openapi.json", timeout_s=start_timeout_s, proc=proc)  # type: ignore[arg-type]
        app_id, admin, cert = app_with_credential(api, sandbox, operator_key)
        layer = FaultLayer(int(env["AWS_FAULTS_PORT"]), proc=None)
        yield RunningStack(api, sandbox, layer, app_id, admin, cert, env, proc)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def fault_stack(state_dir: Path, operator_key: str) -> contextlib.AbstractContextManager[RunningStack]:
    """The stack of the fault tests. Retries come 1 s apart; the lease is 20 s (the local send
    function times out at 16 s; the template's at 60 s): a killed container's chunks are taken over
    quickly, while a chunk retrying throttled writes on a busy machine is not killed mid-send (with
    the tests' 3 s lease it was, at 2.4 s: a crash, up to 20 devices twice, where the fault tests
    count exactly once)."""
    return running_stack(state_dir, operator_key, AWS_FAULTS="off", RETRY_BASE_DELAY_S="1", SEND_LEASE_S="20")
