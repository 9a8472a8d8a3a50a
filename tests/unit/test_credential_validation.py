"""Credential validation rules (SPEC 1), pure: each refusal has its own code and a how-to-fix message."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509

from apns_sandbox.pki import SandboxCA
from chalicelib.apns.credentials import validate_p8, validate_p12
from chalicelib.errors import InvalidCredential
from chalicelib.models.credentials import P8Upload, P12Upload
from chalicelib.services.credentials import expires_soon
from tests.certs import (
    OID_PUSH_PRODUCTION,
    PASSWORD,
    b64,
    odd_p12,
    p256_pem,
    p384_pem,
    rsa_pem,
)


def now() -> dt.datetime:
    """The validation time: when the test runs (certificates are minted then, not at collection)."""
    return dt.datetime.now(dt.UTC)


@pytest.fixture(scope="module")
def ca() -> SandboxCA:
    return SandboxCA.create("Unit Test Issuer")


@pytest.fixture(scope="module")
def trusted(ca: SandboxCA) -> list[x509.Certificate]:
    return [ca.cert]


def upload(p12: bytes, environment: str = "production", password: str = PASSWORD) -> P12Upload:
    return P12Upload(type="p12", name="prod", environment=environment, p12=b64(p12), password=password)


def refused(exc_info: pytest.ExceptionInfo[InvalidCredential]) -> str:
    return exc_info.value.code


@pytest.mark.parametrize("environment", ["development", "production"])
def test_apple_shaped_certificate_is_accepted(ca: SandboxCA, trusted: list, environment: str) -> None:
    p12 = ca.issue_push_certificate("com.example.chat", environment, PASSWORD)  # type: ignore[arg-type]
    v = validate_p12(upload(p12, environment), trusted, now())
    assert v.bundle_id == "com.example.chat"
    assert v.environment == environment
    assert v.expires_at is not None and v.expires_at > now()
    assert "BEGIN CERTIFICATE" in v.secret["certificatePem"]
    assert "BEGIN PRIVATE KEY" in v.secret["privateKeyPem"]
    assert "PRIVATE" not in repr(v)


def test_universal_certificate_fits_both_environments(ca: SandboxCA, trusted: list) -> None:
    p12 = ca.issue_push_certificate("com.example.chat", "production", PASSWORD, universal=True)
    assert validate_p12(upload(p12, "development"), trusted, now()).environment == "development"
    assert validate_p12(upload(p12, "production"), trusted, now()).environment == "production"


def test_universal_certificate_serves_voip_tokens_too(ca: SandboxCA, trusted: list) -> None:
    # Given Apple's universal "Apple Push Services" certificate (topics: <bundle>, .voip, .complication)
    p12 = ca.issue_push_certificate("com.example.chat", "production", PASSWORD, universal=True)
    # When it is uploaded
    v = validate_p12(upload(p12, "production"), trusted, now())
    # Then it serves alert and VoIP (PushKit) tokens; a plain push certificate only alerts
    assert v.push_types == ("alert", "voip")
    plain = ca.issue_push_certificate("com.example.chat", "production", PASSWORD)
    assert validate_p12(upload(plain, "production"), trusted, now()).push_types == ("alert",)


def test_wrong_password(ca: SandboxCA, trusted: list) -> None:
    p12 = ca.issue_push_certificate("com.example.chat", "production", PASSWORD)
    with pytest.raises(InvalidCredential) as exc:
        validate_p12(upload(p12, password="wrong"), trusted, now())
    assert refused(exc) == "WrongPassword"
    assert "password" in exc.value.message


def test_not_pkcs12(trusted: list) -> None:
    with pytest.raises(InvalidCredential) as exc:
        validate_p12(upload(b"-----BEGIN CERTIFICATE-----\nnot a p12"), trusted, now())
    assert refused(exc) == "NotPkcs12"


def test_not_base64(trusted: list) -> None:
    bad = P12Upload(type="p12", name="x", environment="production", p12="%%%not base64%%%", password="p")
    with pytest.raises(InvalidCredential) as exc:
        validate_p12(bad, trusted, now())
    assert refused(exc) == "NotBase64"


def test_certificate_without_key(ca: SandboxCA, trusted: list) -> None:
    with pytest.raises(InvalidCredential) as exc:
        validate_p12(upload(odd_p12(ca, with_key=False)), trusted, now())
    assert refused(exc) == "IncompleteP12"


@pytest.mark.parametrize(
    ("cn", "oids"),
    [
        ("www.example.com", (OID_PUSH_PRODUCTION,)),  # not an APNs subject
        ("Apple Push Services: com.example.chat", ()),  # no push extension
        ("Apple Development iPhone Distribution: Example", (OID_PUSH_PRODUCTION,)),  # a signing certificate
    ],
)
def test_not_a_push_certificate(ca: SandboxCA, trusted: list, cn: str, oids: tuple) -> None:
    with pytest.raises(InvalidCredential) as exc:
        validate_p12(upload(odd_p12(ca, cn=cn, oids=oids)), trusted, now())
    assert refused(exc) == "NotPushCertificate"


def test_bundle_id_missing(ca: SandboxCA, trusted: list) -> None:
    with pytest.raises(InvalidCredential) as exc:
        validate_p12(upload(odd_p12(ca, uid=None)), trusted, now())
    assert refused(exc) == "MissingBundleId"


@pytest.mark.parametrize(
    ("declared", "actual"), [("production", "development"), ("development", "production")]
)
def test_environment_declared_must_match_certificate(
    ca: SandboxCA, trusted: list, declared: str, actual: str
) -> None:
    p12 = ca.issue_push_certificate("com.example.chat", actual, PASSWORD)  # type: ignore[arg-type]
    with pytest.raises(InvalidCredential) as exc:
        validate_p12(upload(p12, declared), trusted, now())
    assert refused(exc) == "EnvironmentMismatch"
    assert f"environment '{actual}'" in exc.value.message


def test_expired(ca: SandboxCA, trusted: list) -> None:
    p12 = ca.issue_push_certificate(
        "com.example.chat",
        "production",
        PASSWORD,
        not_before=now() - dt.timedelta(days=400),
        not_after=now() - dt.timedelta(days=1),
    )
    with pytest.raises(InvalidCredential) as exc:
        validate_p12(upload(p12), trusted, now())
    assert refused(exc) == "Expired"


def test_not_yet_valid(ca: SandboxCA, trusted: list) -> None:
    p12 = ca.issue_push_certificate(
        "com.example.chat",
        "production",
        PASSWORD,
        not_before=now() + dt.timedelta(days=2),
        not_after=now() + dt.timedelta(days=300),
    )
    with pytest.raises(InvalidCredential) as exc:
        validate_p12(upload(p12), trusted, now())
    assert refused(exc) == "NotYetValid"


def test_issuer_must_be_trusted(trusted: list) -> None:
    stranger = SandboxCA.create("Someone Else CA")
    p12 = stranger.issue_push_certificate("com.example.chat", "production", PASSWORD)
    with pytest.raises(InvalidCredential) as exc:
        validate_p12(upload(p12), trusted, now())
    assert refused(exc) == "UntrustedIssuer"


def test_issuer_with_same_name_but_other_key_is_not_trusted(trusted: list) -> None:
    impostor = SandboxCA.create("Unit Test Issuer")  # same subject as the trusted CA, other key
    p12 = impostor.issue_push_certificate("com.example.chat", "production", PASSWORD)
    with pytest.raises(InvalidCredential) as exc:
        validate_p12(upload(p12), trusted, now())
    assert refused(exc) == "UntrustedIssuer"


def test_expires_soon_within_30_days() -> None:
    assert expires_soon(now() + dt.timedelta(days=29), now())
    assert not expires_soon(now() + dt.timedelta(days=31), now())
    assert not expires_soon(None, now())


def p8(pem: str) -> P8Upload:
    return P8Upload(
        type="p8",
        name="token-key",
        environment="production",
        p8=pem,
        key_id="ABC123DEFG",
        team_id="TEAM123456",
        bundle_id="com.example.chat",
    )


def test_p8_p256_is_accepted() -> None:
    v = validate_p8(p8(p256_pem()))
    assert v.secret["keyId"] == "ABC123DEFG" and v.secret["teamId"] == "TEAM123456"
    assert v.expires_at is None


@pytest.mark.parametrize("pem", [p384_pem(), rsa_pem()])
def test_p8_must_be_ec_p256(pem: str) -> None:
    with pytest.raises(InvalidCredential) as exc:
        validate_p8(p8(pem))
    assert refused(exc) == "NotP256"


@pytest.mark.parametrize(
    "text",
    [
        "hello",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        base64.b64encode(b"x").decode(),
    ],
)
def test_p8_not_a_key(text: str) -> None:
    with pytest.raises(InvalidCredential) as exc:
        validate_p8(p8(text))
    assert refused(exc) == "NotP8"


@pytest.mark.parametrize("field", ["key_id", "team_id"])
@pytest.mark.parametrize("value", ["ABC", "ABC123DEFGH", "abc123defg", "ABC-23DEFG"])
def test_p8_ids_are_ten_upper_alnum(field: str, value: str) -> None:
    data = {
        "type": "p8",
        "name": "k",
        "environment": "production",
        "p8": "x",
        "key_id": "ABC123DEFG",
        "team_id": "TEAM123456",
        "bundle_id": "com.example.chat",
        field: value,
    }
    with pytest.raises(ValueError, match="exactly 10 characters"):
        P8Upload.model_validate(data)


@pytest.mark.parametrize("name", ["Prod (AppStore)", "prod cert", "证书", "", "a" * 65, "x[1]"])
def test_credential_name_plain_ascii(name: str) -> None:
    with pytest.raises(ValueError, match="plain ASCII"):
        P12Upload(type="p12", name=name, environment="production", p12="eA==", password="p")
