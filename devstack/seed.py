"""Many users with one device each, written straight to the table (BatchWriteItem).

The API registers a device with a transaction per token, which is right for
people and slow for a thousand synthetic users; benchmarks and crash tests use
this instead. It writes the same items the API would (see chalicelib/store).
"""

from __future__ import annotations

import time
from typing import Any

from chalicelib.store import items
from chalicelib.store.user_fold import FOLD, MARKS


def seed_users(
    ddb: Any,
    table: str,
    app_id: str,
    cert_id: int,
    bundle_id: str,
    tokens: list[str],
    prefix: str = "user",
    badge: int = 3,
) -> list[str]:
    """One background user per token (``<prefix>000000`` ...), each with that device (one folded user
    item with its state and badge, as chalicelib/store/users.py keeps them); their IDs."""
    now = int(time.time() * 1000)
    users = [f"{prefix}{i:06d}" for i in range(len(tokens))]
    requests = []
    for user, token in zip(users, tokens, strict=True):
        item = {
            **items.user_key(app_id, user),
            **items.to_item(
                {
                    items.DEVICE_PREFIX + token: {
                        "certificateId": cert_id,
                        "bundleId": bundle_id,
                        "environment": "production",
                        "pushEnabled": True,
                        "registeredAt": now,
                    },
                    "appState": "background",
                    "badge": badge,
                    "stateAt": now,
                    FOLD: 1,
                }
            ),
            MARKS: {"M": {}},
        }
        requests.append({"PutRequest": {"Item": item}})
    items.batch_write(ddb, table, requests)
    return users


def bulk_devices(sandbox: Any, bundle_id: str, n: int) -> list[str]:
    """n simulated phones in the APNs sandbox, in one call."""
    resp = sandbox.request(
        "POST", "/sandbox/devices", {"bundleId": bundle_id, "environment": "production", "count": n}
    )
    return list(resp["deviceTokens"])
