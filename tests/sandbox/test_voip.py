"""VoIP (PushKit) in the sandbox as Apple has it: a PushKit token takes only voip pushes on
`<bundleId>.voip`, an APNs token never a voip push, VoIP payloads up to 5,120 bytes, and VoIP
Services certificates serve the .voip topic only."""

from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.serialization import pkcs12

from apns_sandbox.pki import OID_VOIP_TOPICS, push_certificate_info

from .conftest import make_jwt, unique_bundle

VOIP = {"apns-push-type": "voip", "apns-priority": "10"}


def _app(sandbox):
    bundle = unique_bundle()
    key = sandbox.issue_p8([bundle])
    return (
        bundle,
        make_jwt(key),
        sandbox.create_device(bundle, device_type="voip"),
        sandbox.create_device(bundle),
    )


def test_a_voip_push_reaches_a_pushkit_token_on_the_voip_topic(sandbox, apns_http) -> None:
    bundle, token, voip_device, _ = _app(sandbox)
    response = apns_http().push(voip_device, jwt_token=token, topic=bundle + ".voip", headers=VOIP)
    assert response.status_code == 200
    [item] = sandbox.notifications(voip_device)
    assert item["pushType"] == "voip" and item["topic"] == bundle + ".voip"


def test_each_kind_of_token_takes_only_its_own_push_type(sandbox, apns_http) -> None:
    bundle, token, voip_device, alert_device = _app(sandbox)
    alert_to_voip = apns_http().push(voip_device, jwt_token=token, topic=bundle)
    voip_to_alert = apns_http().push(alert_device, jwt_token=token, topic=bundle + ".voip", headers=VOIP)
    assert (alert_to_voip.status_code, alert_to_voip.json()["reason"]) == (400, "DeviceTokenNotForTopic")
    assert (voip_to_alert.status_code, voip_to_alert.json()["reason"]) == (400, "DeviceTokenNotForTopic")


def test_a_voip_push_needs_the_voip_topic(sandbox, apns_http) -> None:
    bundle, token, voip_device, _ = _app(sandbox)
    response = apns_http().push(voip_device, jwt_token=token, topic=bundle, headers=VOIP)
    assert (response.status_code, response.json()["reason"]) == (400, "BadTopic")


def test_voip_payloads_may_be_5120_bytes_and_no_more(sandbox, apns_http) -> None:
    bundle, token, voip_device, _ = _app(sandbox)

    def body(size: int) -> bytes:
        empty = json.dumps({"aps": {}, "call": ""}, separators=(",", ":")).encode()
        return json.dumps({"aps": {}, "call": "x" * (size - len(empty))}, separators=(",", ":")).encode()

    assert len(body(5120)) == 5120
    ok = apns_http().push(voip_device, jwt_token=token, topic=bundle + ".voip", headers=VOIP, body=body(5120))
    big = apns_http().push(
        voip_device, jwt_token=token, topic=bundle + ".voip", headers=VOIP, body=body(5121)
    )
    assert ok.status_code == 200
    assert (big.status_code, big.json()["reason"]) == (413, "PayloadTooLarge")


def test_a_voip_services_certificate_is_laid_out_like_apples(sandbox) -> None:
    issued = sandbox.issue_p12("com.example.chat", "production", "pw", type="voip")
    _, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(issued["p12"]), b"pw")
    assert cert is not None
    assert issued["subject"].endswith("CN=VoIP Services: com.example.chat,UID=com.example.chat.voip")
    assert cert.extensions.get_extension_for_oid(OID_VOIP_TOPICS)
    info = push_certificate_info(cert)
    assert info is not None and info.voip and info.bundle_id == "com.example.chat"
    assert info.environments == {"development", "production"}


def test_a_voip_certificate_sends_voip_only_and_a_push_certificate_no_voip(
    sandbox, apns_http, tmp_path
) -> None:
    bundle = unique_bundle()
    voip_device, alert_device = (
        sandbox.create_device(bundle, device_type="voip"),
        sandbox.create_device(bundle),
    )
    voip_cert = sandbox.issue_client_pem(bundle, "production", type="voip")
    push_cert = sandbox.issue_client_pem(bundle, "production")
    with_voip = apns_http("production", cert=voip_cert)
    with_push = apns_http("production", cert=push_cert)
    assert with_voip.push(voip_device, topic=bundle + ".voip", headers=VOIP).status_code == 200
    refused = [
        with_voip.push(alert_device, topic=bundle),
        with_push.push(voip_device, topic=bundle + ".voip", headers=VOIP),
    ]
    assert [(r.status_code, r.json()["reason"]) for r in refused] == [(400, "TopicDisallowed")] * 2
    assert with_push.push(alert_device, topic=bundle).status_code == 200


def test_a_universal_certificate_lists_its_topics_like_apples(sandbox) -> None:
    # Given a universal certificate the sandbox issues (Apple's "Apple Push Services", both environments)
    issued = sandbox.issue_p12("com.example.chat", "production", "pw", universal=True)
    _, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(issued["p12"]), b"pw")
    assert cert is not None
    info = push_certificate_info(cert)
    # Then its topics extension lists the app, its .voip and .complication topics
    assert issued["universal"] is True
    assert issued["subject"].endswith("CN=Apple Push Services: com.example.chat,UID=com.example.chat")
    assert info is not None and info.universal and info.environments == {"development", "production"}
    assert info.topics == {"com.example.chat", "com.example.chat.voip", "com.example.chat.complication"}


def test_a_universal_certificate_sends_alerts_and_voip_but_no_other_topic(sandbox, apns_http) -> None:
    # Given an app's alert and PushKit tokens and a universal certificate for the app
    bundle = unique_bundle()
    voip_device, alert_device = (
        sandbox.create_device(bundle, device_type="voip"),
        sandbox.create_device(bundle),
    )
    universal = apns_http("production", cert=sandbox.issue_client_pem(bundle, "production", universal=True))
    # When it sends an alert and a voip push, and a push to a topic it does not list
    alert = universal.push(alert_device, topic=bundle)
    voip = universal.push(voip_device, topic=bundle + ".voip", headers=VOIP)
    other = universal.push(alert_device, topic=bundle + ".pushtotalk-x")
    # Then both are delivered, as Apple delivers them, and the unlisted topic is refused
    assert (alert.status_code, voip.status_code) == (200, 200)
    assert sandbox.notifications(voip_device)[0]["pushType"] == "voip"
    assert other.status_code == 400
