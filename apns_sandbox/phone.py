"""What a simulated phone does with a push it received, beyond listing it: iOS sets the app icon's
badge from any alert push that carries ``aps.badge`` (a badge-only push included), and a background
push wakes the app, unless the user force-quit it, so the app can act on it. The sandbox's app acts
like an IM app doing read sync: on ``"op": "read"`` it removes the delivered notifications of the
conversations named (``conversation`` and ``conversations``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def icon_badge(item: dict[str, Any]) -> int | None:
    """The badge iOS puts on the app icon for this push (None: it leaves the icon alone)."""
    if item.get("pushType") not in ("alert", None):
        return None
    aps = item["payload"].get("aps")
    badge = aps.get("badge") if isinstance(aps, dict) else None
    return badge if isinstance(badge, int) and not isinstance(badge, bool) and badge >= 0 else None


def conversations_read(item: dict[str, Any]) -> list[tuple[str, str]]:
    """The conversations a read-sync background push names ([] for any other push)."""
    payload = item["payload"]
    if item.get("pushType") != "background" or payload.get("op") != "read":
        return []
    named = [payload.get("conversation"), *(payload.get("conversations") or [])]
    out: list[tuple[str, str]] = []
    for c in named:
        named_ok = isinstance(c, dict) and isinstance(c.get("kind"), str) and isinstance(c.get("id"), str)
        if named_ok and (c["kind"], c["id"]) not in out:  # type: ignore[index]
            out.append((c["kind"], c["id"]))  # type: ignore[index]
    return out


def is_of(notification: dict[str, Any], kind: str, conversation_id: str) -> bool:
    """Whether a notification belongs to the conversation: its communication-notification
    ``conversation``, its thread-id (``group_<id>`` / ``c2c_<id>``) or Agora's ``g`` / ``f``."""
    payload = notification["payload"]
    conv = payload.get("conversation")
    if isinstance(conv, dict) and conv.get("id") == conversation_id and conv.get("type") == kind:
        return True
    aps = payload.get("aps")
    if isinstance(aps, dict) and aps.get("thread-id") == f"{kind}_{conversation_id}":
        return True
    if kind == "group":
        return payload.get("g") == conversation_id
    return "g" not in payload and payload.get("f") == conversation_id


def clear_read(earlier: Iterable[dict[str, Any]], item: dict[str, Any], at_ms: int) -> int:
    """The woken app removes the named conversations' delivered notifications: each is marked
    ``clearedAtMs`` (the inbox no longer draws it). Answers how many were removed."""
    read = conversations_read(item)
    removed = 0
    for n in earlier:
        shown = n.get("clearedAtMs") is None and n.get("pushType") == "alert" and not _silent(n)
        if shown and any(is_of(n, kind, cid) for kind, cid in read):
            n["clearedAtMs"] = at_ms
            n["clearedBy"] = item["apnsId"]
            removed += 1
    return removed


def _silent(n: dict[str, Any]) -> bool:
    aps = n["payload"].get("aps")
    return not (isinstance(aps, dict) and aps.get("alert"))
