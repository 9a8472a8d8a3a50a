"""Creating apps and looking up their token-signing keys (kept in Secrets Manager)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from chalicelib import clock
from chalicelib.models.apps import AppCreate, AppCreated
from chalicelib.store.apps import AppRepository
from chalicelib.store.secrets import SecretStore


@dataclass
class AppService:
    repo: AppRepository
    secrets: SecretStore

    def create(self, body: AppCreate) -> AppCreated:
        app_id = "app-" + secrets.token_hex(6)
        secret_key = secrets.token_urlsafe(32)
        self.secrets.put(
            self.secrets.name(app_id, "app-secret-key"),
            {"secretKey": secret_key},
            description=f"HS256 key for app tokens of {app_id}",
        )
        self.repo.create_app(app_id, body.name, clock.now_ms())
        return AppCreated(app_id=app_id, name=body.name, secret_key=secret_key)

    def secret_key(self, app_id: str) -> str | None:
        value = self.secrets.get(self.secrets.name(app_id, "app-secret-key"))
        return None if value is None else str(value["secretKey"])

    def exists(self, app_id: str) -> bool:
        return self.repo.get_app(app_id) is not None
