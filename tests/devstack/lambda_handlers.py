"""Handlers for the Lambda runtime tests (devstack.lambda_runtime), run inside its containers."""

from __future__ import annotations

import os
import time
from typing import Any


def sleepy(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Sleeps ``event["sleep"]`` seconds; answers its process ID and the time it had left."""
    time.sleep(float(event.get("sleep", 0)))
    return {"pid": os.getpid(), "remainingMs": context.get_remaining_time_in_millis()}
