"""Certificate-based provider authentication (mutual TLS with push certificates the sandbox issued)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
import ssl

import h2.connection
import h2.events
import h2.exceptions
import httpx
import pytest
from cryptography.hazmat.primitives.serialization import pkcs12

from apns_sandbox.pki import APPLE_PUSH_OIDS

from .conftest import BUNDLE, Creds
from .test_http2 import read_events, send_request


@pytest.fixture(scope="module")
def certs(sandbox):
    return {env: sandbox.issue_client_pem(BUNDLE, env) for env in ("production", "development")}


def test_issued_p12_opens_with_its_password_and_is_laid_out_like_apples(sandbox) -> None:
    issued = sandbox.issue_p12(BUNDLE, "production", "s3cret")

    _, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(issued["p12"]), b"s3cret")

    assert cert is not None
    assert cert.extensions.get_extension_for_oid(APPLE_PUSH_OIDS["production"])
    assert f"UID={BUNDLE}" in issued["subject"]
    assert issued["expiresAt"].endswith("Z")


@pytest.mark.parametrize("environment", ["production", "development"])
def test_certificate_of_the_endpoints_environment_is_accepted(
    sandbox, creds: Creds, apns_http, certs, environment
) -> None:
    device = creds.prod_device if environment == "production" else creds.dev_device

    response = apns_http(environment, cert=certs[environment]).push(device)

    assert response.status_code == 200, response.text
    item = sandbox.notifications(device, limit=1)[0]
    assert item["auth"] == "certificate"
    assert item["bundleId"] == BUNDLE


def test_topic_defaults_to_the_certificates_bundle_id(creds: Creds, apns_http, certs) -> None:
    response = apns_http("production", cert=certs["production"]).push(creds.prod_device, topic=None)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("endpoint", "cert_env"), [("production", "development"), ("development", "production")]
)
def test_certificate_of_the_other_environment_gets_goaway_like_apple(
    sandbox, certs, endpoint: str, cert_env: str
) -> None:
    """Apple answers no request: GOAWAY NO_ERROR, last stream 0, debug data with the reason, close."""
    before = sandbox.stats()["rejected"].get("BadCertificateEnvironment", 0)
    ctx = sandbox.ssl_context()
    ctx.load_cert_chain(str(certs[cert_env]))
    host, port = sandbox.endpoint(endpoint)
    device = sandbox.create_device(BUNDLE, endpoint)
    sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=5), server_hostname=host)
    conn = h2.connection.H2Connection()
    conn.initiate_connection()
    with sock:
        send_request(conn, 1, device, "")
        sock.sendall(conn.data_to_send())
        events = read_events(sock, conn, h2.events.ConnectionTerminated)
        closed, after = _closed_by_server(sock, conn)

    [goaway] = [e for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert (goaway.error_code, goaway.last_stream_id) == (0, 0)
    assert json.loads(goaway.additional_data) == {"reason": "BadCertificateEnvironment"}
    assert not any(isinstance(e, h2.events.ResponseReceived) for e in events)  # no per-request 403
    assert closed
    assert after == []  # one GOAWAY only: the client's SETTINGS ACK must not draw a PROTOCOL_ERROR one
    assert sandbox.notifications(device) == []
    assert sandbox.stats()["rejected"]["BadCertificateEnvironment"] == before + 1


def test_certificate_of_the_other_environment_fails_an_http_client_with_the_reason(
    creds: Creds, apns_http, certs
) -> None:
    with pytest.raises(
        httpx.RemoteProtocolError, match="ConnectionTerminated error_code:0, last_stream_id:0"
    ):
        apns_http("production", cert=certs["development"]).push(creds.prod_device)


def _closed_by_server(sock: ssl.SSLSocket, conn: h2.connection.H2Connection) -> tuple[bool, list]:
    """(whether the server closed the connection (EOF) within 5 s, frames it sent meanwhile)."""
    sock.settimeout(5)
    raw = b""
    try:
        while data := sock.recv(65535):
            raw += data
    except (TimeoutError, ssl.SSLError, OSError):
        return False, []
    try:
        events = conn.receive_data(raw) if raw else []
    except h2.exceptions.ProtocolError as exc:  # e.g. a second GOAWAY after the first
        events = [exc]
    return True, events


def test_topic_of_another_app_is_disallowed(creds: Creds, apns_http, certs) -> None:
    response = apns_http("production", cert=certs["production"]).push(
        creds.prod_device, topic="com.example.other"
    )

    assert (response.status_code, response.json()["reason"]) == (400, "TopicDisallowed")


def test_device_of_another_app_is_not_for_topic(creds: Creds, apns_http, sandbox) -> None:
    other_cert = sandbox.issue_client_pem("com.example.other", "production")

    response = apns_http("production", cert=other_cert).push(creds.prod_device, topic="com.example.other")

    assert (response.status_code, response.json()["reason"]) == (400, "DeviceTokenNotForTopic")


def test_universal_certificate_works_on_both_endpoints_but_needs_a_topic(
    sandbox, creds: Creds, apns_http
) -> None:
    universal = sandbox.issue_client_pem(BUNDLE, "production", universal=True)

    assert apns_http("production", cert=universal).push(creds.prod_device).status_code == 200
    assert apns_http("development", cert=universal).push(creds.dev_device).status_code == 200
    response = apns_http("production", cert=universal).push(creds.prod_device, topic=None)
    assert (response.status_code, response.json()["reason"]) == (400, "MissingTopic")


def test_expired_certificate_fails_the_tls_handshake(sandbox, creds: Creds) -> None:
    now = dt.datetime.now(dt.UTC)
    expired = sandbox.issue_client_pem(
        BUNDLE,
        "production",
        notBefore=(now - dt.timedelta(days=400)).isoformat(),
        notAfter=(now - dt.timedelta(days=1)).isoformat(),
    )
    ctx = sandbox.ssl_context()
    ctx.load_cert_chain(str(expired))
    _, port = sandbox.endpoint("production")

    with httpx.Client(http2=True, verify=ctx) as client, pytest.raises((httpx.HTTPError, ssl.SSLError)):
        client.post(f"https://127.0.0.1:{port}/3/device/{creds.prod_device}", content=b'{"aps":{}}')


def test_certificate_from_another_ca_fails_the_tls_handshake(sandbox, creds: Creds, tmp_path) -> None:
    from apns_sandbox.pki import SandboxCA, p12_to_pem

    stranger = SandboxCA.create("Not the sandbox")
    pem = tmp_path / "stranger.pem"
    pem.write_bytes(p12_to_pem(stranger.issue_push_certificate(BUNDLE, "production", None), None))
    ctx = sandbox.ssl_context()
    ctx.load_cert_chain(str(pem))
    _, port = sandbox.endpoint("production")

    with httpx.Client(http2=True, verify=ctx) as client, pytest.raises((httpx.HTTPError, ssl.SSLError)):
        client.post(f"https://127.0.0.1:{port}/3/device/{creds.prod_device}", content=b'{"aps":{}}')


def test_client_certificate_that_is_not_a_push_certificate_is_bad(
    sandbox, creds: Creds, apns_http, tmp_path
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from apns_sandbox.pki import SandboxCA

    ca = SandboxCA.load_or_create(sandbox.state_dir)  # the sandbox's own CA: the chain is valid
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "just a client")]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    pem = tmp_path / "client.pem"
    pem.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )

    response = apns_http("production", cert=pem).push(creds.prod_device)

    assert (response.status_code, response.json()["reason"]) == (403, "BadCertificate")
