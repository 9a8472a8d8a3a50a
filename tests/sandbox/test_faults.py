"""Fault injection: statuses, latency, GOAWAY / RST_STREAM / dropped connections, per device or global."""

from __future__ import annotations

import time

import h2.events
import httpx
import pytest

from apns_sandbox.testing import SandboxProcess

from .conftest import BUNDLE, Creds
from .test_http2 import raw_h2, read_events, send_request


def _reason(response: httpx.Response) -> str:
    return str(response.json()["reason"])


@pytest.mark.parametrize(
    ("status", "reason"),
    [(503, "ServiceUnavailable"), (500, "InternalServerError"), (429, "TooManyRequests")],
)
def test_status_fault_applies_to_count_requests_then_clears(
    sandbox: SandboxProcess, creds: Creds, apns_http, status: int, reason: str
) -> None:
    sandbox.add_fault(status=status, reason=reason, count=2)
    client = apns_http()

    answers = [client.push(creds.prod_device, jwt_token=creds.token) for _ in range(3)]

    assert [(r.status_code, r.content and _reason(r)) for r in answers[:2]] == [(status, reason)] * 2
    assert answers[2].status_code == 200
    assert sandbox.request("GET", "/sandbox/faults")["items"] == []


def test_status_alone_gets_apples_reason(sandbox: SandboxProcess, creds: Creds, apns_http) -> None:
    sandbox.add_fault(status=503, count=1)

    response = apns_http().push(creds.prod_device, jwt_token=creds.token)

    assert (response.status_code, _reason(response)) == (503, "ServiceUnavailable")


def test_fault_for_one_device_leaves_others_alone(sandbox: SandboxProcess, creds: Creds, apns_http) -> None:
    victim = sandbox.create_device(BUNDLE)
    sandbox.add_fault(status=429, reason="TooManyRequests", deviceToken=victim)
    client = apns_http()

    assert _reason(client.push(victim, jwt_token=creds.token)) == "TooManyRequests"
    assert client.push(creds.prod_device, jwt_token=creds.token).status_code == 200
    assert _reason(client.push(victim, jwt_token=creds.token)) == "TooManyRequests"  # no count: until cleared

    sandbox.clear_faults()
    assert client.push(victim, jwt_token=creds.token).status_code == 200


def test_410_fault_carries_a_timestamp(sandbox: SandboxProcess, creds: Creds, apns_http) -> None:
    sandbox.add_fault(status=410, reason="Unregistered", count=1)

    response = apns_http().push(creds.prod_device, jwt_token=creds.token)

    assert response.status_code == 410
    assert abs(response.json()["timestamp"] - time.time() * 1000) < 60_000


def test_latency_delays_the_answer(sandbox: SandboxProcess, creds: Creds, apns_http) -> None:
    client = apns_http()
    client.push(creds.prod_device, jwt_token=creds.token)  # connection warm
    sandbox.add_fault(latencyMs=300, count=1)

    started = time.monotonic()
    delayed = client.push(creds.prod_device, jwt_token=creds.token)
    middle = time.monotonic()
    prompt = client.push(creds.prod_device, jwt_token=creds.token)
    ended = time.monotonic()

    assert delayed.status_code == prompt.status_code == 200
    assert middle - started >= 0.3
    assert ended - middle < 0.25


def test_latency_with_status(sandbox: SandboxProcess, creds: Creds, apns_http) -> None:
    sandbox.add_fault(latencyMs=200, status=503, count=1)

    started = time.monotonic()
    response = apns_http().push(creds.prod_device, jwt_token=creds.token)

    assert time.monotonic() - started >= 0.2
    assert _reason(response) == "ServiceUnavailable"


def test_reset_drops_the_request_without_an_answer(sandbox: SandboxProcess, creds: Creds, apns_http) -> None:
    device = sandbox.create_device(BUNDLE)
    sandbox.add_fault(action="reset", count=1)
    client = apns_http()

    with pytest.raises(httpx.RemoteProtocolError):
        client.push(device, jwt_token=creds.token)

    assert sandbox.notifications(device) == []
    assert client.push(device, jwt_token=creds.token).status_code == 200  # same connection still usable


def test_accept_reset_delivers_but_loses_the_answer(sandbox: SandboxProcess, creds: Creds, apns_http) -> None:
    device = sandbox.create_device(BUNDLE)
    sandbox.add_fault(action="accept-reset", count=1, deviceToken=device)

    with pytest.raises(httpx.RemoteProtocolError):
        apns_http().push(device, {"aps": {"alert": "once"}, "m": "dup-1"}, jwt_token=creds.token)
    retry = apns_http().push(device, {"aps": {"alert": "once"}, "m": "dup-1"}, jwt_token=creds.token)

    assert retry.status_code == 200
    assert len(sandbox.notifications(device)) == 2  # the phone got it twice: the retry made a duplicate


def test_close_drops_the_connection(sandbox: SandboxProcess, creds: Creds, apns_http) -> None:
    sandbox.add_fault(action="close", count=1)

    with pytest.raises(httpx.HTTPError):
        apns_http().push(creds.prod_device, jwt_token=creds.token)


def test_goaway_refuses_the_request_and_closes(sandbox: SandboxProcess, creds: Creds) -> None:
    device = sandbox.create_device(BUNDLE)
    sandbox.add_fault(action="goaway", count=1, deviceToken=device)
    sock, conn = raw_h2(sandbox)
    with sock:
        send_request(conn, 1, device, creds.token)
        sock.sendall(conn.data_to_send())
        events = read_events(sock, conn, h2.events.ConnectionTerminated)

    goaway = next(e for e in events if isinstance(e, h2.events.ConnectionTerminated))
    assert goaway.last_stream_id == 0  # stream 1 was not processed: safe to retry
    assert b"Shutdown" in (goaway.additional_data or b"")
    assert sandbox.notifications(device) == []


def test_faults_can_be_listed_and_cleared(sandbox: SandboxProcess) -> None:
    sandbox.add_fault(status=503, count=3)
    sandbox.add_fault(latencyMs=10)

    items = sandbox.request("GET", "/sandbox/faults")["items"]
    assert [(f["status"], f["count"], f["latencyMs"]) for f in items] == [(503, 3, 0), (None, None, 10)]

    sandbox.clear_faults()
    assert sandbox.request("GET", "/sandbox/faults")["items"] == []


@pytest.mark.parametrize(
    "spec",
    [{"status": 200}, {"action": "explode"}, {"count": 0, "status": 503}, {"reason": "NoSuchReason"}, {}],
    ids=["status-200", "unknown-action", "count-0", "unknown-reason", "empty"],
)
def test_invalid_fault_is_refused_with_a_clear_error(sandbox: SandboxProcess, spec) -> None:
    response = httpx.put(sandbox.control_url + "/sandbox/faults", json=spec)

    assert response.status_code == 400
    assert response.json()["error"]["message"]


def test_silenced_connections_neither_answer_nor_deliver_and_new_ones_are_served(
    sandbox: SandboxProcess, creds: Creds, apns_http
) -> None:
    # Given a connection that has pushed once
    before = apns_http()
    assert before.push(creds.prod_device, jwt_token=creds.token).status_code == 200
    delivered = len(sandbox.notifications(creds.prod_device))

    # When every open connection is silenced
    answer = sandbox.request("PUT", "/sandbox/faults", {"connections": "silent"})

    # Then a request on it gets no answer and is not delivered, while a new connection is served
    assert answer["affected"] >= 1
    before.client.timeout = httpx.Timeout(1.0)
    with pytest.raises(httpx.TimeoutException):
        before.push(creds.prod_device, jwt_token=creds.token)
    assert len(sandbox.notifications(creds.prod_device)) == delivered
    assert apns_http().push(creds.prod_device, jwt_token=creds.token).status_code == 200


def test_closed_connections_get_goaway_and_new_ones_are_served(
    sandbox: SandboxProcess, creds: Creds, apns_http
) -> None:
    # Given a connection that has pushed once
    sock, conn = raw_h2(sandbox)
    with sock:
        send_request(conn, 1, creds.prod_device, creds.token)
        sock.sendall(conn.data_to_send())
        answered = read_events(sock, conn, h2.events.StreamEnded)
        assert any(isinstance(e, h2.events.StreamEnded) for e in answered)

        # When every open connection is closed
        answer = sandbox.request("PUT", "/sandbox/faults", {"connections": "close"})

        # Then it gets GOAWAY (its one request was answered) and ends
        assert answer["affected"] >= 1
        events = read_events(sock, conn, h2.events.ConnectionTerminated)
        goaway = next(e for e in events if isinstance(e, h2.events.ConnectionTerminated))
        assert goaway.last_stream_id == 1
        assert b"Shutdown" in (goaway.additional_data or b"")
        sock.settimeout(5)
        assert sock.recv(65535) == b""  # closed by the sandbox, not left open

    # And a new connection is served
    assert apns_http().push(creds.prod_device, jwt_token=creds.token).status_code == 200


def test_unknown_connection_fault_is_refused(sandbox: SandboxProcess) -> None:
    with pytest.raises(RuntimeError, match="connections must be one of"):
        sandbox.request("PUT", "/sandbox/faults", {"connections": "flaky"})
