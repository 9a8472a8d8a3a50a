"""Sandbox settings, read once from the environment (every knob has a local default)."""

from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass

# The line the sandbox prints once all three listeners accept connections (JSON follows).
READY_MARKER = "APNS_SANDBOX_READY "


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from exc
    if not value >= 0 or value == float("inf"):
        raise SystemExit(f"{name} must be a finite number >= 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class SandboxConfig:
    host: str = "127.0.0.1"
    production_port: int = 2197
    development_port: int = 2196
    ui_port: int = 8025
    state_dir: pathlib.Path = pathlib.Path(".local/apns-sandbox")
    max_concurrent_streams: int = 1000
    max_notifications: int = 200_000
    # Apple rejects a provider token that changes more than once per 20 minutes on a connection.
    token_update_min_interval_s: int = 20 * 60
    # After a 429 TooManyProviderTokenUpdates, every request on that connection gets the same 429
    # for this long (Apple's connection "stays unusable for a while"; 0 = only the offending request).
    token_update_lockout_s: float = 60.0
    # Apple rejects provider tokens whose `iat` is older than one hour.
    token_max_age_s: int = 60 * 60
    # Per-device token bucket (Apple: 429 TooManyRequests when one device gets too many): a device
    # may receive `device_burst` notifications at once, refilled at `device_rate` per second.
    # device_burst 0 = no limit.
    device_burst: int = 2000
    device_rate: float = 100.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SandboxConfig:
        e = dict(os.environ if env is None else env)
        return cls(
            host=e.get("APNS_SANDBOX_HOST", "").strip() or cls.host,
            production_port=_int(e, "APNS_SANDBOX_PRODUCTION_PORT", cls.production_port),
            development_port=_int(e, "APNS_SANDBOX_DEVELOPMENT_PORT", cls.development_port),
            ui_port=_int(e, "APNS_SANDBOX_UI_PORT", cls.ui_port),
            state_dir=pathlib.Path(e.get("APNS_SANDBOX_STATE_DIR", "").strip() or cls.state_dir),
            max_concurrent_streams=_int(e, "APNS_SANDBOX_MAX_CONCURRENT_STREAMS", cls.max_concurrent_streams),
            max_notifications=_int(e, "APNS_SANDBOX_MAX_NOTIFICATIONS", cls.max_notifications),
            token_update_min_interval_s=_int(
                e, "APNS_SANDBOX_TOKEN_UPDATE_MIN_INTERVAL", cls.token_update_min_interval_s
            ),
            token_update_lockout_s=_float(e, "APNS_SANDBOX_TOKEN_UPDATE_LOCKOUT", cls.token_update_lockout_s),
            token_max_age_s=_int(e, "APNS_SANDBOX_TOKEN_MAX_AGE", cls.token_max_age_s),
            device_burst=_int(e, "APNS_SANDBOX_DEVICE_BURST", cls.device_burst),
            device_rate=_float(e, "APNS_SANDBOX_DEVICE_RATE", cls.device_rate),
        )
