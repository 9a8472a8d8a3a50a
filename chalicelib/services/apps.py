"""Apps: creating and listing them, their token-signing keys (kept in Secrets Manager), key rotation
with a grace period for the previous key, and short-lived admin tokens for the operator console."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib import clock
from chalicelib.errors import NotFound
from chalicelib.models.apps import (
    AppCreate,
    AppCreated,
    AppList,
    AppSummary,
    KeyRotated,
    KeyRotation,
    TokenIssued,
    TokenRequest,
)
from chalicelib.services.auth import mint_token
from chalicelib.store.apps import AppRepository
from chalicelib.store.secrets import SecretStore

KEY_SECRET_NAME = "app-secret-key"  # noqa: S105 (a secret's name, not a secret)
KEY_CACHE_S = 30.0
CONSOLE_SUBJECT = "operator-console"  # the 'sub' of console tokens: shows up as the actor in logs


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass
class AppService:
    repo: AppRepository
    secrets: SecretStore
    clock_ms: Callable[[], int] = clock.now_ms

    def create(self, body: AppCreate) -> AppCreated:
        app_id = "app-" + secrets.token_hex(6)
        secret_key = secrets.token_urlsafe(32)
        self.secrets.put(
            self.secrets.name(app_id, KEY_SECRET_NAME),
            {"secretKey": secret_key},
            description=f"HS256 key for app tokens of {app_id}",
        )
        self.repo.create_app(app_id, body.name, self.clock_ms())
        return AppCreated(app_id=app_id, name=body.name, secret_key=secret_key)

    def list_all(self) -> AppList:
        apps = self.repo.list_apps()
        return AppList(
            items=[
                AppSummary(app_id=a["appId"], name=a["name"], created_at=_at(int(a["createdAt"])))
                for a in sorted(apps, key=lambda a: (int(a["createdAt"]), a["appId"]))
            ]
        )

    def secret_key(self, app_id: str) -> str | None:
        value = self.secrets.get(self.secrets.name(app_id, KEY_SECRET_NAME))
        return None if value is None else str(value["secretKey"])

    def signing_keys(self, app_id: str) -> list[str] | None:
        """The keys app tokens may be signed with now: the current one, and the previous one until
        its ``previousValidUntil``; None when the app does not exist."""
        # Re-read at least every 30 s: a rotation in another container reaches this one that soon.
        value = self.secrets.get(self.secrets.name(app_id, KEY_SECRET_NAME), max_age_s=KEY_CACHE_S)
        if value is None:
            return None
        keys = [str(value["secretKey"])]
        previous, until = value.get("previousKey"), value.get("previousValidUntil")
        if isinstance(previous, str) and isinstance(until, int) and self.clock_ms() < until:
            keys.append(previous)
        return keys

    def rotate_key(self, app_id: str, body: KeyRotation) -> KeyRotated:
        """A new signing key; the old one stays valid for ``graceSeconds`` (only one previous key:
        rotating again ends the older one's grace at once)."""
        name = self.secrets.name(app_id, KEY_SECRET_NAME)
        current = self.secrets.get(name, fresh=True)
        if current is None or not self.exists(app_id):
            raise NotFound(f"app '{app_id}' does not exist")
        new_key = secrets.token_urlsafe(32)
        until_ms = self.clock_ms() + body.grace_seconds * 1000
        self.secrets.put(
            name,
            {"secretKey": new_key, "previousKey": current["secretKey"], "previousValidUntil": until_ms},
            description=f"HS256 key for app tokens of {app_id}",
        )
        return KeyRotated(secret_key=new_key, previous_valid_until=_at(until_ms))

    def console_token(self, app_id: str, body: TokenRequest) -> TokenIssued:
        keys = self.signing_keys(app_id)  # the current key, as fresh as the verifying side reads it
        if keys is None or not self.exists(app_id):
            raise NotFound(f"app '{app_id}' does not exist")
        key = keys[0]
        now_s = self.clock_ms() // 1000
        token = mint_token(key, app_id, CONSOLE_SUBJECT, body.role, body.ttl_seconds, now_s=now_s)
        return TokenIssued(token=token, expires_at=_at((now_s + body.ttl_seconds) * 1000))

    def exists(self, app_id: str) -> bool:
        return self.repo.get_app(app_id) is not None
