"""Recall and edit rules: the replacement's text, its payload, its apns-id, the edited event, and which
devices of a chunk get a replacement (read from the original's ledger)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.apns.ids import apns_id, collapse_id
from chalicelib.apns.payload import build_payload
from chalicelib.models.ledger import ChunkAttempt, ChunkRef, Outcome
from chalicelib.models.lifecycle import MessageEdit, ReplaceJob, SendRecord
from chalicelib.models.message import MessageEvent
from chalicelib.models.push_config import PushConfig
from chalicelib.models.sending import SendChunk
from chalicelib.services.lifecycle import apply_edit, chunk_state, edit_rev_of
from chalicelib.services.render import RECALLED, render_edit, render_for, render_recall

A, B = "aa" * 32, "bb" * 32


def event(**overrides: Any) -> MessageEvent:
    data: dict[str, Any] = {
        "messageId": "m-1",
        "sendTime": 1763790000,
        "sender": {"userId": "denny", "nickname": "Denny"},
        "to": {"userId": "vinson"},
        "elems": [{"type": "text", "text": "secret plan"}],
        "offlinePushInfo": {"sound": "ding.caf", "ext": "x"},
    }
    data.update(overrides)
    return MessageEvent.model_validate(data)


GROUP = {"groupId": "g1", "groupName": "Dev", "members": ["vinson"]}
LEAD = {"userId": "denny", "nickname": "Denny", "nameCard": "Lead"}


@pytest.mark.parametrize(
    ("to", "sender", "language", "style", "body"),
    [
        ({"userId": "vinson"}, None, "zh", "messageSummary", "Denny:[消息已撤回]"),
        ({"userId": "vinson"}, None, "en", "messageSummary", "Denny: [Message recalled]"),
        (GROUP, LEAD, "zh", "messageSummary", "Lead(Dev):[消息已撤回]"),
        (GROUP, LEAD, "en", "messageSummary", "Lead (Dev): [Message recalled]"),
        (GROUP, LEAD, "zh", "simpleBanner", "[消息已撤回]"),
        (GROUP, LEAD, "en", "simpleBanner", "[Message recalled]"),
        ({"userId": "vinson"}, {"userId": "denny"}, "zh", "messageSummary", "[消息已撤回]"),
    ],
)
def test_recall_renders_the_placeholder_with_the_usual_name(
    to: dict[str, Any], sender: dict[str, Any] | None, language: str, style: str, body: str
) -> None:
    message = event(to=to, **({"sender": sender} if sender else {}))
    config = PushConfig.model_validate({"language": language, "displayStyle": style, "c2cSound": "a.caf"})
    n = render_recall(message, config, sender_display_name=None)
    assert n.body == body
    assert n.sound is None and n.op == "recall"
    assert n.ext == "x" and n.message_id == "m-1"


def test_recall_drops_desc_and_mention_but_keeps_title() -> None:
    message = event(
        to=GROUP,
        sender=LEAD,
        offlinePushInfo={"title": "Dev", "desc": "the secret plan"},
        mentions={"userIds": ["vinson"]},
    )
    n = render_recall(message, PushConfig(), sender_display_name=None)
    assert (n.title, n.body) == ("Dev", "Lead(Dev):" + RECALLED["zh"])


def test_edit_renders_the_new_content_with_mention_without_sound_or_badge() -> None:
    original = event(to=GROUP, sender=LEAD, mentions={"userIds": ["vinson"]})
    edited = apply_edit(original, {"elems": [{"type": "text", "text": "new plan"}, {"type": "image"}]})
    n = render_edit(edited, PushConfig(), sender_display_name=None, mention=edited.mention_of("vinson"))
    assert n.body == "[有人@我]Lead(Dev):new plan[图片]"
    assert n.sound is None and n.op == "edit" and n.ignore_badge
    assert n.ext == "x"  # the original's offlinePushInfo when the edit gives none


def test_apply_edit_replaces_offline_push_info_when_given() -> None:
    edited = apply_edit(event(), {"elems": [{"type": "text", "text": "b"}], "offlinePushInfo": {"desc": "d"}})
    assert edited.offline_push_info.desc == "d" and edited.offline_push_info.ext is None
    assert edited.message_id == "m-1" and edited.sender.user_id == "denny"


def test_payload_carries_op_beside_the_ids_and_a_badge_only_when_given() -> None:
    n = render_recall(event(to=GROUP, sender=LEAD), PushConfig(), sender_display_name=None)
    payload = json.loads(build_payload(n, recipient_user_id="vinson", badge=2))
    assert payload == {
        "aps": {"alert": {"body": "Lead(Dev):[消息已撤回]"}, "badge": 2, "thread-id": "group_g1"},
        "ext": "x",
        "f": "denny",
        "t": "vinson",
        "g": "g1",
        "m": "m-1",
        "e": "x",
        "op": "recall",
    }
    edit = render_edit(event(), PushConfig(), sender_display_name=None)
    edited = json.loads(build_payload(edit, recipient_user_id="vinson", badge=None))
    assert edited["op"] == "edit" and "badge" not in edited["aps"] and "sound" not in edited["aps"]
    original = json.loads(
        build_payload(
            render_for(event(), PushConfig(), sender_display_name=None), recipient_user_id="vinson", badge=1
        )
    )
    assert "op" not in original  # ordinary messages are unchanged


def test_a_replacement_has_its_own_apns_id_and_the_original_collapse_id() -> None:
    original = apns_id("app", "m-1", A)
    assert apns_id("app", "m-1", A, "recall") != original
    assert apns_id("app", "m-1", A, "edit") not in (original, apns_id("app", "m-1", A, "recall"))
    assert apns_id("app", "m-1", A, None) == original  # unchanged for ordinary messages
    assert collapse_id("m-1") == "m-1"


def _attempt(
    index: int,
    attempt: int,
    recipients: list[str],
    outcomes: list[Outcome],
    badges: dict[int, int] | None = None,
    status: str = "done",
) -> ChunkAttempt:
    return ChunkAttempt(ChunkRef(index, attempt), recipients, status, badges, outcomes)  # type: ignore[arg-type]


def test_chunk_state_takes_each_devices_latest_outcome() -> None:
    first = _attempt(
        0,
        0,
        ["bob", "carol", "dan"],
        [
            Outcome(0, A, "sent"),
            Outcome(1, B, "pending", "ServiceUnavailable"),
            Outcome(2, None, "skipped", "dnd"),
        ],
        badges={0: 4, 1: 7},
    )
    retry = _attempt(0, 1, ["carol"], [Outcome(0, B, "sent")])
    state = chunk_state([retry, first])
    assert state.sent == [(0, A), (1, B)]
    assert state.counted == frozenset({0, 1})  # dan was skipped: his badge was never counted
    assert not state.unfinished


def test_chunk_state_waits_for_unfinished_attempts() -> None:
    first = _attempt(0, 0, ["bob"], [Outcome(0, A, "pending", "ServiceUnavailable")])
    assert chunk_state([first, _attempt(0, 1, ["bob"], [], status="queued")]).unfinished
    assert chunk_state([_attempt(0, 0, ["bob"], [], status="claimed")]).unfinished
    assert chunk_state([]).unfinished  # not even written yet


def test_chunk_state_for_an_edit_leaves_out_devices_sent_the_edited_content() -> None:
    first = _attempt(0, 0, ["bob", "carol"], [Outcome(0, A, "sent", "edit1"), Outcome(1, B, "sent")])
    assert chunk_state([first], edit_rev=1).sent == [(1, B)]
    assert chunk_state([first], edit_rev=2).sent == [(0, A), (1, B)]
    assert edit_rev_of("edit12") == 12 and edit_rev_of("") == 0 and edit_rev_of("editx") == 0


def test_send_queue_records_are_told_apart() -> None:
    job = ReplaceJob(app_id="a", message_id="m", op="recall", index=3)
    assert isinstance(SendRecord.model_validate_json(job.model_dump_json(by_alias=True)).root, ReplaceJob)
    chunk = SendChunk(app_id="a", message_id="m", index=0, event=event(), recipients=["bob"])
    assert isinstance(SendRecord.model_validate_json(chunk.model_dump_json(by_alias=True)).root, SendChunk)


def test_an_edit_needs_elements() -> None:
    with pytest.raises(ValueError, match="elems"):
        MessageEdit.model_validate({"elems": []})
    with pytest.raises(ValueError, match="messageId"):
        MessageEdit.model_validate({"elems": [{"type": "text", "text": "x"}], "messageId": "m"})
