"""The provider API: APNs's HTTP/2 + TLS endpoint (one per environment), on asyncio + the `h2`
state machine. It speaks HTTP/2 at once on any TLS connection (with or without ALPN: aioapns
offers none), authenticates like APNs (provider token or client certificate), applies Apple's
rules (rules.py), records accepted notifications (state.py) and injects configured faults.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import FlowControlError, ProtocolError, StreamClosedError
from h2.settings import SettingCodes, Settings

from . import _speedups, rules
from .auth import ProviderToken, TokenVerifier
from .pki import PushCertificateInfo, push_certificate_info
from .rules import Rejection
from .state import Fault, SandboxState, iso_ms, now_ms

log = logging.getLogger("apns_sandbox.h2")
_speedups.apply()

# Big windows: flow control must never be what limits a benchmark.
_WINDOW = 16 * 1024 * 1024 - 1
_JSON = b"application/json; charset=utf-8"
_GOAWAY_DATA = b'{"reason":"Shutdown"}'
_BAD_ENVIRONMENT_DATA = b'{"reason":"BadCertificateEnvironment"}'


@dataclass
class _Stream:
    headers: list[tuple[bytes, bytes]]
    body: list[bytes] = field(default_factory=list)
    size: int = 0


@dataclass
class _Outcome:
    status: int
    apns_id: str
    reason: str | None = None
    timestamp_ms: int | None = None


class ProviderEndpoint:
    """One APNs endpoint (production or development) sharing the sandbox state."""

    def __init__(
        self,
        environment: str,
        state: SandboxState,
        verifier: TokenVerifier,
        ssl_context: ssl.SSLContext,
        *,
        max_concurrent_streams: int = 1000,
        token_update_min_interval_s: int = 1200,
        token_update_lockout_s: float = 60.0,
    ) -> None:
        self.environment = environment
        self.state = state
        self.verifier = verifier
        self.ssl_context = ssl_context
        self.max_concurrent_streams = max_concurrent_streams
        self.token_update_min_interval_s = token_update_min_interval_s
        self.token_update_lockout_s = token_update_lockout_s
        self.connections: set[ApnsConnection] = set()
        self.server: asyncio.Server | None = None
        state.connection_fault_listeners.append(self.fault_connections)

    def fault_connections(self, mode: str) -> int:
        """``silent``: every open connection stops reading and answering, without closing (a NAT's
        dropped mapping, a frozen peer); ``close``: each gets GOAWAY and is closed. The count."""
        live = [c for c in self.connections if not c.closed and not c.going_away and not c.silenced]
        for conn in live:
            if mode == "silent":
                conn.silence()
            else:
                conn.goaway()
        return len(live)

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: ApnsConnection(self), host, port, ssl=self.ssl_context, backlog=1024, reuse_address=True
        )
        return int(self.server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for conn in list(self.connections):
            conn.goaway()
        if self.server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.server.wait_closed(), 2)


def make_server_ssl_context(cert_path: str, key_path: str, ca_pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_path, key_path)
    # Client certificates are optional (token auth sends none), but when one is sent it must
    # chain to the sandbox CA, as Apple's must chain to Apple's.
    ctx.load_verify_locations(cadata=ca_pem.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["h2"])
    return ctx


class _H2Connection(H2Connection):
    """Two changes to h2's server side:

    - h2 counts open streams by scanning every stream on each new request (O(streams), ~0.2 ms at
      1000 in flight). The connection keeps an exact count of requests not yet answered, and the
      full scan (which also frees closed streams) runs once every 64 requests.
    - A stream beyond SETTINGS_MAX_CONCURRENT_STREAMS is refused alone with RST_STREAM
      REFUSED_STREAM (RFC 9113 §5.1.2), where h2 would end the whole connection (GOAWAY
      PROTOCOL_ERROR). Its header block is still decoded: HPACK state is per connection.
    """

    def __init__(self, config: H2Configuration) -> None:
        super().__init__(config)
        self.unanswered: set[int] = set()
        self.refused = 0
        self._calls = 0
        self._admit_all = False

    @property
    def open_inbound_streams(self) -> int:
        if self._admit_all:
            return 0
        self._calls += 1
        if self._calls & 63 == 0:
            return int(H2Connection.open_inbound_streams.fget(self))  # type: ignore[attr-defined]
        return len(self.unanswered)

    def _receive_headers_frame(self, frame: Any) -> tuple[list[Any], list[Any]]:
        stream_id = frame.stream_id
        limit = self.local_settings.max_concurrent_streams
        if stream_id in self.streams:
            return super()._receive_headers_frame(frame)
        admit = self.open_inbound_streams < limit
        self._admit_all = True  # decided here: h2 must not count (nor refuse) again
        try:
            frames, events = super()._receive_headers_frame(frame)
        finally:
            self._admit_all = False
        if admit:
            self.unanswered.add(stream_id)  # counted now: the next frame may open another stream
            return frames, events
        self.reset_stream(stream_id, error_code=ErrorCodes.REFUSED_STREAM)
        self.refused += 1
        return frames, [e for e in events if getattr(e, "stream_id", None) != stream_id]


class ApnsConnection(asyncio.Protocol):
    def __init__(self, endpoint: ProviderEndpoint) -> None:
        self.endpoint = endpoint
        self.state = endpoint.state
        self.environment = endpoint.environment
        self.transport: asyncio.Transport | None = None
        self.conn = _H2Connection(
            H2Configuration(
                client_side=False,
                header_encoding=None,
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.streams: dict[int, _Stream] = {}
        self.pending_data: dict[int, bytes] = {}
        self.cert: PushCertificateInfo | None = None
        self.has_client_cert = False
        self._last_auth: str | None = None
        # team ID -> (its current provider token on this connection, when it last changed)
        self._token_changes: dict[str, tuple[str, float]] = {}
        self._keys_presented: set[str] = set()
        self._locked_until = 0.0  # after a 429 TooManyProviderTokenUpdates (monotonic)
        self.closed = False
        self.going_away = False  # GOAWAY sent: answer nothing more on this connection
        self.silenced = False  # a connection fault: nothing read, nothing answered, never closed

    # --- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.endpoint.connections.add(self)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            self.has_client_cert = True
            self.cert = push_certificate_info(x509.load_der_x509_certificate(der))
        conn = self.conn
        # Set before the preamble so the first SETTINGS frame carries them (no ACK round trip).
        conn.local_settings = Settings(
            client=False,
            initial_values={
                SettingCodes.MAX_CONCURRENT_STREAMS: self.endpoint.max_concurrent_streams,
                SettingCodes.INITIAL_WINDOW_SIZE: 1024 * 1024,
                SettingCodes.MAX_HEADER_LIST_SIZE: 8000,
            },
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(_WINDOW - 65535)
        transport.write(conn.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.endpoint.connections.discard(self)
        self.streams.clear()
        self.pending_data.clear()

    def silence(self) -> None:
        self.silenced = True
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def data_received(self, data: bytes) -> None:
        if self.going_away or self.silenced:
            return  # after our GOAWAY h2 would answer any frame with a second one (PROTOCOL_ERROR)
        conn = self.conn
        try:
            events = conn.receive_data(data)
        except ProtocolError as exc:
            log.info("HTTP/2 protocol error from client: %s", exc)
            self._flush()
            self._close_soon()
            return
        for event in events:
            if isinstance(event, DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    if stream.size <= rules.MAX_PAYLOAD_VOIP:
                        stream.body.append(event.data)
                    stream.size += len(event.data)
                if event.flow_controlled_length:
                    conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, RequestReceived):
                self.streams[event.stream_id] = _Stream(list(event.headers))  # type: ignore[arg-type]
            elif isinstance(event, StreamEnded):
                self._on_request(event.stream_id)
            elif isinstance(event, StreamReset):
                self.streams.pop(event.stream_id, None)
                self.pending_data.pop(event.stream_id, None)
                conn.unanswered.discard(event.stream_id)
            elif isinstance(event, WindowUpdated):
                self._send_pending()
            elif isinstance(event, ConnectionTerminated):
                self._flush()
                self._close_soon()
                return
        if conn.refused:
            self.state.stats.refused_streams += conn.refused
            conn.refused = 0
        self._flush()

    # --- plumbing ------------------------------------------------------------------------------
    def _flush(self) -> None:
        if self.transport is not None and not self.closed and not self.silenced:
            data = self.conn.data_to_send()
            if data:
                self.transport.write(data)

    def _close_soon(self) -> None:
        if self.transport is not None and not self.closed:
            asyncio.get_running_loop().call_later(0.05, self.transport.close)

    def goaway(
        self, error_code: int = 0, last_stream_id: int | None = None, debug_data: bytes = _GOAWAY_DATA
    ) -> None:
        if self.closed or self.going_away:
            return
        self.going_away = True
        with contextlib.suppress(ProtocolError):
            self.conn.close_connection(
                error_code=error_code, additional_data=debug_data, last_stream_id=last_stream_id
            )
        self._flush()
        self._close_soon()

    def _send_pending(self) -> None:
        for stream_id in list(self.pending_data):
            data = self.pending_data[stream_id]
            window = self.conn.local_flow_control_window(stream_id)
            if window < len(data):
                continue
            del self.pending_data[stream_id]
            self.conn.send_data(stream_id, data, end_stream=True)
            self.conn.unanswered.discard(stream_id)

    # --- the request path ----------------------------------------------------------------------
    def _on_request(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None or self.going_away:
            return
        cert = self.cert
        if cert is not None and self.environment not in cert.environments:
            # Apple does not answer the request: GOAWAY (NO_ERROR, last stream 0, the reason as
            # debug data) and the connection is closed.
            self.state.reject("BadCertificateEnvironment")
            self.goaway(last_stream_id=0, debug_data=_BAD_ENVIRONMENT_DATA)
            return
        headers: dict[str, str] = {}
        names: list[str] = []
        for raw_name, raw_value in stream.headers:
            name = raw_name.decode("latin-1")
            names.append(name)
            headers[name] = raw_value.decode("utf-8", "replace")
        apns_id = headers.get("apns-id") or str(uuid.uuid4()).upper()
        fault: Fault | None = None
        token = headers.get(":path", "").rsplit("/", 1)[-1]
        if self.state.faults:
            fault = self.state.take_fault(token, self.environment)
        if fault is not None and fault.latency_ms:
            loop = asyncio.get_running_loop()
            loop.call_later(
                fault.latency_ms / 1000,
                self._respond_later,
                stream_id,
                stream,
                headers,
                names,
                apns_id,
                fault,
            )
            return
        self._respond(stream_id, stream, headers, names, apns_id, fault)

    def _respond_later(
        self,
        stream_id: int,
        stream: _Stream,
        headers: dict[str, str],
        names: list[str],
        apns_id: str,
        fault: Fault,
    ) -> None:
        if self.closed or self.going_away:
            return
        try:
            self._respond(stream_id, stream, headers, names, apns_id, fault)
        except (StreamClosedError, ProtocolError):
            self.conn.unanswered.discard(stream_id)
            return  # the client reset the stream or went away while we waited
        self._flush()

    def _respond(
        self,
        stream_id: int,
        stream: _Stream,
        headers: dict[str, str],
        names: list[str],
        apns_id: str,
        fault: Fault | None,
    ) -> None:
        conn = self.conn
        if fault is not None and fault.action is not None and fault.action != "accept-reset":
            if fault.action == "reset":
                conn.reset_stream(stream_id, error_code=fault.error_code or ErrorCodes.INTERNAL_ERROR)
                conn.unanswered.discard(stream_id)
            elif fault.action == "goaway":
                # last_stream_id below this stream: the client knows this request was not processed.
                self.goaway(error_code=fault.error_code or 0, last_stream_id=max(stream_id - 2, 0))
            elif fault.action == "close" and self.transport is not None:
                self.transport.abort()
            return
        if fault is not None and fault.status is not None:
            outcome = _Outcome(fault.status, apns_id, fault.reason or "InternalServerError")
            if fault.status == 410:
                outcome.timestamp_ms = now_ms()
        else:
            try:
                outcome = self._process(headers, names, stream, apns_id)
            except Rejection as rej:
                outcome = _Outcome(rej.status, apns_id, rej.reason, rej.timestamp_ms)
            except Exception:  # a sandbox bug must look like Apple's 500, not kill the connection
                log.exception("unexpected error handling stream %d", stream_id)
                outcome = _Outcome(500, apns_id, "InternalServerError")
        if outcome.reason is not None:
            self.state.reject(outcome.reason)
        if fault is not None and fault.action == "accept-reset":
            conn.reset_stream(stream_id, error_code=fault.error_code or ErrorCodes.INTERNAL_ERROR)
            conn.unanswered.discard(stream_id)
            return
        self._send_response(stream_id, outcome)

    def _send_response(self, stream_id: int, outcome: _Outcome) -> None:
        conn = self.conn
        apns_id = outcome.apns_id.encode()
        if outcome.reason is None:
            response = [(b":status", b"200"), (b"apns-id", apns_id)]
            if self.environment == "development":
                response.append((b"apns-unique-id", str(uuid.uuid4()).encode()))
            conn.send_headers(stream_id, response, end_stream=True)
            conn.unanswered.discard(stream_id)
            return
        body = rules.ErrorBody(outcome.reason, outcome.timestamp_ms).encode()
        conn.send_headers(
            stream_id,
            [
                (b":status", str(outcome.status).encode()),
                (b"apns-id", apns_id),
                (b"content-type", _JSON),
                (b"content-length", str(len(body)).encode()),
            ],
        )
        # The client may have exhausted its receive window (h2 clients that never acknowledge
        # data, like aioapns, do after ~64 KiB of error bodies): queue until it opens up.
        if conn.local_flow_control_window(stream_id) >= len(body):
            try:
                conn.send_data(stream_id, body, end_stream=True)
                conn.unanswered.discard(stream_id)
                return
            except FlowControlError:
                pass
        self.pending_data[stream_id] = body

    def _authenticate(self, headers: dict[str, str]) -> tuple[str, frozenset[str] | None, dict[str, Any]]:
        """('token'|'certificate', allowed bundle IDs or None for the cert's own, info to record)."""
        if self.has_client_cert:
            cert = self.cert
            if cert is None:
                raise Rejection("BadCertificate")
            return (
                "certificate",
                frozenset({cert.bundle_id}),
                {"bundleId": cert.bundle_id, "teamId": cert.team_id},
            )
        authorization = headers.get("authorization")
        if not authorization:
            raise Rejection("MissingProviderToken")
        if self._locked_until and time.monotonic() < self._locked_until:
            raise Rejection("TooManyProviderTokenUpdates")
        token, key = self.endpoint.verifier.verify(authorization)
        if authorization != self._last_auth:
            new_here = key.key_id not in self._keys_presented
            self._keys_presented.add(key.key_id)
            self.state.provider_token_seen(key.key_id, key.team_id, token.token, new_here)
            self._check_token_update(token)
            self._last_auth = authorization
        if key.environment is not None and key.environment != self.environment:
            raise Rejection("BadEnvironmentKeyInToken")
        return "token", key.bundle_ids, {"keyId": key.key_id, "teamId": key.team_id}

    def _check_token_update(self, token: ProviderToken) -> None:
        """Apple counts provider-token updates per team on a connection: a new token (a refresh, or
        another key of the same team) less than 20 minutes after the last change is refused, and
        the connection then refuses everything for `token_update_lockout_s`."""
        interval = self.endpoint.token_update_min_interval_s
        if interval <= 0:
            return
        now = time.monotonic()
        previous = self._token_changes.get(token.team_id)
        if previous is not None and previous[0] == token.token:
            return
        if previous is not None and now - previous[1] < interval:
            lockout = self.endpoint.token_update_lockout_s
            if lockout > 0:
                self._locked_until = now + lockout
            raise Rejection("TooManyProviderTokenUpdates")
        self._token_changes[token.team_id] = (token.token, now)

    def _process(self, headers: dict[str, str], names: list[str], stream: _Stream, apns_id: str) -> _Outcome:
        rules.check_headers_unique(names)
        device_token = rules.parse_path(headers.get(":method", ""), headers.get(":path", ""))
        auth_mode, allowed, auth_info = self._authenticate(headers)
        rules.check_apns_id(headers.get("apns-id"))
        push_type = rules.check_push_type(headers.get("apns-push-type"))
        topic = headers.get("apns-topic")
        if not topic:
            if auth_mode == "certificate" and self.cert is not None and not self.cert.universal:
                topic = self.cert.bundle_id
                if rules.PUSH_TYPE_TOPIC_SUFFIX[push_type]:
                    topic += rules.PUSH_TYPE_TOPIC_SUFFIX[push_type]  # type: ignore[operator]
            else:
                raise Rejection("MissingTopic")
        bundle_id = rules.topic_bundle(topic, push_type)
        if allowed is not None and bundle_id not in allowed:
            raise Rejection("TopicDisallowed")
        cert = self.cert
        # A VoIP Services certificate serves <bundleId>.voip only; a push certificate not that topic.
        if auth_mode == "certificate" and cert and not cert.universal and cert.voip != (push_type == "voip"):
            raise Rejection("TopicDisallowed")
        # A universal certificate serves the topics its extension lists (<bundleId>, .voip, ...).
        if (
            auth_mode == "certificate"
            and cert
            and cert.universal
            and cert.topics
            and topic not in cert.topics
        ):
            raise Rejection("TopicDisallowed")
        rules.check_options(
            headers.get("apns-priority"),
            headers.get("apns-expiration"),
            headers.get("apns-collapse-id"),
            push_type,
        )
        if stream.size > (rules.MAX_PAYLOAD_VOIP if push_type == "voip" else rules.MAX_PAYLOAD):
            raise Rejection("PayloadTooLarge")
        payload = rules.parse_payload(b"".join(stream.body), push_type)
        if not rules.is_well_formed_token(device_token):
            raise Rejection("BadDeviceToken")
        device = self.state.devices.get(device_token.lower())
        if device is None or device.environment != self.environment:
            raise Rejection("BadDeviceToken")
        if device.bundle_id != bundle_id or (device.type == "voip") != (push_type == "voip"):
            # A PushKit token is not an APNs token: each takes only its own push type's topic.
            raise Rejection("DeviceTokenNotForTopic")
        if device.uninstalled_at_ms is not None:
            raise Rejection("Unregistered", device.uninstalled_at_ms)
        if not self.state.take_device_budget(device.token):
            raise Rejection("TooManyRequests")
        received = now_ms()
        self.state.record(
            {
                "deviceToken": device.token,
                "apnsId": apns_id,
                "headers": {n: v for n, v in headers.items() if n[0] != ":" and n != "authorization"},
                "payload": payload,
                "receivedAt": iso_ms(received),
                "receivedAtMs": received,
                "environment": self.environment,
                "topic": topic,
                "bundleId": bundle_id,
                "pushType": push_type,
                "auth": auth_mode,
                **auth_info,
            }
        )
        return _Outcome(200, apns_id)
