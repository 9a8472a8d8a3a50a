"""`make run`: the whole service on this machine, no AWS account.

Starts, in order: the AWS emulator (moto server) and the table/queues, the APNs
sandbox, the API (`chalice local --stage local`) and the queue poller that
drives the SQS-triggered handlers. Prints where everything listens, stays in
the foreground, and stops every child process on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3

from devstack import resources
from devstack.emulator import wait_http
from devstack.fast_emulator import start_emulator

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("DEVSTACK_STATE_DIR") or ROOT / ".local")


def stage_env(stage: str = "local") -> dict[str, str]:
    """The environment Chalice gives the functions of a stage (top level, then the stage's own)."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    env = dict(config.get("environment_variables", {}))
    env.update(config["stages"][stage].get("environment_variables", {}))
    return env


def operator_key() -> str:
    if os.environ.get("OPERATOR_KEY"):
        return os.environ["OPERATOR_KEY"]
    path = STATE / "operator-key"
    if not path.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        path.write_text("local-" + secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def port(name: str, default: int) -> int:
    return int(os.environ.get(name) or default)


_DEVICE_TOKEN = re.compile(rb"\b([0-9a-fA-F]{8})[0-9a-fA-F]{56,}\b")


def redact(line: bytes) -> bytes:
    """Device tokens travel in URL paths, so access logs would hold them whole: keep 8 characters."""
    return _DEVICE_TOKEN.sub(rb"\1...", line)


def spawn(
    args: list[str], env: dict[str, str], log_name: str, *, redact_tokens: bool = False
) -> subprocess.Popen[bytes]:
    """A child in its own process group (so stopping it stops its children), logging to .local/logs."""
    logs = STATE / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    out = (logs / f"{log_name}.log").open("ab")
    if not redact_tokens:
        return subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    proc = subprocess.Popen(
        args, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(redact(line))
            out.flush()

    threading.Thread(target=pump, name=f"log-{log_name}", daemon=True).start()
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def main() -> int:
    api_port = port("API_PORT", 8000)
    emu_port = port("AWS_EMULATOR_PORT", 5000)
    prod_port = port("APNS_SANDBOX_PRODUCTION_PORT", 2197)
    dev_port = port("APNS_SANDBOX_DEVELOPMENT_PORT", 2196)
    ui_port = port("APNS_SANDBOX_UI_PORT", 8025)
    sandbox_state = STATE / "apns-sandbox"
    key = operator_key()
    # Fake credentials: the emulator accepts any, and nothing here may reach a real AWS account.
    for name, default in (
        ("AWS_ACCESS_KEY_ID", "local"),
        ("AWS_SECRET_ACCESS_KEY", "local"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, default)
    children: list[subprocess.Popen[bytes]] = []

    emulator = start_emulator(emu_port)
    children.append(emulator.proc)
    try:
        env = {
            **os.environ,
            **stage_env("local"),
            "AWS_ENDPOINT_OVERRIDE": emulator.url,
            "OPERATOR_KEY": key,
            "APNS_PRODUCTION_HOST": "127.0.0.1",
            "APNS_PRODUCTION_PORT": str(prod_port),
            "APNS_DEVELOPMENT_HOST": "127.0.0.1",
            "APNS_DEVELOPMENT_PORT": str(dev_port),
            "APNS_EXTRA_CA_FILE": str(sandbox_state / "ca.pem"),
            "TRUSTED_PUSH_ISSUERS_FILE": str(sandbox_state / "ca.pem"),
            "APNS_SANDBOX_STATE_DIR": str(sandbox_state),
            "APNS_SANDBOX_PRODUCTION_PORT": str(prod_port),
            "APNS_SANDBOX_DEVELOPMENT_PORT": str(dev_port),
            "APNS_SANDBOX_UI_PORT": str(ui_port),
            "PYTHONUNBUFFERED": "1",
        }
        ddb = boto3.client("dynamodb", endpoint_url=emulator.url, region_name=env["AWS_REGION"])
        sqs = boto3.client("sqs", endpoint_url=emulator.url, region_name=env["AWS_REGION"])
        resources.create_all(ddb, sqs, env["TABLE_NAME"], env["INTAKE_QUEUE_NAME"], env["SEND_QUEUE_NAME"])

        sandbox = spawn([sys.executable, "-m", "apns_sandbox"], env, "apns-sandbox")
        children.append(sandbox)
        wait_http(f"http://127.0.0.1:{ui_port}/sandbox/ca.pem", proc=sandbox)

        chalice = str(Path(sys.executable).with_name("chalice"))
        api = spawn(
            [
                chalice,
                "local",
                "--no-autoreload",
                "--stage",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(api_port),
            ],
            env,
            "api",
            redact_tokens=True,
        )
        children.append(api)
        wait_http(f"http://127.0.0.1:{api_port}/openapi.json", proc=api)

        poller = spawn([sys.executable, "-m", "devstack.poller"], env, "poller")
        children.append(poller)

        print(
            f"""
APNs offline push: local stack is up (logs in .local/logs/)

  API (chalice local)            http://127.0.0.1:{api_port}      OpenAPI: /openapi.json
  Operator console               http://127.0.0.1:{api_port}/console  (sign in with OPERATOR_KEY)
  AWS emulator (moto server)     {emulator.url}
      table {env["TABLE_NAME"]}; queues {env["INTAKE_QUEUE_NAME"]}, {env["SEND_QUEUE_NAME"]} (+ -dlq)
  APNs sandbox production        https://127.0.0.1:{prod_port}   (HTTP/2 + TLS)
  APNs sandbox development       https://127.0.0.1:{dev_port}
  APNs sandbox inbox + control   http://127.0.0.1:{ui_port}/
  SQS handlers                   driven by the poller (devstack.poller)

  OPERATOR_KEY={key}

Ctrl-C stops everything.""",
            flush=True,
        )
        while True:
            for proc in children:
                if proc.poll() is not None:
                    print(
                        f"a child process exited ({proc.args!r}, code {proc.returncode}); stopping",
                        flush=True,
                    )
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping...", flush=True)
        return 0
    finally:
        for proc in reversed(children):
            stop(proc)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    sys.exit(main())
