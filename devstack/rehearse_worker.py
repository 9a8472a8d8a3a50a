"""One function's container in the rehearsal: ``python -m devstack.rehearse_worker <module.handler>``.

Started with the environment the stack gave the function (plus the emulator's and the APNs
sandbox's addresses), from the deployment package unpacked first on ``PYTHONPATH``. Reads one JSON
event per line on stdin, invokes the handler as Lambda does, writes one JSON line per answer to the
stdout it was started with (the handler's own prints and logs go to stderr).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
import uuid
from typing import Any


class Context:
    """The parts of Lambda's context object that handlers read."""

    def __init__(self) -> None:
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = ""
        self._deadline = time.monotonic() + float(os.environ.get("REHEARSAL_TIMEOUT_S", "3"))

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main() -> int:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the handler's prints must not mix with the answers
    from devstack import aws_actions

    aws_actions.maybe_install()
    module_name, attr = sys.argv[1].rsplit(".", 1)
    handler: Any = getattr(importlib.import_module(module_name), attr)
    answers.write(json.dumps({"ready": importlib.import_module(module_name).__file__}) + "\n")
    for line in sys.stdin:
        try:
            result = handler(json.loads(line), Context())
            answers.write(json.dumps({"result": result}) + "\n")
        except Exception as exc:  # Lambda reports the error to the invoker; so does this
            traceback.print_exc()
            answers.write(json.dumps({"error": f"{type(exc).__name__}: {exc}"}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
