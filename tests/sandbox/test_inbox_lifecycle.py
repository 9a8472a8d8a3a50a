"""The web inbox shows a notification's lifecycle (headless Chromium over DevTools): a replaced
notification (same apns-collapse-id) as replaced, with what it replaced on demand; a call invitation
distinctly; a VoIP (PushKit) push as an incoming-call screen."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from apns_sandbox.testing import SandboxProcess
from tests.console.cdp import CHROMIUM, Browser

from .conftest import make_jwt, unique_bundle

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="headless chromium not installed (apt-get install -y chromium); required when CI is set",
    ),
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def _push(sandbox: SandboxProcess, key: dict, device: str, topic: str, payload: dict, **headers: str) -> None:
    with httpx.Client(http2=True, verify=sandbox.ssl_context()) as client:
        r = client.post(
            f"https://127.0.0.1:{sandbox.production_port}/3/device/{device}",
            headers={"authorization": f"bearer {make_jwt(key)}", "apns-topic": topic, **headers},
            json=payload,
        )
        assert r.status_code == 200, r.text


def _call(action: str, timeout_s: int = 600) -> dict[str, Any]:
    return {
        "callId": "c-1",
        "media": "video",
        "action": action,
        "roomId": None,
        "data": None,
        "sendTime": int(time.time()),
        "timeoutSeconds": timeout_s,
    }


def _in(device: str, selector: str) -> str:
    return f"document.querySelector('section[data-device-token=\"{device}\"]').querySelectorAll({selector!r})"


def test_the_inbox_draws_the_lifecycle_of_calls_and_replaced_notifications(
    sandbox: SandboxProcess, browser: Browser
) -> None:
    bundle = unique_bundle()
    key = sandbox.issue_p8([bundle])
    phone = sandbox.create_device(bundle, name="Bob's iPhone")
    pushkit = sandbox.create_device(bundle, name="Carol's iPhone", device_type="voip")
    alert = {"apns-push-type": "alert", "apns-collapse-id": "call-c-1"}
    # Given an invitation on bob's phone, then its cancellation with the same collapse-id
    _push(
        sandbox,
        key,
        phone,
        bundle,
        {"aps": {"alert": {"body": "Alice:[视频通话]"}}, "call": _call("invite")},
        **alert,
    )
    _push(
        sandbox,
        key,
        phone,
        bundle,
        {"aps": {"alert": {"body": "Alice:[通话已取消]"}}, "call": _call("cancel")},
        **alert,
    )
    # And a ringing PushKit invitation on carol's
    voip = {"apns-push-type": "voip", "apns-priority": "10", "apns-collapse-id": "call-c-1"}
    _push(
        sandbox,
        key,
        pushkit,
        bundle + ".voip",
        {"aps": {"alert": {"body": "Alice:[视频通话]"}}, "call": _call("invite")},
        **voip,
    )

    # When the inbox is open
    browser.open(sandbox.control_url + "/")
    browser.wait_for(f"{_in(phone, '.notification')}.length > 0", "bob's phone to be drawn")

    # Then bob sees only the cancellation, marked as replacing the invitation, and the history on demand
    cards = browser.js(f"Array.from({_in(phone, '.notifs > .group > .notification')}).map(c => c.className)")
    assert len(cards) == 1 and "call-cancelled" in cards[0]
    assert browser.js(f"{_in(phone, '.n-call')}[0].textContent") == "video call cancelled"
    toggle = f"{_in(phone, 'button.replaced')}[0]"
    assert browser.js(f"{toggle}.textContent") == "replaced 1 earlier · show history"
    assert browser.js(f"{_in(phone, '.history')}.length") == 0
    browser.js(f"{toggle}.click()")
    browser.wait_for(f"{_in(phone, '.history .notification')}.length === 1", "the history to open")
    assert browser.js(f"{_in(phone, '.history .n-body')}[0].textContent") == "Alice:[视频通话]"
    assert browser.js(f"{_in(phone, '.history .n-call')}[0].textContent").startswith("Incoming video call")

    # And carol's phone shows CallKit's incoming-call screen over the lock screen, and the call card
    assert browser.js(f"{_in(pushkit, '.incoming-call .ic-caller')}[0].textContent") == "Alice:[视频通话]"
    assert (
        browser.js(f"{_in(pushkit, '.call-screen .cs-kind')}[0].textContent")
        == "PushKit · incoming video call"
    )
    assert browser.js(f"{_in(pushkit, '.env.voip')}[0].textContent") == "PushKit"
    assert browser.errors == []
    shots = os.environ.get("INBOX_SCREENSHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        browser.screenshot(Path(shots) / "inbox-lifecycle.png")
