"""Each fuzzed operation its own node ID."""

from __future__ import annotations

import pytest
from schemathesis.pytest.plugin import SchemathesisFunction


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """schemathesis names each operation's item (``test_fuzz_operation[POST /v1/apps]``) but gives
    them all the function's node ID; pytest-xdist runs one item per node ID (`make test` runs two
    workers), so 1 of the ~40 operations would be fuzzed. Each gets its name as its ID."""
    for item in items:
        if isinstance(item, SchemathesisFunction) and not item.nodeid.endswith("]"):
            operation = item.name.partition("[")[2].removesuffix("]")
            if operation:
                item._id = item._id.with_params(operation)
