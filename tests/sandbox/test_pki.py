"""The sandbox PKI lays out certificates and keys like Apple's."""

import datetime as dt
import re
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from apns_sandbox.pki import (
    APPLE_PUSH_OIDS,
    ASN1_NULL,
    SandboxCA,
    generate_p8,
    p12_to_pem,
    push_certificate_info,
)


@pytest.fixture(scope="module")
def ca() -> SandboxCA:
    return SandboxCA.create()


def _oids(cert: x509.Certificate) -> set[str]:
    return {e.oid.dotted_string for e in cert.extensions}


@pytest.mark.parametrize(
    ("environment", "cn_prefix"),
    [("development", "Apple Development IOS Push Services"), ("production", "Apple Push Services")],
)
def test_push_certificate_is_laid_out_like_apples(ca: SandboxCA, environment: str, cn_prefix: str) -> None:
    p12 = ca.issue_push_certificate("com.example.chat", environment, "s3cret")  # type: ignore[arg-type]

    key, cert, _ = pkcs12.load_key_and_certificates(p12, b"s3cret")

    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert cert is not None
    subject = cert.subject
    assert subject.get_attributes_for_oid(NameOID.USER_ID)[0].value == "com.example.chat"
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"{cn_prefix}: com.example.chat"
    assert re.fullmatch(
        r"[A-Z0-9]{10}", str(subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value)
    )
    assert subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "US"
    assert cert.issuer == ca.cert.subject
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    ext = cert.extensions.get_extension_for_oid(APPLE_PUSH_OIDS[environment])
    assert not ext.critical
    assert ext.value.value == ASN1_NULL  # type: ignore[attr-defined]
    other = "production" if environment == "development" else "development"
    assert APPLE_PUSH_OIDS[other].dotted_string not in _oids(cert)
    info = push_certificate_info(cert)
    assert info is not None
    assert info.environments == {environment}
    assert info.bundle_id == "com.example.chat"


def test_universal_certificate_has_both_environments_and_topics(ca: SandboxCA) -> None:
    p12 = ca.issue_push_certificate("com.example.chat", "production", None, universal=True)

    _, cert, _ = pkcs12.load_key_and_certificates(p12, None)

    assert cert is not None
    assert {o.dotted_string for o in APPLE_PUSH_OIDS.values()} <= _oids(cert)


def test_wrong_password_cannot_open_p12(ca: SandboxCA) -> None:
    p12 = ca.issue_push_certificate("com.example.chat", "development", "right")
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(p12, b"wrong")


def test_validity_window_can_be_set_for_expired_certificates(ca: SandboxCA) -> None:
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    end = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    p12 = ca.issue_push_certificate("a.b", "production", "pw", not_before=start, not_after=end)
    _, cert, _ = pkcs12.load_key_and_certificates(p12, b"pw")
    assert cert is not None
    assert cert.not_valid_before_utc == start
    assert cert.not_valid_after_utc == end


def test_p12_to_pem_gives_cert_and_unencrypted_key(ca: SandboxCA) -> None:
    pem = p12_to_pem(ca.issue_push_certificate("a.b", "production", "pw"), "pw")
    assert b"BEGIN CERTIFICATE" in pem
    assert b"BEGIN PRIVATE KEY" in pem


def test_server_certificate_covers_loopback(ca: SandboxCA) -> None:
    cert_pem, key_pem = ca.issue_server_certificate(["apns.sandbox.test"])
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"apns.sandbox.test", "localhost"} <= set(san.get_values_for_type(x509.DNSName))
    assert {str(i) for i in san.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
    assert serialization.load_pem_private_key(key_pem, None)
    cert.verify_directly_issued_by(ca.cert)


def test_generate_p8_looks_like_apples() -> None:
    key_id, pem = generate_p8()
    assert re.fullmatch(r"[A-Z0-9]{10}", key_id)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    key = serialization.load_pem_private_key(pem.encode(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"


def test_load_or_create_persists_the_ca(tmp_path) -> None:
    first = SandboxCA.load_or_create(tmp_path / "state")
    second = SandboxCA.load_or_create(tmp_path / "state")
    assert first.cert_pem == second.cert_pem
    assert (tmp_path / "state" / "ca.pem").read_bytes() == first.cert_pem
    assert stat.S_IMODE((tmp_path / "state" / "ca-key.pem").stat().st_mode) == 0o600
