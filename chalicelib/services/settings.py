"""Per-app settings: read and change them, and a small per-container cache for the paths that need
them outside the send path (which gets them in each chunk from the fan-out)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib.errors import NotFound, ValidationFailed
from chalicelib.models.settings import AppSettings, AppSettingsPatch
from chalicelib.store.apps import AppRepository

SETTINGS_CACHE_S = 30.0  # a change reaches every warm container within this


@dataclass
class SettingsService:
    repo: AppRepository
    is_local: bool = False
    cache_s: float = SETTINGS_CACHE_S
    monotonic: Callable[[], float] = time.monotonic
    _cache: dict[str, tuple[float, AppSettings]] = field(default_factory=dict, repr=False)

    def get(self, app_id: str) -> AppSettings:
        app = self.repo.get_app(app_id)
        if app is None:
            raise NotFound(f"app '{app_id}' does not exist")
        return AppSettings.from_stored(app)

    def patch(self, app_id: str, body: AppSettingsPatch) -> AppSettings:
        if body.webhook is not None and body.webhook.is_plain_http and not self.is_local:
            raise ValidationFailed(
                "webhook.url: use https (plain http is allowed only to 127.0.0.1 or localhost, locally)",
                details={"field": "webhook.url"},
            )
        new = body.applied_to(AppSettings())
        stored = self.repo.update_settings(app_id, new.to_stored(set(body.model_fields_set)))
        if stored is None:
            raise NotFound(f"app '{app_id}' does not exist")
        settings = AppSettings.from_stored(stored)
        self._cache[app_id] = (self.monotonic(), settings)
        return settings

    def cached(self, app_id: str) -> AppSettings:
        """The app's settings as of at most ``cache_s`` ago (one read per app per container per
        ``cache_s``); defaults for an app that does not exist (the caller checks existence itself)."""
        hit = self._cache.get(app_id)
        now = self.monotonic()
        if hit is not None and now - hit[0] < self.cache_s:
            return hit[1]
        app = self.repo.get_app(app_id)
        settings = AppSettings.from_stored(app) if app is not None else AppSettings()
        self._cache[app_id] = (now, settings)
        return settings
