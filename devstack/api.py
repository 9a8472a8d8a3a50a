"""`chalice local` for `make run`, with the send-tuning settings of the caller's environment winning.

`chalice local` copies the stage's ``environment_variables`` from .chalice/config.json over the
process environment when it loads the app, so a value there would silently beat
``SEND_LEASE_S=5 make run``.  This runs the same ``chalice local`` command with the settings in
``PASSTHROUGH`` re-applied on top of the stage's (only those given, non-empty, in the environment).

    python -m devstack.api --no-autoreload --stage local --port 8000
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

# Settings of the send path a developer tunes per run (../shared/API.md "Local stack").
PASSTHROUGH = ("SEND_LEASE_S", "MAX_SEND_ATTEMPTS", "RETRY_BASE_DELAY_S", "FOREGROUND_LEASE_DEFAULT_S")


def pinned(environ: Mapping[str, str]) -> dict[str, str]:
    """The PASSTHROUGH settings the environment gives (an empty value counts as not given)."""
    return {name: environ[name] for name in PASSTHROUGH if environ.get(name)}


def overriding(load_chalice_app: Any, overrides: dict[str, str]) -> Any:
    """``CLIFactory.load_chalice_app`` with ``overrides`` applied over the stage's variables."""

    def load_with_overrides(self: Any, environment_variables: Any = None, *args: Any, **kwargs: Any) -> Any:
        if environment_variables is not None:
            environment_variables = {**environment_variables, **overrides}
        return load_chalice_app(self, environment_variables, *args, **kwargs)

    return load_with_overrides


def main(argv: list[str] | None = None) -> None:
    from chalice.cli import main as chalice_main
    from chalice.cli.factory import CLIFactory

    CLIFactory.load_chalice_app = overriding(CLIFactory.load_chalice_app, pinned(os.environ))  # type: ignore[method-assign]
    sys.argv = ["chalice", "local", *(sys.argv[1:] if argv is None else argv)]
    sys.exit(chalice_main())


if __name__ == "__main__":
    main()
