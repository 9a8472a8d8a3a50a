"""Fixtures for the APNs sandbox tests, and an example for other suites.

Any suite can reuse the sandbox the same way:

    from apns_sandbox.testing import start_sandbox

    @pytest.fixture(scope="session")
    def apns_sandbox(tmp_path_factory):
        sandbox = start_sandbox(tmp_path_factory.mktemp("apns-sandbox"))  # free ports, subprocess
        yield sandbox
        sandbox.stop()

    def test_push(apns_sandbox):
        key = apns_sandbox.issue_p8(["com.example.chat"])          # {keyId, teamId, p8}
        token = apns_sandbox.create_device("com.example.chat")     # production by default
        ...  # send to 127.0.0.1:apns_sandbox.production_port trusting apns_sandbox.ca_path
        assert apns_sandbox.notifications(token)[-1]["payload"]["aps"]
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from apns_sandbox.testing import SandboxProcess, start_sandbox

BUNDLE = "com.example.chat"
OTHER_BUNDLE = "com.example.other"


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    sb = start_sandbox(tmp_path_factory.mktemp("apns-sandbox"))
    yield sb
    sb.stop()


@pytest.fixture(autouse=True)
def _clear_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    """Faults are global to the sandbox: never let one leak into the next test."""
    yield
    if "sandbox" in request.fixturenames:
        request.getfixturevalue("sandbox").clear_faults()


def make_jwt(
    key: dict[str, Any], *, iat: int | None = None, iss: str | None = None, kid: str | None = None
) -> str:
    return jwt.encode(
        {"iss": iss or key["teamId"], "iat": int(time.time()) if iat is None else iat},
        key["p8"],
        algorithm="ES256",
        headers={"kid": kid or key["keyId"]},
    )


@dataclass
class Creds:
    key: dict[str, Any]  # p8 for BUNDLE and OTHER_BUNDLE
    token: str  # a JWT for `key`, reused (APNs refuses a new token per request on a connection)
    prod_device: str
    dev_device: str
    other_device: str  # production, OTHER_BUNDLE


@pytest.fixture(scope="session")
def creds(sandbox: SandboxProcess) -> Creds:
    key = sandbox.issue_p8([BUNDLE, OTHER_BUNDLE])
    return Creds(
        key=key,
        token=make_jwt(key),
        prod_device=sandbox.create_device(BUNDLE, "production", name="Test iPhone"),
        dev_device=sandbox.create_device(BUNDLE, "development"),
        other_device=sandbox.create_device(OTHER_BUNDLE, "production"),
    )


class ApnsHttp:
    """An independent HTTP/2 client (httpx) for the provider API, one connection per instance."""

    def __init__(
        self, sandbox: SandboxProcess, environment: str = "production", cert: Path | None = None
    ) -> None:
        ctx = sandbox.ssl_context()
        if cert is not None:
            ctx.load_cert_chain(str(cert))
        _, port = sandbox.endpoint(environment)
        self.base = f"https://127.0.0.1:{port}"
        self.client = httpx.Client(http2=True, verify=ctx, timeout=10)

    def push(
        self,
        device_token: str,
        payload: Any = None,
        *,
        jwt_token: str | None = None,
        topic: str | None = BUNDLE,
        headers: dict[str, str] | list[tuple[str, str]] | None = None,
        body: bytes | None = None,
        method: str = "POST",
        path: str | None = None,
    ) -> httpx.Response:
        hdrs: list[tuple[str, str]] = []
        if jwt_token:
            hdrs.append(("authorization", f"bearer {jwt_token}"))
        if topic is not None:
            hdrs.append(("apns-topic", topic))
        if isinstance(headers, dict):
            hdrs.extend(headers.items())
        elif headers:
            hdrs.extend(headers)
        if body is None:
            body = json.dumps(
                {"aps": {"alert": {"title": "Hi", "body": "there"}}} if payload is None else payload
            ).encode()
        return self.client.request(
            method, self.base + (path or f"/3/device/{device_token}"), headers=hdrs, content=body
        )

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def apns_http(sandbox: SandboxProcess) -> Iterator[Any]:
    """Factory: apns_http(environment="production", cert=None) -> ApnsHttp (closed after the test)."""
    clients: list[ApnsHttp] = []

    def make(environment: str = "production", cert: Path | None = None) -> ApnsHttp:
        c = ApnsHttp(sandbox, environment, cert)
        clients.append(c)
        return c

    yield make
    for c in clients:
        c.close()


def unique_bundle() -> str:
    return f"com.example.t{uuid.uuid4().hex[:10]}"
