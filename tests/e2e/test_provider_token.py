"""One provider token per key across containers: two processes sending with the same p8 key present
byte-for-byte the same JWT, so Apple (here the sandbox, which counts distinct tokens per key as
Apple counts updates per team) sees no token update at all."""

from __future__ import annotations

import time

from chalicelib.apns.provider_token import SharedProviderToken, window_start
from tests.e2e.conftest import BUNDLE, Poller, PushApp, Stack


def test_two_containers_present_one_provider_token(stack: Stack, push_app: PushApp, poller: Poller) -> None:
    key = stack.sandbox.issue_p8([BUNDLE])
    resp = push_app.call(
        "POST",
        "/credentials",
        {
            "type": "p8",
            "name": "shared-key",
            "environment": "production",
            "p8": key["p8"],
            "keyId": key["keyId"],
            "teamId": key["teamId"],
            "bundleId": BUNDLE,
        },
    )
    assert resp.status_code == 201, resp.body
    cert = resp.data["certificateId"]
    tokens = {}
    for user in ("tok-a", "tok-b"):
        tokens[user] = stack.sandbox.create_device(BUNDLE)
        put = push_app.call("PUT", f"/users/{user}/devices/{tokens[user]}", {"certificateId": cert})
        assert put.status_code == 200, put.body

    # container 1: a poller process of its own
    poller.start()
    first = push_app.message({"userId": "tok-a"})
    push_app.call("POST", "/messages", first)
    deadline = time.monotonic() + 60
    while not stack.sandbox.notifications(tokens["tok-a"]):
        assert time.monotonic() < deadline, "container 1 did not send"
        time.sleep(0.1)
    poller.kill()
    time.sleep(1.5)

    # container 2: this test process's handlers
    second = push_app.message({"userId": "tok-b"})
    push_app.call("POST", "/messages", second)
    stack.pump()
    assert len(stack.sandbox.notifications(tokens["tok-b"])) == 1

    [seen] = stack.sandbox.request("GET", f"/sandbox/provider-tokens?keyId={key['keyId']}")["items"]
    assert seen["connections"] >= 2
    assert seen["distinctTokens"] == 1


def test_the_token_is_the_same_in_every_container_within_a_window_and_changes_after() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    start = window_start(1_800_000_000.0)
    now = [start + 10.0]

    def container(skew_s: float) -> SharedProviderToken:
        return SharedProviderToken(pem, "KEY1234567", "TEAM123456", clock=lambda: now[0] + skew_s)

    one, other = container(0), container(5)  # two containers, clocks 5 s apart
    first = one.get_header()
    assert first == other.get_header()
    now[0] = start + 40 * 60 - 1  # the last second of the window: the same token still
    assert one.get_header() == first
    assert other.get_header() != first  # 5 s ahead: already the next window's token
    now[0] = start + 40 * 60
    assert one.get_header() == other.get_header() != first
