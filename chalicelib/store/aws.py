"""boto3 clients, built lazily once per container and reused across warm invocations.

Their retries are the store's one policy (``retry``: full jitter, bounded by the invocation's
deadline), in place of botocore's own."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from chalicelib.settings import Settings, get_settings
from chalicelib.store import retry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient

# Short timeouts: a hung AWS call fails inside the API function's 10 s instead of botocore's 60 s default.
_CONFIG = Config(
    retries={"mode": "standard"},  # its handler is replaced by the store's policy (retry.install)
    max_pool_connections=32,
    connect_timeout=2,
    read_timeout=5,
)


def _client(service: str, settings: Settings) -> Any:
    return retry.install(
        boto3.session.Session().client(
            service,  # type: ignore[call-overload]
            region_name=settings.region,
            endpoint_url=settings.aws_endpoint_url,
            config=_CONFIG,
        )
    )


@lru_cache(maxsize=4)
def dynamodb(settings: Settings | None = None) -> DynamoDBClient:
    client: DynamoDBClient = _client("dynamodb", settings or get_settings())
    return client


@lru_cache(maxsize=4)
def sqs(settings: Settings | None = None) -> SQSClient:
    client: SQSClient = _client("sqs", settings or get_settings())
    return client


@lru_cache(maxsize=4)
def secretsmanager(settings: Settings | None = None) -> SecretsManagerClient:
    client: SecretsManagerClient = _client("secretsmanager", settings or get_settings())
    return client
