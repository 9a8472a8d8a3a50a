"""Delivery receipts: checking and storing what phones post, and joining receipts to the report.

A receipt proves itself with its reference's HMAC (``receipt_refs``), so the endpoint takes no
token; what a receipt changes (a device newly delivered or opened) is counted once in the daily
statistics, after it is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from chalicelib import clock
from chalicelib.models import receipt_refs
from chalicelib.models.ledger import ChunkAttempt
from chalicelib.models.receipts import ReceiptBatch, ReceiptsAccepted
from chalicelib.services.auth import APP_ID_RE
from chalicelib.store.receipts import ReceiptKeys, ReceiptRepository, ReceiptTimes, ReceiptWrite

# (app, now ms, newly delivered, newly opened): the daily statistics' counter (helper `stats`)
Counter = Callable[[str, int, int, int], None]
DeviceTimes = dict[tuple[int, str, str], tuple[int | None, int | None]]  # (chunk, user, token[:4])


def _no_count(app_id: str, now_ms: int, delivered: int, opened: int) -> None:
    return None


@dataclass
class ReceiptService:
    keys: ReceiptKeys
    repo: ReceiptRepository
    count: Counter = _no_count
    clock_ms: Callable[[], int] = field(default=clock.now_ms)

    def record(self, app_id: str, batch: ReceiptBatch) -> ReceiptsAccepted:
        # The app ID is checked before it names a secret: no Secrets Manager call for arbitrary names.
        key = self.keys.get(app_id) if APP_ID_RE.fullmatch(app_id) else None
        now = self.clock_ms()
        writes: list[ReceiptWrite] = []
        for receipt in batch.receipts:
            ref = receipt_refs.read(key, app_id, receipt.r) if key is not None else None
            if ref is not None:
                at = now if receipt.at is None or receipt.at > now else receipt.at
                writes.append(ReceiptWrite(ref, receipt.event, at))
        if writes:
            delivered, opened = self.repo.record(app_id, writes)
            if delivered or opened:
                self.count(app_id, now, delivered, opened)
        return ReceiptsAccepted(accepted=len(writes), rejected=len(batch.receipts) - len(writes))


def by_device(attempts: Iterable[ChunkAttempt], receipts: ReceiptTimes) -> DeviceTimes:
    """Receipts keyed by (chunk, user, token prefix), from their ledger locations (pure)."""
    recipients = {(a.ref.index, a.ref.attempt): a.recipients for a in attempts if not a.ref.prefix}
    out: DeviceTimes = {}
    for (chunk, attempt, index, prefix), times in receipts.items():
        users = recipients.get((chunk, attempt))
        if users is None or index >= len(users):
            continue
        where = (chunk, users[index], prefix)
        d0, o0 = out.get(where, (None, None))
        d1, o1 = times
        out[where] = (_first(d0, d1), _first(o0, o1))
    # opened implies delivered
    return {k: (d if d is not None else o, o) for k, (d, o) in out.items()}


def _first(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)
