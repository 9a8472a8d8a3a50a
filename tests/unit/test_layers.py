"""The import graph keeps its layers: nothing in apns/, store/ or models/ imports services/, infra/
never imports devstack/, and no room of the send wing grows past ~250 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("layer", ["apns", "store", "models"])
def test_lower_layers_never_import_services(layer: str) -> None:
    upward = {
        f"{p.relative_to(ROOT)}: {m}"
        for p in (ROOT / "chalicelib" / layer).rglob("*.py")
        for m in _imports(p)
        if m.startswith("chalicelib.services")
    }
    assert upward == set()


def test_infra_never_imports_devstack() -> None:
    found = {
        f"{p.relative_to(ROOT)}: {m}"
        for p in (ROOT / "infra").rglob("*.py")
        for m in _imports(p)
        if m.split(".")[0] == "devstack"
    }
    assert found == set()


def test_no_room_of_the_send_wing_is_over_250_lines() -> None:
    sizes = {
        p.name: len(p.read_text().splitlines()) for p in (ROOT / "chalicelib/services/send").glob("*.py")
    }
    assert {name: n for name, n in sizes.items() if n > 250} == {}
