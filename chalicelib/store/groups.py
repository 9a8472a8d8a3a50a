"""Stored group membership, for groups too large to list in every message event."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.store import items

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class Member:
    user_id: str
    name_card: str | None = None


@dataclass
class GroupRepository:
    client: DynamoDBClient
    table: str

    def change(self, app_id: str, group_id: str, add: list[Member], remove: list[str]) -> None:
        pk = items.group_pk(app_id, group_id)
        requests: list[dict[str, Any]] = [
            {
                "PutRequest": {
                    "Item": items.to_item({"pk": pk, "sk": f"M#{m.user_id}", "nameCard": m.name_card})
                }
            }
            for m in add
        ]
        requests += [{"DeleteRequest": {"Key": items.key(pk, f"M#{u}")}} for u in remove]
        items.batch_write(self.client, self.table, requests)

    def page(
        self, app_id: str, group_id: str, cursor: str | None, limit: int
    ) -> tuple[list[Member], str | None]:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :m)",
            "ExpressionAttributeValues": {":pk": {"S": items.group_pk(app_id, group_id)}, ":m": {"S": "M#"}},
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = items.decode_cursor(cursor, items.group_pk(app_id, group_id), "M#")
        resp = self.client.query(**kwargs)
        members = [
            Member(user_id=i["sk"]["S"][2:], name_card=i.get("nameCard", {}).get("S")) for i in resp["Items"]
        ]
        last = resp.get("LastEvaluatedKey")
        return members, items.encode_cursor(last) if last else None

    def all_members(self, app_id: str, group_id: str) -> Iterator[Member]:
        cursor: str | None = None
        while True:
            members, cursor = self.page(app_id, group_id, cursor, 1000)
            yield from members
            if cursor is None:
                return

    def name_card(self, app_id: str, group_id: str, user_id: str) -> str | None:
        resp = self.client.get_item(
            TableName=self.table, Key=items.key(items.group_pk(app_id, group_id), f"M#{user_id}")
        )
        card = resp.get("Item", {}).get("nameCard", {}).get("S")
        return str(card) if card else None
