"""Provider authentication as APNs does it: ES256 provider tokens (JWT) signed with an issued p8
key, or a TLS client certificate issued by the sandbox CA.

An ECDSA verification costs ~0.1 ms, so verified tokens are cached by their exact string; only
the age check (`iat`) runs per request.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from .rules import Rejection
from .state import SigningKey

_CACHE_LIMIT = 10_000


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass(frozen=True)
class ProviderToken:
    key_id: str
    team_id: str
    issued_at: float  # seconds; Apple accepts a decimal `iat` (PyAPNs2 signs time.time())
    token: str


class TokenVerifier:
    def __init__(self, keys: dict[str, SigningKey], max_age_s: int = 3600) -> None:
        self.keys = keys
        self.max_age_s = max_age_s
        # token string -> verified token, or the reason it was refused (signatures never change)
        self._cache: dict[str, ProviderToken | str] = {}

    def verify(self, authorization: str) -> tuple[ProviderToken, SigningKey]:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Rejection("InvalidProviderToken")
        token = token.strip()
        cached = self._cache.get(token)
        if cached is None:
            cached = self._verify_uncached(token)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[token] = cached
        if isinstance(cached, str):
            raise Rejection(cached)
        key = self.keys.get(cached.key_id)
        if key is None:  # revoked since it was cached
            raise Rejection("InvalidProviderToken")
        if cached.issued_at < time.time() - self.max_age_s:
            raise Rejection("ExpiredProviderToken")
        return cached, key

    def _verify_uncached(self, token: str) -> ProviderToken | str:
        parts = token.split(".")
        if len(parts) != 3:
            return "InvalidProviderToken"
        try:
            header = json.loads(_b64url(parts[0]))
            claims = json.loads(_b64url(parts[1]))
            signature = _b64url(parts[2])
        except (ValueError, binascii.Error):
            return "InvalidProviderToken"
        if not isinstance(header, dict) or not isinstance(claims, dict):
            return "InvalidProviderToken"
        if header.get("alg") != "ES256" or not isinstance(header.get("kid"), str):
            return "InvalidProviderToken"
        key = self.keys.get(header["kid"])
        if key is None:
            return "InvalidProviderToken"
        if claims.get("iss") != key.team_id:
            return "InvalidProviderToken"
        iat = claims.get("iat")
        # A JSON number, integer or decimal, as Apple accepts it; not a string, bool, NaN or inf.
        if isinstance(iat, bool) or not isinstance(iat, int | float):
            return "InvalidProviderToken"
        if isinstance(iat, float) and not math.isfinite(iat):
            return "InvalidProviderToken"
        if len(signature) != 64:
            return "InvalidProviderToken"
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            key.public_key.verify(der, f"{parts[0]}.{parts[1]}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return "InvalidProviderToken"
        return ProviderToken(key_id=key.key_id, team_id=key.team_id, issued_at=iat, token=token)
