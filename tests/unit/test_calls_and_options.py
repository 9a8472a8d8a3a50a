"""Calls, VoIP (PushKit) tokens and the per-message options (API.md "Version 2 additions"): the pure
rules of rendering, payload, headers, policy and credential validation."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from pydantic import ValidationError

from apns_sandbox.pki import SandboxCA
from chalicelib.apns.client import AbsoluteExpiration
from chalicelib.apns.credentials import OID_VOIP_TOPICS, validate_p12
from chalicelib.apns.ids import call_collapse_id
from chalicelib.apns.payload import (
    ELLIPSIS,
    PayloadTooLargeError,
    apns_headers,
    build_message,
    build_payload,
)
from chalicelib.errors import InvalidCredential
from chalicelib.models.credentials import Credential, P12Upload
from chalicelib.models.message import MessageEvent
from chalicelib.models.push_config import AppState, PushConfig
from chalicelib.services.policy import DeviceView, Recipient, SkipReason, decide, message_skip_reason
from chalicelib.services.render import render
from tests.certs import OID_PUSH_PRODUCTION, PASSWORD, b64, odd_p12

SEND = 1763790000


def event(**overrides: Any) -> MessageEvent:
    data: dict[str, Any] = {
        "messageId": "m-1",
        "sendTime": SEND,
        "sender": {"userId": "denny", "nickname": "Denny"},
        "to": {"userId": "vinson"},
        "elems": [{"type": "text", "text": "hi"}],
    }
    data.update(overrides)
    return MessageEvent.model_validate(data)


def call(
    action: str = "invite", media: str = "audio", event_fields: dict[str, Any] | None = None, **more: Any
) -> MessageEvent:
    body = {"callId": "c-1", "media": media, "action": action, **more}
    return event(elems=[], call=body, **(event_fields or {}))


# ---- the call object on the event --------------------------------------------------------------


def test_a_call_event_needs_no_elements_and_defaults_to_a_60_second_timeout() -> None:
    e = call()
    assert e.elems == [] and e.call is not None and e.call.timeout_seconds == 60
    assert e.expiration == SEND + 60


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("timeoutSeconds", 4, "greater than or equal to 5"),
        ("timeoutSeconds", 601, "less than or equal to 600"),
        ("media", "screen", "'audio' or 'video'"),
        ("action", "accept", "'invite' or 'cancel'"),
        ("data", "x" * 2049, "at most 2048"),
        ("callId", "a b", "not valid"),
    ],
)
def test_call_fields_are_checked(field: str, value: Any, expected: str) -> None:
    body = {"callId": "c-1", "media": "audio", "action": "invite", field: value}
    with pytest.raises(ValidationError) as caught:
        event(elems=[], call=body)
    assert expected in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("interruptionLevel", "loud", "passive"),
        ("relevanceScore", 1.5, "less than or equal to 1"),
        ("image", "http://cdn.example.com/a.jpg", "https URL"),
        ("expiresIn", 2_592_001, "less than or equal to 2592000"),
        ("expiresIn", "60", "JSON integer"),
    ],
)
def test_options_are_checked(field: str, value: Any, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        event(offlinePushInfo={field: value})
    assert expected in str(caught.value)


# ---- what a call says --------------------------------------------------------------------------

CALL_BODIES = [
    ("zh", "audio", "invite", "Denny:[语音通话]"),
    ("zh", "video", "invite", "Denny:[视频通话]"),
    ("en", "audio", "invite", "Denny: [audio call]"),
    ("en", "video", "invite", "Denny: [video call]"),
    ("zh", "video", "cancel", "Denny:[通话已取消]"),
    ("en", "audio", "cancel", "Denny: [call cancelled]"),
]


@pytest.mark.parametrize(("language", "media", "action", "expected"), CALL_BODIES)
def test_a_call_reads_as_its_placeholder_with_the_name_prefix(
    language: Any, media: str, action: str, expected: str
) -> None:
    assert render(call(action, media), language=language).body == expected


def test_a_group_call_uses_the_group_prefix_and_simple_banner_the_placeholder_alone() -> None:
    e = event(
        elems=[],
        to={"groupId": "g1", "groupName": "Dev"},
        sender={"userId": "denny", "nickname": "Denny", "nameCard": "Lead"},
        call={"callId": "c-1", "media": "video", "action": "invite"},
    )
    assert render(e).body == "Lead(Dev):[视频通话]"
    assert render(e, display_style="simpleBanner", language="en").body == "[video call]"


def test_an_invitation_is_time_sensitive_rings_and_carries_the_call() -> None:
    n = render(call(roomId="r-9", data='{"k":1}', timeoutSeconds=30))
    assert n.interruption_level == "time-sensitive"
    assert n.sound == "default" and not n.ignore_badge
    assert n.collapse_id == "call-c-1"
    assert n.expiration == SEND + 30
    assert n.call == {
        "callId": "c-1",
        "media": "audio",
        "action": "invite",
        "roomId": "r-9",
        "data": '{"k":1}',
        "sendTime": SEND,
        "timeoutSeconds": 30,
    }


def test_a_cancellation_replaces_the_invitation_silently_without_a_badge() -> None:
    e = call("cancel", event_fields={"offlinePushInfo": {"desc": "not for a cancel", "sound": "ring.caf"}})
    n = render(e)
    assert n.collapse_id == render(call()).collapse_id
    assert n.sound is None and n.ignore_badge and not e.counts_in_badge
    assert n.body == "Denny:[通话已取消]"
    payload = json.loads(build_payload(n, recipient_user_id="vinson", badge=None))
    assert "sound" not in payload["aps"] and "badge" not in payload["aps"]
    assert payload["call"]["action"] == "cancel"


def test_a_long_call_id_is_hashed_into_the_collapse_id() -> None:
    long_id = "c" * 70
    assert call_collapse_id(long_id) == hashlib.sha256(f"call-{long_id}".encode()).hexdigest()
    assert call_collapse_id("c" * 59) == "call-" + "c" * 59  # exactly 64 bytes: kept


# ---- the options in the payload ----------------------------------------------------------------

OPTIONS = {
    "title": "Team",
    "subtitle": "Sprint",
    "category": "MESSAGE_REPLY",
    "interruptionLevel": "passive",
    "relevanceScore": 0.75,
    "image": "https://cdn.example.com/p/1.jpg",
    "expiresIn": 3600,
}


def test_every_option_lands_where_apple_reads_it() -> None:
    n = render(event(offlinePushInfo=OPTIONS))
    payload = json.loads(build_payload(n, recipient_user_id="vinson", badge=3))
    aps = payload["aps"]
    assert aps["alert"] == {"title": "Team", "subtitle": "Sprint", "body": "Denny:hi"}
    assert aps["category"] == "MESSAGE_REPLY"
    assert aps["interruption-level"] == "passive"
    assert aps["relevance-score"] == 0.75
    assert aps["mutable-content"] == 1
    assert payload["image"] == "https://cdn.example.com/p/1.jpg"
    assert n.expiration == SEND + 3600


@pytest.mark.parametrize(("expires_in", "header"), [(0, 0), (1, SEND + 1), (2_592_000, SEND + 2_592_000)])
def test_expires_in_sets_apns_expiration(expires_in: int, header: int) -> None:
    assert event(offlinePushInfo={"expiresIn": expires_in}).expiration == header


def test_no_option_no_key() -> None:
    payload = json.loads(build_payload(render(event()), recipient_user_id="vinson", badge=1))
    assert set(payload["aps"]) == {"alert", "badge", "sound", "thread-id"}
    assert "image" not in payload and "call" not in payload


def test_fitting_shortens_the_body_only_and_keeps_the_options_whole() -> None:
    n = render(event(elems=[{"type": "text", "text": "长" * 3000}], offlinePushInfo=OPTIONS))
    data = build_payload(n, recipient_user_id="vinson", badge=1)
    assert len(data) <= 4096
    payload = json.loads(data)
    assert payload["aps"]["alert"]["body"].endswith(ELLIPSIS)
    assert payload["aps"]["alert"]["subtitle"] == "Sprint" and payload["aps"]["alert"]["title"] == "Team"
    assert payload["image"] == OPTIONS["image"] and payload["aps"]["relevance-score"] == 0.75


def test_a_title_too_long_is_shortened_behind_an_ellipsis_body() -> None:
    n = render(event(offlinePushInfo={"title": "T" * 1024, "subtitle": "S" * 1024, "ext": "e" * 1000}))
    payload = json.loads(build_payload(n, recipient_user_id="vinson", badge=1))
    assert payload["aps"]["alert"]["body"] == ELLIPSIS
    assert payload["aps"]["alert"]["title"].endswith(ELLIPSIS)
    assert payload["aps"]["alert"]["subtitle"] == "S" * 1024  # never shortened


def test_a_subtitle_that_leaves_no_room_fails_the_device() -> None:
    n = render(event(offlinePushInfo={"subtitle": "S" * 1024, "ext": "e" * 1536}))
    with pytest.raises(PayloadTooLargeError):
        build_payload(n, recipient_user_id="vinson", badge=1, limit=3000)


# ---- VoIP --------------------------------------------------------------------------------------


def test_the_voip_form_carries_the_call_without_badge_or_sound() -> None:
    n = render(call())
    message = build_message(n, recipient_user_id="vinson", badge=4, voip=True)
    assert message["aps"] == {"alert": {"body": "Denny:[语音通话]"}}
    assert message["call"]["callId"] == "c-1" and message["m"] == "m-1"


def test_a_voip_payload_may_use_5120_bytes() -> None:
    n = render(call(data="d" * 2048), language="en")
    n = type(n)(**{**{f: getattr(n, f) for f in n.__slots__}, "body": "x" * 4500})  # type: ignore[attr-defined]
    voip = build_message(n, recipient_user_id="vinson", badge=None, voip=True)
    assert voip["aps"]["alert"]["body"].endswith(ELLIPSIS)
    size = len(json.dumps(voip, ensure_ascii=False).encode())
    assert 4096 < size <= 5120
    alert = build_message(n, recipient_user_id="vinson", badge=None)
    assert len(json.dumps(alert, ensure_ascii=False).encode()) <= 4096


def test_voip_headers_use_the_voip_topic_and_priority_10() -> None:
    assert apns_headers(topic="com.example.chat", priority="normal", voip=True) == {
        "apns-topic": "com.example.chat.voip",
        "apns-push-type": "voip",
        "apns-priority": "10",
    }
    assert apns_headers(topic="com.example.chat", priority="normal", expiration=0)["apns-expiration"] == "0"


def test_an_absolute_expiration_survives_aioapns_relative_arithmetic() -> None:
    # aioapns writes int(time.time()) + time_to_live: the header must be the epoch second itself.
    assert int(time.time()) + AbsoluteExpiration(0) == 0
    assert int(time.time()) + AbsoluteExpiration(SEND + 60) == SEND + 60


NOW = datetime.fromtimestamp(SEND + 1, UTC)


def recipient(*devices: DeviceView) -> Recipient:
    return Recipient(user_id="vinson", config=PushConfig(), state=AppState(), devices=devices)


ALERT = DeviceView("aa" * 32, 1, True)
VOIP = DeviceView("bb" * 32, 2, True, kind="voip")


def test_ordinary_messages_skip_voip_tokens() -> None:
    d = decide(event(), recipient(ALERT, VOIP), now=NOW)
    assert d.targets == (ALERT,) and d.device_skips == ((VOIP.token, "voipToken"),)


def test_a_user_with_an_active_voip_token_gets_calls_there_only() -> None:
    d = decide(call(), recipient(ALERT, VOIP), now=NOW)
    assert d.targets == (VOIP,) and d.device_skips == ((ALERT.token, "callOnVoip"),)


def test_without_an_active_voip_token_a_call_goes_to_the_alert_tokens() -> None:
    disabled = DeviceView(VOIP.token, 2, False, kind="voip")
    d = decide(call(), recipient(ALERT, disabled), now=NOW)
    assert d.targets == (ALERT,) and d.device_skips == ((VOIP.token, "pushDisabled"),)


def test_a_user_with_only_a_voip_token_gets_no_ordinary_message() -> None:
    d = decide(event(), recipient(VOIP), now=NOW)
    assert d.skip_reason == SkipReason.NO_DEVICE and d.device_skips == ((VOIP.token, "voipToken"),)


# ---- expiry ------------------------------------------------------------------------------------


def at(seconds_after_send: float) -> datetime:
    return datetime.fromtimestamp(SEND + seconds_after_send, UTC)


def test_a_call_handled_after_its_timeout_is_skipped_expired() -> None:
    e = call(timeoutSeconds=30)
    assert decide(e, recipient(ALERT), now=at(29.9)).pushed
    assert decide(e, recipient(ALERT), now=at(30)).skip_reason == SkipReason.EXPIRED
    assert message_skip_reason(e, now=at(31)) == SkipReason.EXPIRED


def test_expires_in_skips_late_recipients_and_zero_means_now_or_never() -> None:
    late = event(offlinePushInfo={"expiresIn": 60})
    assert decide(late, recipient(ALERT), now=at(59)).pushed
    assert decide(late, recipient(ALERT), now=at(60)).skip_reason == SkipReason.EXPIRED
    now_or_never = event(offlinePushInfo={"expiresIn": 0})
    assert message_skip_reason(now_or_never, now=at(5)) is None  # the first attempt is sent
    assert message_skip_reason(now_or_never, now=at(5), retry=True) == SkipReason.EXPIRED


# ---- VoIP Services certificates and credentials ------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> SandboxCA:
    return SandboxCA.create("Unit Test Issuer")


def p12_upload(p12: bytes, environment: str = "production") -> P12Upload:
    return P12Upload(type="p12", name="voip", environment=environment, p12=b64(p12), password=PASSWORD)


@pytest.mark.parametrize("environment", ["development", "production"])
def test_a_voip_services_certificate_is_accepted_for_voip_in_either_environment(
    ca: SandboxCA, environment: str
) -> None:
    p12 = ca.issue_push_certificate("com.example.chat", "production", PASSWORD, voip=True)
    v = validate_p12(p12_upload(p12, environment), [ca.cert], datetime.now(UTC))
    assert v.bundle_id == "com.example.chat" and v.push_types == ("voip",)
    cert = x509.load_pem_x509_certificate(v.secret["certificatePem"].encode())
    assert OID_VOIP_TOPICS in {e.oid for e in cert.extensions}


@pytest.mark.parametrize(
    ("cn", "uid", "oids", "code"),
    [
        (
            "VoIP Services: com.example.chat",
            "com.example.chat.voip",
            (OID_PUSH_PRODUCTION,),
            "NotPushCertificate",
        ),
        ("VoIP Services: com.example.chat", None, (OID_VOIP_TOPICS,), "MissingBundleId"),
        ("VoIP Services: com.example.chat", "com.other.app.voip", (OID_VOIP_TOPICS,), "MissingBundleId"),
        ("VoIP Services: ", "x.voip", (OID_VOIP_TOPICS,), "MissingBundleId"),
    ],
    ids=["no-voip-extension", "no-uid", "two-apps", "no-bundle"],
)
def test_voip_certificates_are_checked_like_push_certificates(
    ca: SandboxCA, cn: str, uid: str | None, oids: tuple[x509.ObjectIdentifier, ...], code: str
) -> None:
    with pytest.raises(InvalidCredential) as caught:
        validate_p12(p12_upload(odd_p12(ca, cn=cn, uid=uid, oids=oids)), [ca.cert], datetime.now(UTC))
    assert caught.value.code == code


def test_an_untrusted_or_expired_voip_certificate_is_refused(ca: SandboxCA) -> None:
    other = SandboxCA.create("Someone Else")
    p12 = other.issue_push_certificate("com.example.chat", "production", PASSWORD, voip=True)
    with pytest.raises(InvalidCredential) as caught:
        validate_p12(p12_upload(p12), [ca.cert], datetime.now(UTC))
    assert caught.value.code == "UntrustedIssuer"
    old = ca.issue_push_certificate(
        "com.example.chat",
        "production",
        PASSWORD,
        voip=True,
        not_before=datetime.now(UTC) - dt.timedelta(days=400),
        not_after=datetime.now(UTC) - dt.timedelta(days=1),
    )
    with pytest.raises(InvalidCredential) as caught:
        validate_p12(p12_upload(old), [ca.cert], datetime.now(UTC))
    assert caught.value.code == "Expired"


def test_p8_keys_serve_both_topics_and_certificates_one() -> None:
    base = {"certificateId": 1, "name": "n", "bundleId": "com.example.chat", "environment": "production"}
    now = datetime.now(UTC)
    p8 = Credential.model_validate({**base, "type": "p8", "createdAt": now})
    push = Credential.model_validate({**base, "type": "p12", "createdAt": now})
    voip = Credential.model_validate({**base, "type": "p12", "createdAt": now, "pushTypes": ["voip"]})
    assert p8.serves("alert") and p8.serves("voip")
    assert push.serves("alert") and not push.serves("voip")
    assert voip.serves("voip") and not voip.serves("alert")
