"""Shared fixtures: the AWS emulator (moto server over HTTP), the API client, apps and tokens."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from apns_sandbox.pki import SandboxCA
from apns_sandbox.testing import SandboxProcess, start_sandbox
from devstack import aws_actions, resources
from devstack.emulator import Emulator
from devstack.fast_emulator import start_emulator

OPERATOR_KEY = "test-operator-key-0123456789"


@pytest.fixture(scope="session")
def trusted_ca() -> SandboxCA:
    """Stands in for Apple's WWDR CA: the service trusts it through TRUSTED_PUSH_ISSUERS_FILE."""
    return SandboxCA.create("Test Push Issuer CA")


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    emu = start_emulator()
    yield emu
    emu.stop()


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """The APNs sandbox as a subprocess on free ports: the service's APNs in every test."""
    sb = start_sandbox(tmp_path_factory.mktemp("apns-sandbox"))
    yield sb
    sb.stop()


@pytest.fixture(scope="session")
def stack_env(
    emulator: Emulator,
    trusted_ca: SandboxCA,
    sandbox: SandboxProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """Environment of the service under test, pointed at the emulator and the sandbox; resources made once."""
    ca_file = tmp_path_factory.mktemp("trust") / "issuers.pem"
    ca_file.write_bytes(trusted_ca.cert_pem + sandbox.ca_path.read_bytes())
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_OVERRIDE": emulator.url,
        "STAGE": "test",
        "TABLE_NAME": "apns-push-test",
        "INTAKE_QUEUE_NAME": "apns-push-intake-test",
        "SEND_QUEUE_NAME": "apns-push-send-test",
        "WEBHOOK_QUEUE_NAME": "apns-push-webhook-test",
        "SECRETS_PREFIX": "apns-push/test/",
        "OPERATOR_KEY": OPERATOR_KEY,
        "TRUSTED_PUSH_ISSUERS_FILE": str(ca_file),
        **sandbox.service_env(),
        "APNS_REQUEST_TIMEOUT_S": "3",
        "RETRY_BASE_DELAY_S": "0.5",
        "SEND_LEASE_S": "3",
        "MAX_SEND_ATTEMPTS": "4",
    }
    os.environ.update(env)
    ddb = boto3.client("dynamodb", endpoint_url=emulator.url, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=emulator.url, region_name="us-east-1")
    urls = resources.create_all(
        ddb,
        sqs,
        env["TABLE_NAME"],
        env["INTAKE_QUEUE_NAME"],
        env["SEND_QUEUE_NAME"],
        visibility_timeout_s=2,
        webhook_queue=env["WEBHOOK_QUEUE_NAME"],
    )
    env.update({"_INTAKE_URL": urls.intake, "_SEND_URL": urls.send})
    from chalicelib import deps

    deps.reset()
    return env


@dataclass
class Api:
    """The chalice test client with JSON helpers; ``token`` is sent as the bearer unless overridden."""

    client: Any
    token: str | None = None

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        bearer = token if token is not None else self.token
        if bearer:
            hdrs["Authorization"] = f"Bearer {bearer}"
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        with aws_actions.as_function("api_handler"):  # AWS_ACTION_LOG: what the API function does
            resp = getattr(self.client.http, method.lower())(path, headers=hdrs, body=data)
        resp.data = json.loads(resp.body) if resp.body else None
        return resp


@pytest.fixture(scope="session")
def chalice_client(stack_env: dict[str, str]) -> Iterator[Any]:
    from chalice.test import Client

    import app as app_module

    with Client(app_module.app, stage_name="test", project_dir=str(Path(__file__).parents[1])) as client:
        yield client


@pytest.fixture
def api(chalice_client: Any) -> Api:
    return Api(chalice_client)


@dataclass
class AppContext:
    app_id: str
    secret_key: str
    api: Api

    def token(self, user_id: str = "im-server", role: str = "user", ttl_s: int = 3600) -> str:
        from chalicelib.services.auth import mint_token

        return mint_token(self.secret_key, self.app_id, user_id, role, ttl_s)  # type: ignore[arg-type]

    @property
    def admin(self) -> str:
        return self.token("im-server", "admin")

    def path(self, suffix: str = "") -> str:
        return f"/v1/apps/{self.app_id}{suffix}"


@pytest.fixture
def app_ctx(api: Api) -> AppContext:
    """A fresh app: every test gets its own tenant, so tests never see each other's data."""
    resp = api.call("POST", "/v1/apps", {"name": "Chat"}, token=OPERATOR_KEY)
    assert resp.status_code == 201, resp.body
    return AppContext(app_id=resp.data["appId"], secret_key=resp.data["secretKey"], api=api)
