"""The service's aioapns client against the sandbox over HTTP/2 + TLS: both auth modes, both
environments, and the three protocol fixes (bookkeeping, flow control, stream resets)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from apns_sandbox.pki import p12_to_pem
from apns_sandbox.testing import SandboxProcess
from chalicelib.apns.client import ApnsClients, run
from chalicelib.apns.credentials import validate_p12
from chalicelib.models.credentials import Credential, P12Upload
from chalicelib.settings import load_settings

BUNDLE = "com.example.client"


@pytest.fixture(scope="module")
def clients(sandbox: SandboxProcess) -> ApnsClients:
    # 15 s: a flow-control stall still times out; a machine busy with the other test worker does not
    settings = load_settings({**sandbox.service_env(), "APNS_REQUEST_TIMEOUT_S": "15"})
    return ApnsClients(settings)


def credential(kind: str, environment: str, fingerprint: str) -> Credential:
    return Credential(
        certificate_id=1,
        name="c",
        type=kind,
        bundle_id=BUNDLE,
        environment=environment,  # type: ignore[arg-type]
        created_at=datetime.now(UTC),
        fingerprint_sha256=fingerprint,
    )


def p8_secret(sandbox: SandboxProcess) -> dict[str, str]:
    key = sandbox.issue_p8([BUNDLE])
    return {"type": "p8", "p8": key["p8"], "keyId": key["keyId"], "teamId": key["teamId"]}


async def send_many(clients: ApnsClients, client: Any, tokens: list[str], n: int) -> list[Any]:
    return list(
        await asyncio.gather(
            *(
                clients.send(
                    client,
                    token=tokens[i % len(tokens)],
                    message={"aps": {"alert": "x"}, "m": f"{i}"},
                    notification_id=str(uuid.uuid4()).upper(),
                    priority=10,
                    collapse="c",
                )
                for i in range(n)
            )
        )
    )


@pytest.mark.parametrize("environment", ["production", "development"])
def test_token_auth_both_environments(
    sandbox: SandboxProcess, clients: ApnsClients, environment: str
) -> None:
    token = sandbox.create_device(BUNDLE, environment)
    client = clients.get("app", credential("p8", environment, f"p8-{environment}"), p8_secret(sandbox))
    [result] = run(send_many(clients, client, [token], 1))
    assert (result.status, result.reason) == (200, None)
    [note] = sandbox.notifications(token)
    assert note["environment"] == environment and note["headers"]["apns-collapse-id"] == "c"


@pytest.mark.parametrize("environment", ["production", "development"])
def test_certificate_auth_both_environments(
    sandbox: SandboxProcess, clients: ApnsClients, trusted_ca: Any, environment: str
) -> None:
    issued = sandbox.issue_p12(BUNDLE, environment, password="pw")
    upload = P12Upload(type="p12", name="c", environment=environment, p12=issued["p12"], password="pw")  # type: ignore[arg-type]
    from cryptography import x509

    ca = x509.load_pem_x509_certificate(sandbox.ca_path.read_bytes())
    validated = validate_p12(upload, [ca], datetime.now(UTC))
    token = sandbox.create_device(BUNDLE, environment)
    cred = credential("p12", environment, validated.fingerprint_sha256 or "")
    client = clients.get("app", cred, validated.secret)
    [result] = run(send_many(clients, client, [token], 1))
    assert result.status == 200
    assert p12_to_pem  # the sandbox's own helper agrees on the PEM layout aioapns reads


def test_no_per_request_state_left_after_many_sends(sandbox: SandboxProcess, clients: ApnsClients) -> None:
    tokens = [sandbox.create_device(BUNDLE) for _ in range(5)]
    client = clients.get("app", credential("p8", "production", "leak"), p8_secret(sandbox))
    results = run(send_many(clients, client, tokens, 3000))
    assert {r.status for r in results} == {200}
    leftovers = sum(
        len(c.request_streams) + len(c.requests) + len(c.request_statuses) for c in client.pool.connections
    )
    assert leftovers == 0


def test_a_burst_of_error_answers_does_not_stall_the_connection(
    sandbox: SandboxProcess, clients: ApnsClients
) -> None:
    client = clients.get("app", credential("p8", "production", "errors"), p8_secret(sandbox))
    unknown = ["ab" * 32]  # never created in the sandbox: BadDeviceToken, a JSON body each
    results = run(send_many(clients, client, unknown, 4000))
    assert {r.reason for r in results} == {"BadDeviceToken"}  # none timed out waiting for flow control


def test_a_reset_stream_answers_at_once_and_frees_its_slot(
    sandbox: SandboxProcess, clients: ApnsClients
) -> None:
    token = sandbox.create_device(BUNDLE)
    client = clients.get("app", credential("p8", "production", "reset"), p8_secret(sandbox))
    sandbox.add_fault(action="reset", count=3, deviceToken=token)
    try:
        results = run(send_many(clients, client, [token], 5))
    finally:
        sandbox.clear_faults()
    assert sorted(r.reason or "ok" for r in results) == ["StreamReset"] * 3 + ["ok"] * 2
    assert all(r.status in (0, 200) for r in results)
    conn = client.pool.connections[0]
    assert conn.free_channels._value == conn.free_channels.bound  # every slot is back


def test_certificate_of_the_other_environment_fails_clearly(
    sandbox: SandboxProcess, clients: ApnsClients
) -> None:
    """APNs answers a wrong-environment certificate with GOAWAY {"reason":"BadCertificateEnvironment"}
    (no per-request answer): the client reports that reason as a 403, not a connection error to retry."""
    from chalicelib.apns.outcomes import Action, classify

    pem = sandbox.issue_client_pem(BUNDLE, "development").read_text()  # cert + key, one PEM
    secret = {"type": "p12", "certificatePem": pem, "privateKeyPem": ""}
    # upload validation would refuse this pairing; the send path must still say what is wrong
    client = clients.get("app", credential("p12", "production", "wrong-env"), secret)
    token = sandbox.create_device(BUNDLE, "production")

    results = run(send_many(clients, client, [token], 3))

    assert {(r.status, r.reason) for r in results} == {(403, "BadCertificateEnvironment")}
    assert classify(403, "BadCertificateEnvironment") is Action.REFRESH_AUTH
    assert sandbox.notifications(token) == []
