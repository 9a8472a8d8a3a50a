"""The console's insight pages in real headless Chromium against `make run`: the app's message list,
a user's messages, a message's funnel with failures by reason, the 30-day statistics chart drawn
with today's numbers, and the webhook page's test button.

CONSOLE_SCREENSHOTS=<dir> keeps a screenshot of each page (the README's are made this way).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.localstack import app_with_credential, call, device_of

from .cdp import CHROMIUM, Browser
from .conftest import LocalStack

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="headless chromium not installed (apt-get install -y chromium); required when CI is set",
    ),
]
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(tmp_path_factory.mktemp("chromium-profile-insight"))
    yield b
    b.close()


def _shot(browser: Browser, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        browser.screenshot(Path(SCREENSHOTS) / f"console-{name}.png")


def _settled(api: str, app_id: str, admin: str, message_id: str) -> dict[str, Any]:
    """The message's report once nobody is pending (polled; the deadline is only a fail-safe)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            report = call("GET", f"{api}/v1/apps/{app_id}/messages/{message_id}/deliveries", token=admin)
            if report["items"] and all(d["status"] != "pending" for d in report["items"]):
                return dict(report)
        except Exception:  # 404 until fanned out
            pass
        assert time.monotonic() < deadline, f"message {message_id} did not settle"
        time.sleep(0.2)


def _seed_past_days(local_stack: LocalStack, app_id: str) -> None:
    import datetime as dt

    import boto3

    from chalicelib.models.stats import DayCounts
    from chalicelib.store.stats import StatsRepository

    ddb = boto3.client(
        "dynamodb",
        endpoint_url=local_stack.emulator,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",  # the emulator takes any
    )
    (table,) = ddb.list_tables()["TableNames"]
    repo = StatsRepository(ddb, table)
    today = dt.datetime.now(dt.UTC).date()
    for back, (sent, delivered, opened, gone) in enumerate(
        [(40, 36, 12, 2), (55, 50, 20, 1), (38, 33, 9, 3), (61, 57, 25, 0), (47, 41, 15, 4), (52, 49, 18, 2)],
        start=1,
    ):
        failed = {"Unregistered": gone, **({"BadDeviceToken": 1} if back % 3 == 0 else {})}
        counts = DayCounts(messages=sent // 2, sent=sent, delivered=delivered, opened=opened, failed=failed)
        repo.add(app_id, today - dt.timedelta(days=back), counts)


def _rows(browser: Browser, selector: str, attribute: str) -> list[str]:
    return list(browser.js(f"[...document.querySelectorAll('{selector}')].map(r => r.dataset.{attribute})"))


def test_console_finds_messages_and_draws_statistics(local_stack: LocalStack, browser: Browser) -> None:
    api, sandbox = local_stack.api, local_stack.sandbox
    # Given an app where bob has a phone, carol's app was uninstalled and dave has none,
    # and three messages: to bob, to a group of the three, and to erin
    app_id, admin, cert = app_with_credential(api, sandbox, local_stack.operator_key)
    device_of(api, sandbox, app_id, admin, cert, "bob")
    carol = device_of(api, sandbox, app_id, admin, cert, "carol")
    call("DELETE", f"{sandbox}/sandbox/devices/{carol}")
    sent: list[str] = []
    for i, to in enumerate(
        [{"userId": "bob"}, {"groupId": "team", "members": ["bob", "carol", "dave"]}, {"userId": "erin"}]
    ):
        body = {
            "messageId": f"console-insight-{i}-{time.monotonic_ns()}",
            "sendTime": int(time.time()),
            "sender": {"userId": "alice", "nickname": "Alice"},
            "to": to,
            "elems": [{"type": "text", "text": f"hello {i}"}],
        }
        call("POST", f"{api}/v1/apps/{app_id}/messages", body, token=admin)
        _settled(api, app_id, admin, body["messageId"])
        sent.append(body["messageId"])

    # (and, for a chart with a history, counts of the six days before, as the send path adds them)
    _seed_past_days(local_stack, app_id)

    # When the operator signs in, picks the app and opens Messages
    browser.open(api + "/console")
    browser.fill("#operator-key", local_stack.operator_key)
    browser.click("#sign-in-form button[type=submit]")
    browser.wait_for("!document.querySelector('#page-apps').hidden", "the Apps page")
    browser.fill("#app-select", app_id)
    browser.click("#tabs button[data-page=messages]")
    browser.wait_for("document.querySelector('#list-title').dataset.loaded", "the message list")

    # Then the app's messages are listed newest first, with their outcome
    assert _rows(browser, "#messages-table tbody tr", "messageId") == list(reversed(sent))
    group_row = browser.text(f'#messages-table tr[data-message-id="{sent[1]}"]')
    assert "group team" in group_row and "1 sent" in group_row and "1 failed" in group_row
    _shot(browser, "message-list")

    # And bob's messages, opened from his Users page, are the two he received
    browser.click("#tabs button[data-page=users]")
    browser.fill("#user-id", "bob")
    browser.click("#user-form button[type=submit]")
    browser.wait_for("!document.querySelector('#user-view').hidden", "bob's page")
    browser.click("#user-messages")
    browser.wait_for(
        "document.querySelector('#list-title').dataset.loaded"
        " && !document.querySelector('#page-messages').hidden",
        "bob's messages",
    )
    assert _rows(browser, "#messages-table tbody tr", "messageId") == [sent[1], sent[0]]
    assert "received by bob" in browser.text("#list-title")

    # And the group message's page shows the funnel and the failures by reason
    browser.fill("#list-user-id", "")
    browser.click("#list-form button[type=submit]")
    browser.wait_for("document.querySelector('#list-title').dataset.loaded", "the message list again")
    browser.click(f'#messages-table button[data-message-id="{sent[1]}"]')
    browser.wait_for(
        "document.querySelector('#report-message-id').value && !document.querySelector('#report-view').hidden"
        " && document.querySelectorAll('#funnel g').length === 4",
        "the message page",
    )
    stages = browser.js(
        "Object.fromEntries([...document.querySelectorAll('#funnel g')]"
        ".map(g => [g.dataset.stage, g.dataset.value]))"
    )
    assert stages["recipients"] == "3" and stages["pushed"] == "1"
    reasons = browser.js(
        "[...document.querySelectorAll('#reasons-table tbody tr')]"
        ".map(r => [r.dataset.status, r.dataset.reason])"
    )
    assert ["failed", "Unregistered"] in reasons and ["skipped", "noDevice"] in reasons
    assert "1 (33 % of recipients)" in browser.text('#funnel g[data-stage="pushed"]')
    _shot(browser, "message-funnel")

    # And the statistics page draws today's numbers: sent, failures by reason (patterned bars)
    browser.click("#tabs button[data-page=stats]")
    browser.wait_for("document.querySelector('#stats-chart').dataset.loaded", "the statistics chart")
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert browser.js("document.querySelectorAll('#stats-chart [data-series=sent] .marker').length") == 30
    assert (
        browser.js(
            f"document.querySelector('#stats-chart [data-series=sent] [data-date=\"{today}\"]').dataset.value"
        )
        == "2"
    )
    assert (
        browser.js(
            "document.querySelector('#stats-chart [data-series=delivered] polyline')"
            ".getAttribute('stroke-dasharray')"
        )
        != "none"
    )  # told apart without colour
    assert "sent 2" in browser.text("#stats-chart")
    bar = f'#failures-chart rect[data-reason="Unregistered"][data-date="{today}"]'
    assert browser.js(f"document.querySelector('{bar}').dataset.value") == "1"
    assert "Unregistered (13)" in browser.text("#failures-caption")  # 1 today, 12 seeded before
    assert "BadDeviceToken (2)" in browser.text("#failures-caption")
    assert (
        browser.js("document.querySelectorAll('#stats-chart [data-series=opened] polygon.marker').length")
        == 30
    )
    series_totals = browser.text("#stats-caption")
    assert "sent (295)" in series_totals and "delivered (266)" in series_totals
    assert "1" in browser.text(f'#stats-table tr[data-date="{today}"]')
    _shot(browser, "statistics")

    # And the webhook page answers the test button (a result, or why not)
    browser.click("#tabs button[data-page=webhook]")
    browser.wait_for("document.querySelector('#webhook-form').dataset.loaded", "the webhook page")
    browser.click("#webhook-test")
    browser.wait_for("document.querySelector('#webhook-test-result').dataset.done", "the test result")
    assert browser.text("#webhook-test-result")
    _shot(browser, "webhook")

    assert browser.errors == []
    problems = [m for m in browser.console if "Failed to load resource" not in m and m.startswith("error")]
    assert not problems, browser.console
    assert not [m for m in browser.console if "Content Security Policy" in m], browser.console
