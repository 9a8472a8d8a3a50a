"""aioapns 4.0, unchanged but for host/port and trusted CA, gets APNs's answers from the sandbox."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aioapns import APNs, NotificationRequest, PushType
from aioapns.connection import APNsDevelopmentClientProtocol, APNsProductionClientProtocol

from apns_sandbox.testing import SandboxProcess

from .conftest import BUNDLE, Creds


def _client(sandbox: SandboxProcess, environment: str, **kwargs: Any) -> APNs:
    """The only changes to aioapns: the protocol's host/port and an SSL context trusting the sandbox CA."""
    base = APNsProductionClientProtocol if environment == "production" else APNsDevelopmentClientProtocol
    host, port = sandbox.endpoint(environment)
    protocol = type("SandboxProtocol", (base,), {"APNS_SERVER": host, "APNS_PORT": port})
    client = APNs(use_sandbox=environment == "development", ssl_context=sandbox.ssl_context(), **kwargs)
    client.pool.protocol_class = protocol
    return client


def _jwt_client(sandbox: SandboxProcess, creds: Creds, environment: str) -> APNs:
    key = creds.key
    return _client(
        sandbox, environment, key=key["p8"], key_id=key["keyId"], team_id=key["teamId"], topic=BUNDLE
    )


def _send(client: APNs, token: str, message: dict[str, Any] | None = None, **kwargs: Any):
    request = NotificationRequest(
        device_token=token,
        message=message or {"aps": {"alert": {"title": "aioapns", "body": "hello"}, "sound": "default"}},
        push_type=PushType.ALERT,
        **kwargs,
    )
    return asyncio.wait_for(client.send_notification(request), 10)


@pytest.mark.parametrize("environment", ["production", "development"])
def test_jwt_mode_gets_200(sandbox: SandboxProcess, creds: Creds, environment: str) -> None:
    device = creds.prod_device if environment == "production" else creds.dev_device

    async def main():
        client = _jwt_client(sandbox, creds, environment)
        return await _send(client, device, priority=10, time_to_live=3600, collapse_key="c1")

    result = asyncio.run(main())

    assert (result.status, result.description) == ("200", None)
    item = sandbox.notifications(device, limit=1)[0]
    assert item["apnsId"] == result.notification_id
    assert item["headers"]["apns-priority"] == "10"
    assert item["headers"]["apns-collapse-id"] == "c1"


@pytest.mark.parametrize("environment", ["production", "development"])
def test_certificate_mode_gets_200(sandbox: SandboxProcess, creds: Creds, environment: str) -> None:
    device = creds.prod_device if environment == "production" else creds.dev_device
    pem = sandbox.issue_client_pem(BUNDLE, environment)

    async def main():
        client = _client(sandbox, environment, client_cert=str(pem))  # topic read from the cert's UID
        return await _send(client, device)

    result = asyncio.run(main())

    assert result.status == "200"
    assert sandbox.notifications(device, limit=1)[0]["auth"] == "certificate"


def test_aioapns_sees_apples_error_reasons(sandbox: SandboxProcess, creds: Creds) -> None:
    gone = sandbox.create_device(BUNDLE)
    uninstalled_at = sandbox.uninstall(gone)["uninstalledAtMs"]

    async def main():
        client = _jwt_client(sandbox, creds, "production")
        return await asyncio.gather(
            _send(client, "ab" * 32),
            _send(client, creds.dev_device),
            _send(client, gone),
            _send(client, creds.prod_device, {"aps": {"alert": "x" * 5000}}),
        )

    bad, wrong_env, unregistered, too_large = asyncio.run(main())

    assert (bad.status, bad.description) == ("400", "BadDeviceToken")
    assert (wrong_env.status, wrong_env.description) == ("400", "BadDeviceToken")
    assert (unregistered.status, unregistered.description, unregistered.timestamp) == (
        "410",
        "Unregistered",
        uninstalled_at,
    )
    assert (too_large.status, too_large.description) == ("413", "PayloadTooLarge")


def test_503_fault_reaches_aioapns(sandbox: SandboxProcess, creds: Creds) -> None:
    sandbox.add_fault(status=503, reason="ServiceUnavailable", count=1)

    async def main():
        client = _jwt_client(sandbox, creds, "production")
        return await _send(client, creds.prod_device), await _send(client, creds.prod_device)

    first, second = asyncio.run(main())

    assert (first.status, first.description) == ("503", "ServiceUnavailable")
    assert second.status == "200"


def test_goaway_makes_aioapns_reconnect_and_resend(sandbox: SandboxProcess, creds: Creds) -> None:
    device = sandbox.create_device(BUNDLE)
    sandbox.add_fault(action="goaway", count=1, deviceToken=device)

    async def main():
        client = _jwt_client(sandbox, creds, "production")
        return await _send(client, device, {"aps": {"alert": "after goaway"}, "m": "g-1"})

    result = asyncio.run(main())

    assert result.status == "200"
    assert len(sandbox.notifications(device)) == 1


def test_reset_leaves_aioapns_waiting_forever_without_a_timeout(
    sandbox: SandboxProcess, creds: Creds
) -> None:
    """aioapns ignores RST_STREAM: the caller's own timeout is the only way out (as FINDINGS says)."""
    device = sandbox.create_device(BUNDLE)
    sandbox.add_fault(action="reset", count=1, deviceToken=device)

    async def main():
        client = _jwt_client(sandbox, creds, "production")
        request = NotificationRequest(device_token=device, message={"aps": {"alert": "x"}})
        await asyncio.wait_for(client.send_notification(request), 0.5)

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    assert sandbox.notifications(device) == []


def test_many_concurrent_notifications_on_one_connection(sandbox: SandboxProcess, creds: Creds) -> None:
    device = sandbox.create_device(BUNDLE)

    async def main():
        client = _jwt_client(sandbox, creds, "production")
        client.pool.max_connections = 1
        return await asyncio.gather(
            *[_send(client, device, {"aps": {"alert": f"n{i}"}, "m": f"c-{i}"}) for i in range(1500)]
        )

    results = asyncio.run(main())

    assert {r.status for r in results} == {"200"}
    stats = sandbox.stats()
    assert stats["byDevice"][device] == 1500


def test_certificate_of_the_other_environment_ends_aioapns_connections(
    sandbox: SandboxProcess, caplog: pytest.LogCaptureFixture
) -> None:
    """Apple's GOAWAY: aioapns logs the reason, retries on a new connection, then gives up."""
    from aioapns.exceptions import MaxAttemptsExceeded

    device = sandbox.create_device(BUNDLE, "production")
    pem = sandbox.issue_client_pem(BUNDLE, "development")

    async def main():
        client = _client(sandbox, "production", client_cert=str(pem), max_connection_attempts=2)
        return await _send(client, device)

    with caplog.at_level("WARNING", logger="aioapns"), pytest.raises(MaxAttemptsExceeded):
        asyncio.run(main())
    assert "BadCertificateEnvironment" in caplog.text  # from the GOAWAY's debug data
    assert sandbox.notifications(device) == []
