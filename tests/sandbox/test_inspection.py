"""Inspection (notifications, stats, duplicates), simulated devices, credentials and persistence."""

from __future__ import annotations

import re
import threading
import time

import httpx
import pytest

from apns_sandbox.testing import SandboxProcess, start_sandbox

from .conftest import BUNDLE, Creds, make_jwt, unique_bundle


def test_device_is_created_for_one_bundle_and_environment(sandbox: SandboxProcess) -> None:
    response = httpx.post(
        sandbox.control_url + "/sandbox/devices", json={"bundleId": BUNDLE, "environment": "development"}
    )

    assert response.status_code == 201
    body = response.json()
    assert re.fullmatch(r"[0-9a-f]{64}", body["deviceToken"])
    assert (body["bundleId"], body["environment"], body["installed"]) == (BUNDLE, "development", True)
    listed = sandbox.request("GET", "/sandbox/devices")["items"]
    assert body["deviceToken"] in {d["deviceToken"] for d in listed}


def test_devices_are_created_in_bulk(sandbox: SandboxProcess) -> None:
    response = httpx.post(sandbox.control_url + "/sandbox/devices", json={"bundleId": BUNDLE, "count": 50})

    assert response.status_code == 201
    tokens = response.json()["deviceTokens"]
    assert len(set(tokens)) == 50
    assert all(re.fullmatch(r"[0-9a-f]{64}", t) for t in tokens)


@pytest.mark.parametrize(
    "body",
    [
        {"environment": "production"},
        {"bundleId": BUNDLE, "environment": "staging"},
        {"bundleId": "bad id"},
        {"bundleId": BUNDLE, "count": 0},
        {"bundleId": BUNDLE, "count": "5"},
    ],
    ids=["no-bundle", "bad-environment", "bad-bundle", "zero-count", "string-count"],
)
def test_bad_device_requests_are_refused_with_a_clear_error(sandbox: SandboxProcess, body) -> None:
    response = httpx.post(sandbox.control_url + "/sandbox/devices", json=body)

    assert response.status_code == 400
    assert response.json()["error"]["code"]


def test_notifications_are_listed_newest_last_with_limit(
    sandbox: SandboxProcess, creds: Creds, apns_http
) -> None:
    device = sandbox.create_device(BUNDLE)
    client = apns_http()
    for i in range(5):
        assert client.push(device, {"aps": {"alert": f"n{i}"}}, jwt_token=creds.token).status_code == 200

    items = sandbox.notifications(device)
    last_two = sandbox.notifications(device, limit=2)

    assert [i["payload"]["aps"]["alert"] for i in items] == ["n0", "n1", "n2", "n3", "n4"]
    assert [i["payload"]["aps"]["alert"] for i in last_two] == ["n3", "n4"]
    first = items[0]
    assert set(first) >= {"deviceToken", "apnsId", "headers", "payload", "receivedAt", "environment", "topic"}
    assert first["receivedAt"].endswith("Z")
    all_items = sandbox.notifications(limit=3)
    assert [i["payload"]["aps"]["alert"] for i in all_items] == ["n2", "n3", "n4"]


def test_stats_count_accepted_rejected_per_device_and_duplicates(
    tmp_path, creds: Creds, apns_http, sandbox: SandboxProcess
) -> None:
    device = sandbox.create_device(BUNDLE)
    before = sandbox.stats()
    client = apns_http()

    for m in ["m-1", "m-2", "m-1", "m-1"]:
        client.push(device, {"aps": {"alert": "x"}, "m": m}, jwt_token=creds.token)
    client.push(device, {"aps": {"alert": "no m"}}, jwt_token=creds.token)
    client.push("ab" * 32, jwt_token=creds.token)

    after = sandbox.stats()
    assert after["accepted"] - before["accepted"] == 5
    assert after["byDevice"][device] == 5
    assert after["duplicates"] - before["duplicates"] == 2
    assert after["rejected"]["BadDeviceToken"] - before["rejected"].get("BadDeviceToken", 0) == 1


def test_clearing_notifications_resets_inbox_and_stats(tmp_path) -> None:
    with start_sandbox(tmp_path / "sb") as sb:
        key = sb.issue_p8([BUNDLE])
        device = sb.create_device(BUNDLE)
        with httpx.Client(http2=True, verify=sb.ssl_context()) as c:
            r = c.post(
                f"https://127.0.0.1:{sb.production_port}/3/device/{device}",
                headers={"authorization": f"bearer {make_jwt(key)}", "apns-topic": BUNDLE},
                content=b'{"aps":{"alert":"hi"},"m":"1"}',
            )
            assert r.status_code == 200
        assert sb.stats()["accepted"] == 1

        sb.request("DELETE", "/sandbox/notifications")

        assert sb.notifications() == []
        assert sb.stats() == {
            "accepted": 0,
            "rejected": {},
            "byDevice": {},
            "duplicates": 0,
            "faultsInjected": 0,
            "providerTokens": {},
            "refusedStreams": 0,
        }


def test_store_is_bounded(tmp_path) -> None:
    with start_sandbox(tmp_path / "sb", env={"APNS_SANDBOX_MAX_NOTIFICATIONS": "3"}) as sb:
        key = sb.issue_p8([BUNDLE])
        device = sb.create_device(BUNDLE)
        with httpx.Client(http2=True, verify=sb.ssl_context()) as c:
            token = make_jwt(key)
            for i in range(5):
                c.post(
                    f"https://127.0.0.1:{sb.production_port}/3/device/{device}",
                    headers={"authorization": f"bearer {token}", "apns-topic": BUNDLE},
                    content=f'{{"aps":{{"alert":"n{i}"}}}}'.encode(),
                )

        assert [i["payload"]["aps"]["alert"] for i in sb.notifications(device)] == ["n2", "n3", "n4"]
        assert sb.stats()["accepted"] == 5


def test_keys_devices_and_ca_survive_a_restart(tmp_path) -> None:
    state = tmp_path / "state"
    with start_sandbox(state) as first:
        key = first.issue_p8([BUNDLE])
        device = first.create_device(BUNDLE)
        gone = first.create_device(BUNDLE)
        first.uninstall(gone)
        ca = first.ca_path.read_bytes()

    with start_sandbox(state) as second, httpx.Client(http2=True, verify=second.ssl_context()) as c:
        token = make_jwt(key)
        url = f"https://127.0.0.1:{second.production_port}/3/device/"
        headers = {"authorization": f"bearer {token}", "apns-topic": BUNDLE}
        assert second.ca_path.read_bytes() == ca
        assert c.post(url + device, headers=headers, content=b'{"aps":{}}').status_code == 200
        assert c.post(url + gone, headers=headers, content=b'{"aps":{}}').status_code == 410


def test_ca_is_served(sandbox: SandboxProcess) -> None:
    response = httpx.get(sandbox.control_url + "/sandbox/ca.pem")

    assert response.status_code == 200
    assert response.content == sandbox.ca_path.read_bytes()
    assert response.content.startswith(b"-----BEGIN CERTIFICATE-----")


def test_p8_is_issued_for_its_topics(sandbox: SandboxProcess, apns_http) -> None:
    bundle = unique_bundle()
    response = httpx.post(
        sandbox.control_url + "/sandbox/credentials/p8", json={"teamId": "ABCDE12345", "bundleIds": [bundle]}
    )

    assert response.status_code == 201
    key = response.json()
    assert re.fullmatch(r"[A-Z0-9]{10}", key["keyId"])
    assert key["teamId"] == "ABCDE12345"
    assert key["p8"].startswith("-----BEGIN PRIVATE KEY-----")
    device = sandbox.create_device(bundle)
    assert apns_http().push(device, jwt_token=make_jwt(key), topic=bundle).status_code == 200


def test_event_stream_announces_new_notifications(sandbox: SandboxProcess, creds: Creds, apns_http) -> None:
    received: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", sandbox.control_url + "/sandbox/events", timeout=10) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    received.append(line)
                    ready.set()
                    if len(received) >= 2:
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    assert ready.wait(5)  # the current version, at once

    apns_http().push(creds.prod_device, jwt_token=creds.token)
    thread.join(5)

    assert len(received) == 2
    deadline = time.monotonic() + 1
    while thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_ctrl_c_stops_the_sandbox_cleanly(tmp_path) -> None:
    sb = start_sandbox(tmp_path / "sb")
    with httpx.stream("GET", sb.control_url + "/sandbox/events", timeout=5) as events:
        next(events.iter_lines())  # a live inbox viewer is connected

        sb.stop()

    assert sb.process.returncode == 0
    assert "APNs sandbox stopped." in sb.log_path.read_text()


def test_inbox_api_filters_pages_and_counts(sandbox: SandboxProcess) -> None:
    bundle = unique_bundle()
    tokens = sandbox.request("POST", "/sandbox/devices", {"bundleId": bundle, "count": 30})["deviceTokens"]

    first = sandbox.request("GET", f"/sandbox/inbox?q={bundle[-8:]}&devices=20")
    second = sandbox.request("GET", f"/sandbox/inbox?q={bundle[-8:]}&devices=20&offset=20")
    one = sandbox.request("GET", f"/sandbox/inbox?q={tokens[3][:10].upper()}")

    assert (first["matchingDevices"], len(first["devices"]), first["offset"]) == (30, 20, 0)
    assert first["totalDevices"] >= 30
    assert (second["matchingDevices"], len(second["devices"]), second["offset"]) == (30, 10, 20)
    paged = [d["deviceToken"] for d in first["devices"] + second["devices"]]
    assert sorted(paged) == sorted(tokens)  # every device exactly once across the two pages
    assert [d["deviceToken"] for d in one["devices"]] == [tokens[3]]


@pytest.mark.parametrize("query", ["devices=0", "devices=501", "offset=-1", "perDevice=0", "devices=x"])
def test_inbox_api_refuses_bad_paging(sandbox: SandboxProcess, query: str) -> None:
    response = httpx.get(f"{sandbox.control_url}/sandbox/inbox?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "InvalidQuery"
