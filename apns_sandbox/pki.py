"""The sandbox's own PKI: a root CA, the TLS certificate of its endpoints, push certificates laid
out like Apple's (PKCS#12), and p8 signing keys. Everything is made with `cryptography` only.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import pathlib
import secrets
import string
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

Environment = Literal["development", "production"]

# Apple's push-certificate extensions (marker extensions whose value is an ASN.1 NULL).
OID_PUSH_DEVELOPMENT = ObjectIdentifier("1.2.840.113635.100.6.3.1")
OID_PUSH_PRODUCTION = ObjectIdentifier("1.2.840.113635.100.6.3.2")
OID_PUSH_TOPICS = ObjectIdentifier("1.2.840.113635.100.6.3.6")
# VoIP Services (PushKit) certificates: "CN=VoIP Services: <bundleId>", UID "<bundleId>.voip", both
# environments, and the VoIP topics extension listing "<bundleId>.voip".
OID_VOIP_TOPICS = ObjectIdentifier("1.2.840.113635.100.6.3.4")
VOIP_CN_PREFIX = "VoIP Services"
APPLE_PUSH_OIDS: dict[str, ObjectIdentifier] = {
    "development": OID_PUSH_DEVELOPMENT,
    "production": OID_PUSH_PRODUCTION,
    "topics": OID_PUSH_TOPICS,
}
ASN1_NULL = b"\x05\x00"
# A universal certificate's topics extension (6.3.6) lists the topics it may push to, each followed by
# its kind: SEQUENCE { UTF8String "<bundle>", SEQUENCE { UTF8String "app" }, UTF8String
# "<bundle>.voip", SEQUENCE { UTF8String "voip" }, ... }.
UNIVERSAL_TOPIC_SUFFIXES = (("", "app"), (".voip", "voip"), (".complication", "complication"))


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def universal_topics_value(bundle_id: str) -> bytes:
    """The DER value of a universal certificate's topics extension for ``bundle_id``."""
    parts = b"".join(
        _der(0x0C, (bundle_id + suffix).encode()) + _der(0x30, _der(0x0C, kind.encode()))
        for suffix, kind in UNIVERSAL_TOPIC_SUFFIXES
    )
    return _der(0x30, parts)


def topics_of(value: bytes) -> frozenset[str]:
    """The topics (top-level UTF8Strings) a topics extension's DER value lists; empty if unreadable."""
    topics: set[str] = set()
    if len(value) < 2 or value[0] != 0x30:
        return frozenset()
    pos, end = _header(value, 0)
    while pos < end:
        tag = value[pos]
        start, stop = _header(value, pos)
        if tag == 0x0C:
            topics.add(value[start:stop].decode("utf-8", "replace"))
        pos = stop
    return frozenset(topics)


def _header(value: bytes, pos: int) -> tuple[int, int]:
    """(start, end) of the content of the TLV at ``pos``."""
    size = value[pos + 1]
    start = pos + 2
    if size & 0x80:
        count = size & 0x7F
        size = int.from_bytes(value[start : start + count], "big")
        start += count
    return start, min(start + size, len(value))


_CN_PREFIX = {"development": "Apple Development IOS Push Services", "production": "Apple Push Services"}
_ALNUM = string.ascii_uppercase + string.digits
_CA_CERT_FILE = "ca.pem"
_CA_KEY_FILE = "ca-key.pem"


def random_id(length: int = 10) -> str:
    """An Apple-style identifier (key IDs, team IDs): uppercase letters and digits."""
    return "".join(secrets.choice(_ALNUM) for _ in range(length))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def write_private_file(path: pathlib.Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


@dataclass(frozen=True)
class PushCertificateInfo:
    """What a push certificate grants, read back from its extensions and subject."""

    bundle_id: str
    environments: frozenset[str]
    team_id: str | None
    universal: bool
    voip: bool = False  # a VoIP Services certificate: push type voip, topic <bundleId>.voip only
    topics: frozenset[str] = frozenset()  # a universal certificate's topics (bundle, .voip, ...)


def push_certificate_info(cert: x509.Certificate) -> PushCertificateInfo | None:
    """Bundle ID (subject UID) and environments (Apple's OIDs) of a push certificate, or None."""
    uids = cert.subject.get_attributes_for_oid(NameOID.USER_ID)
    if not uids:
        return None
    envs: set[str] = set()
    universal = voip = False
    topics: frozenset[str] = frozenset()
    for ext in cert.extensions:
        if ext.oid == OID_PUSH_DEVELOPMENT:
            envs.add("development")
        elif ext.oid == OID_PUSH_PRODUCTION:
            envs.add("production")
        elif ext.oid == OID_PUSH_TOPICS:
            universal = True
            if isinstance(ext.value, x509.UnrecognizedExtension):
                topics = topics_of(ext.value.value)
        elif ext.oid == OID_VOIP_TOPICS:
            voip = True
    ous = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    bundle_id = str(uids[0].value)
    if voip and bundle_id.endswith(".voip"):
        bundle_id = bundle_id[: -len(".voip")]
    return PushCertificateInfo(
        voip=voip,
        bundle_id=bundle_id,
        environments=frozenset(envs),
        team_id=str(ous[0].value) if ous else None,
        universal=universal,
        topics=topics,
    )


class SandboxCA:
    """A self-signed root CA (EC P-256) that issues the sandbox's TLS and push certificates."""

    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
        self.cert = cert
        self.key = key

    @classmethod
    def create(cls, common_name: str = "APNs Sandbox Root CA") -> SandboxCA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "APNs Sandbox"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            ]
        )
        now = _now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    @classmethod
    def load_or_create(cls, state_dir: pathlib.Path) -> SandboxCA:
        """Load ca.pem + ca-key.pem from state_dir, or create and persist them (key 0600)."""
        state_dir = pathlib.Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = state_dir / _CA_CERT_FILE, state_dir / _CA_KEY_FILE
        # Several processes (the sandbox, a test, the run command) may get here at once: one creates.
        with (state_dir / ".ca.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if cert_path.exists() and key_path.exists():
                cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
                key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
                if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
                    raise TypeError(f"unsupported CA key type in {key_path}")
                return cls(cert, key)
            ca = cls.create()
            write_private_file(key_path, ca.key_pem)
            tmp = cert_path.with_suffix(".pem.tmp")
            tmp.write_bytes(ca.cert_pem)
            tmp.replace(cert_path)
            return ca

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def _aki(self) -> x509.AuthorityKeyIdentifier:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())

    def issue_push_certificate(
        self,
        bundle_id: str,
        environment: Environment,
        password: str | None,
        *,
        valid_days: int = 365,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        universal: bool = False,
        team_id: str | None = None,
        voip: bool = False,
    ) -> bytes:
        """A push certificate as Apple issues it, with its RSA 2048 key, as PKCS#12 DER bytes.

        `universal=True`: Apple's universal "Apple Push Services" certificate: both environments and
        the topics extension listing <bundleId>, <bundleId>.voip and <bundleId>.complication, so it
        sends alerts and VoIP pushes alike.

        `voip=True`: a VoIP Services certificate (PushKit) instead: "VoIP Services: <bundleId>", UID
        "<bundleId>.voip", valid in both environments, with the VoIP topics extension.

        `password=None` gives an unencrypted bundle. `not_before`/`not_after` override
        `valid_days` (e.g. to make an expired or not-yet-valid certificate for tests).
        """
        if environment not in ("development", "production"):
            raise ValueError(f"environment must be 'development' or 'production', not {environment!r}")
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        team_id = team_id or random_id()
        prefix = (
            "Apple Development IOS Push Services" if environment == "development" else "Apple Push Services"
        )
        if voip:
            prefix = VOIP_CN_PREFIX
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.USER_ID, bundle_id + ".voip" if voip else bundle_id),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{prefix}: {bundle_id}"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, team_id),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "APNs Sandbox Developer"),
                x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            ]
        )
        start = not_before or (_now() - dt.timedelta(minutes=5))
        end = not_after or (start + dt.timedelta(days=valid_days))
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(self._aki(), critical=False)
        )
        oids = (
            [OID_PUSH_DEVELOPMENT, OID_PUSH_PRODUCTION]
            if universal or voip
            else [APPLE_PUSH_OIDS[environment]]
        )
        for oid in oids:
            builder = builder.add_extension(x509.UnrecognizedExtension(oid, ASN1_NULL), critical=False)
        if universal and not voip:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(OID_PUSH_TOPICS, universal_topics_value(bundle_id)), critical=False
            )
        if voip:
            topics = (bundle_id + ".voip").encode()
            # SEQUENCE { UTF8String topic }: the topic list as the extension carries it.
            value = b"\x30" + bytes([len(topics) + 2]) + b"\x0c" + bytes([len(topics)]) + topics
            builder = builder.add_extension(
                x509.UnrecognizedExtension(OID_VOIP_TOPICS, value), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password.encode())
            if password
            else serialization.NoEncryption()
        )
        return pkcs12.serialize_key_and_certificates(
            name=f"{prefix}: {bundle_id}".encode(),
            key=key,
            cert=cert,
            cas=None,
            encryption_algorithm=encryption,
        )

    def issue_server_certificate(self, hostnames: list[str]) -> tuple[bytes, bytes]:
        """(cert_pem, key_pem) for the TLS endpoints; SAN = hostnames + localhost, 127.0.0.1, ::1."""
        key = ec.generate_private_key(ec.SECP256R1())
        dns: list[str] = []
        ips: list[str] = []
        for name in [*hostnames, "localhost", "127.0.0.1", "::1"]:
            try:
                ip_address(name)
            except ValueError:
                if name not in dns:
                    dns.append(name)
            else:
                if name not in ips:
                    ips.append(name)
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        sans += [x509.IPAddress(ip_address(i)) for i in ips]
        now = _now()
        cn = hostnames[0] if hostnames else "localhost"
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=397))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(self._aki(), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem


def generate_p8() -> tuple[str, str]:
    """(key_id, PEM text of an EC P-256 PKCS#8 private key) like the .p8 file Apple hands out."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return random_id(), pem


def p12_to_pem(p12: bytes, password: str | None) -> bytes:
    """Certificate + unencrypted key as one PEM (what aioapns's `client_cert=` path expects)."""
    key, cert, _ = pkcs12.load_key_and_certificates(p12, password.encode() if password else None)
    if key is None or cert is None:
        raise ValueError("PKCS#12 bundle has no key or no certificate")
    return cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
