"""Lambda's execution environment, as the poller runs the SQS-triggered functions.

Each function runs in a container of its own: a process that imports the app once (the cold
start, logged in ms), runs one invocation at a time, and is **frozen** (SIGSTOP) between
invocations, as Lambda freezes an idle environment: nothing runs on its event loop, its
connections go stale and APNs may close them meanwhile. An invocation still running at the
function's **timeout is killed** (SIGKILL) and its container discarded, as Lambda does; its
records are left to SQS (they come back after the visibility timeout). The next invocation
starts a new container (cold again).

Timeouts are the deployed ones (``.chalice/config.json``, stage ``dev``); the send function's
is cut below ``SEND_LEASE_S`` when that is shorter (a lease must outlive the invocation that
holds it; the template derives the deployed lease from the timeout), with a log line.

    python -m devstack.lambda_runtime <handler name>     (the container's own process)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

log = logging.getLogger("devstack.poller")
ROOT = Path(__file__).resolve().parents[1]
LEASE_SHARE = 0.8  # a local send timeout cut below SEND_LEASE_S keeps this share of the lease


class HandlerTimedOut(Exception):
    """The invocation ran past the function's timeout: killed, its container discarded."""


def deployed_timeouts(stage: str = "dev") -> dict[str, float]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    functions = config["stages"].get(stage, {}).get("lambda_functions", {})
    return {
        name: float(spec["lambda_timeout"]) for name, spec in functions.items() if "lambda_timeout" in spec
    }


def local_timeout_s(name: str, deployed_s: float, send_lease_s: float) -> float:
    """The function's timeout here: the deployed one, but the send function's stays below its lease."""
    if name != "send" or deployed_s < send_lease_s:
        return deployed_s
    cut = max(1.0, round(send_lease_s * LEASE_SHARE, 1))
    log.info(
        "SEND_LEASE_S=%g is not longer than the send function's %g s timeout: the local send function "
        "times out after %g s instead, so a chunk's lease always outlives the invocation holding it",
        send_lease_s,
        deployed_s,
        cut,
    )
    return cut


class Container:
    """One function's execution environment: created on first use, frozen between invocations,
    killed and discarded at the timeout. Called as the poller calls a handler: (event, context)."""

    def __init__(self, handler_name: str, timeout_s: float) -> None:
        self.handler_name = handler_name
        self.timeout_s = timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.cold_starts = 0
        self.last_cold_start_ms = 0.0

    def __call__(self, event: dict[str, Any], _context: Any = None) -> Any:
        proc = self.proc or self._start()
        assert proc.stdin is not None and proc.stdout is not None
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)  # thawed for this invocation
        try:
            proc.stdin.write(json.dumps(event).encode() + b"\n")
            proc.stdin.flush()
            line = self._read_line(proc, self.timeout_s)
        except (BrokenPipeError, OSError) as exc:
            self.discard()
            raise RuntimeError(f"the {self.handler_name} container died: {exc!r}") from None
        if line is None:
            self.discard()
            log.warning(
                "%s: invocation killed at its %g s timeout (as Lambda does); its container is discarded, "
                "its records are left to SQS",
                self.handler_name,
                self.timeout_s,
            )
            raise HandlerTimedOut(f"{self.handler_name} timed out after {self.timeout_s:g} s")
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGSTOP)  # frozen until the next invocation
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.handler_name} raised: {answer['error']}")
        return answer.get("result")

    def _start(self) -> subprocess.Popen[bytes]:
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "devstack.lambda_runtime", self.handler_name, str(self.timeout_s)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        ready = self._read_line(proc, 60.0)
        if ready is None:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"the {self.handler_name} container did not start within 60 s")
        self.last_cold_start_ms = (time.monotonic() - started) * 1000
        self.cold_starts += 1
        log.info(
            "%s: cold start (new container, app imported) in %.0f ms",
            self.handler_name,
            self.last_cold_start_ms,
        )
        self.proc = proc
        return proc

    @staticmethod
    def _read_line(proc: subprocess.Popen[bytes], timeout_s: float) -> bytes | None:
        """One line from the container within ``timeout_s``; None: none came (or it died)."""
        assert proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                return None
            buf += chunk
            if buf.endswith(b"\n"):
                return buf

    def discard(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)


def _die_with_parent() -> None:
    """Linux: SIGKILL this container when the poller dies, even by SIGKILL (and even when frozen)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def serve(handler_name: str, timeout_s: float) -> None:
    """The container: import the app, say ready, then one invocation per line on stdin."""
    _die_with_parent()
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # the handler's prints go to the log, not the pipe
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {handler_name} %(levelname)s %(message)s")
    import importlib

    from devstack.poller import LambdaContext

    module, _, name = handler_name.rpartition(":")  # "send" (in app.py) or "package.module:function"
    handler = getattr(importlib.import_module(module or "app"), name)
    out.write(b'{"ready": true}\n')
    out.flush()
    for line in sys.stdin.buffer:
        event = json.loads(line)
        try:
            answer: dict[str, Any] = {"result": handler(event, LambdaContext(handler_name, timeout_s))}
        except Exception as exc:
            logging.getLogger("devstack.poller").exception("handler %s failed its whole batch", handler_name)
            answer = {"error": repr(exc)}
        out.write(json.dumps(answer).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    serve(sys.argv[1], float(sys.argv[2]))
