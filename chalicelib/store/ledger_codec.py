"""The compact binary form of a chunk's outcomes and badges, as stored in its ledger items.

DynamoDB bills writes by item size (1 KB units), so a checkpoint of N outcomes is
one small binary attribute rather than N items: a sent device costs 39 bytes
(recipient index, status, the 32-byte token, empty code and reason), a skipped
recipient ~15. apns-ids are not stored: they are derived from (app, message,
token) and recomputed for the report.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Mapping

from chalicelib.models.ledger import STATUSES, Outcome

_STATUS_CODE = {s: i for i, s in enumerate(STATUSES)}
_HEAD = struct.Struct(">HBB")  # recipient index, status, token length
_U16 = struct.Struct(">H")
_BADGE = struct.Struct(">HI")  # recipient index, badge
MAX_CODE = 255
MAX_REASON = 2000


def encode_outcomes(outcomes: Iterable[Outcome]) -> bytes:
    out = bytearray()
    for o in outcomes:
        token = bytes.fromhex(o.device_token) if o.device_token else b""
        code = _cut(o.code, MAX_CODE)
        reason = _cut(o.reason, MAX_REASON)
        out += _HEAD.pack(o.index, _STATUS_CODE[o.status], len(token))
        out += token
        out += bytes((len(code),)) + code
        out += _U16.pack(len(reason)) + reason
    return bytes(out)


def decode_outcomes(data: bytes) -> list[Outcome]:
    out: list[Outcome] = []
    pos = 0
    view = memoryview(data)
    while pos < len(data):
        index, status, token_len = _HEAD.unpack_from(view, pos)
        pos += _HEAD.size
        token = bytes(view[pos : pos + token_len]).hex() if token_len else None
        pos += token_len
        code_len = data[pos]
        code = bytes(view[pos + 1 : pos + 1 + code_len]).decode()
        pos += 1 + code_len
        (reason_len,) = _U16.unpack_from(view, pos)
        reason = bytes(view[pos + 2 : pos + 2 + reason_len]).decode()
        pos += 2 + reason_len
        out.append(Outcome(index, token, STATUSES[status], code, reason))
    return out


def encode_badges(badges: Mapping[int, int]) -> bytes:
    return b"".join(_BADGE.pack(i, max(0, b)) for i, b in sorted(badges.items()))


def decode_badges(data: bytes) -> dict[int, int]:
    return dict(_BADGE.iter_unpack(data))


def _cut(text: str, limit: int) -> bytes:
    """UTF-8 of text, cut to at most limit bytes without splitting a character."""
    raw = text.encode()
    if len(raw) <= limit:
        return raw
    return raw[:limit].decode(errors="ignore").encode()


def pack_ids(ids: Iterable[str]) -> bytes:
    """Sorted user IDs, zlib-compressed (a chunk's recipients, a message's online members): their
    shared prefixes make them a fraction of a list's size, so of its write units."""
    return zlib.compress("\n".join(ids).encode(), 9)


def unpack_ids(packed: bytes) -> list[str]:
    text = zlib.decompress(packed).decode()
    return text.split("\n") if text else []
