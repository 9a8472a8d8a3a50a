"""The folded user item: what a send needs of one user in one item (``U``), read in one key.

The user item holds the push config, the devices (``d#<token>``), the app state and badge
(``appState``, ``stateAt``, ``foregroundUntil``, ``badge``), and a hint of which conversations have a
setting (``cvb``: a number set of positions, one per setting, ``hint_position`` of its kind and ID),
so a send reads a recipient's conversation-setting items only when the hint says one may exist (a
false "maybe" costs one exact-key read that finds nothing; a setting is never missed). ``fold = 1``
marks an item written this way; an item without it was stored before (state in the ``S`` item):
the send reads its ``S`` item and settings as before, and the first state or badge write folds it.

The hint is kept exact under concurrency: adding a setting writes its position before and after the
setting item (``ADD cvb``, which commutes, and ``cvv`` + 1); removing one recomputes the positions
from the settings that remain and deletes the others on condition that ``cvv`` did not move.

Badge changes carry their message ID: ``bm`` maps a short digest of it to the badge the change
produced (and when), and the change is conditional on the digest not being there, so a retry after an
ambiguous answer (a 500 after the write was applied) is applied once and still learns its badge.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable, Mapping
from typing import Any

FOLD = "fold"  # marker attribute: 1 on a folded user item
HINT = "cvb"  # number set: the positions of the conversations that have a setting
HINT_VERSION = "cvv"  # number: + 1 on every hint addition (removals are conditional on it)
MARKS = "bm"  # map: badge-change digest -> (seconds since MARK_EPOCH_S) * MARK_SCALE + badge
HINT_BITS = 1024  # positions 0..1023: 3 bytes each; ~2 % false "maybe" per conversation at 20 settings
MARK_SCALE = 1_000_000  # a mark's value: time * MARK_SCALE + the badge (badges stay below a million)
MARK_EPOCH_S = 1_767_225_600  # 2026-01-01: keeps the marks' numbers short
MARK_KEEP_S = 300  # a mark younger than this is kept (a call's retries end well within it)
MARK_MAX = 6  # beyond this many marks, the oldest older than MARK_MIN_S go with the next change
MARK_MIN_S = 30

FOLDED = f"attribute_exists({FOLD})"


def hint_position(kind: str, conversation_id: str) -> int:
    digest = hashlib.blake2b(f"{kind}#{conversation_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % HINT_BITS


def hint_positions(conversations: Iterable[tuple[str, str]]) -> set[int]:
    return {hint_position(k, c) for k, c in conversations}


def hint_add_request(table: str, key: dict[str, Any], positions: Iterable[int]) -> dict[str, Any]:
    """ADD the positions and bump the version: commutes with any other addition."""
    return {
        "TableName": table,
        "Key": key,
        "UpdateExpression": f"ADD {HINT} :p, {HINT_VERSION} :one",
        "ExpressionAttributeValues": {
            ":p": {"NS": [str(p) for p in sorted(set(positions))]},
            ":one": {"N": "1"},
        },
    }


def hint_of(item: Mapping[str, Any]) -> frozenset[int]:
    """The positions in a user item as read (DynamoDB JSON)."""
    return frozenset(int(n) for n in item.get(HINT, {}).get("NS", ()))


def may_have_setting(hint: frozenset[int], conversations: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The conversations whose position is in the hint (the settings worth reading)."""
    return [(k, c) for k, c in conversations if hint_position(k, c) in hint]


# ---- badge marks ------------------------------------------------------------------------------


def mark_of(op: str, message_id: str) -> str:
    """``i`` (increment) or ``r`` (recall) + 8 characters of the message ID's digest."""
    digest = hashlib.blake2b(message_id.encode(), digest_size=6).digest()
    return op + base64.urlsafe_b64encode(digest).decode()


def marks_of(item: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(v["N"]) for k, v in item.get(MARKS, {}).get("M", {}).items()}


def badge_of_mark(value: int) -> int:
    return value % MARK_SCALE


def stale_marks(marks: Mapping[str, int], now_s: int) -> list[str]:
    """Marks the next badge change may remove: older than MARK_KEEP_S, and beyond MARK_MAX the
    oldest older than MARK_MIN_S."""
    t = now_s - MARK_EPOCH_S
    aged = sorted(marks.items(), key=lambda kv: kv[1] // MARK_SCALE)
    drop = [k for k, v in aged if t - v // MARK_SCALE > MARK_KEEP_S]
    rest = [(k, v) for k, v in aged if k not in drop]
    extra = len(rest) - MARK_MAX
    drop += [k for k, v in rest[: max(extra, 0)] if t - v // MARK_SCALE > MARK_MIN_S]
    return drop


def badge_change_request(
    table: str,
    key: dict[str, Any],
    op: str,
    message_id: str,
    seen: Mapping[str, int],
    now_s: int | None = None,
) -> dict[str, Any]:
    """+1 (``op`` "i") or -1 never below 0 (``op`` "r") on a folded item, once per message: the
    change records its mark (the badge it produced) and is conditional on the mark not being there.
    ``seen``: the marks as the caller last read them (stale ones are removed on the way)."""
    now_s = int(time.time()) if now_s is None else now_s
    mark = mark_of(op, message_id)
    stamp = (now_s - MARK_EPOCH_S) * MARK_SCALE
    names = {"#bm": MARKS, "#m": mark}
    values: dict[str, Any] = {":one": {"N": "1"}}
    if op == "i":
        values[":zero"] = {"N": "0"}
        values[":k"] = {"N": str(stamp + 1)}
        update = "SET badge = if_not_exists(badge, :zero) + :one, #bm.#m = if_not_exists(badge, :zero) + :k"
        condition = f"{FOLDED} AND attribute_not_exists(#bm.#m)"
    else:
        values[":zero"] = {"N": "0"}
        values[":k"] = {"N": str(stamp - 1)}
        update = "SET badge = badge - :one, #bm.#m = badge + :k"
        condition = f"{FOLDED} AND attribute_not_exists(#bm.#m) AND badge > :zero"
    drop = [m for m in stale_marks(seen, now_s) if m != mark]
    if drop:
        names |= {f"#o{i}": m for i, m in enumerate(drop)}
        update += " REMOVE " + ", ".join(f"#bm.#o{i}" for i in range(len(drop)))
    return {
        "TableName": table,
        "Key": key,
        "UpdateExpression": update,
        "ConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ReturnValues": "UPDATED_NEW",
    }


def mark_probe_request(table: str, key: dict[str, Any], op: str, message_id: str) -> dict[str, Any]:
    """A consistent read of what a refused badge change needs: folded?, the badge, its mark."""
    return {
        "TableName": table,
        "Key": key,
        "ConsistentRead": True,
        "ProjectionExpression": "#f, badge, #bm.#m",
        "ExpressionAttributeNames": {"#f": FOLD, "#bm": MARKS, "#m": mark_of(op, message_id)},
    }
