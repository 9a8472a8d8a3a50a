"""Where the sandbox is as strict as Apple beyond the per-request rules: provider-token bookkeeping
per team, decimal `iat`, the stream limit (REFUSED_STREAM) and the per-device rate limit.

The wrong-environment certificate (GOAWAY) is in test_certificate_auth.py and test_aioapns.py.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import h2.connection
import h2.errors
import h2.events
import jwt
import pytest

from apns_sandbox.testing import SandboxProcess, start_sandbox

from .conftest import ApnsHttp, make_jwt, unique_bundle
from .test_http2 import read_events

STREAM_LIMIT = 5
DEVICE_BURST = 5


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """A sandbox with small limits, so that reaching them takes a handful of requests."""
    sb = start_sandbox(
        tmp_path_factory.mktemp("apns-sandbox-strict"),
        env={
            "APNS_SANDBOX_MAX_CONCURRENT_STREAMS": str(STREAM_LIMIT),
            "APNS_SANDBOX_DEVICE_BURST": str(DEVICE_BURST),
            "APNS_SANDBOX_DEVICE_RATE": "0.0001",  # one more notification every ~3 hours
            "APNS_SANDBOX_TOKEN_UPDATE_LOCKOUT": "0.2",
        },
    )
    yield sb
    sb.stop()


def _reason(response: Any) -> str:
    return str(response.json()["reason"])


def _app(sandbox: SandboxProcess, team_id: str | None = None) -> tuple[str, dict[str, Any], str]:
    bundle = unique_bundle()
    key = sandbox.issue_p8([bundle], team_id)
    return bundle, key, sandbox.create_device(bundle)


def _team() -> str:
    return uuid.uuid4().hex[:10].upper()


# --- provider tokens -------------------------------------------------------------------------------


def test_decimal_iat_is_accepted_like_apple(sandbox: SandboxProcess, apns_http) -> None:
    bundle, key, device = _app(sandbox)
    token = jwt.encode(  # what PyAPNs2 sends: iat = time.time()
        {"iss": key["teamId"], "iat": time.time()},
        key["p8"],
        algorithm="ES256",
        headers={"kid": key["keyId"]},
    )

    response = apns_http().push(device, jwt_token=token, topic=bundle)

    assert response.status_code == 200, response.text
    assert len(sandbox.notifications(device)) == 1


@pytest.mark.parametrize("iat", ["1700000000", True, None], ids=["string", "bool", "missing"])
def test_iat_that_is_not_a_number_is_invalid(sandbox: SandboxProcess, apns_http, iat: Any) -> None:
    bundle, key, device = _app(sandbox)
    claims = {"iss": key["teamId"]} if iat is None else {"iss": key["teamId"], "iat": iat}
    token = jwt.encode(claims, key["p8"], algorithm="ES256", headers={"kid": key["keyId"]})

    response = apns_http().push(device, jwt_token=token, topic=bundle)

    assert (response.status_code, _reason(response)) == (403, "InvalidProviderToken")


def test_decimal_iat_older_than_one_hour_is_expired(sandbox: SandboxProcess, apns_http) -> None:
    bundle, key, device = _app(sandbox)

    response = apns_http().push(device, jwt_token=make_jwt(key, iat=time.time() - 3600.5), topic=bundle)  # type: ignore[arg-type]

    assert (response.status_code, _reason(response)) == (403, "ExpiredProviderToken")


def test_second_key_of_the_same_team_on_a_connection_is_a_token_update(
    sandbox: SandboxProcess, apns_http
) -> None:
    team = _team()
    bundle, first, device = _app(sandbox, team)
    second = sandbox.issue_p8([bundle], team)
    client = apns_http()
    assert client.push(device, jwt_token=make_jwt(first), topic=bundle).status_code == 200

    response = client.push(device, jwt_token=make_jwt(second), topic=bundle)

    assert (response.status_code, _reason(response)) == (429, "TooManyProviderTokenUpdates")
    # on its own connection the second key is fine: the count is per connection
    assert apns_http().push(device, jwt_token=make_jwt(second), topic=bundle).status_code == 200


def test_keys_of_different_teams_share_a_connection(sandbox: SandboxProcess, apns_http) -> None:
    bundle, first, device = _app(sandbox, _team())
    other = sandbox.issue_p8([bundle], _team())
    first_token, other_token = make_jwt(first), make_jwt(other)  # ES256 signatures differ per signing
    client = apns_http()

    assert client.push(device, jwt_token=first_token, topic=bundle).status_code == 200
    assert client.push(device, jwt_token=other_token, topic=bundle).status_code == 200
    assert client.push(device, jwt_token=first_token, topic=bundle).status_code == 200


def test_after_too_many_token_updates_the_connection_stays_unusable(
    sandbox: SandboxProcess, apns_http
) -> None:
    """Default lockout (60 s): even the token that worked before is refused on that connection."""
    bundle, key, device = _app(sandbox)
    good = make_jwt(key)
    client = apns_http()
    assert client.push(device, jwt_token=good, topic=bundle).status_code == 200
    refused = client.push(device, jwt_token=make_jwt(key, iat=int(time.time()) - 5), topic=bundle)
    assert _reason(refused) == "TooManyProviderTokenUpdates"

    response = client.push(device, jwt_token=good, topic=bundle)

    assert (response.status_code, _reason(response)) == (429, "TooManyProviderTokenUpdates")
    assert apns_http().push(device, jwt_token=good, topic=bundle).status_code == 200  # a new connection works


def test_the_lockout_ends_after_its_configured_time(strict: SandboxProcess) -> None:
    bundle, key, device = _app(strict)
    good = make_jwt(key)
    client = ApnsHttp(strict)
    try:
        assert client.push(device, jwt_token=good, topic=bundle).status_code == 200
        refused = client.push(device, jwt_token=make_jwt(key, iat=int(time.time()) - 5), topic=bundle)
        assert _reason(refused) == "TooManyProviderTokenUpdates"

        time.sleep(0.3)  # APNS_SANDBOX_TOKEN_UPDATE_LOCKOUT=0.2; only ever more time passes
        response = client.push(device, jwt_token=good, topic=bundle)
    finally:
        client.close()

    assert response.status_code == 200, response.text


def test_provider_tokens_seen_are_counted_per_key(sandbox: SandboxProcess, apns_http) -> None:
    bundle, key, device = _app(sandbox)
    shared, refreshed = make_jwt(key), make_jwt(key, iat=int(time.time()) - 60)
    for _ in range(3):  # three "containers" sharing one JWT, one connection each
        client = apns_http()
        assert client.push(device, jwt_token=shared, topic=bundle).status_code == 200
        assert client.push(device, jwt_token=shared, topic=bundle).status_code == 200
    assert apns_http().push(device, jwt_token=refreshed, topic=bundle).status_code == 200

    [use] = sandbox.request("GET", f"/sandbox/provider-tokens?keyId={key['keyId']}")["items"]

    assert (use["keyId"], use["teamId"]) == (key["keyId"], key["teamId"])
    assert (use["distinctTokens"], use["connections"]) == (2, 4)
    assert sandbox.stats()["providerTokens"][key["keyId"]] == 2
    assert shared not in str(sandbox.request("GET", "/sandbox/provider-tokens"))  # never the tokens


# --- the stream limit ------------------------------------------------------------------------------


def test_streams_beyond_the_limit_are_refused_alone(strict: SandboxProcess) -> None:
    """RFC 9113 §5.1.2: the excess streams get RST_STREAM REFUSED_STREAM; the others complete."""
    bundle, key, device = _app(strict)
    refused_before = strict.stats()["refusedStreams"]
    another = strict.create_device(bundle)  # `device` uses up its budget (DEVICE_BURST) here
    token = make_jwt(key)
    ctx = strict.ssl_context()
    host, port = strict.endpoint("production")
    sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=5), server_hostname=host)
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    stream_ids = [1 + 2 * i for i in range(STREAM_LIMIT + 3)]
    with sock:
        # All requests open (headers sent, bodies not yet) before the server's SETTINGS are read.
        for stream_id in stream_ids:
            conn.send_headers(stream_id, _request_headers(device, bundle, token))
        for stream_id in stream_ids:
            conn.send_data(stream_id, b'{"aps":{"alert":"many"}}', end_stream=True)
        sock.sendall(conn.data_to_send())
        events = _read_until_all_done(sock, conn, set(stream_ids))
        # the connection is still good: one more request completes
        conn.send_headers(101, _request_headers(another, bundle, token))
        conn.send_data(101, b'{"aps":{"alert":"after"}}', end_stream=True)
        sock.sendall(conn.data_to_send())
        later = read_events(sock, conn, h2.events.StreamEnded)

    statuses = {
        e.stream_id: dict(e.headers)[b":status"] for e in events if isinstance(e, h2.events.ResponseReceived)
    }
    resets = {e.stream_id: e.error_code for e in events if isinstance(e, h2.events.StreamReset)}
    assert sorted(statuses) == stream_ids[:STREAM_LIMIT]
    assert set(statuses.values()) == {b"200"}
    assert resets == dict.fromkeys(stream_ids[STREAM_LIMIT:], h2.errors.ErrorCodes.REFUSED_STREAM)
    assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in events + later)
    assert any(isinstance(e, h2.events.ResponseReceived) and e.stream_id == 101 for e in later)
    assert len(strict.notifications(device)) == STREAM_LIMIT
    assert len(strict.notifications(another)) == 1
    assert strict.stats()["refusedStreams"] == refused_before + 3


def _request_headers(device: str, bundle: str, token: str) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "https"),
        (":path", f"/3/device/{device}"),
        (":authority", "127.0.0.1"),
        ("apns-topic", bundle),
        ("authorization", f"bearer {token}"),
    ]


def _read_until_all_done(sock: Any, conn: Any, stream_ids: set[int]) -> list[Any]:
    events: list[Any] = []
    done: set[int] = set()
    while done != stream_ids:
        new = read_events(sock, conn, (h2.events.StreamEnded, h2.events.StreamReset))
        assert new, f"no answer for streams {sorted(stream_ids - done)}"
        events += new
        done |= {e.stream_id for e in new if isinstance(e, h2.events.StreamEnded | h2.events.StreamReset)}
    return events


# --- per-device rate limit -------------------------------------------------------------------------


def test_too_many_notifications_to_one_device_get_429(strict: SandboxProcess) -> None:
    bundle, key, device = _app(strict)
    other = strict.create_device(bundle)
    token = make_jwt(key)
    before = strict.stats()["rejected"].get("TooManyRequests", 0)
    client = ApnsHttp(strict)
    try:
        answers = [client.push(device, jwt_token=token, topic=bundle) for _ in range(DEVICE_BURST + 3)]
        to_other = client.push(other, jwt_token=token, topic=bundle)
    finally:
        client.close()

    assert [r.status_code for r in answers] == [200] * DEVICE_BURST + [429] * 3
    assert {_reason(r) for r in answers[DEVICE_BURST:]} == {"TooManyRequests"}
    assert to_other.status_code == 200  # the budget is per device
    assert len(strict.notifications(device)) == DEVICE_BURST  # refused ones are not delivered
    assert strict.stats()["rejected"]["TooManyRequests"] == before + 3


def test_reset_refills_device_budgets(strict: SandboxProcess) -> None:
    bundle, key, device = _app(strict)
    token = make_jwt(key)
    client = ApnsHttp(strict)
    try:
        answers = [client.push(device, jwt_token=token, topic=bundle) for _ in range(DEVICE_BURST + 1)]
        assert answers[-1].status_code == 429
        strict.reset()
        response = client.push(device, jwt_token=token, topic=bundle)
    finally:
        client.close()

    assert response.status_code == 200
