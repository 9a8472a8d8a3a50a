"""Measure the embedded emulator's limits: requests/s of typical calls and memory per 10,000 items.

    python -m devstack.emulator_limits [--items 50000]

Starts its own emulator (as `make run` does), drives it with boto3 over HTTP on loopback and
prints a table for the README ("Emulator limits").  Figures depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3

from devstack import resources
from devstack.fast_emulator import start_emulator

TABLE = "limits"
LOCAL_CREDENTIALS = {
    "region_name": "us-east-1",
    "aws_access_key_id": "local",
    "aws_secret_access_key": "local",
}


def rss_bytes(pid: int) -> int:
    """RSS of the emulator: its server process and the worker process below it."""
    import os
    from pathlib import Path

    total = 0
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(entry))
            except OSError:
                continue
    for p in pids:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def user_item(n: int) -> dict[str, Any]:
    """An item shaped like a user with two registered devices (~400 bytes)."""
    device = {
        "M": {
            "certificateId": {"N": "1"},
            "bundleId": {"S": "com.example.chat"},
            "environment": {"S": "production"},
            "pushEnabled": {"BOOL": True},
            "registeredAt": {"N": str(1_700_000_000_000 + n)},
        }
    }
    return {
        "pk": {"S": f"U#app-limits#user-{n}"},
        "sk": {"S": "U"},
        "appState": {"S": "background"},
        "badge": {"N": "3"},
        **{f"d#{secrets.token_hex(32)}": device for _ in range(2)},
    }


def rate(calls: int, threads: int, call: Callable[[Any, int], Any], make_client: Callable[[], Any]) -> float:
    """Calls per second with ``threads`` clients (one boto3 client each) making ``calls`` in all."""
    clients = [make_client() for _ in range(threads)]
    per = calls // threads

    def run(i: int) -> None:
        for n in range(per):
            call(clients[i], i * per + n)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per * threads / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000, help="items loaded for the memory figure")
    parser.add_argument("--calls", type=int, default=2_000, help="calls per request-rate figure")
    args = parser.parse_args(argv)

    emulator = start_emulator()
    try:

        def make_client() -> Any:
            return boto3.client("dynamodb", endpoint_url=emulator.url, **LOCAL_CREDENTIALS)

        ddb = make_client()
        resources.create_table(ddb, TABLE)
        rows: list[tuple[str, str]] = []

        # memory: RSS as the table fills
        base = rss_bytes(emulator.proc.pid)
        curve = [(0, base)]
        for start in range(0, args.items, 25):
            ddb.batch_write_item(
                RequestItems={
                    TABLE: [{"PutRequest": {"Item": user_item(n)}} for n in range(start, start + 25)]
                }
            )
            if (start + 25) % 10_000 == 0:
                curve.append((start + 25, rss_bytes(emulator.proc.pid)))
        per_10k = (curve[-1][1] - base) / (curve[-1][0] / 10_000)
        rows.append(("RSS, empty table", f"{base / 1e6:.0f} MB"))
        rows.append(
            (
                f"RSS per 10,000 items (~400-byte user items, {args.items:,} loaded)",
                f"{per_10k / 1e6:.0f} MB",
            )
        )
        print("RSS curve (items: MB): " + ", ".join(f"{n}: {b / 1e6:.0f}" for n, b in curve), flush=True)

        key = {"pk": {"S": "U#app-limits#user-1"}, "sk": {"S": "U"}}

        def get(c: Any, n: int) -> None:
            c.get_item(
                TableName=TABLE, Key={"pk": {"S": f"U#app-limits#user-{n % args.items}"}, "sk": {"S": "U"}}
            )

        def update(c: Any, n: int) -> None:
            c.update_item(
                TableName=TABLE,
                Key=key,
                UpdateExpression="ADD badge :one",
                ExpressionAttributeValues={":one": {"N": "1"}},
            )

        def put(c: Any, n: int) -> None:
            c.put_item(TableName=TABLE, Item=user_item(args.items + n))

        def register(c: Any, n: int) -> None:
            token = secrets.token_hex(32)
            c.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": TABLE,
                            "Item": {
                                "pk": {"S": f"T#app-limits#{token}"},
                                "sk": {"S": "T"},
                                "userId": {"S": "u"},
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": TABLE,
                            "Key": {"pk": {"S": f"U#app-limits#user-{n % args.items}"}, "sk": {"S": "U"}},
                            "UpdateExpression": "SET #d = :d",
                            "ExpressionAttributeNames": {"#d": f"d#{token}"},
                            "ExpressionAttributeValues": {":d": {"M": {"certificateId": {"N": "1"}}}},
                        }
                    },
                ]
            )

        def batch_get(c: Any, n: int) -> None:
            keys = [
                {"pk": {"S": f"U#app-limits#user-{(n * 100 + i) % args.items}"}, "sk": {"S": "U"}}
                for i in range(100)
            ]
            c.batch_get_item(RequestItems={TABLE: {"Keys": keys}})

        for label, fn, calls in (
            ("GetItem", get, args.calls),
            ("UpdateItem (ADD badge)", update, args.calls),
            ("PutItem", put, args.calls),
            (
                f"TransactWriteItems (a device registration, 2 items; table of {args.items:,})",
                register,
                args.calls,
            ),
            ("BatchGetItem (100 keys)", batch_get, args.calls // 10),
        ):
            one = rate(calls, 1, fn, make_client)
            eight = rate(calls, 8, fn, make_client)
            rows.append((f"{label}, calls/s: 1 client / 8 clients", f"{one:,.0f} / {eight:,.0f}"))
            print(f"{label}: {one:,.0f}/s (1 client), {eight:,.0f}/s (8 clients)", flush=True)
        rows.append(("RSS after all of the above", f"{rss_bytes(emulator.proc.pid) / 1e6:.0f} MB"))

        print("\n| figure | value |\n| --- | --- |")
        for name, value in rows:
            print(f"| {name} | {value} |")
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
