"""The real local stack for end-to-end tests: API -> SQS (moto server) -> fan-out -> send -> APNs sandbox.

The API runs in-process (chalice's test client); the SQS-triggered handlers
are driven from the emulator's queues by the same poller `make run` uses,
pumped synchronously so each test knows when everything has settled.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from apns_sandbox.testing import SandboxProcess
from chalicelib import handlers
from devstack import aws_actions
from devstack.poller import QueuePoller
from tests.conftest import Api, AppContext

BUNDLE = "com.example.chat"
_ids = itertools.count(1)


@dataclass
class PushApp:
    """An app with a production and a development credential issued by the sandbox."""

    ctx: AppContext
    sandbox: SandboxProcess
    prod_cert: int
    dev_cert: int

    def device(self, user: str, environment: str = "production", push_enabled: bool = True) -> str:
        token = self.sandbox.create_device(BUNDLE, environment)
        cert = self.prod_cert if environment == "production" else self.dev_cert
        resp = self.ctx.api.call(
            "PUT",
            self.ctx.path(f"/users/{user}/devices/{token}"),
            {"certificateId": cert, "pushEnabled": push_enabled},
            token=self.ctx.admin,
        )
        assert resp.status_code == 200, resp.body
        return token

    def call(self, method: str, suffix: str, body: Any = None, user: str | None = None) -> Any:
        token = self.ctx.token(user) if user else self.ctx.admin
        return self.ctx.api.call(method, self.ctx.path(suffix), body, token=token)

    def message(self, to: dict[str, Any], **extra: Any) -> dict[str, Any]:
        body = {
            "messageId": f"m-{next(_ids)}-{time.monotonic_ns()}",
            "sendTime": int(time.time()),
            "sender": {"userId": "alice", "nickname": "Alice"},
            "to": to,
            "elems": [{"type": "text", "text": "hi"}],
        }
        body.update(extra)
        return body

    def deliveries(self, message_id: str, **query: str) -> list[dict[str, Any]]:
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        resp = self.call("GET", f"/messages/{message_id}/deliveries" + (f"?{qs}" if qs else ""))
        assert resp.status_code == 200, resp.body
        return list(resp.data["items"])


@dataclass
class Stack:
    api: Api
    sandbox: SandboxProcess
    env: dict[str, str]
    sqs: Any
    intake: QueuePoller
    send_poller: QueuePoller
    urls: dict[str, str] = field(default_factory=dict)

    def pump(self, timeout_s: float = 30.0) -> None:
        """Drive both queues until nothing is waiting, in flight or delayed."""
        deadline = time.monotonic() + timeout_s
        idle_rounds = 0
        while time.monotonic() < deadline:
            worked = self.intake.poll_once() + self.send_poller.poll_once()
            if worked:
                idle_rounds = 0
                continue
            if self._queues_empty():
                idle_rounds += 1
                if idle_rounds >= 2:
                    return
            else:
                time.sleep(0.1)
        raise TimeoutError("queues did not drain")

    def _queues_empty(self) -> bool:
        names = [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ]
        for url in (self.intake.queue_url, self.send_poller.queue_url):
            attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
            if any(int(attrs.get(n, 0)) for n in names):
                return False
        return True

    def dead_letters(self, queue: str) -> list[dict[str, Any]]:
        url = self.sqs.get_queue_url(QueueName=f"{queue}-dlq")["QueueUrl"]
        out = []
        while True:
            resp = self.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], WaitTimeSeconds=0
            )
            msgs = resp.get("Messages", [])
            if not msgs:
                return out
            for m in msgs:
                out.append(m)
                self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])

    def send_raw(self, queue: str, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.sqs.get_queue_url(QueueName=queue)["QueueUrl"], MessageBody=body)


@pytest.fixture(scope="session")
def stack(stack_env: dict[str, str], chalice_client: Any, sandbox: SandboxProcess) -> Stack:
    sqs = boto3.client("sqs", endpoint_url=stack_env["AWS_ENDPOINT_OVERRIDE"], region_name="us-east-1")

    def intake(event: dict[str, Any], _ctx: Any) -> Any:
        with aws_actions.as_function("fan_out"):
            return handlers.handle_intake_records(event["Records"])

    def send(event: dict[str, Any], _ctx: Any) -> Any:
        with aws_actions.as_function("send"):
            return handlers.handle_send_records(event["Records"])

    def poller(queue: str, handler: Any) -> QueuePoller:
        url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
        return QueuePoller(sqs=sqs, queue_url=url, handler=handler, name=queue, wait_s=0)

    return Stack(
        api=Api(chalice_client),
        sandbox=sandbox,
        env=stack_env,
        sqs=sqs,
        intake=poller(stack_env["INTAKE_QUEUE_NAME"], intake),
        send_poller=poller(stack_env["SEND_QUEUE_NAME"], send),
    )


@pytest.fixture
def push_app(stack: Stack, app_ctx: AppContext) -> Iterator[PushApp]:
    key = stack.sandbox.issue_p8([BUNDLE])
    creds = []
    for env in ("production", "development"):
        resp = app_ctx.api.call(
            "POST",
            app_ctx.path("/credentials"),
            {
                "type": "p8",
                "name": f"key-{env}",
                "environment": env,
                "p8": key["p8"],
                "keyId": key["keyId"],
                "teamId": key["teamId"],
                "bundleId": BUNDLE,
            },
            token=app_ctx.admin,
        )
        assert resp.status_code == 201, resp.body
        creds.append(resp.data["certificateId"])
    yield PushApp(ctx=app_ctx, sandbox=stack.sandbox, prod_cert=creds[0], dev_cert=creds[1])
    stack.sandbox.clear_faults()


def payloads(sandbox: SandboxProcess, token: str) -> list[dict[str, Any]]:
    return [n["payload"] for n in sandbox.notifications(token)]


def dumps(value: Any) -> str:
    return json.dumps(value)


ROOT = Path(__file__).resolve().parents[2]


class Poller:
    """`python -m devstack.poller` as its own process group, killable mid-flight."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = {k: v for k, v in env.items() if not k.startswith("_")}
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.poller"],
            cwd=ROOT,
            # In-process handlers (no Lambda containers): these tests crash the whole poller, with
            # the 3 s lease of stack_env, shorter than any send timeout a container could keep.
            env={
                **os.environ,
                "LAMBDA_CONTAINERS": "0",
                **self.env,
                "PYTHONPATH": str(ROOT),
                "LOG_LEVEL": "WARNING",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the process stalls mid-flight (a frozen container), its sockets left open."""
        assert self.proc is not None and self.proc.poll() is None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)


@pytest.fixture
def poller(stack: Stack, tmp_path: Path) -> Iterator[Poller]:
    """A poller process of its own (another "container"); killed and its queues drained after."""
    p = Poller(stack.env, tmp_path / "poller.log")
    yield p
    p.kill()
    time.sleep(1.5)  # a killed poller's long poll (1 s) still ends in the emulator: let it lapse
    stack.pump(timeout_s=60)  # leave the queues empty for the next test


# ---- least privilege over the whole suite (AWS_ACTION_LOG=<file>) ------------------------------------
# Every AWS action the functions perform in these tests, recorded as they run (devstack/aws_actions.py),
# must be allowed by that function's dev-stage policy (infra/least_privilege.py). The other direction,
# nothing allowed that no test performs, is `make rehearse`'s (tests/infra/test_rehearse.py), which runs
# its own flow and does not depend on which tests ran.
if os.environ.get(aws_actions.ENV):
    aws_actions.install(os.environ[aws_actions.ENV], unattributed=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get(aws_actions.ENV)
    if not path:
        return
    from infra.least_privilege import check_recorded_against_stage

    problems = check_recorded_against_stage(aws_actions.read(path), "dev")
    if problems:
        print("\nleast privilege: the suite performed what a function's policy does not allow:")
        print("".join(f"  {line}\n" for line in problems), end="")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
