"""The operator console in real headless Chromium against `make run`: sign in, create an app, upload
a .p12 (first with a wrong password), register a device through the API, send a test push from
the console, and find it in the delivery report and on the sandbox's phone.

CONSOLE_SCREENSHOTS=<dir> keeps a screenshot of each page (the README's are made this way).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.services.auth import mint_token

from .cdp import CHROMIUM, Browser
from .conftest import LocalStack

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="headless chromium not installed (apt-get install -y chromium); required when CI is set",
    ),
]
BUNDLE = "com.example.console"
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    b = Browser(tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def _shot(browser: Browser, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        browser.screenshot(Path(SCREENSHOTS) / f"console-{name}.png")


def test_console_end_to_end(local_stack: LocalStack, browser: Browser, tmp_path: Path) -> None:
    api, sandbox = local_stack.api, local_stack.sandbox

    # Sign in: a wrong key is refused, the right one opens the Apps page.
    browser.open(api + "/console")
    browser.fill("#operator-key", "not-the-key")
    browser.click("#sign-in-form button[type=submit]")
    browser.wait_for("document.querySelector('#sign-in-error').textContent", "the sign-in error")
    assert "not the operator key" in browser.text("#sign-in-error")
    browser.fill("#operator-key", local_stack.operator_key)
    browser.click("#sign-in-form button[type=submit]")
    browser.wait_for("!document.querySelector('#page-apps').hidden", "the Apps page")
    assert browser.js("document.querySelector('#operator-key').value") == ""

    # Create an app: its secret key is shown once.
    browser.fill("#app-name", "Console Chat")
    browser.click("#create-app-form button[type=submit]")
    secret = browser.wait_for("document.querySelector('#secret-value').textContent", "the secret key")
    app_id = browser.wait_for("document.querySelector('#app-select').value", "the new app to be chosen")
    assert browser.js(f"!!document.querySelector('tr[data-app-id=\"{app_id}\"]')")
    assert "shown once" in browser.text("#secret-box")
    _shot(browser, "apps")
    admin = mint_token(secret, app_id, "im-server", "admin")  # the key shown signs the app's tokens
    assert local_stack.call("GET", f"{api}/v1/apps/{app_id}/credentials", token=admin) == {"items": []}

    # Upload a .p12 with the wrong password: the API's message appears next to the password field.
    issued = local_stack.call(
        "POST",
        f"{sandbox}/sandbox/credentials/p12",
        {"bundleId": BUNDLE, "environment": "production", "password": "right-password"},
    )
    p12 = tmp_path / "push.p12"
    p12.write_bytes(base64.b64decode(issued["p12"]))
    browser.click("#tabs button[data-page=credentials]")
    browser.fill("#cred-name", "prod-cert")
    browser.choose_file("#cred-file", p12)
    browser.fill("#cred-password", "wrong-password")
    browser.click("#upload-form button[type=submit]")
    wrong = browser.wait_for(
        "document.querySelector('#upload-form [data-error-for=password]').textContent", "the password error"
    )
    assert "password" in wrong.lower()
    assert browser.text("#upload-result") == ""

    # The right password: the certificate ID is shown and listed.
    browser.fill("#cred-password", "right-password")
    browser.click("#upload-form button[type=submit]")
    result = browser.wait_for("document.querySelector('#upload-result').textContent", "the upload result")
    assert "certificate ID 1" in result
    browser.wait_for(
        "!!document.querySelector('tr[data-certificate-id=\"1\"]')", "the credential in the list"
    )
    row = browser.text('tr[data-certificate-id="1"]')
    assert BUNDLE in row and "production" in row
    assert browser.text("#upload-form [data-error-for=password]") == ""
    _shot(browser, "credentials")

    # A phone registers its token through the API (as the app would after login).
    device = local_stack.call(
        "POST", f"{sandbox}/sandbox/devices", {"bundleId": BUNDLE, "environment": "production"}
    )
    token = device["deviceToken"]
    bob = mint_token(secret, app_id, "bob", "user")
    local_stack.call(
        "PUT", f"{api}/v1/apps/{app_id}/users/bob/devices/{token}", {"certificateId": 1}, token=bob
    )

    # Users: bob's device, push configuration and app state.
    browser.click("#tabs button[data-page=users]")
    browser.fill("#user-id", "bob")
    browser.click("#user-form button[type=submit]")
    browser.wait_for("!document.querySelector('#user-view').hidden", "bob's page")
    devices = browser.text("#devices-table tbody")
    assert "production" in devices and "1 (com.example.console)" in devices and token[:8] in devices
    assert browser.text('#push-config dd[data-field="language"]') in ("zh", "en")
    assert browser.text('#app-state dd[data-field="badge"]') == "0"
    _shot(browser, "users")

    # Test push: send to bob and watch the outcome appear.
    browser.click("#tabs button[data-page=push]")
    browser.fill("#push-to", "bob")
    browser.fill("#push-text", "Hello from the console")
    browser.click("#push-form button[type=submit]")
    browser.wait_for("document.querySelector('#push-state').dataset.done", "the push outcome", timeout_s=60)
    message_id = browser.text("#push-message-id")
    assert browser.js("document.querySelector('#push-table tbody tr').dataset.status") == "sent"
    _shot(browser, "push")

    # Messages: the delivery report, filtered.
    browser.click("#tabs button[data-page=messages]")
    assert browser.js("document.querySelector('#report-message-id').value") == message_id
    browser.click("#report-form button[type=submit]")
    browser.wait_for("!document.querySelector('#report-view').hidden", "the report")
    assert browser.js(
        "[...document.querySelectorAll('#report-table tbody tr')].map(r => r.dataset.status)"
    ) == ["sent"]
    assert browser.text('#report-summary dd[data-field="recipientCount"]') == "1"
    _shot(browser, "messages")
    browser.fill("#filter-status", "failed")
    assert browser.js("document.querySelectorAll('#report-table tbody tr').length") == 0
    assert browser.text("#report-count") == "0 of 1 loaded"
    browser.fill("#filter-status", "")
    browser.fill("#report-user-id", "carol")  # the user search: carol was no recipient
    browser.click("#report-form button[type=submit]")
    browser.wait_for(
        "document.querySelector('#report-count').textContent === '0 of 0 loaded'", "carol's part"
    )
    browser.fill("#report-user-id", "bob")
    browser.click("#report-form button[type=submit]")
    browser.wait_for("document.querySelector('#report-count').textContent === '1 of 1 loaded'", "bob's part")

    # The phone got it (the sandbox), as the report says.
    items = local_stack.call("GET", f"{sandbox}/sandbox/notifications?deviceToken={token}")["items"]
    assert len(items) == 1
    body = items[0]["payload"]["aps"]["alert"]["body"]
    assert body.startswith("Console") and body.endswith("Hello from the console")
    assert items[0]["payload"]["m"] == message_id

    # Nothing secret outlives the tab or shows in its URL; no script error, no CSP violation.
    assert browser.js("localStorage.length + sessionStorage.length") == 0
    assert browser.js("document.cookie") == ""
    assert browser.js("location.href") == api + "/console"
    assert browser.errors == []
    # (the API's refusals above show as "Failed to load resource" lines: expected, and not counted)
    problems = [m for m in browser.console if "Failed to load resource" not in m and m.startswith("error")]
    assert not problems, browser.console
    assert not [m for m in browser.console if "Content Security Policy" in m], browser.console


def test_console_shows_field_errors_for_a_p8_upload(
    local_stack: LocalStack, browser: Browser, tmp_path: Path
) -> None:
    """A .p8 with a malformed key ID: the API's message lands next to the Key ID field."""
    browser.wait_for("!document.querySelector('#tabs').hidden", "a signed-in console")  # after the test above
    browser.click("#tabs button[data-page=credentials]")
    browser.click("#upload-form input[value=p8]")
    assert browser.js("document.querySelector('#cred-key-id').offsetParent !== null")
    assert browser.js("document.querySelector('#cred-password').offsetParent === null")
    key = local_stack.call("POST", f"{local_stack.sandbox}/sandbox/credentials/p8", {"bundleIds": [BUNDLE]})
    p8 = tmp_path / "AuthKey.p8"
    p8.write_text(key["p8"])
    browser.fill("#cred-name", "p8-key")
    browser.choose_file("#cred-file", p8)
    browser.fill("#cred-key-id", "short")
    browser.fill("#cred-team-id", key["teamId"])
    browser.fill("#cred-bundle-id", BUNDLE)
    browser.click("#upload-form button[type=submit]")

    message = browser.wait_for(
        "document.querySelector('#upload-form [data-error-for=keyId]').textContent", "the key ID error"
    )

    assert "10" in message  # "... 10 characters ..."
    assert browser.text("#upload-form [data-error-for='(form)']") == ""

    # Corrected, it is uploaded; then deleted after a confirmation.
    browser.fill("#cred-key-id", key["keyId"])
    browser.click("#upload-form button[type=submit]")
    result = browser.wait_for("document.querySelector('#upload-result').textContent", "the upload result")
    cert_id = result.split("certificate ID ")[1].split(" ")[0]
    row = f'tr[data-certificate-id="{cert_id}"]'
    browser.wait_for(f"!!document.querySelector('{row}')", "the .p8 in the list")
    assert "never" in browser.text(row)
    browser.click(f"{row} button.danger")
    browser.wait_for(f"!document.querySelector('{row}')", "the .p8 to be gone")
    assert any(f"Delete credential {cert_id}" in d for d in browser.dialogs)


def test_a_certificate_expiring_within_30_days_is_flagged(
    local_stack: LocalStack, browser: Browser, tmp_path: Path
) -> None:
    issued = local_stack.call(
        "POST",
        f"{local_stack.sandbox}/sandbox/credentials/p12",
        {"bundleId": BUNDLE, "environment": "development", "password": "pw", "validDays": 10},
    )
    p12 = tmp_path / "dev.p12"
    p12.write_bytes(base64.b64decode(issued["p12"]))
    browser.click("#tabs button[data-page=credentials]")
    browser.click("#upload-form input[value=p12]")
    browser.fill("#cred-name", "dev-cert")
    browser.fill("#cred-environment", "development")
    browser.choose_file("#cred-file", p12)
    browser.fill("#cred-password", "pw")
    browser.click("#upload-form button[type=submit]")

    result = browser.wait_for("document.querySelector('#upload-result').textContent", "the upload result")

    cert_id = result.split("certificate ID ")[1].split(" ")[0]
    row = f'tr[data-certificate-id="{cert_id}"]'
    browser.wait_for(f"!!document.querySelector('{row}')", "the certificate in the list")
    assert "development" in browser.text(row)
    assert "expires soon" in browser.text(f"{row} .expiring")


def test_settings_are_shown_and_changed_on_the_settings_page(
    local_stack: LocalStack, browser: Browser
) -> None:
    """The app's settings with their defaults; a bad lease's message next to its field; a change saved."""
    app_id = browser.js("document.querySelector('#app-select').value")
    browser.click("#tabs button[data-page=settings]")
    browser.wait_for("document.querySelector('#settings-lease').value === '300'", "the loaded settings")
    checked = (
        "[...document.querySelectorAll('#settings-form input[name=convention]:checked')].map(i => i.value)"
    )
    assert browser.js(checked) == ["tencent", "agora"]
    assert browser.js("document.querySelector('#settings-read-sync').value") == "badge"
    _shot(browser, "settings")

    # A lease of 5 s is refused next to its field
    browser.fill("#settings-lease", "5")
    browser.click("#settings-form button[type=submit]")
    message = browser.wait_for(
        "document.querySelector('#settings-form [data-error-for=foregroundLeaseSeconds]').textContent",
        "the lease error",
    )
    assert "10" in message and "86400" in message

    # TUIKit's convention alone and a lease until background: saved and answered by the API
    browser.fill("#settings-lease", "0")
    browser.click("#settings-form input[value=tencent]")
    browser.click("#settings-form input[value=agora]")
    browser.click("#settings-form input[value=tpns]")
    browser.click("#settings-form button[type=submit]")
    browser.wait_for("document.querySelector('#settings-result').textContent", "the saved settings")
    assert browser.js(checked) == ["tpns"]
    stored = local_stack.call(
        "GET", f"{local_stack.api}/v1/apps/{app_id}/settings", token=local_stack.operator_key
    )
    assert stored["payloadConventions"] == ["tpns"] and stored["foregroundLeaseSeconds"] == 0
    assert browser.errors == []


def test_reload_signs_out(local_stack: LocalStack, browser: Browser) -> None:
    """The key lives in the tab's memory only: a reload is a fresh, signed-out console."""
    browser.open(local_stack.api + "/console")
    assert browser.js("!document.querySelector('#sign-in').hidden")
    assert browser.js("document.querySelector('#tabs').hidden")
