"""Secrets Manager access: the only place secret material is written or read."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


@dataclass
class SecretStore:
    """JSON secrets under one name prefix (IAM is scoped to ``<prefix>*``), with a small read cache."""

    client: SecretsManagerClient
    prefix: str
    cache_ttl_s: float = 300.0
    _cache: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict, repr=False)

    def name(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def put(self, name: str, value: dict[str, Any], description: str) -> str:
        """Create the secret (or replace its value) and answer its ARN."""
        payload = json.dumps(value)
        try:
            resp = self.client.create_secret(Name=name, SecretString=payload, Description=description)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceExistsException":
                raise
            resp = self.client.put_secret_value(SecretId=name, SecretString=payload)  # type: ignore[assignment]
        self._cache.pop(name, None)
        return resp["ARN"]

    def create(self, name: str, value: dict[str, Any], description: str) -> bool:
        """Create the secret unless it exists (False then, the value left as it is): two callers
        racing to create a key both end up with the one that was stored first."""
        try:
            self.client.create_secret(Name=name, SecretString=json.dumps(value), Description=description)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceExistsException":
                raise
            return False
        self._cache.pop(name, None)
        return True

    def get(self, name: str, *, fresh: bool = False, max_age_s: float | None = None) -> dict[str, Any] | None:
        """The secret's value; from the cache unless ``fresh`` or the cached copy is older than
        ``max_age_s`` (default: the cache TTL)."""
        cached = self._cache.get(name)
        max_age = self.cache_ttl_s if max_age_s is None else min(max_age_s, self.cache_ttl_s)
        if cached and not fresh and time.monotonic() - cached[0] < max_age:
            return cached[1]
        try:
            resp = self.client.get_secret_value(SecretId=name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        value: dict[str, Any] = json.loads(resp["SecretString"])
        self._cache[name] = (time.monotonic(), value)
        return value

    def delete(self, name: str) -> None:
        """Delete now (no recovery window): a removed credential must stop being usable at once."""
        self._cache.pop(name, None)
        try:
            self.client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
