"""Configuration: one pydantic model read from the environment once per container.

Every knob the service has is here, with its environment variable name. The
`local` stage points AWS at the embedded emulator and APNs at the sandbox;
production leaves both overrides empty.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_PACKAGE_DIR = Path(__file__).resolve().parent


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    stage: str = Field("local", alias="STAGE")
    region: str = Field("us-east-1", alias="AWS_REGION")
    table_name: str = Field("apns-push-local", alias="TABLE_NAME")
    intake_queue_name: str = Field("apns-push-intake-local", alias="INTAKE_QUEUE_NAME")
    send_queue_name: str = Field("apns-push-send-local", alias="SEND_QUEUE_NAME")
    webhook_queue_name: str = Field("apns-push-webhook-local", alias="WEBHOOK_QUEUE_NAME")
    secrets_prefix: str = Field(
        "apns-push/local/",
        alias="SECRETS_PREFIX",
        description="Every secret this service writes is named <prefix><appId>/...; IAM is scoped to it.",
    )
    aws_endpoint_url: str | None = Field(
        None, alias="AWS_ENDPOINT_OVERRIDE", description="Local only: the embedded AWS emulator."
    )

    # APNs endpoints: Apple's by default; the local stage points them at the sandbox.
    apns_production_host: str = Field("api.push.apple.com", alias="APNS_PRODUCTION_HOST")
    apns_production_port: int = Field(443, alias="APNS_PRODUCTION_PORT")
    apns_development_host: str = Field("api.sandbox.push.apple.com", alias="APNS_DEVELOPMENT_HOST")
    apns_development_port: int = Field(443, alias="APNS_DEVELOPMENT_PORT")
    apns_extra_ca_file: Path | None = Field(
        None, alias="APNS_EXTRA_CA_FILE", description="Local only: the sandbox CA, trusted for APNs TLS."
    )
    apns_request_timeout_s: float = Field(10.0, alias="APNS_REQUEST_TIMEOUT_S", gt=0)
    apns_max_connections: int = Field(4, alias="APNS_MAX_CONNECTIONS", ge=1)
    apns_idle_ping_s: float = Field(
        5.0,
        alias="APNS_IDLE_PING_S",
        gt=0,
        description="A connection that heard nothing for this long must answer a PING before it is reused.",
    )
    apns_ping_timeout_s: float = Field(
        1.0,
        alias="APNS_PING_TIMEOUT_S",
        gt=0,
        description="A connection whose PING is not answered within this is dropped for a fresh one.",
    )
    apns_concurrency: int = Field(500, alias="APNS_CONCURRENCY", ge=1)

    # Push certificates must be issued by one of these (Apple's WWDR CAs in production).
    trusted_push_issuers_file: Path = Field(
        _PACKAGE_DIR / "trust" / "apple-wwdr.pem", alias="TRUSTED_PUSH_ISSUERS_FILE"
    )

    # The operator key: a plain value (local) or the ID of a Secrets Manager secret (deployed).
    operator_key: str | None = Field(None, alias="OPERATOR_KEY", min_length=16)
    operator_key_secret_id: str | None = Field(None, alias="OPERATOR_KEY_SECRET_ID")

    max_devices_per_user: int = Field(20, alias="MAX_DEVICES_PER_USER", ge=1, le=200)
    delivery_ttl_days: int = Field(14, alias="DELIVERY_TTL_DAYS", ge=1)
    max_send_attempts: int = Field(5, alias="MAX_SEND_ATTEMPTS", ge=1, le=20)
    send_chunk_size: int = Field(250, alias="SEND_CHUNK_SIZE", ge=1, le=500)
    retry_base_delay_s: float = Field(
        5.0, alias="RETRY_BASE_DELAY_S", ge=0, description="Back-off of retried sends: base x 2^(attempt-1)."
    )
    send_lease_s: int = Field(
        120,
        alias="SEND_LEASE_S",
        ge=1,
        description="After this, a chunk claimed by a crashed invocation is retaken.",
    )
    send_function_timeout_s: int | None = Field(
        None,
        alias="SEND_FUNCTION_TIMEOUT_S",
        ge=1,
        description="The send function's timeout, set by the template: SEND_LEASE_S must exceed it.",
    )
    send_max_unrecorded: int = Field(
        20,
        alias="SEND_MAX_UNRECORDED",
        ge=1,
        le=10_000,
        description="Sends whose outcome is not yet written, per invocation: the most a crash can "
        "make a takeover send twice. Higher = faster sends, more possible duplicates.",
    )
    send_checkpoint_ms: int = Field(
        50,
        alias="SEND_CHECKPOINT_MS",
        ge=10,
        le=5000,
        description="A chunk's outcomes are written at most this long after they are known ...",
    )
    send_checkpoint_outcomes: int = Field(
        20,
        alias="SEND_CHECKPOINT_OUTCOMES",
        ge=1,
        le=1000,
        description="... or as soon as this many wait (or every send of the chunk that left has answered): "
        "at most SEND_MAX_UNRECORDED, as no more can wait; 20 sends' outcomes fit one 1 KB write unit.",
    )
    foreground_lease_default_s: int = Field(
        300,
        alias="FOREGROUND_LEASE_DEFAULT_S",
        ge=10,
        le=86_400,
        description="How long a foreground report holds when it names no leaseSeconds; then the user "
        "counts as offline (pushed) until the app reports again.",
    )
    webhook_timeout_s: float = Field(
        5.0, alias="WEBHOOK_TIMEOUT_S", gt=0, le=20, description="How long a receiver has to answer."
    )
    webhook_retry_base_s: int = Field(
        10,
        alias="WEBHOOK_RETRY_BASE_S",
        ge=0,
        le=60,
        description="A failed webhook request is tried again after base x 2^(n-1) s (at most 900 s) ...",
    )
    webhook_retry_for_s: int = Field(
        3900,
        alias="WEBHOOK_RETRY_FOR_S",
        ge=0,
        description="... until this long after its first try; then it goes to the webhook dead-letter queue.",
    )
    metrics_namespace: str = Field("ApnsPush", alias="POWERTOOLS_METRICS_NAMESPACE")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", alias="LOG_LEVEL")

    @model_validator(mode="after")
    def _lease_outlives_the_invocation(self) -> Settings:
        timeout = self.send_function_timeout_s
        if timeout is not None and self.send_lease_s <= timeout:
            raise ValueError(
                f"SEND_LEASE_S={self.send_lease_s} must exceed the send function's timeout "
                f"(SEND_FUNCTION_TIMEOUT_S={timeout}): a chunk's lease would run out while the invocation "
                f"holding it still sends, and another would send it again; let the template derive it "
                f"(infra/stack.py) or set it above {timeout}"
            )
        return self

    @field_validator("aws_endpoint_url", "operator_key", "operator_key_secret_id", mode="before")
    @classmethod
    def _empty_is_none(cls, v: object) -> object:
        return None if v == "" else v

    @field_validator("apns_extra_ca_file", "trusted_push_issuers_file", mode="before")
    @classmethod
    def _relative_to_project(cls, v: object) -> object:
        # Chalice's local stage runs from the project directory; Lambda from /var/task.
        if v in (None, ""):
            return None
        path = Path(str(v))
        return path if path.is_absolute() else Path.cwd() / path

    @property
    def is_local(self) -> bool:
        return self.aws_endpoint_url is not None


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read settings from an environment mapping (the process environment by default)."""
    return Settings.model_validate(dict(os.environ if environ is None else environ))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this container, read once."""
    return load_settings()
