"""One device to send to, as the plan hands it to the gateway and the outcome table."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from chalicelib.services.policy import DeviceView


@dataclass(frozen=True, slots=True)
class Target:
    index: int  # the recipient's position in the chunk attempt
    user_id: str
    device: DeviceView
    badge: int | None


def devices_of(targets: Iterable[Target]) -> dict[str, list[str]]:
    """The tokens of each user among these targets (a retry chunk's ``devices``)."""
    out: dict[str, list[str]] = {}
    for t in targets:
        out.setdefault(t.user_id, []).append(t.device.token)
    return out
