"""Write openapi.json and the queue record's JSON Schema (`make openapi`); tests fail when either is stale."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import app  # noqa: E402, F401  (registers the routes)
from chalicelib.api.openapi import build_openapi  # noqa: E402
from chalicelib.models.message import QueuedMessageEvent  # noqa: E402


def message_event_schema() -> dict:
    """The record the IM server may put straight on the intake queue."""
    schema = QueuedMessageEvent.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Message event (intake queue record)"
    return schema


def write(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    write(ROOT / "openapi.json", build_openapi())
    write(ROOT / "docs" / "message-event.schema.json", message_event_schema())
