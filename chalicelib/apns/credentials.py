"""Validation of uploaded push credentials (.p12 certificates and .p8 keys), pure.

Takes the upload and the trusted issuers, returns the metadata to store and the
secret material for Secrets Manager, or raises InvalidCredential with a code
and a message that says how to fix the upload. Secret material never enters
an error message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from chalicelib.errors import InvalidCredential
from chalicelib.models.credentials import Environment, P8Upload, P12Upload

# Apple's push extensions in push certificates.
OID_PUSH_DEVELOPMENT = x509.ObjectIdentifier("1.2.840.113635.100.6.3.1")
OID_PUSH_PRODUCTION = x509.ObjectIdentifier("1.2.840.113635.100.6.3.2")
OID_PUSH_TOPICS = x509.ObjectIdentifier("1.2.840.113635.100.6.3.6")
# VoIP Services certificates (PushKit): subject "CN=VoIP Services: <bundleId>, UID=<bundleId>[.voip]";
# they serve both environments and list their topics (<bundleId>.voip, ...) in extension 6.3.4 (Apple:
# "the topic is then part of the 1.2.840.113635.100.6.3.4 or 1.2.840.113635.100.6.3.6 extension").
OID_VOIP_TOPICS = x509.ObjectIdentifier("1.2.840.113635.100.6.3.4")
VOIP_SUBJECT_PREFIX = "VoIP Services:"
PUSH_SUBJECT_PREFIXES = (
    "Apple Push Services:",
    "Apple Development IOS Push Services:",
    "Apple Production IOS Push Services:",
    "Apple Sandbox Push Services:",
)
_OID_PKCS7_DATA = bytes.fromhex("06092a864886f70d010701")


@dataclass(frozen=True)
class ValidatedCredential:
    """Metadata (for DynamoDB) plus secret material (for Secrets Manager only)."""

    bundle_id: str
    environment: Environment
    expires_at: datetime | None
    subject: str | None
    fingerprint_sha256: str | None
    secret: dict[str, str]
    push_types: tuple[str, ...] = ("alert",)

    def __repr__(self) -> str:  # keep secret material out of logs and tracebacks
        return f"ValidatedCredential(bundle_id={self.bundle_id!r}, environment={self.environment!r})"


def load_trusted_issuers(pem_bundle: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem_bundle)
    except ValueError:
        return []


def _looks_like_pkcs12(data: bytes) -> bool:
    """A PFX is SEQUENCE { INTEGER 3, ContentInfo { OID data ... } }: enough to tell a wrong
    password from a file that is not PKCS#12 at all (cryptography reports both the same way)."""
    return len(data) > 16 and data[0] == 0x30 and b"\x02\x01\x03" in data[:8] and _OID_PKCS7_DATA in data[:32]


def _decode_p12(p12_b64: str) -> bytes:
    try:
        return base64.b64decode("".join(p12_b64.split()), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidCredential(
            "NotBase64", "p12 must be the .p12 file encoded as base64 (e.g. `base64 -w0 cert.p12`)."
        ) from None


def _subject_cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _push_environments(cert: x509.Certificate) -> set[str]:
    oids = {ext.oid for ext in cert.extensions}
    envs = set()
    if OID_PUSH_DEVELOPMENT in oids:
        envs.add("development")
    if OID_PUSH_PRODUCTION in oids:
        envs.add("production")
    return envs


def push_topics(cert: x509.Certificate) -> frozenset[str]:
    """The topics a universal certificate's extension 1.2.840.113635.100.6.3.6 lists (DER: SEQUENCE
    { UTF8String topic, SEQUENCE { UTF8String kind }, ... }); empty without it or when unreadable."""
    for ext in cert.extensions:
        if ext.oid == OID_PUSH_TOPICS and isinstance(ext.value, x509.UnrecognizedExtension):
            return _utf8_items(ext.value.value)
    return frozenset()


def _utf8_items(der: bytes) -> frozenset[str]:
    def header(pos: int) -> tuple[int, int]:
        size, start = der[pos + 1], pos + 2
        if size & 0x80:
            count = size & 0x7F
            size, start = int.from_bytes(der[start : start + count], "big"), start + count
        return start, min(start + size, len(der))

    if len(der) < 2 or der[0] != 0x30:
        return frozenset()
    items: set[str] = set()
    try:
        pos, end = header(0)
        while pos < end:
            start, stop = header(pos)
            if der[pos] == 0x0C:  # UTF8String: a topic (its kind follows in a nested SEQUENCE)
                items.add(der[start:stop].decode("utf-8"))
            pos = stop
    except (IndexError, UnicodeDecodeError):
        return frozenset(items)
    return frozenset(items)


def _check_issuer(cert: x509.Certificate, trusted: list[x509.Certificate]) -> None:
    for issuer in trusted:
        if issuer.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return
    raise InvalidCredential(
        "UntrustedIssuer",
        f"the certificate was issued by '{cert.issuer.rfc4514_string()}', which is not a trusted push "
        "certificate issuer (Apple's WWDR CA). Create the push certificate in Apple's developer portal "
        "and export it from Keychain Access as .p12.",
    )


def _push_bundle_id(cert: x509.Certificate, cn: str, environment: str) -> str:
    """An Apple Push Services certificate: its bundle ID (subject UID), checked against its push
    extensions and the declared environment."""
    envs = _push_environments(cert)
    if not cn.startswith(PUSH_SUBJECT_PREFIXES) or not envs:
        raise InvalidCredential(
            "NotPushCertificate",
            f"'{cn or cert.subject.rfc4514_string()}' is not an APNs push certificate: create an "
            "'Apple Push Notification service SSL' certificate (or a 'VoIP Services' certificate for "
            "PushKit) for the app ID in Apple's developer portal.",
        )
    uids = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    if not uids or not str(uids[0].value):
        raise InvalidCredential(
            "MissingBundleId",
            "the certificate has no bundle ID (subject UID): it is not a push certificate for an app ID.",
        )
    if environment not in envs:
        actual = (
            "development (Apple Development IOS Push Services)"
            if envs == {"development"}
            else ("production (Apple Push Services)")
        )
        raise InvalidCredential(
            "EnvironmentMismatch",
            f"this is a {actual} certificate but was declared '{environment}': upload it with "
            f"environment '{sorted(envs)[0]}', or upload the {environment} certificate instead. "
            "Debug builds need a development certificate, App Store / TestFlight builds a production one.",
        )
    return str(uids[0].value)


def _voip_bundle_id(cert: x509.Certificate, cn: str) -> str:
    """A VoIP Services certificate: the app's bundle ID, named alike by the subject's CN
    ("VoIP Services: <bundleId>") and UID (the bundle ID, or it with ".voip"), and the VoIP topics
    extension (1.2.840.113635.100.6.3.4) present. It serves both environments (Apple issues one
    certificate for sandbox and production), so any declared environment is accepted."""
    bundle_id = cn[len(VOIP_SUBJECT_PREFIX) :].strip()
    if OID_VOIP_TOPICS not in {ext.oid for ext in cert.extensions}:
        raise InvalidCredential(
            "NotPushCertificate",
            f"'{cn}' has no VoIP services extension (1.2.840.113635.100.6.3.4): it is not a certificate "
            "Apple issued for PushKit. Create a 'VoIP Services Certificate' for the app ID in Apple's "
            "developer portal.",
        )
    uids = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    uid = str(uids[0].value) if uids else ""
    if not bundle_id or not uid:
        raise InvalidCredential(
            "MissingBundleId",
            "the VoIP certificate has no bundle ID (subject CN 'VoIP Services: <bundleId>' and UID): "
            "it is not a VoIP certificate for an app ID.",
        )
    if uid not in (bundle_id, bundle_id + ".voip"):
        raise InvalidCredential(
            "MissingBundleId",
            f"the VoIP certificate names two apps (CN '{cn}', UID '{uid}'): upload the certificate "
            "exported from Keychain Access unchanged.",
        )
    return bundle_id


def validate_p12(upload: P12Upload, trusted: list[x509.Certificate], now: datetime) -> ValidatedCredential:
    data = _decode_p12(upload.p12)
    try:
        key, cert, _chain = pkcs12.load_key_and_certificates(data, upload.password.encode())
    except ValueError:
        if _looks_like_pkcs12(data):
            raise InvalidCredential(
                "WrongPassword",
                "the password does not open this .p12: use the password you set when exporting it "
                "from Keychain Access.",
            ) from None
        raise InvalidCredential(
            "NotPkcs12",
            "p12 is not a PKCS#12 (.p12) file: export the push certificate together with its private "
            "key from Keychain Access (File > Export Items > .p12).",
        ) from None
    if cert is None or key is None:
        raise InvalidCredential(
            "IncompleteP12",
            "the .p12 must hold both the push certificate and its private key: in Keychain Access select "
            "the certificate *and* the key under it before exporting.",
        )
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise InvalidCredential("UnsupportedKey", "the .p12's private key must be RSA or EC.")
    if key.public_key().public_numbers() != cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise InvalidCredential(
            "KeyMismatch", "the private key in the .p12 does not belong to its certificate."
        )

    cn = _subject_cn(cert)
    if cn.startswith(VOIP_SUBJECT_PREFIX):
        bundle_id = _voip_bundle_id(cert, cn)
        push_types: tuple[str, ...] = ("voip",)
    else:
        bundle_id = _push_bundle_id(cert, cn, upload.environment)
        # A universal certificate (Apple's default "Apple Push Services" today) lists <bundleId>.voip
        # among its topics: over HTTP/2 it sends VoIP pushes as well as alerts.
        push_types = ("alert", "voip") if bundle_id + ".voip" in push_topics(cert) else ("alert",)
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    if now < not_before:
        raise InvalidCredential(
            "NotYetValid",
            f"the certificate is not valid before {not_before.isoformat()}: check the clock or wait.",
        )
    if now >= not_after:
        raise InvalidCredential(
            "Expired",
            f"the certificate expired on {not_after.isoformat()}: create a new push certificate in "
            "Apple's developer portal and upload it.",
        )
    _check_issuer(cert, trusted)

    return ValidatedCredential(
        bundle_id=bundle_id,
        environment=upload.environment,
        push_types=push_types,
        expires_at=not_after,
        subject=cert.subject.rfc4514_string(),
        fingerprint_sha256=cert.fingerprint(hashes.SHA256()).hex(),
        secret={
            "type": "p12",
            "certificatePem": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "privateKeyPem": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
        },
    )


def validate_p8(upload: P8Upload) -> ValidatedCredential:
    text = upload.p8.strip()
    if "-----BEGIN PRIVATE KEY-----" not in text:
        raise InvalidCredential(
            "NotP8",
            "p8 must be the whole text of the AuthKey_<keyId>.p8 file, from '-----BEGIN PRIVATE KEY-----' "
            "to '-----END PRIVATE KEY-----'.",
        )
    try:
        key = serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        raise InvalidCredential(
            "NotP8",
            "p8 is not a readable private key: paste the AuthKey_<keyId>.p8 file unchanged.",
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidCredential(
            "NotP256",
            "an APNs signing key is an EC P-256 key (ES256); this key is not. Download the key created "
            "under Certificates, Identifiers & Profiles > Keys with 'Apple Push Notifications service'.",
        )
    digest = hashlib.sha256(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).hexdigest()
    return ValidatedCredential(
        bundle_id=upload.bundle_id,
        environment=upload.environment,
        expires_at=None,
        subject=None,
        fingerprint_sha256=digest,
        secret={"type": "p8", "p8": text + "\n", "keyId": upload.key_id, "teamId": upload.team_id},
    )


def utcnow() -> datetime:
    return datetime.now(UTC)
