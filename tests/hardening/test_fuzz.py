"""Fuzz every operation of openapi.json with schemathesis against the real app under `chalice local`.

Checks on every response: no 5xx, a documented status, the documented content type, and a body
that conforms to the documented schema (errors included); requests that break the schema must be
refused with a 4xx. Requests carry real credentials (an admin or a user token of a real app, the
operator key for POST /v1/apps) and, most of the time, real IDs in the path, so they get past
authentication and authorization and reach validation and the services behind it. The queue
poller runs beside the API, as under `make run`: every message the fuzzer got a 202 for goes
through fan-out, rendering and the APNs sandbox, and must do so without an error.

Run alone: `.venv/bin/python -m pytest -q tests/hardening/test_fuzz.py -s` (prints statuses per
operation; the same figures go to .local/hardening/fuzz-report.json). Derandomized: the same
~1,700 requests on every run, ~100 s on 2 cores. FUZZ_MAX_EXAMPLES=N changes the budget per
operation (default 40); FUZZ_SURVEY=1 records every failing request in the report instead of
stopping at (and shrinking) the first one per operation, and fails once at the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from apns_sandbox.testing import SandboxProcess
from devstack import resources
from devstack.emulator import free_port, wait_http
from tests.conftest import OPERATOR_KEY
from tests.hardening.openapi_ops import SPEC_PATH, operations

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "40"))
SURVEY = bool(os.environ.get("FUZZ_SURVEY"))  # 1 = list every failure in the report, fail at the end
LOCAL_METHODS = ("GET", "PUT", "POST", "HEAD", "DELETE", "PATCH", "OPTIONS")
BUNDLE = "com.example.fuzz"
FUZZ_USER = "fuzz-user"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
ACCESS = {op.label: op.access for op in operations()}
REPORT = ROOT / ".local" / "hardening" / "fuzz-report.json"

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,  # derandomized: the same cases on every run
            "database": "none",  # no .hypothesis/ directory in the work tree
            "with-security-parameters": False,  # the Authorization header is set below, from real tokens
        },
        # Schema-breaking input must be refused with a 4xx; 413 (too large) and 415 (not JSON) count.
        "checks": {
            "negative_data_rejection": {
                "expected-statuses": ["400", "401", "403", "404", "405", "409", "413", "415", "422"]
            }
        },
    }
)
schema = schemathesis.openapi.from_path(SPEC_PATH, config=CONFIG)


@dataclass
class World:
    """A real app behind `chalice local`, with a credential, a device, a group and a message."""

    base_url: str
    app_id: str
    secret_key: str
    credential_id: int
    device_token: str
    message_id: str
    operator_app_id: str = ""  # the app operator operations get: rotating keys there spares app_id's
    session: requests.Session = field(default_factory=requests.Session)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def token(self, user_id: str, role: str) -> str:
        from chalicelib.services.auth import mint_token

        return mint_token(self.secret_key, self.app_id, user_id, role)  # type: ignore[arg-type]

    def real_ids(self) -> dict[str, Any]:
        return {
            "appId": self.app_id,
            "userId": FUZZ_USER,
            "otherUserId": "fuzz-friend",
            "groupId": "fuzz-group",
            "messageId": self.message_id,
            "deviceToken": self.device_token,
            "certificateId": self.credential_id,
            "kind": "group",
            "conversationId": "fuzz-group",
        }


def _call(base_url: str, method: str, path: str, token: str, body: Any = None) -> Any:
    resp = requests.request(
        method,
        base_url + path,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert resp.status_code < 300, (method, path, resp.status_code, resp.text)
    return resp.json() if resp.content else None


@dataclass
class Local:
    """`chalice local` and the queue poller (as `make run` has them), on the fuzz table and queues."""

    base_url: str
    sqs: Any
    queues: dict[str, str]  # name -> URL, dead-letter queues included
    logs: dict[str, Path]


def _spawn(args: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped with everything it started
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@pytest.fixture(scope="module")
def chalice_local(stack_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    """`chalice local` and the poller in their own process groups, on their own table and queues."""
    names = {
        "TABLE_NAME": "apns-push-fuzz",
        "INTAKE_QUEUE_NAME": "apns-push-intake-fuzz",
        "SEND_QUEUE_NAME": "apns-push-send-fuzz",
    }
    endpoint = stack_env["AWS_ENDPOINT_OVERRIDE"]
    sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1")
    urls = resources.create_all(
        boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1"),
        sqs,
        names["TABLE_NAME"],
        names["INTAKE_QUEUE_NAME"],
        names["SEND_QUEUE_NAME"],
        visibility_timeout_s=2,
    )
    env = {
        **os.environ,
        **{k: v for k, v in stack_env.items() if not k.startswith("_")},
        **names,
        "SECRETS_PREFIX": "apns-push/fuzz/",
        "PYTHONUNBUFFERED": "1",
    }
    port = free_port()
    logs_dir = tmp_path_factory.mktemp("fuzz")
    logs = {"chalice local": logs_dir / "chalice-local.log", "poller": logs_dir / "poller.log"}
    chalice = [str(Path(sys.executable).with_name("chalice")), "local", "--no-autoreload"]
    api = _spawn(
        [*chalice, "--stage", "fuzz", "--host", "127.0.0.1", "--port", str(port)], env, logs["chalice local"]
    )
    poller = _spawn([sys.executable, "-m", "devstack.poller"], env, logs["poller"])
    local = Local(
        base_url=f"http://127.0.0.1:{port}",
        sqs=sqs,
        queues={
            names["INTAKE_QUEUE_NAME"]: urls.intake,
            names["SEND_QUEUE_NAME"]: urls.send,
            names["INTAKE_QUEUE_NAME"] + "-dlq": urls.intake_dlq,
            names["SEND_QUEUE_NAME"] + "-dlq": urls.send_dlq,
            # where the send DLQ's consumer (settle_dead_letters) parks what it settled
            names["SEND_QUEUE_NAME"] + "-parked": sqs.get_queue_url(
                QueueName=names["SEND_QUEUE_NAME"] + "-parked"
            )["QueueUrl"],
        },
        logs=logs,
    )
    try:
        wait_http(local.base_url + "/openapi.json", timeout_s=60, proc=api)
        yield local
    finally:
        _stop(poller)
        _stop(api)


@pytest.fixture(scope="module")
def world(chalice_local: Local, sandbox: SandboxProcess) -> Iterator[World]:
    base = chalice_local.base_url
    created = _call(base, "POST", "/v1/apps", OPERATOR_KEY, {"name": "Fuzz"})
    w = World(
        base_url=base,
        app_id=created["appId"],
        secret_key=created["secretKey"],
        credential_id=0,
        device_token="",
        message_id="",
    )
    admin = w.token("im-server", "admin")
    app_path = f"/v1/apps/{w.app_id}"
    key = sandbox.issue_p8([BUNDLE])
    cred = _call(
        base,
        "POST",
        app_path + "/credentials",
        admin,
        {
            "type": "p8",
            "name": "fuzz-key",
            "environment": "production",
            "p8": key["p8"],
            "keyId": key["keyId"],
            "teamId": key["teamId"],
            "bundleId": BUNDLE,
        },
    )
    w.credential_id = int(cred["certificateId"])
    w.device_token = sandbox.create_device(BUNDLE, "production")
    _call(
        base,
        "PUT",
        f"{app_path}/users/{FUZZ_USER}/devices/{w.device_token}",
        admin,
        {"certificateId": w.credential_id},
    )
    _call(
        base,
        "PUT",
        app_path + "/groups/fuzz-group/members",
        admin,
        {"add": [{"userId": FUZZ_USER}, {"userId": "fuzz-friend"}]},
    )
    accepted = _call(
        base,
        "POST",
        app_path + "/messages",
        admin,
        {
            "messageId": "fuzz-message",
            "sendTime": 1763790000,
            "sender": {"userId": "fuzz-friend"},
            "to": {"userId": FUZZ_USER},
            "elems": [{"type": "text", "text": "hi"}],
        },
    )
    w.message_id = accepted["messageId"]
    w.operator_app_id = _call(base, "POST", "/v1/apps", OPERATOR_KEY, {"name": "Fuzz keys"})["appId"]
    yield w
    _report(w)


def _report(w: World) -> None:
    report = {
        "maxExamplesPerOperation": MAX_EXAMPLES,
        "casesRun": sum(sum(c.values()) for c in w.statuses.values()),
        "operations": {
            label: dict(sorted((str(s), n) for s, n in counts.items()))
            for label, counts in sorted(w.statuses.items())
        },
        "failures": w.failures,
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    lines = [f"{n:>5}  {label}  {report['operations'][label]}" for label, n in _totals(w).items()]
    print(f"\nfuzz: {report['casesRun']} cases ({REPORT}):\n" + "\n".join(lines))
    if w.failures:
        print(f"fuzz survey: {len(w.failures)} failing cases, listed in {REPORT}")


def _totals(w: World) -> dict[str, int]:
    return {label: sum(c.values()) for label, c in sorted(w.statuses.items())}


def _pick(case: Any, salt: str, one_in: int) -> bool:
    """A deterministic coin: the same case makes the same choice on every run."""
    body = case.body if isinstance(case.body, (dict, list, str, bytes, int, float)) else None  # not NotSet
    seed = f"{salt}:{case.path_parameters!r}:{case.query!r}:{body!r}"
    return zlib.crc32(seed.encode()) % one_in == 0


def prepare(case: Any, w: World) -> None:
    """Real IDs in most paths, and the token the operation's access level asks for."""
    access = ACCESS[case.operation.label]
    params = dict(case.path_parameters or {})
    real = w.real_ids()
    for name in params:
        # appId: real in 7 of 8 cases (else 403/404); other IDs: real in 2 of 3 cases.
        keep_generated = _pick(case, name, 8 if name == "appId" else 3)
        if not keep_generated and name in real:
            params[name] = real[name]
            if name == "appId" and access == "operator":
                params[name] = w.operator_app_id  # key rotations must not end the fuzz tokens' key
    if params != (case.path_parameters or {}):
        case.path_parameters = params  # assignment: schemathesis revalidates the case's metadata
    if access == "operator":
        token = OPERATOR_KEY
    elif access == "user" and params.get("userId") == FUZZ_USER and _pick(case, "role", 2):
        token = w.token(FUZZ_USER, "user")
    else:
        token = w.token("im-server", "admin")
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
def test_fuzz_operation(case: Any, world: World) -> None:
    if case.method.upper() not in LOCAL_METHODS:
        return  # chalice local's HTTP server answers 501 itself; API Gateway never passes them on
    prepare(case, world)
    response = case.call(base_url=world.base_url, session=world.session, timeout=30)
    world.statuses.setdefault(case.operation.label, Counter())[response.status_code] += 1
    if not SURVEY:
        case.validate_response(response, checks=CHECKS)
        return
    try:  # survey mode: record every failure and go on, instead of stopping at (and shrinking) the first
        case.validate_response(response, checks=CHECKS)
    except BaseExceptionGroup as exc:
        world.failures.append(
            {
                "operation": case.operation.label,
                "failures": sorted({type(f).__name__ for f in exc.exceptions}),
                "status": response.status_code,
                "request": f"{case.method.upper()} {response.request.url}",
                "body": (response.request.body or b"")[:500].decode(errors="replace")
                if isinstance(response.request.body, bytes)
                else str(response.request.body)[:500],
                "response": response.text[:300],
            }
        )


def test_fuzz_survey_found_nothing(world: World) -> None:
    """Survey mode (FUZZ_SURVEY=1) records failures instead of raising: this fails if it found any."""
    assert not world.failures, json.dumps(world.failures[:10], indent=1)


def _queue_depth(local: Local, url: str) -> int:
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    attrs = local.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    return sum(int(attrs.get(n, 0)) for n in names)


def test_accepted_fuzz_messages_fan_out_and_send_cleanly(world: World, chalice_local: Local) -> None:
    """Every message the fuzzer got a 202 for went through fan-out, rendering and APNs (the sandbox)
    without a handler error, a dead letter, or a logged traceback in the API or the poller."""
    local = chalice_local
    work = [url for name, url in local.queues.items() if not name.endswith(("-dlq", "-parked"))]
    deadline = time.monotonic() + 90
    settled = 0
    while settled < 3:  # three quiet looks in a row: nothing waiting, in flight or delayed
        assert time.monotonic() < deadline, "the fuzz queues did not drain: see " + str(local.logs["poller"])
        settled = settled + 1 if all(_queue_depth(local, url) == 0 for url in work) else 0
        time.sleep(0.5)
    dead = {
        name: _queue_depth(local, url)
        for name, url in local.queues.items()
        if name.endswith(("-dlq", "-parked"))
    }
    problems = [f"{n} dead letters in {name}" for name, n in dead.items() if n]
    for what, path in local.logs.items():
        text = path.read_text(errors="replace")
        for marker in ("Traceback", "failed its whole batch", "SQS will retry"):
            if marker in text:
                at = text.index(marker)
                problems.append(f"{what} log has {marker!r} ({path}):\n{text[max(0, at - 1500) : at + 2500]}")
    assert not problems, "\n\n".join(problems)
