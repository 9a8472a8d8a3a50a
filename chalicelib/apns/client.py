"""aioapns clients, one per credential, built from Secrets Manager and kept for warm invocations.

aioapns binds the event loop it is created on, so every client lives on one
long-lived loop per container (``run``). aioapns has no host/port option and
no per-request timeout: a protocol subclass points it at the configured
endpoint (the local sandbox, or Apple's unchanged) and ``send`` wraps each
request in ``asyncio.wait_for``. The subclass also drops aioapns' per-stream
bookkeeping when a stream ends: aioapns keeps one entry per successful
request forever on a long-lived connection.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import ssl
import tempfile
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aioapns import APNs, NotificationRequest, PushType
from aioapns.common import NotificationResult
from aioapns.connection import (
    APNsDevelopmentClientProtocol,
    APNsProductionClientProtocol,
    JWTAuthorizationHeaderProvider,
)
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    PingAckReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
)

from chalicelib.apns.liveness import LivenessMixin
from chalicelib.apns.provider_token import shared_provider
from chalicelib.models.credentials import Credential
from chalicelib.settings import Settings

T = TypeVar("T")
# GOAWAY reasons no reconnect can fix: Apple ends the connection instead of answering the request.
_FATAL_GOAWAY_REASONS = frozenset({"BadCertificateEnvironment", "BadCertificate"})
_loop: asyncio.AbstractEventLoop | None = None


def event_loop() -> asyncio.AbstractEventLoop:
    """The container's one event loop (created on first use, reused by every warm invocation)."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
        # Blocking AWS calls run in threads: enough of them for a batch's badge updates to overlap.
        _loop.set_default_executor(ThreadPoolExecutor(max_workers=32, thread_name_prefix="aws"))
    return _loop


def run(coro: Coroutine[Any, Any, T]) -> T:
    loop = event_loop()
    asyncio.set_event_loop(loop)
    return loop.run_until_complete(coro)


class _StreamBookkeepingMixin:
    """Fixes to aioapns' protocol, measured against the sandbox:

    - one provider token per key shared by every connection and container (``provider_token``),
      instead of a fresh JWT per connection, which Apple throttles per team;
    - forget a stream's request ID when the stream ends (aioapns only does so for errors, so a
      long-lived connection kept one entry per successful send);
    - acknowledge received DATA (aioapns never does: after ~64 KiB of error bodies, e.g. a burst
      of 410s, the server may send no more and requests stall until the idle timeout);
    - never answer a request whose future was cancelled by its timeout in the same loop step
      (aioapns would raise InvalidStateError inside the protocol and lose the connection);
    - answer a request whose stream the server reset (aioapns ignores RST_STREAM: the request
      would hang and its stream slot never come back) with status 0, which we retry later;
    - answer the waiting requests with 403 and the reason when APNs ends the connection with a
      GOAWAY whose reason no reconnect fixes (a certificate of the other environment): aioapns
      would reconnect, get the same GOAWAY and fail with MaxAttemptsExceeded, which reads like a
      network problem and is retried for nothing.
    """

    request_streams: dict[int, str]
    request_statuses: dict[str, str]
    requests: dict[str, Any]
    conn: Any
    free_channels: Any

    def __init__(self, *args: Any) -> None:
        # aioapns' key pool builds each connection with (topic, loop, on_lost, auth_provider).
        if len(args) == 4 and isinstance(args[3], JWTAuthorizationHeaderProvider):
            jwt = args[3]
            args = (*args[:3], shared_provider(jwt.key, jwt.key_id, jwt.team_id))
        super().__init__(*args)

    def data_received(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, ResponseReceived):
                headers = dict(event.headers)
                self._drop_if_done(headers.get(b"apns-id", b"").decode())
                self.on_response_received(headers)  # type: ignore[attr-defined]
            elif isinstance(event, DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                self._drop_if_done(self.request_streams.get(event.stream_id))
                self.on_data_received(event.data, event.stream_id)  # type: ignore[attr-defined]
            elif isinstance(event, RemoteSettingsChanged):
                self.on_remote_settings_changed(event.changed_settings)  # type: ignore[attr-defined]
            elif isinstance(event, StreamEnded):
                self.on_stream_ended(event.stream_id)
            elif isinstance(event, StreamReset):
                self._on_stream_reset(event.stream_id)
            elif isinstance(event, ConnectionTerminated):
                self.on_connection_terminated(event)
            elif isinstance(event, PingAckReceived):
                self.on_ping_ack()  # type: ignore[attr-defined]
        if not self.transport.is_closing():  # type: ignore[attr-defined]
            self.flush()  # type: ignore[attr-defined]

    def _drop_if_done(self, notification_id: str | None) -> None:
        """A request that timed out in this very loop step has a cancelled future that aioapns
        would set_result on (InvalidStateError, and the whole connection dies): forget it first."""
        if not notification_id:
            return
        future = self.requests.get(notification_id)
        if future is not None and future.done():
            del self.requests[notification_id]

    def _on_stream_reset(self, stream_id: int) -> None:
        notification_id = self.request_streams.pop(stream_id, None)
        if notification_id is not None:
            self.request_statuses.pop(notification_id, None)
            future = self.requests.pop(notification_id, None)
            if future is not None and not future.done():
                future.set_result(NotificationResult(notification_id, "0", description="StreamReset"))
        self.free_channels.release()

    def on_connection_terminated(self, event: ConnectionTerminated) -> None:
        reason = _goaway_reason(event.additional_data)
        if reason in _FATAL_GOAWAY_REASONS:
            for notification_id, future in list(self.requests.items()):
                if not future.done():
                    future.set_result(NotificationResult(notification_id, "403", description=reason))
            self.requests.clear()
            self.request_streams.clear()
            self.request_statuses.clear()
        super().on_connection_terminated(event)  # type: ignore[misc]

    def on_stream_ended(self, stream_id: int) -> None:
        self.request_streams.pop(stream_id, None)
        super().on_stream_ended(stream_id)  # type: ignore[misc]

    async def send_notification(self, request: NotificationRequest) -> Any:
        try:
            return await super().send_notification(request)  # type: ignore[misc]
        except asyncio.CancelledError:
            # Timed out: a late answer must not find (and fail on) a cancelled future.
            self.requests.pop(request.notification_id, None)
            raise


def _goaway_reason(data: bytes | None) -> str | None:
    """The `reason` of a GOAWAY's debug data (APNs sends `{"reason": "..."}`), if any."""
    if not data:
        return None
    try:
        parsed = json.loads(data)
    except ValueError:
        return None
    reason = parsed.get("reason") if isinstance(parsed, dict) else None
    return reason if isinstance(reason, str) else None


def protocol_class(settings: Settings, environment: str) -> type:
    if environment == "production":
        base: type = APNsProductionClientProtocol
        host, port = settings.apns_production_host, settings.apns_production_port
    else:
        base = APNsDevelopmentClientProtocol
        host, port = settings.apns_development_host, settings.apns_development_port
    return type(
        f"Configured{base.__name__}",
        (LivenessMixin, _StreamBookkeepingMixin, base),
        {
            "APNS_SERVER": host,
            "APNS_PORT": port,
            "idle_ping_s": settings.apns_idle_ping_s,
            # the PING and a second try must fit in one request's timeout
            "ping_timeout_s": min(settings.apns_ping_timeout_s, settings.apns_request_timeout_s / 3),
        },
    )


def ssl_context(settings: Settings) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    if settings.apns_extra_ca_file is not None:
        ctx.load_verify_locations(cafile=str(settings.apns_extra_ca_file))
    return ctx


@dataclass(frozen=True, slots=True)
class ApnsResult:
    status: int  # 0 = no answer (connection error or timeout)
    reason: str | None
    apns_id: str
    timestamp_ms: int | None = None
    latency_ms: float = 0.0


@dataclass
class ApnsClients:
    """``aioapns.APNs`` per credential, created on the container's loop and cached."""

    settings: Settings
    _clients: dict[tuple[str, int, str], APNs] = field(default_factory=dict)

    def get(self, app_id: str, cred: Credential, secret: dict[str, Any]) -> APNs:
        key = (app_id, cred.certificate_id, cred.fingerprint_sha256 or "")
        client = self._clients.get(key)
        if client is None:
            client = self._build(app_id, cred, secret)
            self._clients[key] = client
        return client

    def current(self, app_id: str, certificate_id: int) -> APNs | None:
        """The cached client of a credential, if any (whatever certificate fingerprint it was built for)."""
        return next((c for k, c in self._clients.items() if k[:2] == (app_id, certificate_id)), None)

    def discard(self, app_id: str, certificate_id: int) -> None:
        """Drop a credential's client (and its connections): next use rebuilds it, e.g. after a 403."""
        for key in [k for k in self._clients if k[:2] == (app_id, certificate_id)]:
            self._clients.pop(key).pool.close()

    def _build(self, app_id: str, cred: Credential, secret: dict[str, Any]) -> APNs:
        asyncio.set_event_loop(event_loop())  # aioapns binds the loop current at construction
        common: dict[str, Any] = {
            "topic": cred.bundle_id,
            "use_sandbox": cred.environment == "development",
            "ssl_context": ssl_context(self.settings),
            "max_connections": self.settings.apns_max_connections,
            # A dead connection is found by one PING and left; the request then tries the next (all
            # may have died in one freeze), and a fresh one last.
            "max_connection_attempts": self.settings.apns_max_connections + 1,
        }
        common["err_func"] = _quiet  # every answer is recorded and counted by the caller: no log per error
        if secret["type"] == "p8":
            client = APNs(key=secret["p8"], key_id=secret["keyId"], team_id=secret["teamId"], **common)
        else:
            client = APNs(client_cert=str(_pem_file(app_id, cred, secret)), **common)
        client.pool.protocol_class = protocol_class(self.settings, cred.environment)
        return client

    async def send(
        self,
        client: APNs,
        *,
        token: str,
        message: dict[str, Any],
        notification_id: str,
        priority: int,
        collapse: str,
        expiration: int | None = None,
        voip_topic: str | None = None,
    ) -> ApnsResult:
        """One request. ``voip_topic`` (``<bundleId>.voip``): a PushKit push, apns-push-type voip on
        that topic; else an alert on the credential's bundle ID. ``expiration``: apns-expiration in
        epoch seconds (0 = now or never); None = header absent."""
        request = NotificationRequest(
            device_token=token,
            message=message,
            notification_id=notification_id,
            priority=priority,
            collapse_key=collapse,
            push_type=PushType.VOIP if voip_topic else PushType.ALERT,
            time_to_live=AbsoluteExpiration(expiration) if expiration is not None else None,
            apns_topic=voip_topic,
        )
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(
                client.send_notification(request), timeout=self.settings.apns_request_timeout_s
            )
        except TimeoutError:
            return ApnsResult(0, "Timeout", notification_id, latency_ms=_ms(started))
        except Exception as exc:  # aioapns raises ConnectionError, MaxAttemptsExceeded, ConnectionClosed...
            return ApnsResult(
                0, f"ConnectionError:{type(exc).__name__}", notification_id, latency_ms=_ms(started)
            )
        status = int(result.status) if str(result.status).isdigit() else 0
        timestamp = int(result.timestamp) if result.timestamp is not None else None
        return ApnsResult(status, result.description, notification_id, timestamp, _ms(started))


class AbsoluteExpiration(int):
    """An apns-expiration given as the epoch second itself, passed where aioapns wants a
    ``time_to_live``: aioapns writes ``int(time.time()) + time_to_live``, and Python lets an int
    subclass on the right of ``+`` answer first, so the header carries exactly this value (0 too,
    which a relative TTL cannot express: "deliver now or never")."""

    def __radd__(self, _now: object) -> int:
        return int(self)


async def _quiet(_request: NotificationRequest, _result: NotificationResult) -> None:
    return None


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _pem_file(app_id: str, cred: Credential, secret: dict[str, Any]) -> Path:
    """aioapns wants a path to cert + key PEM: written under /tmp, owner-only, once per container."""
    name = hashlib.sha256(f"{app_id}/{cred.certificate_id}/{cred.fingerprint_sha256}".encode()).hexdigest()[
        :24
    ]
    path = Path(tempfile.gettempdir()) / f"apns-{name}.pem"
    pem = secret["certificatePem"] + secret["privateKeyPem"]
    if not path.exists() or path.read_text() != pem:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(pem)
    return path
