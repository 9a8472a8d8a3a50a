"""The service's one clock: services take it as a parameter so tests can pin time."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Milliseconds since the epoch (APNs' 410 timestamps and our records use this unit)."""
    return int(time.time() * 1000)


def now() -> datetime:
    return datetime.now(UTC)
