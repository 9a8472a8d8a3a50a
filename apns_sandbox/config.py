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
    # Apple rejects provider tokens whose `iat` is older than one hour.
    token_max_age_s: int = 60 * 60

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
            token_max_age_s=_int(e, "APNS_SANDBOX_TOKEN_MAX_AGE", cls.token_max_age_s),
        )
