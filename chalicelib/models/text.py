"""Text fields every event model shares: valid Unicode, "" meaning "not set", short quotations."""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

MAX_TEXT = 12_000  # Tencent's limit for one message is 12 KB; a text longer than this is a bug upstream.


def short(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")


def valid_unicode(value: str) -> str:
    # json.loads (what Chalice uses) lets an unpaired surrogate such as "\ud800" through; it cannot be
    # encoded as UTF-8, so it would only fail later, while building the APNs payload.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(
            "contains an unpaired UTF-16 surrogate (e.g. a lone \\ud83d): send valid Unicode text"
        ) from None
    return value


def empty_is_unset(value: object) -> object:
    # IM servers often send "" for "not set" (Tencent: "如果未设置昵称"); treat both alike.
    return None if value == "" else value


def escaped_size(value: str) -> int:
    """Bytes ``value`` takes inside a JSON string of the payload (UTF-8, escapes counted)."""
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8")) - 2


Text = Annotated[str, AfterValidator(valid_unicode)]
OptionalText = Annotated[Text | None, BeforeValidator(empty_is_unset)]
