"""Write openapi.json from the declared operations (`make openapi`); a test fails when it is stale."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import app  # noqa: F401  (registers the routes)
from chalicelib.api.openapi import build_openapi

if __name__ == "__main__":
    out = Path(__file__).resolve().parents[1] / "openapi.json"
    out.write_text(json.dumps(build_openapi(), indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}")
