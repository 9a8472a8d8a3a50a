"""The last webhook deliveries of each app (what the console shows): one small item per POST,
``A#<appId>`` / ``WH#<epoch ms>#<nonce>``, kept 7 days; read newest first."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.store import items

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

LOG_PREFIX = "WH#"
LOG_TTL_S = 7 * 86400
LOG_LIMIT = 20


@dataclass
class WebhookLog:
    client: DynamoDBClient
    table: str

    def record(self, app_id: str, entry: dict[str, Any]) -> None:
        """One PutItem (< 1 KB: 1 write unit) per POST made."""
        at = int(entry["at"])
        item = {**entry, "ttl": at // 1000 + LOG_TTL_S}
        self.client.put_item(
            TableName=self.table,
            Item={
                **items.key(f"A#{app_id}", f"{LOG_PREFIX}{at:013d}#{secrets.token_hex(3)}"),
                **items.to_item(item),
            },
        )

    def latest(self, app_id: str, limit: int = LOG_LIMIT) -> list[dict[str, Any]]:
        resp = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
            ExpressionAttributeValues={":pk": {"S": f"A#{app_id}"}, ":p": {"S": LOG_PREFIX}},
            ScanIndexForward=False,
            Limit=limit,
        )
        out = []
        for raw in resp.get("Items", []):
            plain = items.from_item(raw)
            for k in ("pk", "sk", "ttl"):
                plain.pop(k, None)
            out.append(plain)
        return out
