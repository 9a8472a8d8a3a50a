"""Push credentials: the upload bodies and the metadata the API answers (never secret material)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from chalicelib.models.base import ApiModel

Environment = Literal["development", "production"]
# What a credential can send: `alert` to the app's bundle ID, `voip` (PushKit) to `<bundleId>.voip`.
PushKind = Literal["alert", "voip"]

NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
APPLE_ID_RE = re.compile(r"^[A-Z0-9]{10}$")
BUNDLE_ID_RE = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")

# A real APNs .p12 is 3-6 KB; anything far larger is refused before it is parsed.
MAX_P12_BASE64_CHARS = 64 * 1024
MAX_P8_CHARS = 4 * 1024


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(
            "a credential name is 1-64 plain ASCII letters, digits, '-', '_' or '.': no spaces, "
            "brackets or other special characters (e.g. 'prod-appstore' instead of 'Prod (AppStore)')"
        )
    return value


class _UploadBase(ApiModel):
    name: str = Field(description="Unique per app: plain ASCII letters, digits, '-', '_', '.'.")
    environment: Environment = Field(
        description="'development' (Debug builds, APNs sandbox) or 'production' (App Store, TestFlight, "
        "Ad Hoc, Enterprise)."
    )

    _name = field_validator("name")(classmethod(lambda cls, v: _check_name(v)))


class P12Upload(_UploadBase):
    type: Literal["p12"]
    p12: str = Field(
        description="The .p12 file, base64-encoded.", min_length=1, max_length=MAX_P12_BASE64_CHARS
    )
    password: str = Field(
        min_length=1,
        max_length=256,
        description="The password the .p12 was exported with (required: export it with a password).",
    )


class P8Upload(_UploadBase):
    type: Literal["p8"]
    p8: str = Field(
        description="The AuthKey_<keyId>.p8 file's text, BEGIN/END lines included.",
        min_length=1,
        max_length=MAX_P8_CHARS,
    )
    key_id: str = Field(description="The 10-character key ID shown next to the key in the developer portal.")
    team_id: str = Field(description="Your 10-character Apple team ID.")
    bundle_id: str = Field(description="The app's bundle ID: the apns-topic of every push.")

    @field_validator("key_id", "team_id")
    @classmethod
    def _apple_id(cls, v: str) -> str:
        if not APPLE_ID_RE.match(v):
            raise ValueError(
                "must be exactly 10 characters, upper-case letters and digits, as shown in Apple's "
                "developer portal (e.g. 'ABC123DEFG')"
            )
        return v

    @field_validator("bundle_id")
    @classmethod
    def _bundle(cls, v: str) -> str:
        if not BUNDLE_ID_RE.match(v) or len(v) > 155:
            raise ValueError("must be a reverse-DNS bundle ID such as 'com.example.chat'")
        return v


CredentialUpload = Annotated[P12Upload | P8Upload, Field(discriminator="type")]


def _alert_only() -> list[PushKind]:
    return ["alert"]


class Credential(ApiModel):
    """What is stored in DynamoDB and answered by the API: metadata only."""

    certificate_id: int = Field(description="Numeric ID (Tencent's businessID); devices refer to it.")
    name: str = Field(description="Unique name (Agora's apnsCertName); devices may refer to it instead.")
    type: Literal["p12", "p8"]
    bundle_id: str
    environment: Environment
    expires_at: datetime | None = Field(
        None, description="Certificate expiry (p12 only; p8 keys do not expire)."
    )
    expires_soon: bool = Field(False, description="True when the certificate expires within 30 days.")
    created_at: datetime
    key_id: str | None = Field(None, description="p8 only.")
    team_id: str | None = Field(None, description="p8 only.")
    subject: str | None = Field(None, description="p12 only: the certificate's subject.")
    fingerprint_sha256: str | None = Field(None, description="p12 only: SHA-256 of the certificate (DER).")
    push_types: list[PushKind] = Field(
        default_factory=_alert_only,
        description="What it can send: a p8 key both `alert` and `voip` (topic `<bundleId>.voip`); an "
        "Apple Push Services certificate `alert` (a universal one, whose topics extension lists "
        "`<bundleId>.voip`, both `alert` and `voip`, in the environment it is uploaded for); a VoIP "
        "Services certificate `voip` only. A device "
        "registered with `type: voip` needs a credential that serves `voip`, an alert device one that "
        "serves `alert`.",
    )

    @model_validator(mode="after")
    def _p8_serves_both(self) -> Credential:
        if self.type == "p8":  # a signing key is not bound to one topic (records stored before voip too)
            self.push_types = ["alert", "voip"]
        return self

    def serves(self, kind: PushKind) -> bool:
        return kind in self.push_types


class CredentialList(ApiModel):
    items: list[Credential]
