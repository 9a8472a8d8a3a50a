"""Connections that die quietly (chalicelib.apns.liveness), against the sandbox's connection faults:
a silenced connection is found by one PING and replaced, a timed-out one is never reused, a
closed one is left at once; no request fails for a connection it should not have used."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from apns_sandbox.testing import SandboxProcess
from chalicelib.apns.client import ApnsClients, run
from chalicelib.settings import load_settings
from tests.integration.test_apns_client import BUNDLE, credential, p8_secret, send_many


@pytest.fixture(autouse=True)
def _clear(sandbox: SandboxProcess) -> Any:
    yield
    sandbox.clear_faults()


def client_for(sandbox: SandboxProcess, name: str, **settings: str) -> tuple[ApnsClients, Any]:
    clients = ApnsClients(load_settings({**sandbox.service_env(), "APNS_REQUEST_TIMEOUT_S": "3", **settings}))
    return clients, clients.get("app", credential("p8", "production", name), p8_secret(sandbox))


def outcomes(results: list[Any]) -> Counter[tuple[int, str | None]]:
    return Counter((r.status, r.reason) for r in results)


def test_a_connection_silenced_while_idle_costs_one_ping_not_a_request_timeout(
    sandbox: SandboxProcess,
) -> None:
    # Given a warm connection that then went silent while the container was frozen (idle)
    token = sandbox.create_device(BUNDLE)
    clients, client = client_for(sandbox, "idle", APNS_IDLE_PING_S="0.2", APNS_PING_TIMEOUT_S="0.5")
    assert outcomes(run(send_many(clients, client, [token], 5))) == {(200, None): 5}
    sandbox.request("PUT", "/sandbox/faults", {"connections": "silent"})
    time.sleep(0.5)  # nothing runs on the loop: as a frozen Lambda container

    # When the next invocation sends 20 notifications
    results = run(send_many(clients, client, [token], 20))

    # Then every one went out on a fresh connection, within the request timeout
    assert outcomes(results) == {(200, None): 20}
    assert len(sandbox.notifications(token)) == 25


def test_a_connection_whose_request_timed_out_is_not_reused(sandbox: SandboxProcess) -> None:
    # Given a connection silenced mid-use (no idle spell to trigger a PING)
    token = sandbox.create_device(BUNDLE)
    clients, client = client_for(
        sandbox, "timeout", APNS_IDLE_PING_S="600", APNS_REQUEST_TIMEOUT_S="1", APNS_PING_TIMEOUT_S="0.3"
    )
    assert outcomes(run(send_many(clients, client, [token], 1))) == {(200, None): 1}
    sandbox.request("PUT", "/sandbox/faults", {"connections": "silent"})

    # When a request times out on it, and more are sent after
    [timed_out] = run(send_many(clients, client, [token], 1))
    later = run(send_many(clients, client, [token], 10))

    # Then the later ones go out on a new connection, the dead one is gone from the pool
    assert (timed_out.status, timed_out.reason) == (0, "Timeout")
    assert outcomes(later) == {(200, None): 10}
    assert all(not c.dead for c in client.pool.connections)


def test_a_connection_ended_by_goaway_is_left_without_failing_requests(sandbox: SandboxProcess) -> None:
    # Given a warm connection that APNs then closes (GOAWAY) while the container is frozen
    token = sandbox.create_device(BUNDLE)
    clients, client = client_for(sandbox, "goaway")
    assert outcomes(run(send_many(clients, client, [token], 3))) == {(200, None): 3}
    sandbox.request("PUT", "/sandbox/faults", {"connections": "close"})
    time.sleep(0.3)

    # When the next invocation sends
    results = run(send_many(clients, client, [token], 20))

    # Then nothing fails with a protocol error on the ended connection
    assert outcomes(results) == {(200, None): 20}


def test_a_connection_closed_twice_is_never_written_to_again(sandbox: SandboxProcess) -> None:
    """The "ConnectionError:AttributeError" of a dead connection: closed by aioapns' idle timer and
    again by a GOAWAY (or pool.close), asyncio's SSL transport forgot its protocol and the next
    write inside the client raised AttributeError."""
    token = sandbox.create_device(BUNDLE)
    clients, client = client_for(sandbox, "closed-twice")
    assert outcomes(run(send_many(clients, client, [token], 1))) == {(200, None): 1}
    sandbox.request("PUT", "/sandbox/faults", {"connections": "silent"})  # TLS shutdown never completes
    [conn] = client.pool.connections

    conn.close()
    conn.close()
    results = run(send_many(clients, client, [token], 5))

    assert outcomes(results) == {(200, None): 5}
