"""Credential metadata + secret per certificate, kept for a few minutes per container."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from chalicelib.errors import NotFound
from chalicelib.models.credentials import Credential
from chalicelib.services.credentials import CredentialService

Entry = tuple[Credential | None, dict[str, Any] | None]


@dataclass
class CredentialCache:
    credentials: CredentialService
    ttl_s: float = 300.0
    _entries: dict[tuple[str, int], tuple[float, Credential | None, dict[str, Any] | None]] = field(
        default_factory=dict
    )
    _locks: dict[tuple[str, int], asyncio.Lock] = field(default_factory=dict)

    def cached(self, app_id: str, certificate_id: int) -> Entry | None:
        """The entry if it is fresh (no I/O), else None."""
        hit = self._entries.get((app_id, certificate_id))
        if hit and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1], hit[2]
        return None

    def get(self, app_id: str, certificate_id: int) -> Entry:
        hit = self.cached(app_id, certificate_id)
        if hit is not None:
            return hit
        try:
            cred: Credential | None = self.credentials.get(app_id, certificate_id)
        except NotFound:
            cred = None
        secret = self.credentials.secret(app_id, certificate_id) if cred else None
        self._entries[(app_id, certificate_id)] = (time.monotonic(), cred, secret)
        return cred, secret

    async def fetch(self, app_id: str, certificate_id: int) -> Entry:
        """From the cache (no thread hop), else read once however many sends miss at the same time."""
        hit = self.cached(app_id, certificate_id)
        if hit is not None:
            return hit
        lock = self._locks.setdefault((app_id, certificate_id), asyncio.Lock())
        async with lock:
            hit = self.cached(app_id, certificate_id)
            if hit is not None:
                return hit
            return await asyncio.to_thread(self.get, app_id, certificate_id)

    def forget(self, app_id: str, certificate_id: int) -> None:
        self._entries.pop((app_id, certificate_id), None)
