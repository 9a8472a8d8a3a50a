"""Daily statistics: one small item per app per UTC day, written only with ``ADD``.

| item      | pk            | sk                  | attributes                                            |
|-----------|---------------|---------------------|-------------------------------------------------------|
| day stats | ``ST#<appId>``| ``D#<YYYY-MM-DD>``  | ``messages sent delivered opened s#<reason> f#<code>`` |

Counters are flat top-level numbers (``s#online``, ``f#Unregistered``): ``ADD`` on a path inside
a map fails while the map does not exist. The send path (the attempt runner) adds a chunk attempt's
counts right after its fenced finish, with the attempt as writer key, so a replayed or taken-over
chunk counts once (docs/insight.md); a range of days is one Query of one partition.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from chalicelib.models.stats import DayCounts
from chalicelib.store import items

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

STATS_TTL_DAYS = 400
SKIPPED = "s#"
FAILED = "f#"
_PLAIN = ("messages", "sent", "delivered", "opened")


def utc_day(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()


def stats_pk(app_id: str) -> str:
    return f"ST#{app_id}"


def day_sk(day: dt.date) -> str:
    return f"D#{day.isoformat()}"


@dataclass
class StatsRepository:
    client: DynamoDBClient
    table: str

    def update_spec(
        self, app_id: str, day: dt.date, counts: DayCounts, writer: str | None = None
    ) -> dict[str, Any]:
        """The ADD of ``counts`` to the app's day item: UpdateItem arguments, also usable as the
        ``Update`` entry of a TransactWriteItems. ``writer``: a key unique to what is being counted,
        kept as the item's last writer; the ADD is refused when it already is (a retry of this very
        call after AWS applied it and answered 500)."""
        names: dict[str, str] = {"#ttl": "ttl"}
        values: dict[str, Any] = {}
        adds: list[str] = []
        numbered = [(name, getattr(counts, name)) for name in _PLAIN]
        numbered += [(SKIPPED + r, n) for r, n in sorted(counts.skipped.items())]
        numbered += [(FAILED + c, n) for c, n in sorted(counts.failed.items())]
        for i, (name, n) in enumerate(x for x in numbered if x[1]):
            names[f"#a{i}"] = name
            values[f":a{i}"] = {"N": str(n)}
            adds.append(f"#a{i} :a{i}")
        expires = dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() + STATS_TTL_DAYS * 86400
        values[":ttl"] = {"N": str(int(expires))}
        expression = "SET #ttl = if_not_exists(#ttl, :ttl)"
        spec: dict[str, Any] = {}
        if writer is not None:
            names["#w"] = "w"
            values[":w"] = {"S": writer}
            expression += ", #w = :w"
            spec["ConditionExpression"] = "attribute_not_exists(#w) OR #w <> :w"
        if adds:
            expression += " ADD " + ", ".join(adds)
        return {
            "TableName": self.table,
            "Key": items.key(stats_pk(app_id), day_sk(day)),
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            **spec,
        }

    def add(self, app_id: str, day: dt.date, counts: DayCounts, writer: str | None = None) -> None:
        """One UpdateItem ADD (nothing when every count is zero); see ``update_spec`` for ``writer``."""
        if counts.empty:
            return
        try:
            self.client.update_item(**self.update_spec(app_id, day, counts, writer))
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            log.info("stats of %s were added already (a retried write)", writer)

    def days(self, app_id: str, first: dt.date, last: dt.date) -> dict[dt.date, DayCounts]:
        """The stored days between first and last (inclusive); days with nothing are absent."""
        out: dict[dt.date, DayCounts] = {}
        for raw in items.query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :a AND :b",
            ExpressionAttributeValues={
                ":pk": {"S": stats_pk(app_id)},
                ":a": {"S": day_sk(first)},
                ":b": {"S": day_sk(last)},
            },
        ):
            plain = items.from_item(raw)
            day = dt.date.fromisoformat(str(plain["sk"])[2:])
            out[day] = counts_of(plain)
        return out


def counts_of(plain: dict[str, Any]) -> DayCounts:
    """A day item (plain values) as DayCounts."""
    return DayCounts(
        messages=int(plain.get("messages", 0)),
        sent=int(plain.get("sent", 0)),
        delivered=int(plain.get("delivered", 0)),
        opened=int(plain.get("opened", 0)),
        skipped={k[2:]: int(v) for k, v in sorted(plain.items()) if k.startswith(SKIPPED) and v},
        failed={k[2:]: int(v) for k, v in sorted(plain.items()) if k.startswith(FAILED) and v},
    )
