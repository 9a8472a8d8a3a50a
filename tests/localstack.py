"""`make run` (``python -m devstack``) as real processes for tests, and plain JSON calls to it: the one
place that knows how to start the whole local stack on free ports and give it an app to push with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import IO, Any

from devstack.emulator import free_port

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
