"""The local stack under load, as an outside tester drives it: device registrations over HTTP to
`chalice local` (threaded, as in `make run`) against one emulator process.

- 8 threads x 250 registrations moving 24 tokens between 12 users: no answer >= 500, and afterwards
  every token has exactly one owner (its token-owner item and exactly one user's ``d#<token>``).
- 3,000 registrations: the emulator's memory stays bounded (its RSS is sampled every 500).
"""

from __future__ import annotations

import random
import secrets
import threading
from collections import Counter
from typing import Any

from apns_sandbox.testing import SandboxProcess
from chalicelib.services.auth import mint_token
from tests.devstack.conftest import OPERATOR_KEY, LocalApi, process_tree_rss_bytes

BUNDLE = "com.example.chat"
RSS_LIMIT = 1_500_000_000


def new_app(api: LocalApi, sandbox: SandboxProcess) -> tuple[str, str, int]:
    """An app with a production p8 credential: (appId, admin token, certificateId)."""
    status, app = api.call("POST", "/v1/apps", {"name": "Load"}, token=OPERATOR_KEY)
    assert status == 201, app
    admin = mint_token(app["secretKey"], app["appId"], "im-server", "admin")
    key = sandbox.issue_p8([BUNDLE])
    status, cred = api.call(
        "POST",
        f"/v1/apps/{app['appId']}/credentials",
        {
            "type": "p8",
            "name": "k",
            "environment": "production",
            "p8": key["p8"],
            "keyId": key["keyId"],
            "teamId": key["teamId"],
            "bundleId": BUNDLE,
        },
        token=admin,
    )
    assert status == 201, cred
    return app["appId"], admin, cred["certificateId"]


def register(api: LocalApi, app_id: str, admin: str, cert: int, user: str, token: str) -> tuple[int, Any]:
    return api.call(
        "PUT", f"/v1/apps/{app_id}/users/{user}/devices/{token}", {"certificateId": cert}, token=admin
    )


def scan_app(api: LocalApi, app_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": api.table, "ConsistentRead": True}
    while True:
        page = api.ddb.scan(**kwargs)
        items += [i for i in page["Items"] if i["pk"]["S"].startswith((f"T#{app_id}#", f"U#{app_id}#"))]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_concurrent_registrations_moving_tokens_leave_every_token_one_owner(
    local_api: LocalApi, sandbox: SandboxProcess
) -> None:
    """Half the registrations bring a new token (the table grows), half move one of the 16 newest
    tokens to another user (threads race for the same token)."""
    app_id, admin, cert = new_app(local_api, sandbox)
    users = [f"user-{n}" for n in range(200)]
    pool = [secrets.token_hex(32) for _ in range(16)]
    statuses: Counter[int] = Counter()
    registered: set[str] = set()
    errors: list[Any] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(250):
            if rng.random() < 0.5:
                token = secrets.token_hex(32)
                with lock:
                    pool.append(token)
            else:
                with lock:
                    token = rng.choice(pool[-16:])
            status, body = register(local_api, app_id, admin, cert, rng.choice(users), token)
            with lock:
                statuses[status] += 1
                if status == 200:
                    registered.add(token)
                elif status >= 500:
                    errors.append(body)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    print(f"\n8 x 250 registrations: {dict(statuses)}")
    assert not errors, f"{len(errors)} answers >= 500, e.g. {errors[0]}"
    assert sum(statuses.values()) == 2_000
    assert set(statuses) <= {200, 409}, statuses  # 409: the token moved meanwhile, or the user is full
    items = scan_app(local_api, app_id)
    owner = {i["pk"]["S"].split("#", 2)[2]: i["userId"]["S"] for i in items if i["pk"]["S"].startswith("T#")}
    holders: dict[str, list[str]] = {}
    for i in items:
        if i["pk"]["S"].startswith("U#"):
            user = i["pk"]["S"].split("#", 2)[2]
            for attr in i:
                if attr.startswith("d#"):
                    holders.setdefault(attr[2:], []).append(user)
    assert registered == set(owner) == set(holders)
    for token in registered:
        assert holders[token] == [owner[token]], (
            f"{token[:8]}...: owner {owner[token]}, held by {holders[token]}"
        )


def test_the_emulator_memory_stays_bounded_over_3000_registrations(
    local_api: LocalApi, sandbox: SandboxProcess
) -> None:
    app_id, admin, cert = new_app(local_api, sandbox)
    pid = local_api.emulator.proc.pid
    curve = [(0, process_tree_rss_bytes(pid))]

    statuses: Counter[int] = Counter()

    def worker(seed: int, count: int) -> None:
        rng = random.Random(seed)
        own = [secrets.token_hex(32) for _ in range(count)]
        for n, token in enumerate(own):
            # every third registration moves this worker's previous token to another user
            moved = n % 3 == 2
            user = f"user-{rng.randrange(600)}"
            status, _ = register(local_api, app_id, admin, cert, user, own[n - 1] if moved else token)
            statuses[status] += 1

    for block in range(6):
        threads = [threading.Thread(target=worker, args=(block * 4 + t, 125)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rss = process_tree_rss_bytes(pid)
        curve.append(((block + 1) * 500, rss))
        assert rss < RSS_LIMIT, curve

    assert statuses == {200: 3_000}
    print("\nemulator RSS (registrations: MB): " + ", ".join(f"{n}: {rss / 1e6:.0f}" for n, rss in curve))
    assert local_api.emulator.proc.poll() is None
