"""One test per seed (../shared/seeds/000-004): the seed's server-facing flow and payload expectations,
replayed through the local stack (API -> SQS -> fan-out -> send -> the APNs sandbox). Each uses the
seed's own field names and reads the payload the way the seed's client code does; none gets a 400.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from tests.e2e.conftest import BUNDLE, PushApp, Stack, payloads


def ok(resp: Any, status: int = 200) -> Any:
    assert resp.status_code == status, resp.body
    return resp.data


def settings(app: PushApp, **values: Any) -> None:
    ok(app.call("PATCH", "/settings", values))


def upload_p12(stack: Stack, app: PushApp, name: str, **extra: Any) -> dict[str, Any]:
    issued = stack.sandbox.issue_p12(BUNDLE, "production", "pw", **extra)
    body = {"type": "p12", "name": name, "environment": "production", "p12": issued["p12"], "password": "pw"}
    return dict(ok(app.call("POST", "/credentials", body), 201))


def register(app: PushApp, user: str, reference: dict[str, Any], device_type: str = "alert") -> str:
    token = app.sandbox.create_device(BUNDLE, "production", device_type=device_type)
    ok(app.call("PUT", f"/users/{user}/devices/{token}", {**reference, "type": device_type}, user=user))
    return token


def send(stack: Stack, app: PushApp, to: dict[str, Any], **extra: Any) -> dict[str, Any]:
    event = app.message(to, **extra)
    ok(app.call("POST", "/messages", event), 202)
    stack.pump()
    return event


def last(app: PushApp, token: str) -> dict[str, Any]:
    return payloads(app.sandbox, token)[-1]


def test_seed_000_tencent_timmanager_apns(stack: Stack, push_app: PushApp) -> None:
    """Tencent's first guide: busiId, setAPNS sounds, doForeground/doBackground, TIMOfflinePushInfo
    with pushFlag, iosConfig and androidConfig; the app reads userInfo["ext"]."""
    settings(push_app, payloadConventions=["tencent"], foregroundLeaseSeconds=0)
    busi_id = upload_p12(stack, push_app, "prod")["certificateId"]
    vinson = register(push_app, "vinson", {"certificateId": busi_id})  # param.busiId = 2382
    ok(
        push_app.call(
            "PATCH", "/users/vinson/push-config", {"openPush": 1, "c2cSound": "c2c.caf"}, user="vinson"
        )
    )
    to = {"userId": "vinson"}

    # doForeground once: the app holds its connection, no push however long it stays
    ok(push_app.call("PUT", "/users/vinson/app-state", {"state": "foreground"}, user="vinson"))
    hidden = send(stack, push_app, to, sender={"userId": "denny", "nickname": "Denny"})
    assert [d["reason"] for d in push_app.deliveries(hidden["messageId"])] == ["foreground"]

    # doBackground with c2cUnread 3; a message with the seed's TIMOfflinePushInfo
    ok(
        push_app.call(
            "PUT", "/users/vinson/app-state", {"state": "background", "unreadCount": 3}, user="vinson"
        )
    )
    info = {
        "desc": "Denny 发来一条消息",
        "ext": "jump to denny",
        "pushFlag": 0,
        "iosConfig": {"sound": "ding.caf", "ignoreBadge": False},
        "androidConfig": {"title": "t", "sound": "s", "notifyMode": 0},
    }
    send(stack, push_app, to, sender={"userId": "denny", "nickname": "Denny"}, offlinePushInfo=info)
    payload = last(push_app, vinson)
    assert payload["ext"] == "jump to denny"
    assert payload["aps"]["alert"]["body"] == "Denny 发来一条消息"
    assert (payload["aps"]["badge"], payload["aps"]["sound"]) == (4, "ding.caf")
    # without push info: 昵称:内容 with the c2c sound the user set
    send(stack, push_app, to, sender={"userId": "denny", "nickname": "Denny"})
    aps = last(push_app, vinson)["aps"]
    assert (aps["badge"], aps["sound"]) == (5, "c2c.caf")
    assert last(push_app, vinson)["aps"]["alert"]["body"] == "Denny:hi"
    # pushFlag 1: not pushed
    silent = send(stack, push_app, to, offlinePushInfo={"pushFlag": 1})
    assert [d["reason"] for d in push_app.deliveries(silent["messageId"])] == ["disablePush"]
    assert len(payloads(push_app.sandbox, vinson)) == 2


def test_seed_001_tuikit_tpns(stack: Stack, push_app: PushApp) -> None:
    """TUIKit: the TPNS registration is refused with the way out; TUIKit's own push info (ext entity,
    AndroidOPPOChannelID) goes through whole; without ext the entity is built; calls are action 2 with
    the content JSON the handler parses."""
    settings(push_app, payloadConventions=["tpns"])
    refused = push_app.call("PUT", f"/users/vinson/devices/{'ab' * 32}", {"certificateId": 0}, user="vinson")
    assert refused.status_code == 400 and "TPNS tokens are not served" in refused.data["error"]["message"]
    vinson = register(push_app, "vinson", {"certificateId": push_app.prod_cert})

    # TUIKit's sendMessage: ext = the pretty-printed entity, ~470 Chinese characters of content
    text = "长" * 470
    entity = {
        "action": 1,
        "content": text,
        "sender": "denny",
        "nickname": "Denny",
        "faceUrl": "",
        "chatType": 1,
    }
    ext = json.dumps({"entity": entity}, ensure_ascii=False, indent=2)
    assert len(ext.encode()) > 1536  # what used to be refused
    info = {"ext": ext, "AndroidOPPOChannelID": "tuikit"}
    send(
        stack,
        push_app,
        {"userId": "vinson"},
        sender={"userId": "denny", "nickname": "Denny"},
        elems=[{"type": "text", "text": text}],
        offlinePushInfo=info,
    )

    def handler(payload: dict[str, Any]) -> dict[str, Any]:
        # xgPushDidReceiveNotificationResponse: userInfo["custom"] -> JSON -> "entity"
        custom = json.loads(payload["custom"])
        assert "entity" in custom and {"action", "chatType"} <= set(custom["entity"])
        return dict(custom["entity"])

    assert handler(last(push_app, vinson)) == entity

    # An event without ext: the entity is built (group: sender = the group to open)
    event = send(
        stack,
        push_app,
        {"groupId": "g-1", "groupName": "Dev", "members": ["denny", "vinson"]},
        sender={"userId": "denny", "nickname": "Denny"},
        elems=[{"type": "image"}],
    )
    built = handler(last(push_app, vinson))
    assert (built["action"], built["chatType"], built["sender"], built["nickname"]) == (1, 2, "g-1", "Dev")
    assert (built["content"], built["sendTime"]) == ("[图片]", event["sendTime"])

    # A group call: action 2, content parsed as the handler does
    call_id = f"c-{uuid.uuid4().hex[:8]}"
    call = {
        "callId": call_id,
        "media": "audio",
        "action": "invite",
        "timeoutSeconds": 30,
        "roomId": "777",
        "invitedList": ["vinson", "carol"],
    }
    invite = send(
        stack,
        push_app,
        {"groupId": "g-1", "groupName": "Dev", "members": ["denny", "vinson"]},
        sender={"userId": "denny", "nickname": "Denny"},
        elems=[],
        call=call,
    )
    entity = handler(last(push_app, vinson))
    content = json.loads(entity["content"])
    assert (entity["action"], entity["chatType"], entity["sender"]) == (2, 2, "denny")
    assert int(time.time()) - int(entity["sendTime"]) <= int(content["timeout"])  # not "通话接收超时"
    assert content["call_id"] == call_id and content["invited_list"] == ["vinson", "carol"]
    assert content["group_id"] == "g-1" and content["action"] == 1 and content["version"] == 4
    assert {"room_id": content["room_id"], "call_type": content["call_type"]} == {
        "room_id": 777,
        "call_type": 1,
    }
    assert entity["sendTime"] == invite["sendTime"]


def test_seed_002_tencent_v2_english(stack: Stack, push_app: PushApp) -> None:
    """Tencent's English V2 guide: businessID, title/desc/iOSSound/ext, "Nickname: content", the custom
    element rule; the app compares userInfo["ext"] with "jump to denny"."""
    settings(push_app, payloadConventions=["tencent"])
    vinson = register(push_app, "vinson", {"certificateId": push_app.prod_cert})
    ok(push_app.call("PATCH", "/users/vinson/push-config", {"language": "en"}, user="vinson"))
    denny = {"userId": "denny", "nickname": "Denny"}
    to = {"userId": "vinson"}

    send(
        stack,
        push_app,
        to,
        sender=denny,
        elems=[{"type": "text", "text": "Text message"}],
        offlinePushInfo={"ext": "jump to denny", "iOSSound": "phone_ringing.mp3"},
    )
    payload = last(push_app, vinson)
    assert payload["ext"] == "jump to denny"
    assert payload["aps"]["alert"] == {"body": "Denny: Text message"}
    assert payload["aps"]["sound"] == "phone_ringing.mp3"

    send(
        stack,
        push_app,
        to,
        sender=denny,
        offlinePushInfo={"title": "Harvy", "desc": "You hava a call invitation."},
    )
    assert last(push_app, vinson)["aps"]["alert"] == {"title": "Harvy", "body": "You hava a call invitation."}

    custom = send(stack, push_app, to, sender=denny, elems=[{"type": "custom", "data": "{}"}])
    assert [d["reason"] for d in push_app.deliveries(custom["messageId"])] == ["customWithoutDesc"]
    assert len(payloads(push_app.sandbox, vinson)) == 2


def test_seed_003_tencent_v2_badge_sound_and_banner(stack: Stack, push_app: PushApp) -> None:
    """Tencent's Chinese V2 guide: the badge base from onSetAPPUnreadCount plus 1 per push (a call
    invitation too), iOSSound with AndroidSound beside it, kIOSOfflinePushNoSound, the REST shape,
    and a simpleBanner user who sees no title."""
    vinson = register(push_app, "vinson", {"certificateId": push_app.prod_cert})
    ok(
        push_app.call(
            "PUT", "/users/vinson/app-state", {"state": "background", "unreadCount": 10}, user="vinson"
        )
    )
    denny = {"userId": "denny", "nickname": "Denny"}
    to = {"userId": "vinson"}

    send(
        stack,
        push_app,
        to,
        sender=denny,
        offlinePushInfo={
            "title": "push title",
            "iOSSound": "phone_ringing.mp3",
            "AndroidSound": "phone_ringing",
        },
    )
    first = last(push_app, vinson)
    assert (first["aps"]["badge"], first["aps"]["sound"]) == (11, "phone_ringing.mp3")
    call = {"callId": f"c-{uuid.uuid4().hex[:8]}", "media": "video", "action": "invite"}
    send(stack, push_app, to, sender=denny, elems=[], call=call)
    assert last(push_app, vinson)["aps"]["badge"] == 12  # "加 1 逐条递增", calls included
    send(stack, push_app, to, sender=denny, offlinePushInfo={"iOSSound": "push.no_sound"})
    assert "sound" not in last(push_app, vinson)["aps"] and last(push_app, vinson)["aps"]["badge"] == 13

    # An IM server on Tencent's REST API forwards its OfflinePushInfo unchanged
    rest = {
        "PushFlag": 0,
        "Desc": "来自 REST",
        "Ext": "r",
        "AndroidInfo": {"Sound": "x"},
        "ApnsInfo": {"Sound": "rest.caf", "BadgeMode": 1, "Title": "REST"},
    }
    send(stack, push_app, to, sender=denny, offlinePushInfo=rest)
    payload = last(push_app, vinson)
    assert payload["aps"]["alert"] == {"title": "REST", "body": "来自 REST"} and "badge" not in payload["aps"]
    assert payload["aps"]["sound"] == "rest.caf" and payload["ext"] == "r"

    # The banner style exists to hide the sender: no title, whatever the push info says
    ok(push_app.call("PATCH", "/users/vinson/push-config", {"displayStyle": "simpleBanner"}, user="vinson"))
    send(
        stack,
        push_app,
        to,
        sender=denny,
        offlinePushInfo={"title": "Harvy", "desc": "You hava a call invitation."},
    )
    assert last(push_app, vinson)["aps"]["alert"] == {"body": "您有一条新消息"}


def test_seed_004_agora(stack: Stack, push_app: PushApp) -> None:
    """Agora Chat: apnsCertName, em_apns_ext fields, em_force_notification, display name and style;
    the app reads f t g m e."""
    settings(push_app, payloadConventions=["agora"])
    upload_p12(stack, push_app, "PushCertName")
    token = register(push_app, "6006", {"certificateName": "PushCertName"})  # options.apnsCertName
    ok(push_app.call("PATCH", "/users/6001/push-config", {"displayName": "displayName"}, user="6001"))
    sender = {"userId": "6001"}
    to = {"userId": "6006"}

    ext = {"em_apns_ext": {"extern": "custom string"}}
    event = send(stack, push_app, to, sender=sender, elems=[{"type": "text", "text": "test"}], **ext)
    payload = last(push_app, token)
    assert {k: payload.get(k) for k in "ftme"} == {
        "f": "6001",
        "t": "6006",
        "m": event["messageId"],
        "e": "custom string",
    }
    assert "ext" not in payload and "custom" not in payload and "g" not in payload
    assert payload["aps"]["alert"]["body"] == "displayName:test"

    send(
        stack,
        push_app,
        to,
        sender=sender,
        em_apns_ext={
            "em_push_content": "custom push content",
            "em_push_sound": "custom.caf",
            "em_push_mutable_content": True,
        },
    )
    payload = last(push_app, token)
    assert payload["aps"]["alert"]["body"] == "custom push content"
    assert (payload["aps"]["sound"], payload["aps"]["mutable-content"]) == ("custom.caf", 1)

    group = send(stack, push_app, {"groupId": "1421300621769", "members": ["6001", "6006"]}, sender=sender)
    assert last(push_app, token)["g"] == "1421300621769" and last(push_app, token)["m"] == group["messageId"]

    # DND 22-7 all day long here, forced through; simpleBanner "您有一条新消息"
    ok(
        push_app.call(
            "PATCH",
            "/users/6006/push-config",
            {
                "displayStyle": "simpleBanner",
                "doNotDisturb": {"enabled": True, "startHour": 0, "endHour": 24, "timezone": "UTC"},
            },
            user="6006",
        )
    )
    quiet = send(stack, push_app, to, sender=sender)
    assert [d["reason"] for d in push_app.deliveries(quiet["messageId"])] == ["dnd"]
    send(stack, push_app, to, sender=sender, em_force_notification=True)
    assert last(push_app, token)["aps"]["alert"] == {"body": "您有一条新消息"}


def test_a_universal_certificate_rings_pushkit_tokens(stack: Stack, push_app: PushApp) -> None:
    """Apple's universal "Apple Push Services" certificate serves VoIP tokens, and the sandbox (as
    Apple) accepts VoIP over it."""
    cert = upload_p12(stack, push_app, "universal", universal=True)
    assert cert["pushTypes"] == ["alert", "voip"]
    voip = register(push_app, "bob", {"certificateId": cert["certificateId"]}, device_type="voip")
    alert = register(push_app, "carol", {"certificateId": cert["certificateId"]})
    call = {"callId": f"c-{uuid.uuid4().hex[:8]}", "media": "audio", "action": "invite"}
    event = send(stack, push_app, {"groupId": "g", "members": ["alice", "bob", "carol"]}, elems=[], call=call)
    [note] = push_app.sandbox.notifications(voip)
    assert note["headers"]["apns-push-type"] == "voip" and note["headers"]["apns-topic"] == BUNDLE + ".voip"
    assert payloads(push_app.sandbox, alert)[0]["call"]["callId"] == call["callId"]
    assert {d["status"] for d in push_app.deliveries(event["messageId"])} == {"sent"}


def test_an_ext_over_the_apps_limit_on_the_intake_queue_is_dead_lettered_with_the_limit(
    stack: Stack, push_app: PushApp
) -> None:
    """An IM server putting events straight on the queue gets the 400's reason on the dead letter."""
    register(push_app, "bob", {"certificateId": push_app.prod_cert})
    event = push_app.message(
        {"userId": "bob"}, offlinePushInfo={"ext": "x" * 2000}
    )  # default: two conventions
    stack.dead_letters(stack.env["INTAKE_QUEUE_NAME"])
    stack.send_raw(stack.env["INTAKE_QUEUE_NAME"], json.dumps({"appId": push_app.ctx.app_id, **event}))
    stack.pump()
    [dead] = stack.dead_letters(stack.env["INTAKE_QUEUE_NAME"])
    reason = json.dumps(dead.get("MessageAttributes", {}))
    assert "at most 1536 bytes fit" in reason, reason
