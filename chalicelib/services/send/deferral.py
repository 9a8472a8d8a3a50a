"""A chunk that cannot make progress (AWS keeps throttling, or another invocation holds its lease)
gives its place back and comes again later, as a new message with an exponential, jittered delay:
SQS counts a receive each time a record is handed back, and ``maxReceiveCount`` of them would have
the queue's redrive dead-letter it within minutes. After ``MAX_DEFERRALS`` (about ten minutes of
waiting) it is handed back to SQS like any failure, towards the dead-letter queue.
"""

from __future__ import annotations

import random

DEFERRALS_ATTRIBUTE = "deferrals"  # the message attribute counting a record's deferrals
MAX_DEFERRALS = 8
BASE_DELAY_S = 2
MAX_DELAY_S = 900  # SQS's longest DelaySeconds


def deferral_delay_s(deferrals: int) -> int:
    """The delay of the ``deferrals``-th deferral (from 1): 2, 4, 8 ... s, each with equal jitter
    (half fixed, half random), so chunks throttled together do not come back together."""
    ceiling: int = min(MAX_DELAY_S, BASE_DELAY_S * 2 ** max(0, deferrals - 1))
    return max(1, int(ceiling / 2 + random.uniform(0, ceiling / 2)))  # noqa: S311 (jitter, not crypto)


def deferrals_of(attributes: dict[str, str]) -> int:
    try:
        return max(0, int(attributes.get(DEFERRALS_ATTRIBUTE, "0")))
    except ValueError:
        return 0
