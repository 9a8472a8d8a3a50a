"""The exactly-once ledger's values: what became of a recipient (``Outcome``), which chunk attempt
(``ChunkRef``), what a stored attempt holds (``ChunkAttempt``), an invocation's hold on an attempt's
lease (``Claim``, with its fencing token) and the loss of it (``LeaseLost``), what happened to a
message since it was sent (``MessageOps``). The store reads and writes them (``store/deliveries.py``,
``store/send_ledger.py``, the binary codec in ``store/ledger_codec.py``); the send wing and the
report work with them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["sent", "skipped", "failed", "pending"]
STATUSES: tuple[Status, ...] = ("sent", "skipped", "failed", "pending")
ClaimOutcome = Literal["claimed", "takeover", "done", "busy"]
LeaseStatus = Literal["queued", "claimed", "done", "dead"]  # dead: dead-lettered by the queue
RECALL_PREFIX = "R#"
DEAD_LETTERED = "DeadLettered"  # the code of a device whose attempt the queue's redrive dead-lettered


def edit_prefix(rev: int) -> str:
    return f"E{rev:03d}#"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one recipient (device None: the user as a whole) in one chunk attempt."""

    index: int  # position of the user in the chunk attempt's recipient list
    device_token: str | None
    status: Status
    code: str = ""  # short, machine-readable: a skip reason, an APNs reason, RetriesExhausted ...
    reason: str = ""  # the plain words for the report (failed / pending); empty = the code says it

    @property
    def key(self) -> tuple[int, str | None]:
        return self.index, self.device_token


@dataclass(frozen=True, slots=True)
class ChunkRef:
    index: int
    attempt: int
    prefix: str = ""  # "" = the original message; "R#" / "E<rev>#" = a recall's / an edit's replacements

    @property
    def sk(self) -> str:
        return f"{self.prefix}K#{self.index:06d}.{self.attempt:02d}"


@dataclass(frozen=True, slots=True)
class Claim:
    """One invocation's hold on a chunk attempt's lease. ``holder`` is the fencing token the claim
    wrote (random, per claim): every write made while holding the lease (checkpoint pages, saved
    badges, renewal, finish, release) is conditional on the lease item still naming it, so once
    another invocation has taken the attempt over, none of this one's writes lands."""

    app_id: str
    message_id: str
    ref: ChunkRef
    holder: str
    takeover: bool = False  # the previous holder's lease had run out (it died or stalled)
    held_since: float = 0.0  # time.monotonic() of this process just before the claim was sent


class LeaseLost(Exception):
    """A write made under a claim found the lease held by another invocation (or done by it): this
    invocation stalled past its lease and was taken over. It must stop sending at once."""


@dataclass(frozen=True, slots=True)
class MessageOps:
    """What has happened to a message since it was sent: recalled, and/or edited (rev-th change)."""

    recalled: bool = False
    edit_rev: int = 0  # 0 = never edited
    edit: dict[str, Any] | None = None  # the latest edit: {"elems": [...], "offlinePushInfo": {...}?}


@dataclass
class ChunkAttempt:
    """One chunk attempt as stored: its recipients, lease, saved badges and outcomes so far."""

    ref: ChunkRef
    recipients: list[str] = field(default_factory=list)
    status: LeaseStatus = "queued"
    badges: dict[int, int] | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    pages: int = 0
