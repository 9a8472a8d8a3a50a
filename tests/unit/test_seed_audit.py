"""The seed audit's broken rules and readings (issue 16), one named test each, at the rule's own level.

Where each is covered:
- Tencent's SDK / REST names and Android fields were a 400: test_push_info_aliases.py
  (test_every_alias_sets_its_canonical_field, test_android_only_fields_are_accepted_and_ignored,
  test_apns_info_overrides_the_top_level_fields, test_two_names_that_disagree_are_a_400_naming_both).
- TUIKit's click handler found no `custom`: test_payload_conventions.py
  (test_tpns_without_ext_carries_tuikits_message_entity, test_tpns_with_ext_carries_the_ext_itself).
- Calls were not TUIKit's action 2: test_tpns_call_entity_content_is_what_the_handler_parses.
- ext capped at 1,536 bytes: test_the_4kb_fit_keeps_a_3000_byte_ext_whole_and_shortens_the_body,
  test_ext_of_3000_bytes_is_accepted_and_3001_refused, and (API) test_seed_client_calls.py
  test_ext_over_the_apps_limit_is_a_400_stating_it.
- A call invitation did not count in the badge; a group call to mentionOnly was skipped; an edit
  without push info showed the old desc: below.
- simpleBanner showed title and subtitle: test_simple_banner_shows_no_title_subtitle_or_image.
- A universal certificate was refused for VoIP: test_credential_validation.py
  test_universal_certificate_serves_voip_tokens_too; e2e test_a_universal_certificate_rings_pushkit_tokens.
- doForeground once was pushed 300 s later: test_seed_client_calls.py
  test_lease_0_holds_foreground_until_the_app_reports_background.
- A TPNS registration got a generic 400: test_a_tpns_registration_is_a_400_that_says_what_to_register.
The end-to-end replays of each seed are in tests/e2e/test_seeds.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from chalicelib.models.message import MessageEvent
from chalicelib.models.push_config import AppState, ConversationSetting, PushConfig
from chalicelib.services.lifecycle import apply_edit
from chalicelib.services.policy import Recipient, SkipReason, check_mention_only, decide
from tests.unit.test_policy import PHONE

NOON_UTC = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
CALL = {"callId": "c-1", "media": "audio", "action": "invite"}


def event(**overrides: Any) -> MessageEvent:
    data: dict[str, Any] = {
        "messageId": "m-1",
        "sendTime": 1763790000,
        "sender": {"userId": "alice", "nickname": "Alice"},
        "to": {"groupId": "g1", "groupName": "Dev", "members": ["alice", "bob"]},
        "elems": [{"type": "text", "text": "hi"}],
    }
    data.update(overrides)
    return MessageEvent.model_validate(data)


def bob_with(kind: str, conversation_id: str, remind_type: str) -> Recipient:
    setting = ConversationSetting(kind=kind, conversation_id=conversation_id, remind_type=remind_type)  # type: ignore[arg-type]
    return Recipient(
        user_id="bob",
        config=PushConfig(),
        state=AppState(state="background"),
        devices=(PHONE,),
        conversations=(setting,),
    )


# ---- broken: a call invitation does not count in the badge ----------------------------------------


def test_a_call_invitation_counts_in_the_badge_like_any_message() -> None:
    # seed 003: "在基准角标的基础上加 1 逐条递增" (+1 per push)
    assert event(call=CALL).counts_in_badge
    assert event(call=CALL, elems=[]).counts_in_badge


def test_a_call_cancel_neither_adds_nor_takes_back_and_ignore_badge_still_applies() -> None:
    assert not event(call={**CALL, "action": "cancel"}).counts_in_badge
    assert not event(call=CALL, offlinePushInfo={"ignoreBadge": True}).counts_in_badge
    assert not event(call=CALL, offlinePushInfo={"ignoreIOSBadge": True}).counts_in_badge


# ---- broken: a group call invitation to a mentionOnly conversation is skipped --------------------


def test_a_group_call_invitation_gets_through_mention_only() -> None:
    recipient = bob_with("group", "g1", "mentionOnly")
    assert check_mention_only(event(), recipient, NOON_UTC) is SkipReason.MENTION_ONLY
    assert check_mention_only(event(call=CALL), recipient, NOON_UTC) is None
    assert decide(event(call=CALL), recipient, now=NOON_UTC).pushed


def test_a_c2c_call_invitation_gets_through_mention_only_but_not_none() -> None:
    c2c = {"to": {"userId": "bob"}, "call": CALL}
    assert decide(event(**c2c), bob_with("c2c", "alice", "mentionOnly"), now=NOON_UTC).pushed
    assert not decide(event(**c2c), bob_with("c2c", "alice", "none"), now=NOON_UTC).pushed
    assert not decide(event(call=CALL), bob_with("group", "g1", "none"), now=NOON_UTC).pushed


# ---- broken: an edit without new push info shows the original desc --------------------------------


def test_an_edit_without_new_push_info_shows_the_new_text_not_the_old_desc() -> None:
    original = event(offlinePushInfo={"desc": "old text", "title": "Old", "ext": "x", "sound": "a.caf"})
    edited = apply_edit(original, {"elems": [{"type": "text", "text": "new text"}]})
    info = edited.offline_push_info
    assert (info.desc, info.title) == (None, None)
    assert (info.ext, info.sound) == ("x", "a.caf")  # the rest of the original's settings stay


def test_an_edit_with_new_push_info_uses_it() -> None:
    original = event(offlinePushInfo={"desc": "old text"})
    edited = apply_edit(
        original, {"elems": [{"type": "text", "text": "b"}], "offlinePushInfo": {"desc": "new"}}
    )
    assert edited.offline_push_info.desc == "new"
