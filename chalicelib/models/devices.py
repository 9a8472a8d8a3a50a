"""Device token registrations (SPEC section 2, Tencent setAPNS / Agora bindDeviceToken)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from chalicelib.models.base import ApiModel
from chalicelib.models.credentials import Environment

# alert = the token of didRegisterForRemoteNotificationsWithDeviceToken; voip = a PushKit token
# (PKPushRegistry, desiredPushTypes .voIP), which only call events are sent to.
DeviceType = Literal["alert", "voip"]

TOKEN_RE = re.compile(r"^(?:[0-9a-fA-F]{2}){32,100}$")


def normalize_token(token: str) -> str:
    """APNs device tokens are hex: 64 chars today, longer even-length hex is accepted."""
    if not TOKEN_RE.match(token):
        raise ValueError(
            "a device token is the hex string of the token iOS gave the app in "
            "didRegisterForRemoteNotificationsWithDeviceToken (64 hex characters today; longer "
            "even-length hex is accepted): no spaces, brackets or base64"
        )
    return token.lower()


class DeviceRegistration(ApiModel):
    """Register a token for a user, referring to a credential by ID or by name."""

    certificate_id: int | None = Field(
        None,
        ge=1,
        description="The credential's numeric ID (Tencent businessID). 0 (a TPNS registration: seed "
        "001's `businessID = 0` with `isTPNSToken`) is a 400: TPNS tokens are not served; register the "
        "APNs device token with its certificate's ID.",
    )
    certificate_name: str | None = Field(
        None, min_length=1, max_length=64, description="Or its name (Agora)."
    )
    push_enabled: bool = Field(
        True, description="false = registered but no offline push for this device (Tencent setAPNS(nil))."
    )
    type: DeviceType = Field(
        "alert",
        description="`alert` (default): an ordinary APNs token, pushed every message. `voip`: a PushKit "
        "token; it gets call events only (apns-push-type voip, topic `<bundleId>.voip`), and a user with "
        "an active voip token gets call events there only. Ordinary messages skip it (device skip "
        "reason `voipToken`). A voip token needs a p8 key, a VoIP Services certificate or a universal "
        "Apple Push Services certificate.",
    )

    @field_validator("certificate_id", mode="before")
    @classmethod
    def _not_tpns(cls, value: object) -> object:
        if value == 0 and not isinstance(value, bool):
            raise ValueError(
                "certificateId 0 is a TPNS registration (businessID = 0, isTPNSToken): TPNS tokens are "
                "not served here. Register the APNs device token (from didRegisterForRemoteNotifications"
                "WithDeviceToken, not the TPNS/XG token) with the certificateId of the push certificate "
                "you uploaded (GET /v1/apps/{appId}/credentials lists them)"
            )
        return value

    @model_validator(mode="after")
    def _one_reference(self) -> DeviceRegistration:
        if (self.certificate_id is None) == (self.certificate_name is None):
            raise ValueError(
                "give exactly one of certificateId (the numeric ID from the credentials API) or "
                "certificateName"
            )
        return self


class Device(ApiModel):
    device_token: str
    user_id: str
    certificate_id: int
    bundle_id: str
    environment: Environment
    push_enabled: bool = True
    type: DeviceType = Field("alert", description="alert (an APNs token) or voip (a PushKit token).")
    registered_at: datetime
    invalid_reason: str | None = Field(
        None,
        description="Set when APNs refused the token (e.g. a development token, production credential).",
    )


class DeviceList(ApiModel):
    items: list[Device]
