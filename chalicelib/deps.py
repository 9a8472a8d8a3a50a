"""The object graph: repositories and services built once per container from Settings.

Handlers ask ``services()`` for what they need; tests reset it with
``services.cache_clear()`` after changing the environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from chalicelib.errors import NotConfigured
from chalicelib.services.apps import AppService
from chalicelib.services.auth import Principal, authenticate
from chalicelib.services.credentials import CredentialService
from chalicelib.services.fanout import FanoutService
from chalicelib.services.message_list import MessageListService
from chalicelib.services.messages import MessageService
from chalicelib.services.settings import SettingsService
from chalicelib.services.stats import StatsService
from chalicelib.services.users import UserService
from chalicelib.settings import Settings, get_settings
from chalicelib.store import aws
from chalicelib.store.apps import AppRepository
from chalicelib.store.deliveries import DeliveryRepository
from chalicelib.store.groups import GroupRepository
from chalicelib.store.message_index import MessageIndexRepository
from chalicelib.store.queues import Queues
from chalicelib.store.secrets import SecretStore
from chalicelib.store.stats import StatsRepository
from chalicelib.store.users import UserRepository

if TYPE_CHECKING:
    from chalicelib.services.send.chunk import SendService
    from chalicelib.services.send.replace import ReplaceService
    from chalicelib.services.send.wing import SendWing


@dataclass
class Services:
    settings: Settings
    secrets: SecretStore
    apps: AppService
    credentials: CredentialService
    users: UserService
    user_repo: UserRepository
    app_repo: AppRepository
    groups: GroupRepository
    deliveries: DeliveryRepository
    queues: Queues
    fanout: FanoutService
    messages: MessageService
    settings_service: SettingsService
    stats_repo: StatsRepository
    stats: StatsService
    message_list: MessageListService

    @cached_property
    def send_wing(self) -> SendWing:
        """Built on first use: only the send function imports aioapns (cold start of the others)."""
        from chalicelib.apns.client import ApnsClients
        from chalicelib.services.send.wing import SendWing
        from chalicelib.store.dynamo_async import AsyncDynamo

        return SendWing(
            self.settings,
            self.user_repo,
            self.credentials,
            self.deliveries,
            self.queues,
            ApnsClients(self.settings),
            AsyncDynamo(self.settings),
            lease_ms=self.settings.send_lease_s * 1000,
            stats=self.stats_repo,
        )

    @cached_property
    def sender(self) -> SendService:
        from chalicelib.services.send.chunk import SendService

        return SendService(self.send_wing)

    @cached_property
    def replacer(self) -> ReplaceService:
        """Recalls' and edits' replacements, sent with the same wing: clients, permits, retry policy."""
        from chalicelib.services.send.replace import ReplaceService

        return ReplaceService(self.send_wing)

    def operator_key(self) -> str | None:
        if self.settings.operator_key:
            return self.settings.operator_key
        if self.settings.operator_key_secret_id:
            value = self.secrets.get(self.settings.operator_key_secret_id)
            return None if value is None else str(value.get("operatorKey") or "") or None
        return None

    def authenticate(self, header: str | None) -> Principal:
        key = self.operator_key()
        if key is None and not self.settings.operator_key_secret_id and not self.settings.is_local:
            raise NotConfigured("no operator key is configured: set OPERATOR_KEY_SECRET_ID")
        return authenticate(header, key, self.apps.signing_keys)


@lru_cache(maxsize=1)
def services() -> Services:
    settings = get_settings()
    ddb = aws.dynamodb(settings)
    secrets = SecretStore(aws.secretsmanager(settings), settings.secrets_prefix)
    app_repo = AppRepository(ddb, settings.table_name)
    user_repo = UserRepository(
        ddb,
        settings.table_name,
        max_devices=settings.max_devices_per_user,
        default_lease_s=settings.foreground_lease_default_s,
    )
    credentials = CredentialService(app_repo, secrets, settings.trusted_push_issuers_file)
    groups = GroupRepository(ddb, settings.table_name)
    deliveries = DeliveryRepository(ddb, settings.table_name, ttl_s=settings.delivery_ttl_days * 86400)
    queues = Queues(aws.sqs(settings), settings.intake_queue_name, settings.send_queue_name)
    stats_repo = StatsRepository(ddb, settings.table_name)
    message_index = MessageIndexRepository(ddb, settings.table_name, ttl_s=settings.delivery_ttl_days * 86400)
    settings_service = SettingsService(app_repo, is_local=settings.is_local)
    return Services(
        settings=settings,
        secrets=secrets,
        apps=AppService(app_repo, secrets),
        credentials=credentials,
        users=UserService(
            user_repo,
            credentials,
            default_lease_s=settings.foreground_lease_default_s,
            settings=settings_service,
        ),
        user_repo=user_repo,
        app_repo=app_repo,
        groups=groups,
        deliveries=deliveries,
        queues=queues,
        fanout=FanoutService(
            groups,
            deliveries,
            queues,
            user_repo,
            app_repo,
            chunk_size=settings.send_chunk_size,
            index=message_index,
            stats=stats_repo,
        ),
        messages=MessageService(queues, deliveries, groups, settings=settings_service),
        settings_service=settings_service,
        stats_repo=stats_repo,
        stats=StatsService(stats_repo),
        message_list=MessageListService(message_index, deliveries, retention_days=settings.delivery_ttl_days),
    )


def reset() -> None:
    """Forget every cached client and service (tests, after changing the environment)."""
    services.cache_clear()
    get_settings.cache_clear()
    aws.dynamodb.cache_clear()
    aws.sqs.cache_clear()
    aws.secretsmanager.cache_clear()
