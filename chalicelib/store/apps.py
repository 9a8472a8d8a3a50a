"""Apps and push credentials' metadata in DynamoDB (secret material lives in SecretStore)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.errors import Conflict
from chalicelib.models.credentials import Credential
from chalicelib.store import items, retry

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass
class AppRepository:
    client: DynamoDBClient
    table: str

    def create_app(self, app_id: str, name: str, created_at_ms: int) -> None:
        """The app item and its entry in the app registry (what the daily expiry report walks)."""
        self.client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {
                            **items.app_key(app_id),
                            **items.to_item({"name": name, "createdAt": created_at_ms}),
                        },
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {"Put": {"TableName": self.table, "Item": items.key(items.APP_REGISTRY_PK, f"A#{app_id}")}},
            ]
        )

    def app_ids(self) -> list[str]:
        return [
            item["sk"]["S"][2:]
            for item in items.query_all(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": items.APP_REGISTRY_PK}},
            )
        ]

    def list_apps(self) -> list[dict[str, Any]]:
        """Every app's item (appId, name, createdAt): the registry, then BatchGetItem of 100 keys."""
        ids = self.app_ids()
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), items.BATCH_GET_LIMIT):
            keys = [items.app_key(a) for a in ids[start : start + items.BATCH_GET_LIMIT]]
            request: dict[str, Any] = {self.table: {"Keys": keys}}
            started, rounds = time.monotonic(), 0
            while request:
                if rounds:
                    retry.pause_for_unprocessed(rounds, started)
                rounds += 1
                resp = self.client.batch_get_item(RequestItems=request)
                for item in resp.get("Responses", {}).get(self.table, []):
                    found.append({**items.from_item(item), "appId": item["pk"]["S"][2:]})
                request = dict(resp.get("UnprocessedKeys") or {})
        return found

    def get_app(self, app_id: str) -> dict[str, Any] | None:
        resp = self.client.get_item(TableName=self.table, Key=items.app_key(app_id))
        return items.from_item(resp["Item"]) if "Item" in resp else None

    def update_settings(self, app_id: str, values: dict[str, Any]) -> dict[str, Any] | None:
        """Set the given settings on the app item (None removes one); the item after, or None when the
        app does not exist. One UpdateItem: concurrent PATCHes of different settings both hold."""
        names: dict[str, str] = {}
        values_in: dict[str, Any] = {}
        sets: list[str] = []
        removes: list[str] = []
        for i, (name, value) in enumerate(values.items()):
            names[f"#s{i}"] = name
            if value is None:
                removes.append(f"#s{i}")
            else:
                sets.append(f"#s{i} = :s{i}")
                values_in[f":s{i}"] = items.serialize(value)
        clauses = ([f"SET {', '.join(sets)}"] if sets else []) + (
            [f"REMOVE {', '.join(removes)}"] if removes else []
        )
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": items.app_key(app_id),
            "UpdateExpression": " ".join(clauses),
            "ConditionExpression": "attribute_exists(pk)",
            "ExpressionAttributeNames": names,
            "ReturnValues": "ALL_NEW",
        }
        if values_in:
            update["ExpressionAttributeValues"] = values_in
        try:
            resp = self.client.update_item(**update)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return items.from_item(resp["Attributes"])

    def next_certificate_id(self, app_id: str) -> int:
        resp = self.client.update_item(
            TableName=self.table,
            Key=items.counter_key(app_id),
            UpdateExpression="ADD nextId :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(resp["Attributes"]["nextId"]["N"])

    def insert_credential(self, app_id: str, cred: Credential, secret_name: str) -> None:
        """Metadata and the unique-name marker in one transaction: a taken name is a 409."""
        meta = cred.model_dump(mode="json", by_alias=True, exclude={"expires_soon"})
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                **items.credential_name_key(app_id, cred.name),
                                "certificateId": {"N": str(cred.certificate_id)},
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                **items.credential_key(app_id, cred.certificate_id),
                                **items.to_item({**meta, "secretName": secret_name}),
                            },
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise Conflict(
                    f"a credential named '{cred.name}' already exists in this app: choose another name or "
                    "delete the old credential first"
                ) from None
            raise

    def list_credentials(self, app_id: str) -> list[dict[str, Any]]:
        return [
            items.from_item(i)
            for i in items.query_all(
                self.client,
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
                ExpressionAttributeValues={":pk": {"S": f"A#{app_id}"}, ":c": {"S": "C#"}},
            )
        ]

    def get_credential(self, app_id: str, certificate_id: int) -> dict[str, Any] | None:
        resp = self.client.get_item(
            TableName=self.table, Key=items.credential_key(app_id, certificate_id), ConsistentRead=True
        )
        return items.from_item(resp["Item"]) if "Item" in resp else None

    def credential_id_by_name(self, app_id: str, name: str) -> int | None:
        resp = self.client.get_item(
            TableName=self.table, Key=items.credential_name_key(app_id, name), ConsistentRead=True
        )
        return int(resp["Item"]["certificateId"]["N"]) if "Item" in resp else None

    def delete_credential(self, app_id: str, certificate_id: int, name: str) -> None:
        self.client.transact_write_items(
            TransactItems=[
                {"Delete": {"TableName": self.table, "Key": items.credential_key(app_id, certificate_id)}},
                {"Delete": {"TableName": self.table, "Key": items.credential_name_key(app_id, name)}},
            ]
        )
