"""Read sync, API side: a read on another device sets the stored badge and, by the app's ``readSync``
setting, opens a short read window whose job (on the send queue, delayed ``READ_SYNC_DELAY_S``) then
brings the user's phones in line. No server sleeps: SQS holds the job, and the window in the user's
state item makes a burst of reads one job and one push with the last count."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from chalicelib import clock
from chalicelib.models.read_sync import ReadAccepted, ReadIn, ReadSyncJob
from chalicelib.services.settings import SettingsService
from chalicelib.store.queues import Queues
from chalicelib.store.read_marks import ReadMarks

log = logging.getLogger(__name__)

READ_SYNC_DELAY_S = 2  # the first read of a burst is held this long; the reads after it join its push
# A window still open this long after it opened lost its job (the queue refused it, or it was
# dead-lettered): the next read queues a job for it again.
STALE_WINDOW_MS = 30_000


@dataclass
class ReadSyncService:
    marks: ReadMarks
    settings: SettingsService
    queues: Queues
    clock_ms: Callable[[], int] = clock.now_ms
    delay_s: int = READ_SYNC_DELAY_S

    def read(self, app_id: str, user_id: str, body: ReadIn) -> ReadAccepted:
        mode = self.settings.cached(app_id).read_sync
        if mode == "off":
            return ReadAccepted(badge=self.marks.set_badge(app_id, user_id, body.unread_count))
        now = self.clock_ms()
        conversation = None
        if mode == "badgeAndClear" and body.conversation is not None:
            conversation = body.conversation.dump()
            if body.read_up_to is not None:
                conversation["readUpTo"] = body.read_up_to
        mark = self.marks.record_read(app_id, user_id, body.unread_count, now, conversation)
        assert mark.held_ms is not None
        if mark.held_ms == now or mark.held_ms < now - STALE_WINDOW_MS:
            job = ReadSyncJob(job="readSync", app_id=app_id, user_id=user_id, held_ms=mark.held_ms, mode=mode)
            self.queues.send_chunks([job.model_dump_json(by_alias=True)], delay_s=self.delay_s)
        return ReadAccepted(badge=mark.badge)
