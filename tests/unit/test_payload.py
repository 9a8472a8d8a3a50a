"""The APNs payload and headers: both client conventions, and shortening to APNs' 4096 bytes."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from typing import Any

import pytest
import regex

from chalicelib.apns.payload import (
    AIOAPNS_SEPARATORS,
    APNS_PAYLOAD_LIMIT,
    ELLIPSIS,
    PayloadTooLargeError,
    apns_headers,
    build_message,
    build_payload,
    shorten,
)
from chalicelib.models.notification import Notification

GRAPHEME = regex.compile(r"\X")

C2C = Notification(
    title=None,
    body="test",
    sound="default",
    thread_id="c2c_6001",
    mutable_content=False,
    ext=None,
    sender_id="6001",
    group_id=None,
    message_id="373360335316321408",
)
GROUP = dataclasses.replace(C2C, group_id="1421300621769", thread_id="group_1421300621769")


def payload(n: Notification, *, badge: int | None = 1, limit: int = APNS_PAYLOAD_LIMIT) -> dict[str, Any]:
    data = build_payload(n, recipient_user_id="6006", badge=badge, limit=limit)
    assert len(data) <= limit
    parsed: dict[str, Any] = json.loads(data.decode("utf-8"))
    return parsed


def graphemes(text: str) -> list[str]:
    return GRAPHEME.findall(text)


def test_agora_seed_one_to_one_payload() -> None:
    # Given the Agora seed's example (f 6001 -> t 6006, message 373360335316321408)
    # When the payload is built, Then it has Agora's keys, no g for a one-to-one message
    assert payload(C2C) == {
        "aps": {"alert": {"body": "test"}, "badge": 1, "sound": "default", "thread-id": "c2c_6001"},
        "f": "6001",
        "t": "6006",
        "m": "373360335316321408",
    }


def test_agora_seed_group_payload_has_g() -> None:
    assert payload(GROUP)["g"] == "1421300621769"


def test_ext_is_served_to_both_conventions() -> None:
    # Given Tencent's seed ext "jump to denny" (Agora: extern "custom string")
    n = dataclasses.replace(C2C, ext="jump to denny")
    # Then it is both Tencent's top-level ext and Agora's e
    body = payload(n)
    assert body["ext"] == "jump to denny" and body["e"] == "jump to denny"


def test_title_mutable_content_and_optional_keys() -> None:
    # Given a title, mutable content, no sound (push.no_sound) and no badge (ignoreBadge)
    n = dataclasses.replace(C2C, title="Harvy", mutable_content=True, sound=None)
    # Then aps has exactly what was asked for
    assert payload(n, badge=None)["aps"] == {
        "alert": {"title": "Harvy", "body": "test"},
        "thread-id": "c2c_6001",
        "mutable-content": 1,
    }


def test_payload_is_compact_utf8_json() -> None:
    n = dataclasses.replace(C2C, body='中文 "quoted" \\ 👍', ext='{"a":1}')
    data = build_payload(n, recipient_user_id="6006", badge=0)
    assert data.startswith(b'{"aps":{"alert":{"body":"')
    assert "中文".encode() in data and b", " not in data and b'": ' not in data
    assert json.loads(data)["aps"]["alert"]["body"] == '中文 "quoted" \\ 👍'
    assert json.loads(data)["aps"]["badge"] == 0


def test_negative_badge_is_refused() -> None:
    with pytest.raises(ValueError, match="badge must be >= 0"):
        build_payload(C2C, recipient_user_id="6006", badge=-1)


def _size(n: Notification) -> int:
    return len(build_payload(n, recipient_user_id="6006", badge=1, limit=10**6))


def test_exactly_at_the_limit_is_not_shortened() -> None:
    # Given a body that makes the payload exactly 4096 bytes
    empty = _size(dataclasses.replace(C2C, body=""))
    n = dataclasses.replace(C2C, body="x" * (APNS_PAYLOAD_LIMIT - empty))
    assert _size(n) == APNS_PAYLOAD_LIMIT
    # When built, Then it is sent as is
    assert payload(n)["aps"]["alert"]["body"] == n.body
    # And one byte more is shortened, with an ellipsis, to at most the limit
    longer = dataclasses.replace(n, body=n.body + "y")
    data = build_payload(longer, recipient_user_id="6006", badge=1)
    body = json.loads(data)["aps"]["alert"]["body"]
    assert len(data) == APNS_PAYLOAD_LIMIT and body == "x" * (len(n.body) - 3) + ELLIPSIS


# (name, a long body made of this unit repeated)
TRUNCATION_CASES = [
    ("cjk", "中文消息"),
    ("emoji-family", "👨‍👩‍👧‍👦"),
    ("skin-tone", "👍🏽"),
    ("flags", "🇨🇳🇺🇸🇯🇵"),
    ("combining-accents", "e\u0301a\u0300o\u0302"),
    ("devanagari-conjunct", "क्षि"),
    ("hangul-jamo", "\u1100\u1161\u11a8"),
    ("keycap", "1\ufe0f\u20e3"),
    ("mixed", "Hi 中文 👨‍👩‍👧‍👦 e\u0301 🇨🇳 👍🏿 "),
    ("escapes", 'say "hi"\n\\ \t\x01'),
    ("odd-flag-run", "\U0001f1e8" + "🇨🇳" * 3),
]


@pytest.mark.parametrize("unit", [u for _, u in TRUNCATION_CASES], ids=[n for n, _ in TRUNCATION_CASES])
@pytest.mark.parametrize("offset", range(4), ids=lambda o: f"offset{o}")
def test_long_body_is_shortened_on_a_grapheme_boundary(unit: str, offset: int) -> None:
    # Given a body far over the limit, shifted by `offset` characters to move the cut around
    text = "ab"[:offset] + unit * 2000
    n = dataclasses.replace(GROUP, title="Title", body=text, ext='{"entity":{"action":1}}')
    # When the payload is built
    data = build_payload(n, recipient_user_id="6006", badge=7)
    # Then it fits, the structure is whole, and the body is whole graphemes of the original plus "…"
    assert len(data) <= APNS_PAYLOAD_LIMIT
    body = json.loads(data.decode("utf-8"))  # valid UTF-8 and JSON
    shortened = body["aps"]["alert"]["body"]
    assert shortened.endswith(ELLIPSIS)
    kept = shortened[: -len(ELLIPSIS)]
    assert text.startswith(kept)
    original = graphemes(text[: len(kept) + 200])  # enough past the cut; segmenting all of it is slow
    assert graphemes(kept) == original[: len(graphemes(kept))]
    assert body["aps"]["alert"]["title"] == "Title" and body["e"] == body["ext"]
    # And it is the longest such prefix: up to the next visible grapheme would not fit (trailing
    # whitespace before the ellipsis is dropped)
    more = ""
    for cluster in original[len(graphemes(kept)) :]:
        more += cluster
        if cluster.strip():
            break
    assert _size(dataclasses.replace(n, body=kept + more + ELLIPSIS)) > APNS_PAYLOAD_LIMIT


def test_flags_are_never_split_into_regional_indicators() -> None:
    # Given a wall of flags of every parity of cut
    for limit in range(300, 340):
        n = dataclasses.replace(C2C, body="🇨🇳" * 500)
        kept = payload(n, limit=limit)["aps"]["alert"]["body"][: -len(ELLIPSIS)]
        # Then an even number of regional indicators remains
        assert len(kept) % 2 == 0 and kept == "🇨🇳" * (len(kept) // 2)


def _reference_shorten(text: str, max_bytes: int) -> str:
    """The obvious O(n^2) version: try every grapheme boundary in order."""

    def size(s: str) -> int:
        return len(json.dumps(s, ensure_ascii=False).encode()) - 2

    if size(text) <= max_bytes:
        return text
    cut = 0
    for match in GRAPHEME.finditer(text):
        if size(text[: match.end()]) > max_bytes - len(ELLIPSIS.encode()):
            break
        cut = match.end()
    return text[:cut].rstrip() + ELLIPSIS


def test_shorten_agrees_with_the_obvious_algorithm_on_random_text() -> None:
    # Given random text mixing every kind of cluster the fast path reasons about
    alphabet = [
        "a", " ", "\n", "\r\n", "\r", '"', "\\", "\x01", "中", "é", "e\u0301", "👨‍👩‍👧‍👦", "👍🏽", "🏽",
        "🇨🇳", "\U0001f1e8", "\u200d", "\u0301", "\u1100", "\u1161", "\u11a8", "가", "क्", "ष", "ि",
        "\u094d", "\ufe0f", "©", "☺️", "\u0d4e", "\u0600", "1\ufe0f\u20e3", "😀", "\U000e0067", "ﾞ", "ｶ",
        "ก", "\u0e33", "\u0903",
    ]  # fmt: skip
    rng = random.Random(20251122)
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        max_bytes = rng.randint(3, 160)
        # Then the fast version cuts exactly where the obvious one does
        assert shorten(text, max_bytes) == _reference_shorten(text, max_bytes), (text, max_bytes)


def test_title_is_shortened_when_the_body_has_no_room_left() -> None:
    # Given a large ext (sent twice) and a long title, so even "…" as body does not fit next to them
    n = dataclasses.replace(C2C, title="T" * 1024, body="body " * 100, ext="x" * 1536)
    # When built, Then the body is "…" and the title is shortened to fit
    body = payload(n)
    assert body["aps"]["alert"]["body"] == ELLIPSIS
    title = body["aps"]["alert"]["title"]
    assert title.endswith(ELLIPSIS) and 0 < len(title) < 1024
    assert body["ext"] == "x" * 1536


def test_ext_too_large_even_with_an_empty_body_raises() -> None:
    # Given an ext that alone (twice) exceeds the limit
    n = dataclasses.replace(C2C, title="Harvy", ext="x" * 2100)
    # When built, Then a clear, typed error the sender maps to a failed delivery
    with pytest.raises(PayloadTooLargeError) as caught:
        build_payload(n, recipient_user_id="6006", badge=1)
    assert caught.value.reason == "payloadTooLarge"
    assert caught.value.limit == APNS_PAYLOAD_LIMIT and caught.value.size > APNS_PAYLOAD_LIMIT
    assert "offlinePushInfo.ext" in str(caught.value)


def test_build_message_fits_once_aioapns_serializes_it() -> None:
    # Given a long body, When the dict for aioapns is built
    n = dataclasses.replace(GROUP, body="中文 " * 3000, ext='{"a": 1}', title="t")
    message = build_message(n, recipient_user_id="6006", badge=3)
    # Then json.dumps with aioapns' own settings stays within the limit
    sent = json.dumps(message, ensure_ascii=False).encode()
    assert len(sent) <= APNS_PAYLOAD_LIMIT
    assert len(sent) > APNS_PAYLOAD_LIMIT - 10
    assert message["aps"]["alert"]["body"].endswith(ELLIPSIS)
    compact = build_message(n, recipient_user_id="6006", badge=3, separators=(",", ":"))
    assert len(compact["aps"]["alert"]["body"]) > len(message["aps"]["alert"]["body"])
    assert AIOAPNS_SEPARATORS == (", ", ": ")


def test_payloads_are_fast() -> None:
    # Given typical notifications and some needing truncation
    short = dataclasses.replace(GROUP, title="Dev", body="Lead(Dev):see you at 10 👍", ext='{"k":1}')
    long = dataclasses.replace(short, body="中文👨‍👩‍👧‍👦e\u0301🇨🇳 " * 800)
    # When 10,000 short and 1,000 long payloads are built
    started = time.perf_counter()
    for badge in range(10_000):
        build_payload(short, recipient_user_id="6006", badge=badge)
    fits = time.perf_counter() - started
    started = time.perf_counter()
    for badge in range(1_000):
        build_payload(long, recipient_user_id="6006", badge=badge)
    truncated = time.perf_counter() - started
    # Then both stay far below a second (measured here: ~0.05 s and ~0.1 s); generous for slow CI
    assert fits < 1.0, f"{10_000 / fits:.0f} payloads/s"
    assert truncated < 1.0, f"{1_000 / truncated:.0f} truncated payloads/s"


@pytest.mark.parametrize(("priority", "value"), [("high", "10"), ("normal", "5")])
def test_headers(priority: Any, value: str) -> None:
    # Given a bundle ID and the message priority, Then the alert headers APNs expects
    assert apns_headers(topic="com.example.chat", priority=priority) == {
        "apns-topic": "com.example.chat",
        "apns-push-type": "alert",
        "apns-priority": value,
    }


def test_headers_with_expiration_and_without_topic() -> None:
    headers = apns_headers(topic="com.example.chat", priority="high", expiration=1763793600)
    assert headers["apns-expiration"] == "1763793600"
    with pytest.raises(ValueError, match="bundle ID"):
        apns_headers(topic="", priority="high")
