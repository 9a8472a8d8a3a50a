"""`make run`'s parts die with it, however it dies (``python -m devstack.watchdog``, started by it).

Each part runs in its own process group (so a Ctrl-C reaches only the supervisor, and stopping a
group stops the part's own children). A supervisor that is SIGKILLed, or dies of a bug, runs no
clean-up: its parts would keep running with their ports held. This watchdog runs in a session of
its own and reads the supervisor over a pipe:

    +<pgid>   a part started (its process group)
    -<pgid>   the supervisor stopped and reaped it: forget it (its ID may be reused)

End of file (the supervisor closed the pipe, or its process died: the kernel closes it then)
means the supervisor is gone: every group still listed gets SIGTERM, then SIGKILL after a grace
period. A supervisor that stops cleanly has sent ``-`` for every part first, so nothing is left
to kill. Parent-death signals (``PR_SET_PDEATHSIG``) would reach only the direct children and fire
when the *thread* that started them ends; a pipe reaches every group and needs no Linux call.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable

GRACE_S = 5.0


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_groups(pgids: set[int], grace_s: float = GRACE_S) -> None:
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(group_alive(p) for p in pgids):
        time.sleep(0.05)
    for pgid in pgids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def watch(stream: Iterable[str]) -> set[int]:
    """Read the supervisor's lines until end of file; answer the groups still running."""
    groups: set[int] = set()
    for raw in stream:
        line = raw.strip()
        if line[:1] in ("+", "-") and line[1:].isdigit():
            (groups.add if line[0] == "+" else groups.discard)(int(line[1:]))
    return groups


def main() -> int:
    # The terminal's signals are the supervisor's to handle: this process only waits for it to end.
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    groups = watch(sys.stdin)
    if groups:
        os.write(2, f"make run: the supervisor is gone; stopping its {len(groups)} parts\n".encode())
        kill_groups(groups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
