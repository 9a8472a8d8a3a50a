"""What DynamoDB and SQS would bill for the calls a piece of code makes, computed from item sizes.

The emulator's ConsumedCapacity is not real, so the meter applies DynamoDB's documented
rules itself (Developer Guide, "Item sizes and formats" and "Read/write capacity mode"):

- item size = for each attribute, the UTF-8 length of its name + the size of its value:
  string = UTF-8 bytes, binary = raw bytes, number = ceil(significant digits / 2) + 1,
  boolean / null = 1, list / map = 3 bytes + each element (+1 byte per element; map keys count
  like attribute names), sets = the sum of their elements;
- PutItem / UpdateItem / DeleteItem (and each BatchWriteItem request): ceil(max(size before,
  size after) / 1 KB) write units, at least 1; a write refused by its condition still costs
  the size of the item as it is (at least 1); TransactWriteItems: twice that per item;
- GetItem / BatchGetItem: per key ceil(size / 4 KB) read units, at least 1 (a missing key too),
  half that when eventually consistent; TransactGetItems: twice; Query / Scan: ceil(sum of the
  sizes of the items read / 4 KB), at least 1, halved when eventually consistent. A projection
  or filter does not make a read cheaper: the full items are what is billed.

Sizes "before" and "after" a write come from a separate, unhooked client (``probe``) that
reads the item(s) around the call, so the meter is generic: it knows nothing of item shapes.
This slows the calls down; meter separately from timing runs.

SQS: every API call is a request; a batch call is one request; each 64 KB of payload is
billed as one more (``ceil(payload / 64 KB)``).
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

KB = 1024
WRITE_UNIT = 1 * KB
READ_UNIT = 4 * KB
SQS_PAYLOAD_UNIT = 64 * KB

_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
_READS = {"GetItem", "BatchGetItem", "TransactGetItems", "Query", "Scan"}


# ---- sizes ------------------------------------------------------------------------------------


def number_size(text: str | int | float | Decimal) -> int:
    """ceil(significant digits / 2) + 1 bytes (leading and trailing zeros do not count)."""
    digits = str(text).lstrip("+-").lower().split("e")[0].replace(".", "").strip("0")
    return math.ceil(len(digits) / 2) + 1 if digits else 2  # zero: counted as one digit


def value_size(value: dict[str, Any]) -> int:
    """The size of one DynamoDB AttributeValue (``{"S": ...}``, ``{"M": {...}}`` ...)."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "B":
        return len(v) if isinstance(v, bytes | bytearray) else len(str(v).encode())
    if kind == "N":
        return number_size(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode()) for s in v)
    if kind == "NS":
        return sum(number_size(n) for n in v)
    if kind == "BS":
        return sum(len(b) for b in v)
    if kind == "L":
        return 3 + sum(value_size(e) + 1 for e in v)
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(e) + 1 for k, e in v.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def item_size(item: dict[str, Any] | None) -> int:
    """The billed size of an item in DynamoDB JSON (0 for no item)."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(v) for name, v in item.items())


def write_units(before: int, after: int) -> int:
    return max(1, math.ceil(max(before, after) / WRITE_UNIT))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT))
    return units if consistent else units / 2


def kind_of(key: dict[str, Any]) -> str:
    """A generic label for an item from its key: the partition key's first ``#`` part, the sort
    key without numbers and hex runs (``U#app#user7, U`` -> ``U/U``; ``M#app#m1, K#000001.00#P0003``
    -> ``M/K#.#P``)."""
    values = [str(next(iter(v.values()))) for v in key.values()]
    parts = [values[0].split("#", 1)[0]] + [re.sub(r"[0-9a-f]{16,}|\d+", "", v)[:24] for v in values[1:]]
    return "/".join(parts)


# ---- the meter --------------------------------------------------------------------------------


@dataclass
class Totals:
    wru: float = 0.0
    rru: float = 0.0
    calls: Counter[str] = field(default_factory=Counter)
    wru_by_kind: Counter[str] = field(default_factory=Counter)  # "<op> <item kind>"
    rru_by_kind: Counter[str] = field(default_factory=Counter)
    sqs_requests: Counter[str] = field(default_factory=Counter)  # by "<label>.<operation>"
    sqs_empty_receives: int = 0

    @property
    def sqs_total(self) -> int:
        return sum(self.sqs_requests.values())

    @classmethod
    def combined(cls, parts: Iterable[Totals]) -> Totals:
        out = cls()
        for p in parts:
            out.wru += p.wru
            out.rru += p.rru
            out.calls += p.calls
            out.wru_by_kind += p.wru_by_kind
            out.rru_by_kind += p.rru_by_kind
            out.sqs_requests += p.sqs_requests
            out.sqs_empty_receives += p.sqs_empty_receives
        return out


class CostMeter:
    """Hooks DynamoDB clients (boto3 and the send path's asyncio one) and SQS clients; adds up
    what DynamoDB would bill by its size rules and how many SQS requests were made."""

    def __init__(self, probe: Any) -> None:
        self.probe = probe
        self.phases: dict[str, Totals] = {}
        self.phase = "other"  # which function is running (set by the caller): totals are kept per phase
        self.enabled = True
        self._lock = threading.Lock()
        self._keys: dict[str, list[str]] = {}
        self._async_state: dict[int, Any] = {}
        self.warnings: list[str] = []

    def reset(self) -> dict[str, Totals]:
        """The totals per phase so far; starts again from zero."""
        with self._lock:
            done, self.phases = self.phases, {}
        return done

    @property
    def totals(self) -> Totals:
        return self.phases.setdefault(self.phase, Totals())

    # -- attaching --

    def attach_dynamodb(self, client: Any) -> None:
        client.meta.events.register("before-parameter-build.dynamodb", self._boto_before)
        client.meta.events.register("after-call.dynamodb", self._boto_after)

    def attach_async(self, dynamo: Any) -> None:
        """The send path's AsyncDynamo (hooks called with (action, payload, response))."""
        dynamo.before_call.append(self._async_before)
        dynamo.after_call.append(self._async_after)

    def attach_sqs(self, client: Any, label: str) -> None:
        def before(model: Any, params: Any, **_: Any) -> None:
            if not self.enabled:
                return
            body = params.get("body") or b""
            size = len(body if isinstance(body, bytes) else str(body).encode())
            with self._lock:
                self.totals.sqs_requests[f"{label}.{model.name}"] += max(
                    1, math.ceil(size / SQS_PAYLOAD_UNIT)
                )

        def after(model: Any, http_response: Any, parsed: Any, **_: Any) -> None:
            if not self.enabled or model.name != "ReceiveMessage":
                return
            extra = math.ceil(len(http_response.content or b"") / SQS_PAYLOAD_UNIT) - 1
            with self._lock:
                if not parsed.get("Messages"):
                    self.totals.sqs_empty_receives += 1
                if extra > 0:
                    self.totals.sqs_requests[f"{label}.{model.name}"] += extra

        client.meta.events.register("before-call.sqs", before)
        client.meta.events.register("after-call.sqs", after)

    # -- hooks --

    def _boto_before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        if not self.enabled:
            return
        context["cost_meter_params"] = params
        if model.name in _WRITES:
            context["cost_meter_before"] = self._sizes(self._write_keys(model.name, params))

    def _boto_after(
        self, model: Any, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any
    ) -> None:
        if not self.enabled or (model.name not in _WRITES and model.name not in _READS):
            return
        failed = http_response.status_code >= 300
        params = context.get("cost_meter_params")
        if params is None:
            return
        self._account(model.name, params, parsed, context.get("cost_meter_before"), failed)

    def _async_before(self, action: str, payload: dict[str, Any], _resp: Any) -> None:
        if self.enabled and action in _WRITES:
            self._async_state[id(payload)] = self._sizes(self._write_keys(action, payload))

    def _async_after(self, action: str, payload: dict[str, Any], response: dict[str, Any] | None) -> None:
        if self.enabled and (action in _WRITES or action in _READS):
            self._account(action, payload, response or {}, self._async_state.pop(id(payload), None), False)

    # -- accounting --

    def _account(
        self,
        op: str,
        params: dict[str, Any],
        parsed: dict[str, Any],
        before: list[tuple[str, dict[str, Any], int]] | None,
        failed: bool,
    ) -> None:
        wru: list[tuple[str, float]] = []
        rru: list[tuple[str, float]] = []
        if op in _WRITES and before is not None:
            factor = 2 if op == "TransactWriteItems" else 1
            if failed:
                code = parsed.get("Error", {}).get("Code", "")
                if code in ("ConditionalCheckFailedException", "TransactionCanceledException"):
                    wru = [(kind_of(k), factor * write_units(size, 0)) for _, k, size in before]
            else:
                skip = self._unprocessed_writes(parsed)
                kept = [(t, k, s) for t, k, s in before if (t, _freeze(k)) not in skip]
                after = self._sizes([(t, k) for t, k, _ in kept])
                wru = [
                    (kind_of(k), factor * write_units(b, a))
                    for (_, k, b), (_, _, a) in zip(kept, after, strict=True)
                ]
        elif op in _READS and not failed:
            rru = self._reads(op, params, parsed)
        with self._lock:
            self.totals.calls[op] += 1
            for kind, units in wru:
                self.totals.wru += units
                self.totals.wru_by_kind[f"{op} {kind}"] += units
            for kind, units in rru:
                self.totals.rru += units
                self.totals.rru_by_kind[f"{op} {kind}"] += units

    def _reads(self, op: str, params: dict[str, Any], parsed: dict[str, Any]) -> list[tuple[str, float]]:
        if op == "GetItem":
            table, key = params["TableName"], params["Key"]
            ((_, _, size),) = self._sizes([(table, key)])
            return [(kind_of(key), read_units(size, bool(params.get("ConsistentRead"))))]
        if op == "BatchGetItem":
            out = []
            left = {
                (t, _freeze(k))
                for t, spec in (parsed.get("UnprocessedKeys") or {}).items()
                for k in spec["Keys"]
            }
            for table, spec in params["RequestItems"].items():
                keys = [k for k in spec["Keys"] if (table, _freeze(k)) not in left]
                consistent = bool(spec.get("ConsistentRead"))
                out += [
                    (kind_of(k), read_units(s, consistent))
                    for _, k, s in self._sizes([(table, k) for k in keys])
                ]
            return out
        if op == "TransactGetItems":
            pairs = [(g["Get"]["TableName"], g["Get"]["Key"]) for g in params["TransactItems"]]
            return [(kind_of(k), 2 * read_units(s, True)) for _, k, s in self._sizes(pairs)]
        # Query / Scan: the same page again, whole items, no filter.
        request = {
            k: v
            for k, v in params.items()
            if k
            not in (
                "ProjectionExpression",
                "FilterExpression",
                "Select",
                "AttributesToGet",
                "ReturnConsumedCapacity",
            )
        }
        expr = request.get("KeyConditionExpression", "")
        for name in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
            used = {
                k: v for k, v in request.get(name, {}).items() if re.search(re.escape(k) + r"(?!\w)", expr)
            }
            if used:
                request[name] = used
            else:
                request.pop(name, None)
        page = getattr(self.probe, "query" if op == "Query" else "scan")(**request)
        found = page.get("Items", [])
        size = sum(item_size(i) for i in found)
        kind = kind_of({a: found[0][a] for a in self._key_names(params["TableName"])}) if found else "(none)"
        return [(kind, read_units(size, bool(params.get("ConsistentRead"))))]

    def _write_keys(self, op: str, params: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        if op in ("PutItem", "UpdateItem", "DeleteItem"):
            table = params["TableName"]
            return [(table, self._key(table, params.get("Key") or params["Item"]))]
        if op == "BatchWriteItem":
            out = []
            for table, requests in params["RequestItems"].items():
                for r in requests:
                    item = r["PutRequest"]["Item"] if "PutRequest" in r else r["DeleteRequest"]["Key"]
                    out.append((table, self._key(table, item)))
            return out
        out = []
        for entry in params["TransactItems"]:
            ((_, spec),) = entry.items()
            table = spec["TableName"]
            out.append((table, self._key(table, spec.get("Key") or spec["Item"])))
        return out

    def _unprocessed_writes(self, parsed: dict[str, Any]) -> set[tuple[str, str]]:
        out = set()
        for table, requests in (parsed.get("UnprocessedItems") or {}).items():
            for r in requests:
                item = r["PutRequest"]["Item"] if "PutRequest" in r else r["DeleteRequest"]["Key"]
                out.add((table, _freeze(self._key(table, item))))
        return out

    def _key_names(self, table: str) -> list[str]:
        if table not in self._keys:
            desc = self.probe.describe_table(TableName=table)["Table"]
            self._keys[table] = [k["AttributeName"] for k in desc["KeySchema"]]
            if desc.get("GlobalSecondaryIndexes") or desc.get("LocalSecondaryIndexes"):
                self.warnings.append(f"{table} has secondary indexes: their writes are not metered")
        return self._keys[table]

    def _key(self, table: str, item: dict[str, Any]) -> dict[str, Any]:
        return {k: item[k] for k in self._key_names(table)}

    def _sizes(self, pairs: Iterable[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any], int]]:
        """(table, key, size of the stored item now) for each, read consistently with the probe."""
        pairs = list(pairs)
        if len(pairs) == 1:
            table, key = pairs[0]
            item = self.probe.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
            return [(table, key, item_size(item))]
        sizes: dict[tuple[str, Any], int] = {}
        for start in range(0, len(pairs), 100):
            request: dict[str, Any] = {}
            for table, key in pairs[start : start + 100]:
                request.setdefault(table, {"Keys": [], "ConsistentRead": True})["Keys"].append(key)
            while request:
                resp = self.probe.batch_get_item(RequestItems=request)
                for table, found in resp.get("Responses", {}).items():
                    names = self._key_names(table)
                    for item in found:
                        sizes[(table, _freeze({k: item[k] for k in names}))] = item_size(item)
                request = dict(resp.get("UnprocessedKeys") or {})
        return [(t, k, sizes.get((t, _freeze(k)), 0)) for t, k in pairs]


def _freeze(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=lambda b: b.hex() if isinstance(b, bytes) else str(b))
