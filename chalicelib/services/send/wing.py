"""The send wing's rooms, built once per container and shared by chunks and replacement jobs (one
APNs gateway with its connections and pause, one permit semaphore, one retry policy)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from chalicelib import clock
from chalicelib.apns.client import ApnsClients
from chalicelib.services.credentials import CredentialService
from chalicelib.services.send.attempt import AttemptRunner
from chalicelib.services.send.badges import Badges
from chalicelib.services.send.credentials import CredentialCache
from chalicelib.services.send.deliver import Delivery
from chalicelib.services.send.gateway import ApnsGateway
from chalicelib.services.send.plan import Planner
from chalicelib.services.send.retry import RetryPolicy
from chalicelib.services.send.settle import Settler
from chalicelib.settings import Settings
from chalicelib.store.badges import BadgeCounter
from chalicelib.store.deliveries import DeliveryRepository
from chalicelib.store.dynamo_async import AsyncDynamo
from chalicelib.store.queues import Queues
from chalicelib.store.send_ledger import SendLedger
from chalicelib.store.stats import StatsRepository
from chalicelib.store.users import UserRepository


@dataclass
class SendWing:
    settings: Settings
    users: UserRepository
    credentials: CredentialService
    deliveries: DeliveryRepository
    queues: Queues
    clients: ApnsClients
    dynamo: AsyncDynamo
    clock_ms: Callable[[], int] = clock.now_ms
    lease_ms: int = 120_000
    stats: StatsRepository | None = None  # daily statistics (the attempt runner adds to them)
    ledger: SendLedger = field(init=False)
    runner: AttemptRunner = field(init=False)
    badges: Badges = field(init=False)
    planner: Planner = field(init=False)
    gateway: ApnsGateway = field(init=False)
    delivery: Delivery = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = SendLedger(self.deliveries, self.dynamo, self.lease_ms, self.clock_ms)
        self.runner = AttemptRunner(self.settings, self.ledger, self.stats)
        self.badges = Badges(BadgeCounter(self.users, self.dynamo), self.ledger)
        self.planner = Planner(self.users, self.ledger, self.badges)
        self.gateway = ApnsGateway(self.settings, self.clients, CredentialCache(self.credentials))
        self.delivery = Delivery(
            self.runner,
            self.gateway,
            Settler(self.users, self.clock_ms),
            RetryPolicy(self.settings, self.ledger, self.queues),
        )
