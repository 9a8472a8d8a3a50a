"""HTTP/2 as APNs speaks it: no ALPN needed, SETTINGS, flow control; seen from a bare `h2` client."""

from __future__ import annotations

import socket
import time
import uuid

import h2.connection
import h2.events
import h2.settings

from apns_sandbox.testing import SandboxProcess

from .conftest import BUNDLE, Creds


def raw_h2(sandbox: SandboxProcess, environment: str = "production"):
    """A bare h2 connection over TLS *without ALPN*, the way aioapns connects."""
    ctx = sandbox.ssl_context()
    host, port = sandbox.endpoint(environment)
    sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=5), server_hostname=host)
    assert sock.selected_alpn_protocol() is None
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def read_events(sock, conn, until, timeout: float = 5.0) -> list:
    events: list = []
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            data = sock.recv(65535)
        except TimeoutError:
            break
        if not data:
            break
        events.extend(conn.receive_data(data))
        sock.sendall(conn.data_to_send())
        if any(isinstance(e, until) for e in events):
            break
    return events


def send_request(conn, stream_id: int, device: str, jwt_token: str) -> None:
    conn.send_headers(
        stream_id,
        [
            (":method", "POST"),
            (":scheme", "https"),
            (":path", f"/3/device/{device}"),
            ("host", "127.0.0.1"),
            ("apns-id", str(uuid.uuid4())),
            ("apns-topic", BUNDLE),
            ("authorization", f"bearer {jwt_token}"),
        ],
    )
    conn.send_data(stream_id, b'{"aps":{"alert":"raw"}}', end_stream=True)


def test_speaks_http2_without_alpn_and_advertises_stream_limit(sandbox: SandboxProcess, creds: Creds) -> None:
    sock, conn = raw_h2(sandbox)
    with sock:
        send_request(conn, 1, creds.prod_device, creds.token)
        sock.sendall(conn.data_to_send())
        events = read_events(sock, conn, h2.events.StreamEnded)

    settings = next(e for e in events if isinstance(e, h2.events.RemoteSettingsChanged))
    assert settings.changed_settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS].new_value == 1000
    response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
    assert dict(response.headers)[b":status"] == b"200"


def test_error_bodies_wait_for_the_clients_flow_control_window(sandbox: SandboxProcess, creds: Creds) -> None:
    """A client that grants a tiny window gets its error body only after a WINDOW_UPDATE."""
    ctx = sandbox.ssl_context()
    host, port = sandbox.endpoint("production")
    sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=5), server_hostname=host)
    conn = h2.connection.H2Connection()
    conn.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 5}
    )
    conn.initiate_connection()
    with sock:
        send_request(conn, 1, "ab" * 32, creds.token)  # unknown device: 400 with a JSON body
        sock.sendall(conn.data_to_send())
        events = read_events(sock, conn, h2.events.ResponseReceived)
        events += read_events(sock, conn, h2.events.DataReceived, timeout=0.3)
        first = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
        assert len(first) <= 5
        assert not any(isinstance(e, h2.events.StreamEnded) for e in events)

        conn.increment_flow_control_window(1000, stream_id=1)
        sock.sendall(conn.data_to_send())
        later = read_events(sock, conn, h2.events.StreamEnded)

    body = first + b"".join(e.data for e in later if isinstance(e, h2.events.DataReceived))
    assert body == b'{"reason":"BadDeviceToken"}'
