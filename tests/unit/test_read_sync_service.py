"""Read sync, API side: only the read that opens a window queues a job (delayed 2 s); a window left
open past its job's time (the queue refused it) gets a job again; `off` queues nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from chalicelib.models.read_sync import ReadIn
from chalicelib.models.settings import AppSettings
from chalicelib.services.read_sync import STALE_WINDOW_MS, ReadSyncService
from chalicelib.store.read_marks import ReadMark

NOW = 1_800_000_000_000


@dataclass
class FakeMarks:
    held: int | None = None
    badges: list[int] = field(default_factory=list)

    def record_read(self, app_id: str, user_id: str, n: int, at_ms: int, conv: Any) -> ReadMark:
        self.badges.append(n)
        if self.held is None:
            self.held = at_ms
        return ReadMark(n, self.held)

    def set_badge(self, app_id: str, user_id: str, n: int) -> int:
        self.badges.append(n)
        return n


@dataclass
class FakeQueues:
    sent: list[tuple[dict[str, Any], int]] = field(default_factory=list)

    def send_chunks(self, bodies: list[str], delay_s: int = 0) -> int:
        self.sent += [(json.loads(b), delay_s) for b in bodies]
        return 1


@dataclass
class FakeSettings:
    mode: str = "badge"

    def cached(self, app_id: str) -> AppSettings:
        return AppSettings(read_sync=self.mode)  # type: ignore[arg-type]


def _service(marks: FakeMarks, queues: FakeQueues, mode: str = "badge") -> ReadSyncService:
    return ReadSyncService(marks, FakeSettings(mode), queues, clock_ms=lambda: NOW)  # type: ignore[arg-type]


def test_the_read_that_opens_a_window_queues_one_delayed_job() -> None:
    marks, queues = FakeMarks(), FakeQueues()
    answer = _service(marks, queues).read("app", "bob", ReadIn(unread_count=3))
    assert answer.badge == 3
    assert queues.sent == [
        ({"job": "readSync", "appId": "app", "userId": "bob", "heldMs": NOW, "mode": "badge"}, 2)
    ]


def test_a_read_inside_an_open_window_queues_nothing() -> None:
    marks, queues = FakeMarks(held=NOW - 500), FakeQueues()
    _service(marks, queues).read("app", "bob", ReadIn(unread_count=1))
    assert queues.sent == [] and marks.badges == [1]


def test_a_window_left_open_past_its_job_gets_a_job_again() -> None:
    marks, queues = FakeMarks(held=NOW - STALE_WINDOW_MS - 1), FakeQueues()
    _service(marks, queues).read("app", "bob", ReadIn(unread_count=1))
    assert [job["heldMs"] for job, _ in queues.sent] == [NOW - STALE_WINDOW_MS - 1]


def test_with_read_sync_off_only_the_badge_is_set() -> None:
    marks, queues = FakeMarks(), FakeQueues()
    answer = _service(marks, queues, "off").read("app", "bob", ReadIn(unread_count=2))
    assert answer.badge == 2 and marks.held is None and queues.sent == []
