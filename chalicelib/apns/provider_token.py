"""One APNs provider token (JWT) per signing key, the same in every container, for 40 minutes.

Apple counts provider-token updates per team and answers 429
TooManyProviderTokenUpdates when a team's token changes more often than every
20 minutes; aioapns mints a fresh token per connection, so many send
containers (each with several connections) would trip that limit. Here the
token is a pure function of the key and the current 40-minute window: ``iat``
is the window's start and ES256 is signed deterministically (RFC 6979), so
every container computes byte-for-byte the same token, without any shared
storage, and all switch to the next one at the same moment, well before
Apple's one-hour limit on a token's age.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aioapns.connection import AuthorizationHeaderProvider
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

WINDOW_S = 40 * 60  # a token is used for at most this long; Apple: between 20 and 60 minutes


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_provider_token(key: ec.EllipticCurvePrivateKey, key_id: str, team_id: str, issued_at: int) -> str:
    """The ES256 JWT APNs expects, signed deterministically: same inputs, same token."""
    header = _b64url(json.dumps({"alg": "ES256", "kid": key_id}, separators=(",", ":")).encode())
    claims = _b64url(json.dumps({"iss": team_id, "iat": issued_at}, separators=(",", ":")).encode())
    signing_input = f"{header}.{claims}".encode()
    der = key.sign(signing_input, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return f"{header}.{claims}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def window_start(now: float, window_s: int = WINDOW_S) -> int:
    return int(now // window_s) * window_s


@dataclass
class SharedProviderToken(AuthorizationHeaderProvider):
    """aioapns' authorization header provider, replaced: the window's token, computed once per window."""

    key_pem: str
    key_id: str
    team_id: str
    window_s: int = WINDOW_S
    clock: Callable[[], float] = time.time
    _key: ec.EllipticCurvePrivateKey | None = field(default=None, init=False, repr=False)
    _issued_at: int = field(default=-1, init=False)
    _header: str = field(default="", init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def get_header(self) -> str:
        issued_at = window_start(self.clock(), self.window_s)
        if issued_at != self._issued_at:
            with self._lock:
                if issued_at != self._issued_at:
                    if self._key is None:
                        key = serialization.load_pem_private_key(self.key_pem.encode(), password=None)
                        if not isinstance(key, ec.EllipticCurvePrivateKey):
                            raise ValueError("an APNs signing key is an EC P-256 key")
                        self._key = key
                    token = sign_provider_token(self._key, self.key_id, self.team_id, issued_at)
                    self._header, self._issued_at = f"bearer {token}", issued_at
        return self._header


_shared: dict[tuple[str, str, str], SharedProviderToken] = {}


def shared_provider(key_pem: str, key_id: str, team_id: str) -> SharedProviderToken:
    """One provider per key in this container, shared by all its connections."""
    found = _shared.get((key_id, team_id, key_pem))
    if found is None:
        found = _shared[(key_id, team_id, key_pem)] = SharedProviderToken(key_pem, key_id, team_id)
    return found
