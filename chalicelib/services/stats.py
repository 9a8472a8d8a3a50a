"""Daily statistics: what a settled chunk attempt adds (pure), and the days an operator asks for.

A chunk attempt's counts are its final outcomes as the report shows them: one per device
(sent, failed, skipped device) or per user skipped as a whole; ``pending`` devices are counted
by the retry attempt that settles them, so the sum over a message's attempts is its report's
summary. The counts ride on the write that marks the attempt done (one per attempt).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.models.ledger import Outcome
from chalicelib.models.stats import DayCounts, StatsDay, StatsPage, StatsQuery
from chalicelib.store.stats import StatsRepository


def attempt_counts(outcomes: Iterable[Outcome], first_of_message: bool = False) -> DayCounts:
    """The counts of one chunk attempt's outcomes (the latest outcome per device wins; a user-level
    row gives way to that user's device rows, as in the report)."""
    latest: dict[tuple[int, str | None], Outcome] = {}
    for o in outcomes:
        latest[o.key] = o
    with_devices = {index for index, token in latest if token is not None}
    sent = 0
    skipped: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for (index, token), o in latest.items():
        if token is None and index in with_devices:
            continue
        if o.status == "sent":
            sent += 1
        elif o.status == "skipped":
            skipped[o.code] += 1
        elif o.status == "failed":
            failed[o.code] += 1
    return DayCounts(
        messages=1 if first_of_message else 0, sent=sent, skipped=dict(skipped), failed=dict(failed)
    )


@dataclass
class StatsService:
    repo: StatsRepository

    def days(self, app_id: str, query: StatsQuery) -> StatsPage:
        stored = self.repo.days(app_id, query.from_, query.to)
        out: list[StatsDay] = []
        day = query.from_
        while day <= query.to:
            c = stored.get(day, DayCounts())
            out.append(
                StatsDay(
                    date=day.isoformat(),
                    messages=c.messages,
                    sent=c.sent,
                    skipped=dict(c.skipped),
                    failed=dict(c.failed),
                    delivered=c.delivered,
                    opened=c.opened,
                )
            )
            day += dt.timedelta(days=1)
        return StatsPage(days=out)
