"""The APNs request for one notification: the JSON payload bytes and the headers.

The payload carries the keys of the app's payload conventions (Tencent's top-level ``ext``; Agora's
``f``, ``t``, ``g``, ``m``, ``e``; TUIKit's ``custom``) and must fit APNs' 4096 bytes: the body (and
TUIKit's entity content) is shortened at a grapheme boundary with an ellipsis (then the title), never
the structure: subtitle, category,
interruption level, relevance score, image, the ``call`` object, ext and the IDs stay whole. A
title alone too long for the room left becomes shorter behind a "…" body; a subtitle (or anything
else) that leaves no room even then fails that device with PayloadTooLarge. VoIP (PushKit) payloads
are the same alert text, IDs and ``call`` within 5,120 bytes.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

import regex  # type: ignore[import-untyped]  # no stubs in the venv (types-regex)

from chalicelib.models.message import APNS_PRIORITY, Priority
from chalicelib.models.notification import Notification

APNS_PAYLOAD_LIMIT = 4096  # bytes, for every push type but VoIP
VOIP_PAYLOAD_LIMIT = 5120  # bytes, apns-push-type voip
ELLIPSIS = "…"
COMPACT = (",", ":")
# aioapns serializes NotificationRequest.message with json.dumps' default separators; pass these to
# build_message when sending through it, so the size is measured the way it will be sent.
AIOAPNS_SEPARATORS = (", ", ": ")

_GRAPHEME = regex.compile(r"\X")
_ELLIPSIS_BYTES = len(ELLIPSIS.encode("utf-8"))


class PayloadTooLargeError(ValueError):
    """Not even an ellipsis body and title fit: the fixed part (ext, IDs, sound) is too large.

    Not worth a retry: the caller records the delivery as failed with ``reason``.
    """

    reason = "payloadTooLarge"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"the APNs payload needs {size} bytes even with the body and title cut to '{ELLIPSIS}', "
            f"over the {limit}-byte limit: shorten offlinePushInfo.ext (it travels once per payload "
            "convention of the app), the subtitle, the sound name or the IDs"
        )
        self.size = size
        self.limit = limit


def _escaped_len(text: str) -> int:
    """Bytes ``text`` takes inside a JSON string (quotes excluded), as json.dumps writes it."""
    return len(json.dumps(text, ensure_ascii=False).encode("utf-8")) - 2


def _fitting_chars(text: str, budget: int) -> int:
    """How many leading code points of ``text`` fit in ``budget`` bytes once JSON-escaped.

    Cut the escaped UTF-8 bytes at the budget and decode them back: a handful of C-level passes
    instead of a search that re-serializes prefixes.
    """
    escaped = json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8")
    if len(escaped) <= budget:
        return len(text)
    # "ignore" drops only the UTF-8 sequence the cut split; what is left is whole characters.
    head = escaped[:budget].decode("utf-8", "ignore")
    # The cut may also split an escape (\n, \", \u001f): drop up to 5 characters until it parses.
    for trim in range(6):
        try:
            return len(json.loads('"' + head[: len(head) - trim] + '"'))
        except ValueError:
            continue
    raise AssertionError("unreachable: an escape is at most 6 characters")  # pragma: no cover


# A grapheme boundary always falls before a character that is neither Extend, ZWJ, SpacingMark, a
# regional indicator, a Hangul jamo nor an Indic letter, when the one before it is neither CR, ZWJ,
# Prepend nor a Hangul jamo (UAX #29, GB999). These ranges hold only such characters, so two of them
# side by side are a safe place to start segmenting.
_BASE_RANGES = (
    (0x00, 0x0C),
    (0x0E, 0x2FF),  # ASCII, Latin-1, Latin Extended (combining marks start at U+0300); CR left out
    (0x2010, 0x2027),  # dashes, quotes, bullets
    (0x3000, 0x3029),  # CJK punctuation (U+302A-302F are combining tone marks)
    (0x3041, 0x3096),  # hiragana (U+3099-309A are combining sound marks)
    (0x30A1, 0x30FA),  # katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xAC00, 0xD7A3),  # precomposed Hangul syllables (LV/LVT never join each other)
    (0xFF01, 0xFF5E),  # fullwidth forms (U+FF9E-FF9F are Extend)
    (0x1F300, 0x1F3FA),  # emoji (U+1F3FB-1F3FF, the skin tones, are Extend)
    (0x1F400, 0x1F64F),
    (0x1F680, 0x1F6FF),
    (0x1F900, 0x1F9FF),
)
# Extend characters that end an emoji cluster: variation selectors, skin tones, tag characters, keycap.
# After them, before a base, is a boundary too (only ZWJ glues the next emoji on).
_EMOJI_TAIL_RANGES = ((0xFE0E, 0xFE0F), (0x1F3FB, 0x1F3FF), (0xE0020, 0xE007F), (0x20E3, 0x20E3))


def _in(char: str, ranges: tuple[tuple[int, int], ...]) -> bool:
    code = ord(char)
    return any(lo <= code <= hi for lo, hi in ranges)


_REGIONAL_INDICATORS = "".join(chr(c) for c in range(0x1F1E6, 0x1F200))


def _segment_start(text: str, end: int) -> int:
    """A position <= ``end`` that is certainly a grapheme boundary, close to ``end`` when possible."""
    for i in range(end, max(0, end - 64), -1):
        if _in(text[i], _BASE_RANGES) and (
            _in(text[i - 1], _BASE_RANGES)
            or _in(text[i - 1], _EMOJI_TAIL_RANGES)
            # A combining mark ends its cluster before a base (it is never CR, ZWJ or Prepend).
            or unicodedata.category(text[i - 1]) in ("Mn", "Me")
        ):
            return i
        if text[i] in _REGIONAL_INDICATORS and text[i - 1] in _REGIONAL_INDICATORS:
            # Flags pair regional indicators from the start of their run (GB12/13): a boundary
            # follows every even count of them.
            run = i - len(text[:i].rstrip(_REGIONAL_INDICATORS))
            if run % 2 == 0:
                return i
    # A long run of flags, marks or scripts not listed: segment from the start (slower, still correct).
    return 0


def shorten(text: str, max_bytes: int) -> str:
    """The longest prefix of whole grapheme clusters plus "…" whose JSON-escaped size is <= max_bytes;
    ``text`` itself when it fits.

    Cuts only between grapheme clusters, so no UTF-8 sequence, emoji ZWJ family, skin-tone modifier,
    flag or combining accent is split. The cut is found in bytes first, then moved back to the
    previous cluster boundary by segmenting only the last few characters: no re-serialization per
    character and no segmentation of the whole text (the ``regex`` module's \\X costs ~0.1 us/char).
    """
    if len(text) <= max_bytes and _escaped_len(text) <= max_bytes:
        return text
    budget = max_bytes - _ELLIPSIS_BYTES
    if budget < 0:
        raise ValueError(f"{max_bytes} bytes cannot hold even {ELLIPSIS!r}")
    # Every character takes at least one byte: nothing past `budget` characters can fit.
    limit = _fitting_chars(text[: budget + 1], budget)  # < len(text): the text does not fit
    start = _segment_start(text, limit)
    cut = start
    # Boundaries found in text[start : limit + 1] are true ones, but for its very end (the cluster
    # may go on past it), which is > limit anyway.
    for match in _GRAPHEME.finditer(text[start : limit + 1]):
        end = start + match.end()
        if end > limit:
            break
        cut = end
    # Trailing spaces or newlines before the ellipsis only waste room.
    return text[:cut].rstrip() + ELLIPSIS


# ---- the payload's structure ----------------------------------------------------------------------
# `aps` is built by `_aps`; every top-level key beside it by `_top_level` (the one place to add one).
# The 4 KB fit first applies the steps of `DROP_FIRST` in order (each removes something the payload
# can do without, e.g. pictures' URLs), then shortens the body (and TUIKit's entity content), then the
# title; ext, the IDs and the rest of the structure stay whole.

Drop = Callable[[dict[str, Any]], None]
DROP_FIRST: tuple[Drop, ...] = ()


def _aps(n: Notification, badge: int | None, title: str | None, body: str, voip: bool) -> dict[str, Any]:
    alert: dict[str, str] = {}
    if title is not None:
        alert["title"] = title
    if n.subtitle is not None:
        alert["subtitle"] = n.subtitle
    alert["body"] = body
    aps: dict[str, Any] = {"alert": alert}
    if voip:
        # PushKit hands the whole dictionary to the app, which reports the call to CallKit: the
        # alert is only the text to show; iOS neither badges, sounds nor displays a voip push.
        return aps
    if badge is not None:
        aps["badge"] = badge
    if n.sound is not None:
        aps["sound"] = n.sound
    aps["thread-id"] = n.thread_id
    if n.category is not None:
        aps["category"] = n.category
    if n.mutable_content or n.image is not None:
        aps["mutable-content"] = 1
    if n.interruption_level is not None:
        aps["interruption-level"] = n.interruption_level
    if n.relevance_score is not None:
        aps["relevance-score"] = n.relevance_score
    return aps


def _top_level(
    n: Notification,
    recipient_user_id: str,
    content: str | None,
    extra: Mapping[str, Any] | None,
    voip: bool,
) -> dict[str, Any]:
    """Every key beside ``aps``: the app's payload conventions' keys, then the product's own.
    ``content``: the TUIKit entity's content as the fit cut it."""
    keys: dict[str, Any] = {}
    if n.image is not None and not voip:
        keys["image"] = n.image
    conventions = n.conventions
    if "tencent" in conventions and n.ext is not None:
        keys["ext"] = n.ext  # Tencent: didReceiveRemoteNotification reads userInfo["ext"]
    if "agora" in conventions:
        # Agora: f = sender, t = receiver, g = group (absent one-to-one), m = message ID, e = extern.
        keys["f"] = n.sender_id
        keys["t"] = recipient_user_id
        if n.group_id is not None:
            keys["g"] = n.group_id
        keys["m"] = n.message_id
        if n.ext is not None:
            keys["e"] = n.ext
    if "tpns" in conventions:
        # TUIKit (seed 001): userInfo["custom"] is a JSON string; its "entity" opens the chat or call.
        if n.ext is not None:
            keys["custom"] = n.ext
        elif n.entity is not None:
            entity = n.entity if content is None else {**n.entity, "content": content}
            keys["custom"] = json.dumps({"entity": entity}, ensure_ascii=False, separators=COMPACT)
    if n.call is not None:
        keys["call"] = n.call
    if n.op is not None:
        keys["op"] = n.op  # "recall" / "edit": this replaces the notification with the same collapse-id
    if extra:
        keys.update(extra)
    return keys


def _shrinkable_content(n: Notification) -> str | None:
    """The TUIKit entity's content when the fit may shorten it (a message's text; a call's content is
    the JSON its handler parses and stays whole)."""
    if "tpns" not in n.conventions or n.ext is not None or n.entity is None or n.entity.get("action") != 1:
        return None
    value = n.entity.get("content")
    return value if isinstance(value, str) else None


def _fit(
    n: Notification,
    *,
    recipient_user_id: str,
    badge: int | None,
    limit: int,
    separators: tuple[str, str],
    voip: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], bytes]:
    if badge is not None and badge < 0:
        raise ValueError(f"badge must be >= 0 or None (no badge), got {badge}")
    content = _shrinkable_content(n)

    def encode(
        title: str | None, body: str, cut: str | None = content, drops: int = len(DROP_FIRST)
    ) -> tuple[dict[str, Any], bytes]:
        message = {"aps": _aps(n, badge, title, body, voip)}
        message.update(_top_level(n, recipient_user_id, cut, extra, voip))
        for drop in DROP_FIRST[:drops]:
            drop(message)
        return message, json.dumps(message, ensure_ascii=False, separators=separators).encode("utf-8")

    # The common case: it fits, one serialization.
    message, data = encode(n.title, n.body, drops=0)
    if len(data) <= limit:
        return message, data
    # What the payload can do without goes first, one step at a time.
    for drops in range(1, len(DROP_FIRST) + 1):
        message, data = encode(n.title, n.body, drops=drops)
        if len(data) <= limit:
            return message, data

    if content is None:
        # The payload's size is the rest plus the escaped body, so the body's room is exact.
        _, rest = encode(n.title, "")
        if limit - len(rest) >= _ELLIPSIS_BYTES:
            return encode(n.title, shorten(n.body, limit - len(rest)))
    else:
        # The body and TUIKit's entity content share the room left beside everything else: the
        # content gets at most half, the body exactly what remains; if the body needs less, the
        # content gets the rest. Four serializations, whatever the text's length.
        _, rest = encode(n.title, "", "")
        room = limit - len(rest)
        if room >= 2 * _ELLIPSIS_BYTES:
            part = shorten(content, room // 2)
            _, rest = encode(n.title, "", part)
            if limit - len(rest) >= _ELLIPSIS_BYTES:
                body = shorten(n.body, limit - len(rest))
                best = encode(n.title, body, part)
                if body == n.body and part != content:
                    _, rest = encode(n.title, n.body, "")
                    candidate = encode(n.title, n.body, shorten(content, limit - len(rest)))
                    if len(candidate[1]) <= limit:
                        best = candidate
                if len(best[1]) <= limit:
                    return best

    # Not even "…" fits next to the title: the body becomes "…" and the title is shortened.
    body = ELLIPSIS if n.body else ""
    cut = None if content is None else ELLIPSIS
    if n.title:
        _, rest = encode("", body, cut)
        if limit - len(rest) >= _ELLIPSIS_BYTES:
            return encode(shorten(n.title, limit - len(rest)), body, cut)
    _, smallest = encode(ELLIPSIS if n.title else n.title, body, cut)
    raise PayloadTooLargeError(len(smallest), limit)


def build_payload(
    notification: Notification,
    *,
    recipient_user_id: str,
    badge: int | None,
    limit: int = APNS_PAYLOAD_LIMIT,
    separators: tuple[str, str] = COMPACT,
    extra: Mapping[str, Any] | None = None,
) -> bytes:
    """The payload bytes (compact JSON, UTF-8) for one recipient; at most ``limit`` bytes.

    ``badge`` None = no badge key (ignoreBadge). ``extra``: top-level keys the caller adds (e.g. a
    receipt reference), never dropped. Raises ``PayloadTooLargeError`` when even an ellipsis body and
    title do not fit.
    """
    return _fit(
        notification,
        recipient_user_id=recipient_user_id,
        badge=badge,
        limit=limit,
        separators=separators,
        extra=extra,
    )[1]


def build_message(
    notification: Notification,
    *,
    recipient_user_id: str,
    badge: int | None,
    limit: int | None = None,
    separators: tuple[str, str] = AIOAPNS_SEPARATORS,
    voip: bool = False,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The same payload as a dict, for aioapns' ``NotificationRequest(message=...)``, which serializes
    it itself with json.dumps' default separators: measured that way, it fits ``limit`` once sent.

    ``voip``: the PushKit form (apns-push-type voip): alert text, IDs and the ``call`` object, no
    badge, sound or display options, within 5,120 bytes (the default limit then).
    """
    if limit is None:
        limit = VOIP_PAYLOAD_LIMIT if voip else APNS_PAYLOAD_LIMIT
    return _fit(
        notification,
        recipient_user_id=recipient_user_id,
        badge=badge,
        limit=limit,
        separators=separators,
        voip=voip,
        extra=extra,
    )[0]


def apns_headers(
    *, topic: str, priority: Priority, expiration: int | None = None, voip: bool = False
) -> dict[str, str]:
    """The APNs request headers for an alert: topic = the credential's bundle ID; ``voip``: push type
    voip on ``<bundleId>.voip``, priority 10 (PushKit pushes are delivered at once or not at all).

    ``expiration``: epoch seconds until which APNs stores the notification for an unreachable device
    (0 = try once, do not store); None = header absent, APNs' default.
    """
    if not topic:
        raise ValueError("topic must be the credential's bundle ID, e.g. 'com.example.chat'")
    headers = {
        "apns-topic": topic + ".voip" if voip else topic,
        "apns-push-type": "voip" if voip else "alert",
        "apns-priority": "10" if voip else str(APNS_PRIORITY[priority]),
    }
    if expiration is not None:
        headers["apns-expiration"] = str(expiration)
    return headers
