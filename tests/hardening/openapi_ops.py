"""The operations of the committed OpenAPI document and the access level each one declares.

Both the fuzzer and the authorization matrix read the document rather than a hand-kept list,
so an endpoint added to chalicelib/api/*.py (and to openapi.json by `make openapi`) is covered
without touching these tests.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi.json"

# The access sentence chalicelib/api/openapi.py writes into every operation's description.
ACCESS_BY_DESCRIPTION = {
    "Needs the operator key.": "operator",
    "Needs an admin token of the app in the path.": "admin",
    "Needs a user token for the user in the path, or an admin token of the app.": "user",
    "Needs an admin token of the app in the path, or the operator key.": "appAdmin",
    "Needs no token: the request proves itself.": "public",
}


@dataclass(frozen=True)
class Op:
    method: str
    path: str
    operation_id: str
    access: str  # "operator" | "admin" | "user" | "appAdmin" | "public"
    has_body: bool
    success: int
    statuses: frozenset[int]

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)


def load_spec() -> dict[str, Any]:
    return dict(json.loads(SPEC_PATH.read_text()))


def operations(spec: dict[str, Any] | None = None) -> list[Op]:
    spec = spec or load_spec()
    out = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            description = op.get("description", "")
            access = next((v for k, v in ACCESS_BY_DESCRIPTION.items() if k in description), None)
            if access is None:
                raise AssertionError(
                    f"{method.upper()} {path}: its description states no known access level "
                    f"({description!r}); teach tests/hardening/openapi_ops.py the new one"
                )
            statuses = frozenset(int(s) for s in op["responses"])
            success = min(s for s in statuses if s < 300)
            out.append(
                Op(
                    method=method.upper(),
                    path=path,
                    operation_id=op["operationId"],
                    access=access,
                    has_body="requestBody" in op,
                    success=success,
                    statuses=statuses,
                )
            )
    return out
