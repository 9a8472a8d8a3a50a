"""Everything the sandbox remembers: issued p8 keys and simulated devices (persisted in the state
dir, so a restart keeps them valid), received notifications and counters (memory only, bounded),
and the fault rules. One asyncio loop owns it all, so there are no locks.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import hashlib
import json
import pathlib
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from . import pki
from .rules import DEFAULT_REASON, REASON_STATUS

# `PUT /sandbox/faults {connections}`: a dead connection that never answers, or one ended by GOAWAY.
CONNECTION_FAULTS = frozenset({"silent", "close"})

ENVIRONMENTS = ("development", "production")
FAULT_ACTIONS = ("goaway", "reset", "close", "accept-reset")


class ValidationError(ValueError):
    """Bad input to the control API (answered with 400)."""


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_ms(ms: int) -> str:
    return (
        dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


@dataclass
class SigningKey:
    key_id: str
    team_id: str
    bundle_ids: frozenset[str]
    public_key: ec.EllipticCurvePublicKey
    environment: str | None  # None: both (Apple's default), else restricted to one
    created_at_ms: int

    def to_json(self) -> dict[str, Any]:
        pem = self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
        return {
            "keyId": self.key_id,
            "teamId": self.team_id,
            "bundleIds": sorted(self.bundle_ids),
            "environment": self.environment,
            "publicKey": pem,
            "createdAt": iso_ms(self.created_at_ms),
            "createdAtMs": self.created_at_ms,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SigningKey:
        key = serialization.load_pem_public_key(d["publicKey"].encode())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError("p8 public key is not EC")
        return cls(
            key_id=d["keyId"],
            team_id=d["teamId"],
            bundle_ids=frozenset(d["bundleIds"]),
            public_key=key,
            environment=d.get("environment"),
            created_at_ms=int(d.get("createdAtMs", 0)),
        )


@dataclass
class Device:
    token: str
    bundle_id: str
    environment: str
    created_at_ms: int
    name: str | None = None
    uninstalled_at_ms: int | None = None
    # "voip": a PushKit token, which takes only voip pushes on <bundleId>.voip (Apple answers
    # DeviceTokenNotForTopic for anything else, and for a voip push to an ordinary token).
    type: str = "alert"

    def to_json(self) -> dict[str, Any]:
        return {
            "deviceToken": self.token,
            "type": self.type,
            "bundleId": self.bundle_id,
            "environment": self.environment,
            "name": self.name,
            "createdAt": iso_ms(self.created_at_ms),
            "installed": self.uninstalled_at_ms is None,
            "uninstalledAt": iso_ms(self.uninstalled_at_ms) if self.uninstalled_at_ms else None,
            "uninstalledAtMs": self.uninstalled_at_ms,
        }


class _JsonLog:
    """Append-only JSON-lines file: O(1) per change, replayed at start."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def replay(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue  # a torn last line after a crash
        return out

    def append(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(record, separators=(",", ":")) + "\n")


@dataclass
class Fault:
    id: int
    status: int | None = None
    reason: str | None = None
    count: int | None = None  # None: until cleared
    device_token: str | None = None
    environment: str | None = None
    latency_ms: int = 0
    action: str | None = None
    error_code: int | None = None
    hits: int = 0

    @classmethod
    def from_json(cls, fault_id: int, d: dict[str, Any]) -> Fault:
        if not isinstance(d, dict):
            raise ValidationError("a fault is a JSON object")
        unknown = set(d) - {
            "status",
            "reason",
            "count",
            "deviceToken",
            "environment",
            "latencyMs",
            "action",
            "errorCode",
        }
        if unknown:
            raise ValidationError(f"unknown fault fields: {sorted(unknown)}")
        status, reason, action = d.get("status"), d.get("reason"), d.get("action")
        count, latency, env = d.get("count"), d.get("latencyMs", 0) or 0, d.get("environment")
        if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
            raise ValidationError("status must be an HTTP error status (400-599)")
        if reason is not None:
            if not isinstance(reason, str) or not reason:
                raise ValidationError("reason must be a non-empty string")
            if status is None:
                status = REASON_STATUS.get(reason)
                if status is None:
                    raise ValidationError(f"unknown reason {reason!r}: give status too")
        elif status is not None:
            reason = DEFAULT_REASON.get(status, "InternalServerError")
        if action is not None and action not in FAULT_ACTIONS:
            raise ValidationError(f"action must be one of {list(FAULT_ACTIONS)}")
        if action is not None and status is not None:
            raise ValidationError("give either status or action, not both")
        if count is not None and (not isinstance(count, int) or count < 1):
            raise ValidationError("count must be a positive integer (omit it for 'until cleared')")
        if not isinstance(latency, int | float) or latency < 0:
            raise ValidationError("latencyMs must be a non-negative number")
        if env is not None and env not in ENVIRONMENTS:
            raise ValidationError("environment must be 'development' or 'production'")
        if status is None and action is None and not latency:
            raise ValidationError("a fault needs status/reason, action or latencyMs")
        token = d.get("deviceToken")
        if token is not None and not isinstance(token, str):
            raise ValidationError("deviceToken must be a string")
        error_code = d.get("errorCode")
        if error_code is not None and (not isinstance(error_code, int) or error_code < 0):
            raise ValidationError("errorCode must be an HTTP/2 error code (integer)")
        return cls(
            id=fault_id,
            status=status,
            reason=reason,
            count=count,
            device_token=token.lower() if token else None,
            environment=env,
            latency_ms=int(latency),
            action=action,
            error_code=error_code,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "reason": self.reason,
            "count": self.count,
            "deviceToken": self.device_token,
            "environment": self.environment,
            "latencyMs": self.latency_ms,
            "action": self.action,
            "errorCode": self.error_code,
            "hits": self.hits,
        }


_MAX_TOKENS_REMEMBERED = 100_000  # per key: distinct provider tokens are exact up to this many


@dataclass
class ProviderTokenUse:
    """The provider tokens (JWTs) seen for one p8 key: only digests are kept, never the tokens."""

    key_id: str
    team_id: str
    first_seen_ms: int
    last_new_token_ms: int
    digests: set[bytes] = field(default_factory=set)
    distinct: int = 0
    connections: int = 0  # connections that presented a token of this key

    def to_json(self) -> dict[str, Any]:
        return {
            "keyId": self.key_id,
            "teamId": self.team_id,
            "distinctTokens": self.distinct,
            "connections": self.connections,
            "firstSeenAt": iso_ms(self.first_seen_ms),
            "lastNewTokenAt": iso_ms(self.last_new_token_ms),
        }


@dataclass
class Stats:
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    by_device: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    faults_injected: int = 0
    seen_messages: set[tuple[str, str]] = field(default_factory=set)
    provider_tokens: dict[str, ProviderTokenUse] = field(default_factory=dict)
    refused_streams: int = 0  # RST_STREAM REFUSED_STREAM: over SETTINGS_MAX_CONCURRENT_STREAMS

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "byDevice": dict(self.by_device),
            "duplicates": self.duplicates,
            "faultsInjected": self.faults_injected,
            "providerTokens": {k: u.distinct for k, u in self.provider_tokens.items()},
            "refusedStreams": self.refused_streams,
        }


class SandboxState:
    def __init__(
        self,
        state_dir: pathlib.Path,
        *,
        max_notifications: int = 200_000,
        device_burst: int = 2000,
        device_rate: float = 100.0,
    ) -> None:
        self.state_dir = pathlib.Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.ca = pki.SandboxCA.load_or_create(self.state_dir)
        self.keys: dict[str, SigningKey] = {}
        self.devices: dict[str, Device] = {}
        self._keys_log = _JsonLog(self.state_dir / "keys.jsonl")
        self._devices_log = _JsonLog(self.state_dir / "devices.jsonl")
        self._load()
        self.max_notifications = max_notifications
        self.notifications: deque[dict[str, Any]] = deque()
        self._by_device: dict[str, deque[dict[str, Any]]] = {}
        self._seq = 0
        self.stats = Stats()
        self.faults: list[Fault] = []
        self._fault_seq = 0
        # The provider endpoints listen here for `{connections: "silent"|"close"}` (connection faults).
        self.connection_fault_listeners: list[Callable[[str], int]] = []
        self.version = 0
        self._changed = asyncio.Event()
        self.device_burst = device_burst
        self.device_rate = device_rate
        self._buckets: dict[str, list[float]] = {}  # device token -> [budget left, at (monotonic)]

    # --- persistence -------------------------------------------------------------------------
    def _load(self) -> None:
        for rec in self._keys_log.replay():
            if rec.get("op") == "add":
                try:
                    key = SigningKey.from_json(rec["key"])
                except (KeyError, ValueError):
                    continue
                self.keys[key.key_id] = key
            elif rec.get("op") == "delete":
                self.keys.pop(rec.get("keyId", ""), None)
        for rec in self._devices_log.replay():
            op, token = rec.get("op"), rec.get("deviceToken", "")
            if op == "add":
                self.devices[token] = Device(
                    token=token,
                    bundle_id=rec["bundleId"],
                    environment=rec["environment"],
                    created_at_ms=int(rec.get("createdAtMs", 0)),
                    name=rec.get("name"),
                    type=rec.get("type", "alert"),
                )
            elif op == "uninstall" and token in self.devices:
                self.devices[token].uninstalled_at_ms = int(rec["atMs"])
            elif op == "purge":
                self.devices.pop(token, None)

    # --- change notification (the inbox's live updates) --------------------------------------
    def touch(self) -> None:
        self.version += 1
        self._changed.set()

    async def wait_changed(self, since: int, timeout: float) -> int:
        if self.version == since:
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        return self.version

    # --- credentials -------------------------------------------------------------------------
    def issue_p8(
        self, bundle_ids: list[str], team_id: str | None, environment: str | None
    ) -> tuple[SigningKey, str]:
        key_id, pem = pki.generate_p8()
        while key_id in self.keys:
            key_id, pem = pki.generate_p8()
        private = serialization.load_pem_private_key(pem.encode(), None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        key = SigningKey(
            key_id=key_id,
            team_id=team_id or pki.random_id(),
            bundle_ids=frozenset(bundle_ids),
            public_key=private.public_key(),
            environment=environment,
            created_at_ms=now_ms(),
        )
        self.keys[key_id] = key
        self._keys_log.append({"op": "add", "key": key.to_json()})
        return key, pem

    def revoke_p8(self, key_id: str) -> bool:
        if self.keys.pop(key_id, None) is None:
            return False
        self._keys_log.append({"op": "delete", "keyId": key_id})
        return True

    def issue_p12(
        self,
        bundle_id: str,
        environment: str,
        password: str | None,
        *,
        valid_days: int = 365,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        universal: bool = False,
        team_id: str | None = None,
        voip: bool = False,
    ) -> bytes:
        return self.ca.issue_push_certificate(
            bundle_id,
            environment,  # type: ignore[arg-type]
            password,
            valid_days=valid_days,
            not_before=not_before,
            not_after=not_after,
            universal=universal,
            team_id=team_id,
            voip=voip,
        )

    # --- devices -----------------------------------------------------------------------------
    def add_device(
        self, bundle_id: str, environment: str, name: str | None = None, device_type: str = "alert"
    ) -> Device:
        token = secrets.token_hex(32)
        while token in self.devices:
            token = secrets.token_hex(32)
        device = Device(
            token=token,
            bundle_id=bundle_id,
            environment=environment,
            created_at_ms=now_ms(),
            name=name,
            type=device_type,
        )
        self.devices[token] = device
        self._devices_log.append(
            {
                "op": "add",
                "deviceToken": token,
                "bundleId": bundle_id,
                "environment": environment,
                "createdAtMs": device.created_at_ms,
                "name": name,
                "type": device_type,
            }
        )
        self.touch()
        return device

    def uninstall_device(self, token: str) -> Device | None:
        device = self.devices.get(token.lower())
        if device is None:
            return None
        if device.uninstalled_at_ms is None:
            device.uninstalled_at_ms = now_ms()
            self._devices_log.append(
                {"op": "uninstall", "deviceToken": device.token, "atMs": device.uninstalled_at_ms}
            )
            self.touch()
        return device

    # --- notifications -----------------------------------------------------------------------
    def record(self, item: dict[str, Any]) -> None:
        """Store an accepted notification (bounded) and count it."""
        self._seq += 1
        item["seq"] = self._seq
        token = item["deviceToken"]
        self.notifications.append(item)
        per_device = self._by_device.get(token)
        if per_device is None:
            per_device = self._by_device[token] = deque()
        per_device.append(item)
        if len(self.notifications) > self.max_notifications:
            old = self.notifications.popleft()
            old_q = self._by_device.get(old["deviceToken"])
            if old_q:
                old_q.popleft()
                if not old_q:
                    del self._by_device[old["deviceToken"]]
        stats = self.stats
        stats.accepted += 1
        stats.by_device[token] += 1
        payload = item["payload"]
        message_id = payload.get("m")
        if message_id is not None:
            key = (token, json.dumps(message_id) if not isinstance(message_id, str) else message_id)
            if key in stats.seen_messages:
                stats.duplicates += 1
            else:
                stats.seen_messages.add(key)
        self.touch()

    def take_device_budget(self, token: str) -> bool:
        """One notification from the device's token bucket; False: Apple's 429 TooManyRequests."""
        burst = self.device_burst
        if burst <= 0:
            return True
        now = time.monotonic()
        bucket = self._buckets.get(token)
        if bucket is None:
            self._buckets[token] = [burst - 1, now]
            return True
        level = min(float(burst), bucket[0] + (now - bucket[1]) * self.device_rate)
        bucket[1] = now
        if level < 1:
            bucket[0] = level
            return False
        bucket[0] = level - 1
        return True

    def clear_device_budgets(self) -> None:
        self._buckets.clear()

    def provider_token_seen(self, key_id: str, team_id: str, token: str, new_connection: bool) -> None:
        """A connection presented a (verified) provider token it had not used just before."""
        uses = self.stats.provider_tokens
        use = uses.get(key_id)
        now = now_ms()
        if use is None:
            use = uses[key_id] = ProviderTokenUse(key_id, team_id, now, now)
        if new_connection:
            use.connections += 1
        digest = hashlib.sha256(token.encode()).digest()[:16]
        if digest not in use.digests:
            use.distinct += 1
            use.last_new_token_ms = now
            if len(use.digests) < _MAX_TOKENS_REMEMBERED:
                use.digests.add(digest)

    def reject(self, reason: str) -> None:
        self.stats.rejected[reason] += 1

    def list_notifications(self, device_token: str | None, limit: int | None) -> list[dict[str, Any]]:
        if device_token:
            source: deque[dict[str, Any]] = self._by_device.get(device_token.lower(), deque())
        else:
            source = self.notifications
        if limit is None or limit >= len(source):
            return list(source)
        if limit <= 0:
            return []
        # newest last: take the tail without copying the whole deque
        out = []
        it = reversed(source)
        for _ in range(limit):
            out.append(next(it))
        out.reverse()
        return out

    def last_seq(self, device_token: str) -> int:
        """The sequence number of the device's newest kept notification (0: none)."""
        kept = self._by_device.get(device_token)
        return int(kept[-1]["seq"]) if kept else 0

    def clear_notifications(self) -> None:
        self.notifications.clear()
        self._by_device.clear()
        self.touch()

    def reset_stats(self) -> None:
        self.stats = Stats()
        self.touch()

    # --- faults ------------------------------------------------------------------------------
    def add_fault(self, spec: dict[str, Any]) -> Fault:
        self._fault_seq += 1
        fault = Fault.from_json(self._fault_seq, spec)
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults.clear()

    def fault_connections(self, mode: str) -> int:
        """Silence (``silent``) or close (``close``) every provider connection open now; the count."""
        if mode not in CONNECTION_FAULTS:
            raise ValidationError(f"connections must be one of {sorted(CONNECTION_FAULTS)}, not {mode!r}")
        return sum(listener(mode) for listener in self.connection_fault_listeners)

    def take_fault(self, device_token: str, environment: str) -> Fault | None:
        """The first fault rule matching this request, consuming one of its count."""
        if not self.faults:
            return None
        for i, fault in enumerate(self.faults):
            if fault.device_token is not None and fault.device_token != device_token.lower():
                continue
            if fault.environment is not None and fault.environment != environment:
                continue
            fault.hits += 1
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    del self.faults[i]
            self.stats.faults_injected += 1
            return fault
        return None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
