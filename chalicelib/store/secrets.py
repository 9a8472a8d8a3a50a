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

    def get(self, name: str) -> dict[str, Any] | None:
        cached = self._cache.get(name)
        if cached and time.monotonic() - cached[0] < self.cache_ttl_s:
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
