"""The delivery report of one message, assembled from its chunk attempts (pure: no I/O).

Each recipient appears once per device (or once as a whole when skipped before
any device mattered), with the outcome of the latest attempt that decided it:
a retry's outcome replaces the first try's ``pending``. Recipients whose chunk
has not decided them yet are ``pending``. Rows are ordered by chunk, then by
recipient, so a page boundary between two recipients is stable while sending
goes on: pages never repeat a row.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from chalicelib.errors import ValidationFailed
from chalicelib.models.ledger import ChunkAttempt, Status

QUEUED = "queued"  # the code of a recipient whose chunk has not been sent yet
SENDING = "sending"  # ... whose chunk is being sent right now


@dataclass(frozen=True, slots=True)
class Row:
    chunk: int
    position: int  # the recipient's place in its chunk
    user_id: str
    device_token: str | None
    status: Status
    code: str
    reason: str


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page starts: the first recipient not yet listed."""

    chunk: int = 0
    recipient: int = 0


def rows(attempts: Iterable[ChunkAttempt]) -> list[Row]:
    """Every row of the report, in report order, from a message's chunk attempts (any order)."""
    by_chunk: dict[int, list[ChunkAttempt]] = {}
    for a in attempts:
        by_chunk.setdefault(a.ref.index, []).append(a)
    out: list[Row] = []
    for index in sorted(by_chunk):
        out += _chunk_rows(index, sorted(by_chunk[index], key=lambda a: a.ref.attempt))
    return out


def _chunk_rows(index: int, attempts: list[ChunkAttempt]) -> list[Row]:
    first = attempts[0]
    if first.ref.attempt != 0:
        return []  # a retry whose first attempt is gone (TTL): nothing to anchor it to
    position = {u: i for i, u in enumerate(first.recipients)}
    decided: dict[tuple[str, str | None], tuple[Status, str, str]] = {}
    for attempt in attempts:
        for o in attempt.outcomes:
            if o.index >= len(attempt.recipients):
                continue
            user = attempt.recipients[o.index]
            decided[(user, o.device_token)] = (o.status, o.code, o.reason)
    per_user: dict[str, list[Row]] = {}
    for (user, token), (status, code, reason) in decided.items():
        if user in position:
            per_user.setdefault(user, []).append(
                Row(index, position[user], user, token, status, code, reason)
            )
    waiting = SENDING if first.status == "claimed" else QUEUED
    out: list[Row] = []
    for user in first.recipients:
        found = per_user.get(user)
        if not found:
            out.append(Row(index, position[user], user, None, "pending", waiting, ""))
            continue
        # A user-level row (token None) and device rows can both exist only if devices changed
        # between attempts; show the devices then.
        devices = [r for r in found if r.device_token is not None]
        out += sorted(devices, key=lambda r: r.device_token or "") if devices else found
    return out


def online_rows(users: list[str], after_chunk: int) -> list[Row]:
    """The members settled online at fan-out (sorted), listed after every chunk's rows."""
    return [Row(after_chunk, i, u, None, "skipped", "online", "") for i, u in enumerate(users)]


Replaced = tuple[Status, str, str]  # a replacement's (status, code, reason)


def replacements(
    original: Iterable[ChunkAttempt], replaced: Iterable[ChunkAttempt]
) -> dict[tuple[str, str], Replaced]:
    """Each device's recall or edit replacement outcome by (user, token), from the replacement jobs'
    attempts, whose outcomes index the original chunk's first attempt's recipients."""
    recipients = {a.ref.index: a.recipients for a in original if a.ref.attempt == 0}
    out: dict[tuple[str, str], Replaced] = {}
    for a in sorted(replaced, key=lambda a: (a.ref.index, a.ref.attempt)):
        users = recipients.get(a.ref.index, [])
        for o in a.outcomes:
            if o.device_token is not None and o.index < len(users):
                out[(users[o.index], o.device_token)] = (o.status, o.code, o.reason)
    return out


def summary(report_rows: Iterable[Row]) -> dict[str, object]:
    """{sent, pending, skipped: {code: n}, failed: {code: n}} over the given rows."""
    counts: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for r in report_rows:
        counts[r.status] += 1
        if r.status == "skipped":
            skipped[r.code] += 1
        elif r.status == "failed":
            failed[r.code] += 1
    return {
        "sent": counts["sent"],
        "pending": counts["pending"],
        "skipped": dict(sorted(skipped.items())),
        "failed": dict(sorted(failed.items())),
    }


def page(
    report_rows: list[Row], start: Position, limit: int, keep: Callable[[Row], bool] = lambda _r: True
) -> tuple[list[Row], Position | None]:
    """Rows from ``start`` on, whole recipients only, about ``limit`` rows; and where the next starts."""
    out: list[Row] = []
    i = 0
    n = len(report_rows)
    while i < n and (report_rows[i].chunk, report_rows[i].position) < (start.chunk, start.recipient):
        i += 1
    while i < n:
        j = i
        while j < n and (report_rows[j].chunk, report_rows[j].position) == (
            report_rows[i].chunk,
            report_rows[i].position,
        ):
            j += 1
        recipient = [r for r in report_rows[i:j] if keep(r)]
        if out and len(out) + len(recipient) > limit:
            return out, Position(report_rows[i].chunk, report_rows[i].position)
        out += recipient
        i = j
    return out, None


def encode_cursor(position: Position) -> str:
    """Opaque to clients; holds only where the next page starts (no user ID, no device token)."""
    raw = json.dumps({"c": position.chunk, "r": position.recipient}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        chunk, recipient = raw["c"], raw["r"]
        if type(chunk) is not int or type(recipient) is not int or chunk < 0 or recipient < 0:
            raise ValueError
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ValidationFailed("cursor is not one this API returned: pass nextCursor unchanged") from None
    return Position(chunk, recipient)
