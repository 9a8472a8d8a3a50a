"""The provider API answers like APNs: one test per rule, over an independent HTTP/2 client (httpx)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from .conftest import BUNDLE, Creds, make_jwt, unique_bundle


def _reason(response: Any) -> str:
    return str(response.json()["reason"])


# --- success --------------------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["production", "development"])
def test_valid_notification_is_accepted_on_both_endpoints(
    sandbox, creds: Creds, apns_http, environment
) -> None:
    device = creds.prod_device if environment == "production" else creds.dev_device
    apns_id = str(uuid.uuid4())
    payload = {"aps": {"alert": {"title": "Alice", "body": "Lunch?"}, "badge": 1}, "m": f"m-{apns_id}"}

    response = apns_http(environment).push(
        device, payload, jwt_token=creds.token, headers={"apns-id": apns_id}
    )

    assert response.status_code == 200
    assert response.http_version == "HTTP/2"
    assert response.headers["apns-id"] == apns_id  # echoed exactly as sent
    assert ("apns-unique-id" in response.headers) == (environment == "development")
    item = sandbox.notifications(device, limit=1)[0]
    assert item["apnsId"] == apns_id
    assert item["payload"] == payload
    assert item["environment"] == environment
    assert item["topic"] == BUNDLE
    assert item["headers"]["apns-topic"] == BUNDLE
    assert "authorization" not in item["headers"]


def test_missing_apns_id_is_generated_as_uppercase_uuid(creds: Creds, apns_http) -> None:
    response = apns_http().push(creds.prod_device, jwt_token=creds.token)

    assert response.status_code == 200
    assert re.fullmatch(
        r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", response.headers["apns-id"]
    )


@pytest.mark.parametrize(
    ("headers", "body_size"),
    [
        ({"apns-collapse-id": "c" * 64}, None),
        ({}, 4096),
        ({"apns-push-type": "voip"}, 5120),
        ({"apns-expiration": "0", "apns-priority": "5"}, None),
        ({"apns-push-type": "background", "apns-priority": "5"}, None),
    ],
    ids=[
        "collapse-id-64-bytes",
        "payload-4096",
        "voip-payload-5120",
        "expiration-0",
        "background-priority-5",
    ],
)
def test_limits_are_inclusive(sandbox, creds: Creds, apns_http, headers, body_size) -> None:
    voip = headers.get("apns-push-type") == "voip"
    topic = BUNDLE + ".voip" if voip else BUNDLE
    # A voip push goes to a PushKit token (an ordinary one answers DeviceTokenNotForTopic).
    device = sandbox.create_device(BUNDLE, device_type="voip") if voip else creds.prod_device
    body = None
    if body_size:
        base = json.dumps({"aps": {"alert": "x"}, "pad": ""})
        body = json.dumps({"aps": {"alert": "x"}, "pad": "p" * (body_size - len(base))}).encode()
        assert len(body) == body_size

    response = apns_http().push(device, jwt_token=creds.token, topic=topic, headers=headers, body=body)

    assert response.status_code == 200, response.text


# --- Apple's reasons, one case each ---------------------------------------------------------------


@dataclass
class Case:
    reason: str
    status: int
    call: Callable[[Creds, Any], Any]


def _payload_of(size: int) -> bytes:
    base = json.dumps({"aps": {"alert": "x"}, "pad": ""})
    return json.dumps({"aps": {"alert": "x"}, "pad": "p" * (size - len(base))}).encode()


CASES: dict[str, Case] = {
    "malformed-token": Case("BadDeviceToken", 400, lambda c, a: a.push("not-hex", jwt_token=c.token)),
    "unknown-token": Case("BadDeviceToken", 400, lambda c, a: a.push("ab" * 32, jwt_token=c.token)),
    "development-token-on-production": Case(
        "BadDeviceToken", 400, lambda c, a: a.push(c.dev_device, jwt_token=c.token)
    ),
    "token-of-another-app": Case(
        "DeviceTokenNotForTopic", 400, lambda c, a: a.push(c.other_device, jwt_token=c.token, topic=BUNDLE)
    ),
    "topic-not-allowed-for-key": Case(
        "TopicDisallowed", 400, lambda c, a: a.push(c.prod_device, jwt_token=c.token, topic="com.evil.app")
    ),
    "no-topic-with-token-auth": Case(
        "MissingTopic", 400, lambda c, a: a.push(c.prod_device, jwt_token=c.token, topic=None)
    ),
    "voip-without-voip-topic": Case(
        "BadTopic",
        400,
        lambda c, a: a.push(c.prod_device, jwt_token=c.token, headers={"apns-push-type": "voip"}),
    ),
    "malformed-topic": Case(
        "BadTopic", 400, lambda c, a: a.push(c.prod_device, jwt_token=c.token, topic="bad topic!")
    ),
    "priority-7": Case(
        "BadPriority",
        400,
        lambda c, a: a.push(c.prod_device, jwt_token=c.token, headers={"apns-priority": "7"}),
    ),
    "background-priority-10": Case(
        "BadPriority",
        400,
        lambda c, a: a.push(
            c.prod_device, jwt_token=c.token, headers={"apns-push-type": "background", "apns-priority": "10"}
        ),
    ),
    "expiration-not-a-number": Case(
        "BadExpirationDate",
        400,
        lambda c, a: a.push(c.prod_device, jwt_token=c.token, headers={"apns-expiration": "tomorrow"}),
    ),
    "collapse-id-65-bytes": Case(
        "BadCollapseId",
        400,
        lambda c, a: a.push(c.prod_device, jwt_token=c.token, headers={"apns-collapse-id": "c" * 65}),
    ),
    "unknown-push-type": Case(
        "InvalidPushType",
        400,
        lambda c, a: a.push(c.prod_device, jwt_token=c.token, headers={"apns-push-type": "fax"}),
    ),
    "empty-payload": Case(
        "PayloadEmpty", 400, lambda c, a: a.push(c.prod_device, jwt_token=c.token, body=b"")
    ),
    "payload-4097": Case(
        "PayloadTooLarge", 413, lambda c, a: a.push(c.prod_device, jwt_token=c.token, body=_payload_of(4097))
    ),
    "voip-payload-5121": Case(
        "PayloadTooLarge",
        413,
        lambda c, a: a.push(
            c.prod_device,
            jwt_token=c.token,
            topic=BUNDLE + ".voip",
            headers={"apns-push-type": "voip"},
            body=_payload_of(5121),
        ),
    ),
    "payload-not-json": Case(
        "BadPayload", 400, lambda c, a: a.push(c.prod_device, jwt_token=c.token, body=b"{nope")
    ),
    "payload-not-object": Case(
        "BadPayload", 400, lambda c, a: a.push(c.prod_device, jwt_token=c.token, body=b"[1]")
    ),
    "payload-without-aps": Case(
        "BadPayload", 400, lambda c, a: a.push(c.prod_device, {"m": "1"}, jwt_token=c.token)
    ),
    "apns-id-not-a-uuid": Case(
        "BadMessageId", 400, lambda c, a: a.push(c.prod_device, jwt_token=c.token, headers={"apns-id": "42"})
    ),
    "get-method": Case(
        "MethodNotAllowed", 405, lambda c, a: a.push(c.prod_device, jwt_token=c.token, method="GET")
    ),
    "bad-path": Case(
        "BadPath", 404, lambda c, a: a.push(c.prod_device, jwt_token=c.token, path="/3/devices/x")
    ),
    "no-device-in-path": Case(
        "MissingDeviceToken", 400, lambda c, a: a.push("", jwt_token=c.token, path="/3/device/")
    ),
    "duplicate-topic-header": Case(
        "DuplicateHeaders",
        400,
        lambda c, a: a.push(c.prod_device, jwt_token=c.token, headers=[("apns-topic", BUNDLE)]),
    ),
    "no-authorization": Case("MissingProviderToken", 403, lambda c, a: a.push(c.prod_device)),
    "not-a-bearer-token": Case(
        "InvalidProviderToken",
        403,
        lambda c, a: a.push(c.prod_device, headers={"authorization": "basic abc"}),
    ),
    "garbage-token": Case("InvalidProviderToken", 403, lambda c, a: a.push(c.prod_device, jwt_token="a.b.c")),
    "unknown-key-id": Case(
        "InvalidProviderToken",
        403,
        lambda c, a: a.push(c.prod_device, jwt_token=make_jwt(c.key, kid="ZZZZZZZZZZ")),
    ),
    "wrong-team-id": Case(
        "InvalidProviderToken",
        403,
        lambda c, a: a.push(c.prod_device, jwt_token=make_jwt(c.key, iss="WRONGTEAM1")),
    ),
    "token-older-than-one-hour": Case(
        "ExpiredProviderToken",
        403,
        lambda c, a: a.push(c.prod_device, jwt_token=make_jwt(c.key, iat=int(time.time()) - 3601)),
    ),
}


@pytest.mark.parametrize("case_id", list(CASES))
def test_apple_rejects_with_reason(creds: Creds, apns_http, sandbox, case_id: str) -> None:
    case = CASES[case_id]
    before = sandbox.stats()["rejected"].get(case.reason, 0)

    response = case.call(creds, apns_http())

    assert (response.status_code, _reason(response)) == (case.status, case.reason), response.text
    assert response.headers["apns-id"]
    assert response.headers["content-type"].startswith("application/json")
    assert sandbox.stats()["rejected"][case.reason] == before + 1


def test_token_signed_by_another_key_is_invalid(sandbox, creds: Creds, apns_http) -> None:
    stranger = sandbox.issue_p8([BUNDLE])
    forged = make_jwt({**stranger, "keyId": creds.key["keyId"], "teamId": creds.key["teamId"]})

    response = apns_http().push(creds.prod_device, jwt_token=forged)

    assert (response.status_code, _reason(response)) == (403, "InvalidProviderToken")


def test_revoked_key_is_invalid(sandbox, apns_http) -> None:
    bundle = unique_bundle()
    key = sandbox.issue_p8([bundle])
    device = sandbox.create_device(bundle)
    token = make_jwt(key)
    client = apns_http()
    assert client.push(device, jwt_token=token, topic=bundle).status_code == 200

    sandbox.request("DELETE", f"/sandbox/credentials/p8/{key['keyId']}")
    response = client.push(device, jwt_token=token, topic=bundle)

    assert (response.status_code, _reason(response)) == (403, "InvalidProviderToken")


def test_key_restricted_to_development_is_refused_in_production(sandbox, apns_http) -> None:
    bundle = unique_bundle()
    key = sandbox.issue_p8([bundle], environment="development")
    device = sandbox.create_device(bundle, "production")

    response = apns_http("production").push(device, jwt_token=make_jwt(key), topic=bundle)

    assert (response.status_code, _reason(response)) == (403, "BadEnvironmentKeyInToken")


def test_uninstalled_app_gets_410_with_timestamp(sandbox, creds: Creds, apns_http) -> None:
    device = sandbox.create_device(BUNDLE)
    uninstalled = sandbox.uninstall(device)

    response = apns_http().push(device, jwt_token=creds.token)

    assert response.status_code == 410
    assert response.json() == {"reason": "Unregistered", "timestamp": uninstalled["uninstalledAtMs"]}


def test_provider_token_may_change_only_every_20_minutes_per_connection(sandbox, apns_http) -> None:
    bundle = unique_bundle()
    key = sandbox.issue_p8([bundle])
    device = sandbox.create_device(bundle)
    client = apns_http()
    assert client.push(device, jwt_token=make_jwt(key), topic=bundle).status_code == 200

    response = client.push(device, jwt_token=make_jwt(key, iat=int(time.time()) - 5), topic=bundle)

    assert (response.status_code, _reason(response)) == (429, "TooManyProviderTokenUpdates")
    # a new connection may start with a new token
    assert (
        apns_http().push(device, jwt_token=make_jwt(key, iat=int(time.time()) - 5), topic=bundle).status_code
        == 200
    )
