"""AWS's faults with real processes (`make run` with the fault layer, devstack/aws_faults.py), counted
device by device: nothing lost, nothing pending forever, duplicates within the bound, badges exact,
and the API never answers a 5xx other than 503 with Retry-After. Each prints lost / twice / stuck.

Sized for a loaded 2-core box: a few hundred devices per test, waits that poll for a condition."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import urllib.error
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chalicelib.settings import load_settings
from devstack.seed import seed_users
from tests.localstack import BUNDLE, RunningStack, call, device_of, fault_stack

pytestmark = pytest.mark.slow
OPERATOR_KEY = "drain-operator-key-0123456789"
TABLE = "apns-push-local"
SEND_QUEUE = "apns-push-send-local"
MAX_UNRECORDED = load_settings().send_max_unrecorded  # what one killed container may send twice


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with fault_stack(tmp_path_factory.mktemp("drain-stack"), OPERATOR_KEY) as s:
        yield s


def group(s: RunningStack, n: int, prefix: str) -> dict[str, str]:
    """n members, one phone each, written straight into the table (fast): token -> user."""
    tokens = call(
        "POST", f"{s.sandbox}/sandbox/devices", {"bundleId": BUNDLE, "environment": "production", "count": n}
    )["deviceTokens"]
    users = seed_users(s.client("dynamodb"), TABLE, s.app_id, s.cert, BUNDLE, tokens, prefix, badge=0)
    return dict(zip(tokens, users, strict=True))


def message(to: dict[str, Any], tag: str) -> dict[str, Any]:
    return {
        "messageId": f"{tag}-{time.monotonic_ns()}",
        "sendTime": int(time.time()),
        "sender": {"userId": "alice", "nickname": "Alice"},
        "to": to,
        "elems": [{"type": "text", "text": "hi"}],
    }


@dataclass
class ApiWatch:
    """Every API answer meanwhile, by status: the tests' own calls and a poller of the report and
    presence endpoints running beside them."""

    s: RunningStack
    statuses: Counter[int] = field(default_factory=Counter)
    no_retry_after: int = 0
    resets: int = 0  # connections the local API server reset (not an answer of the service)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            answer = call(method, f"{self.s.api}/v1/apps/{self.s.app_id}{path}", body, token=self.s.admin)
        except urllib.error.HTTPError as exc:
            self.statuses[exc.code] += 1
            if exc.code == 503 and not (exc.headers.get("Retry-After") or "").isdigit():
                self.no_retry_after += 1
            raise
        self.statuses[200] += 1
        return answer

    def post(self, body: dict[str, Any]) -> None:
        """POST a message, sent again after a 503 as its Retry-After says (a client would)."""
        for _ in range(30):
            try:
                self.call("POST", "/messages", body)
                return
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    raise
                time.sleep(0.5)
            except OSError:  # the local API server (chalice local) dropped the connection: sent again
                self.resets += 1
                time.sleep(0.2)
        raise AssertionError("the API kept answering 503 to a POST")

    def summary(self, message_id: str) -> dict[str, Any] | None:
        try:
            return dict(self.call("GET", f"/messages/{message_id}/deliveries?limit=1")["summary"])
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 503):  # not fanned out yet / throttled: asked again
                return None
            raise

    def watch(self, message_ids: list[str]) -> ApiWatch:
        def loop() -> None:
            presence = {
                "users": [{"userId": f"watch{i}", "state": "background", "unreadCount": i} for i in range(30)]
            }
            while not self._stop.is_set():
                for mid in message_ids:
                    for path in (
                        f"/messages/{mid}/deliveries?limit=50",
                        f"/messages/{mid}/deliveries?status=pending",
                    ):
                        with contextlib.suppress(urllib.error.HTTPError):
                            self.call("GET", path)
                with contextlib.suppress(urllib.error.HTTPError):
                    self.call("PUT", "/presence", presence)
                self._stop.wait(0.5)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def unexpected(self) -> dict[int, int]:
        """Answers no call here should get: a 5xx other than 503, or a 4xx other than 404 (a report
        asked for before the fan-out wrote it)."""
        return {
            c: n for c, n in self.statuses.items() if (c >= 500 and c != 503) or (400 <= c < 500 and c != 404)
        }

    def five_hundreds(self) -> dict[int, int]:
        return {code: n for code, n in self.statuses.items() if code >= 500 and code != 503}


def wait_until(predicate: Callable[[], bool], timeout_s: float, poll_s: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return False


def queues_drained(s: RunningStack) -> bool:
    sqs = s.client("sqs")
    names = [
        "ApproximateNumberOfMessages",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateNumberOfMessagesDelayed",
    ]
    for q in ("apns-push-intake-local", SEND_QUEUE, SEND_QUEUE + "-dlq"):
        attrs = sqs.get_queue_attributes(
            QueueUrl=sqs.get_queue_url(QueueName=q)["QueueUrl"], AttributeNames=names
        )
        if any(int(v) for v in attrs["Attributes"].values()):
            return False
    return True


def received(s: RunningStack, message_ids: set[str]) -> Counter[tuple[str, str]]:
    """(message, token) -> how many times the sandbox accepted it."""
    notes = call("GET", f"{s.sandbox}/sandbox/notifications?limit=200000")["items"]
    return Counter(
        (n["payload"].get("m"), n["deviceToken"]) for n in notes if n["payload"].get("m") in message_ids
    )


@dataclass
class Tally:
    lost: int  # never delivered, and not failed with a reason in the report
    twice: int
    stuck: int  # pending in the report
    failed: dict[str, int]


def tally(s: RunningStack, watch: ApiWatch, messages: dict[str, set[str]]) -> Tally:
    """Device by device, over messages (id -> tokens), from the sandbox and the reports."""
    got = received(s, set(messages))
    lost = twice = stuck = 0
    failed: Counter[str] = Counter()
    for mid, tokens in messages.items():
        rows: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = watch.call(
                "GET", f"/messages/{mid}/deliveries?limit=1000" + (f"&cursor={cursor}" if cursor else "")
            )
            rows += page["items"]
            cursor = page.get("nextCursor")
            if not cursor:
                break
        failed_tokens = set()
        for r in rows:
            stuck += r["status"] == "pending"
            if r["status"] == "failed":
                assert r.get("reason"), f"a failed delivery without a reason: {r}"
                failed[r.get("code") or "?"] += 1
                failed_tokens.add(r.get("deviceToken"))
        lost += sum(1 for t in tokens if not got[(mid, t)] and t not in failed_tokens)
        twice += sum(1 for t in tokens if got[(mid, t)] > 1)
    return Tally(lost, twice, stuck, dict(failed))


def settled(watch: ApiWatch, message_ids: list[str], expected: dict[str, int]) -> Callable[[], bool]:
    def check() -> bool:
        for mid in message_ids:
            got = watch.summary(mid)
            if got is None or got["pending"]:
                return False
            if got["sent"] + sum(got["failed"].values()) + sum(got["skipped"].values()) < expected[mid]:
                return False
        return True

    return check


def poller_pid(s: RunningStack) -> int:
    for pid in Path("/proc").iterdir():
        if not pid.name.isdigit():
            continue
        try:
            cmd = (pid / "cmdline").read_bytes().split(b"\0")
            if (
                b"devstack.poller" in cmd
                and (pid / "environ").read_bytes().find(s.env["AWS_FAULTS_PORT"].encode()) >= 0
            ):
                return int(pid.name)
        except OSError:
            continue
    raise AssertionError("no poller process of this stack")


def test_a_poller_killed_mid_send_under_throttling_loses_nothing(stack: RunningStack) -> None:
    # Given a group of 500 and 10 % throttling
    owners = group(stack, 500, "kill")
    body = message({"groupId": "kill", "groupName": "Kill", "members": ["alice", *owners.values()]}, "kill")
    stack.layer.set("throttle:0.1")
    watch = ApiWatch(stack).watch([body["messageId"]])
    try:
        # When the poller (every function's container with it) is killed -9 mid-send
        watch.post(body)
        assert wait_until(lambda: len(received(stack, {body["messageId"]})) >= 30, 90, 0.05)
        os.kill(poller_pid(stack), signal.SIGKILL)
        at_kill = len(received(stack, {body["messageId"]}))
        # Then the restarted poller takes the chunks over after their lease and everything settles
        done = wait_until(settled(watch, [body["messageId"]], {body["messageId"]: len(owners)}), 110)
    finally:
        stack.layer.set("off")
        watch.stop()
    t = tally(stack, watch, {body["messageId"]: set(owners)})
    print(
        f"\nkill -9 mid-send under 10 % throttling: killed after {at_kill} of {len(owners)}; lost {t.lost}, "
        f"twice {t.twice}, stuck {t.stuck}, failed {t.failed}; API {dict(watch.statuses)}"
    )
    assert done and at_kill < len(owners)
    assert (t.lost, t.stuck) == (0, 0)
    assert t.twice <= MAX_UNRECORDED
    assert not watch.unexpected() and not watch.no_retry_after


def test_twenty_concurrent_messages_to_one_user_under_throttling_give_badges_1_to_20(
    stack: RunningStack,
) -> None:
    # Given one user with one phone and throttling with unprocessed batch keys (no applied-errors:
    # the idempotent badge increment is issue 15 item 6's)
    token = device_of(stack.api, stack.sandbox, stack.app_id, stack.admin, stack.cert, "badge-bob")
    bodies = [message({"userId": "badge-bob"}, f"badge{i}") for i in range(20)]
    stack.layer.set("throttle:0.1,unprocessed:0.3")
    watch = ApiWatch(stack)
    try:
        # When 20 messages are posted at once
        threads = [threading.Thread(target=watch.post, args=(b,)) for b in bodies]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        ids = [b["messageId"] for b in bodies]
        done = wait_until(settled(watch, ids, dict.fromkeys(ids, 1)), 110)
    finally:
        stack.layer.set("off")
    notes = [
        n
        for n in call("GET", f"{stack.sandbox}/sandbox/notifications?deviceToken={token}&limit=1000")["items"]
        if n["payload"].get("m") in set(ids)
    ]
    t = tally(stack, watch, {i: {token} for i in ids})
    badges = sorted(n["payload"]["aps"].get("badge") for n in notes)
    print(
        f"\n20 concurrent messages under throttling: badges {badges}; "
        f"lost {t.lost}, twice {t.twice}, stuck {t.stuck}; API {dict(watch.statuses)}, resets {watch.resets}"
    )
    assert done
    assert (t.lost, t.twice, t.stuck) == (0, 0, 0)
    assert badges == list(range(1, 21))
    assert not watch.unexpected()


def test_a_group_under_throttling_and_unprocessed_keys_loses_nothing(stack: RunningStack) -> None:
    # Given a group of 600 under 10 % throttling and 30 % unprocessed batch keys/items
    owners = group(stack, 600, "grp")
    body = message({"groupId": "grp", "groupName": "Group", "members": ["alice", *owners.values()]}, "grp")
    stack.layer.set("throttle:0.1,unprocessed:0.3")
    watch = ApiWatch(stack).watch([body["messageId"]])
    try:
        watch.post(body)
        done = wait_until(settled(watch, [body["messageId"]], {body["messageId"]: len(owners)}), 110)
        injected = stack.layer.stats()["injected"]
    finally:
        stack.layer.set("off")
        watch.stop()
    t = tally(stack, watch, {body["messageId"]: set(owners)})
    print(
        f"\ngroup of {len(owners)} under 10 % throttling + 30 % unprocessed: injected {injected}; "
        f"lost {t.lost}, twice {t.twice}, stuck {t.stuck}, failed {t.failed}; API {dict(watch.statuses)}"
    )
    assert done and injected.get("throttle", 0) and injected.get("unprocessed", 0)
    assert (t.lost, t.twice, t.stuck, t.failed) == (0, 0, 0, {})
    assert not watch.unexpected() and not watch.no_retry_after


def test_half_of_aws_calls_throttled_ends_every_device_sent_or_failed_and_no_api_5xx(
    stack: RunningStack,
) -> None:
    # Given a group of 300 and 10 one-to-one messages, and half of every AWS call throttled
    owners = group(stack, 300, "half")
    singles = group(stack, 10, "half-one")
    bodies = [
        message({"groupId": "half", "groupName": "Half", "members": ["alice", *owners.values()]}, "half")
    ]
    bodies += [message({"userId": u}, "half-one") for u in singles.values()]
    expected = {bodies[0]["messageId"]: set(owners)} | {
        b["messageId"]: {t for t, u in singles.items() if u == b["to"]["userId"]} for b in bodies[1:]
    }
    stack.layer.set("throttle:0.5")
    watch = ApiWatch(stack).watch([bodies[0]["messageId"], bodies[1]["messageId"]])
    try:
        for b in bodies:
            watch.post(b)
        # When the queues drain and no report has anything pending
        ids = list(expected)
        done = wait_until(
            lambda: settled(watch, ids, {m: len(t) for m, t in expected.items()})() and queues_drained(stack),
            110,
            2,
        )
        injected = stack.layer.stats()["injected"]
    finally:
        stack.layer.set("off")
        watch.stop()
    # Then every device is sent or failed with a reason, none pending, and the API answered no 5xx
    # (503 with Retry-After when it gave up is counted, not a failure)
    t = tally(stack, watch, expected)
    print(
        f"\n50 % throttling: injected {injected}; lost {t.lost}, twice {t.twice}, stuck {t.stuck}, "
        f"failed {t.failed}; API answers {dict(sorted(watch.statuses.items()))}"
    )
    assert done and injected.get("throttle", 0)
    assert (t.lost, t.stuck) == (0, 0)
    assert t.twice <= MAX_UNRECORDED
    assert not watch.unexpected() and not watch.no_retry_after


def test_chunks_that_cannot_claim_under_a_throttling_storm_are_deferred_then_sent(
    stack: RunningStack,
) -> None:
    # Given a group of 200 fanned out, and then a storm: 97 % of UpdateItem calls throttled, so
    # most chunk claims give up after the retry policy's attempts
    owners = group(stack, 200, "storm")
    body = message(
        {"groupId": "storm", "groupName": "Storm", "members": ["alice", *owners.values()]}, "storm"
    )
    log = Path(stack.env["DEVSTACK_STATE_DIR"]) / "logs" / "poller.log"
    deferred_before = log.read_text(errors="replace").count("deferred")
    stack.layer.set("throttle:0.97@UpdateItem")
    watch = ApiWatch(stack)
    try:
        watch.post(body)
        # When the storm lasts until chunks were deferred (or 60 s), then passes
        wait_until(lambda: log.read_text(errors="replace").count("deferred") > deferred_before, 60, 0.5)
        injected = stack.layer.stats()["injected"]
    finally:
        stack.layer.set("off")
    mid = body["messageId"]
    done = wait_until(lambda: settled(watch, [mid], {mid: len(owners)})() and queues_drained(stack), 110, 2)
    # Then every device got it, none pending, nothing reached the dead-letter queue
    deferrals = log.read_text(errors="replace").count("deferred") - deferred_before
    sqs = stack.client("sqs")
    dead = sum(
        int(
            sqs.get_queue_attributes(
                QueueUrl=sqs.get_queue_url(QueueName=SEND_QUEUE + suffix)["QueueUrl"],
                AttributeNames=["ApproximateNumberOfMessages"],
            )["Attributes"]["ApproximateNumberOfMessages"]
        )
        for suffix in ("-dlq", "-parked")
    )
    t = tally(stack, watch, {mid: set(owners)})
    print(
        f"\nthrottling storm on UpdateItem: injected {injected}; chunks deferred {deferrals}, dead-lettered "
        f"{dead}; lost {t.lost}, twice {t.twice}, stuck {t.stuck}, failed {t.failed}"
    )
    assert done and deferrals > 0 and dead == 0
    assert (t.lost, t.twice, t.stuck, t.failed) == (0, 0, 0, {})
