"""Certificates for tests: Apple-shaped ones come from the sandbox CA; odd ones are built here."""

from __future__ import annotations

import base64
import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from apns_sandbox.pki import OID_PUSH_DEVELOPMENT, OID_PUSH_PRODUCTION, SandboxCA

PASSWORD = "s3cret-Passw0rd"
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def odd_p12(
    ca: SandboxCA,
    *,
    cn: str = "Apple Push Services: com.example.chat",
    uid: str | None = "com.example.chat",
    oids: tuple[x509.ObjectIdentifier, ...] = (OID_PUSH_PRODUCTION,),
    password: str = PASSWORD,
    with_key: bool = True,
) -> bytes:
    """A PKCS#12 whose certificate the caller shapes: other subject, no UID, other extensions."""
    now = dt.datetime.now(dt.UTC)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if uid is not None:
        attrs.insert(0, x509.NameAttribute(NameOID.USER_ID, uid))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attrs))
        .issuer_name(ca.cert.subject)
        .public_key(_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=300))
    )
    for oid in oids:
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, b"\x05\x00"), critical=False)
    cert = builder.sign(ca.key, hashes.SHA256())
    return pkcs12.serialize_key_and_certificates(
        b"test",
        _KEY if with_key else None,
        cert,
        None,
        serialization.BestAvailableEncryption(password.encode()),
    )


def p256_pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def p384_pem() -> str:
    key = ec.generate_private_key(ec.SECP384R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def rsa_pem() -> str:
    return _KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


__all__ = ["OID_PUSH_DEVELOPMENT", "OID_PUSH_PRODUCTION", "PASSWORD", "b64", "odd_p12", "p256_pem"]
