"""The inbox shows read sync and communication notifications, in real headless Chromium: the sender's
picture (initials when it cannot be loaded offline) and the group's name; the app icon's badge set by
a badge-only push; a conversation's notifications removed by a clearing background push only when
the phone's app is running."""

from __future__ import annotations

import html.parser
import os
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from apns_sandbox.testing import SandboxProcess
from tests.sandbox.test_inbox_browser import _chromium, _read_png
from tests.sandbox.test_inbox_browser import pytestmark as browser_marks

from .conftest import make_jwt, unique_bundle

pytestmark = browser_marks

DOT = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' width='8' height='8'>"
    "<circle cx='4' cy='4' r='4' fill='teal'/></svg>"
)


def _send(
    sandbox: SandboxProcess, key: dict, bundle: str, device: str, pushes: list[tuple[str, dict]]
) -> None:
    """(push type, payload) in order; background pushes at priority 5, as Apple requires."""
    with httpx.Client(http2=True, verify=sandbox.ssl_context()) as client:
        token = make_jwt(key)
        for push_type, payload in pushes:
            headers = {"authorization": f"bearer {token}", "apns-topic": bundle, "apns-push-type": push_type}
            if push_type == "background" or "alert" not in payload["aps"]:
                headers["apns-priority"] = "5"
            r = client.post(
                f"https://127.0.0.1:{sandbox.production_port}/3/device/{device}",
                headers=headers,
                json=payload,
            )
            assert r.status_code == 200, r.text


def _group_message(text: str, badge: int, face: str) -> tuple[str, dict]:
    return (
        "alert",
        {
            "aps": {
                "alert": {"body": f"Alice(Dev team):{text}"},
                "badge": badge,
                "thread-id": "group_g1",
                "mutable-content": 1,
            },
            "f": "alice",
            "g": "g1",
            "sender": {"id": "alice", "name": "Alice Liddell", "faceUrl": face},
            "conversation": {
                "type": "group",
                "id": "g1",
                "name": "Dev team",
                "faceUrl": "https://cdn.example.com/g1.png",
            },
        },
    )


def _c2c_message(text: str, badge: int) -> tuple[str, dict]:
    return (
        "alert",
        {
            "aps": {
                "alert": {"body": f"Bob:{text}"},
                "badge": badge,
                "thread-id": "c2c_bob",
                "mutable-content": 1,
            },
            "f": "bob",
            "sender": {"id": "bob", "name": "Bob", "faceUrl": DOT},
            "conversation": {"type": "c2c", "id": "bob", "name": "Bob", "faceUrl": DOT},
        },
    )


READ_G1 = (
    "background",
    {
        "aps": {"content-available": 1},
        "op": "read",
        "conversation": {"kind": "group", "id": "g1"},
        "readUpTo": "m-2",
        "conversations": [{"kind": "group", "id": "g1", "readUpTo": "m-2"}],
    },
)
BADGE_1 = ("alert", {"aps": {"badge": 1}, "op": "badge"})


class _Phones(html.parser.HTMLParser):
    """Per phone: the cards' titles, group names, bodies, avatar initials and pictures, the dock badge."""

    def __init__(self) -> None:
        super().__init__()
        self.phones: dict[str, dict[str, list[str]]] = {}
        self._token: str | None = None
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("data-device-token"):
            self._token = a["data-device-token"]
            self.phones[self._token] = {}
        if not self._token:
            return
        phone = self.phones[self._token]
        classes = (a.get("class") or "").split()
        if "avatar" in classes:
            phone.setdefault("initials", []).append(a.get("data-initials") or "")
        if tag == "img":
            phone.setdefault("img", []).append(a.get("src") or "")
        if tag == "input" and a.get("type") == "checkbox":
            phone.setdefault("running", []).append("checked" if "checked" in a else "off")
        for name in ("n-title", "n-conversation", "n-body", "icon-badge", "cleared-note"):
            if name in classes:
                self._field = name

    def handle_data(self, data: str) -> None:
        if self._token and self._field:
            self.phones[self._token].setdefault(self._field, []).append(data.strip())
            self._field = None


def _dom(sandbox: SandboxProcess, tmp_path: Path, bundle: str) -> dict[str, dict[str, list[str]]]:
    result = _chromium(tmp_path, "--dump-dom", f"{sandbox.control_url}/?bundleId={bundle}")
    assert result.returncode == 0, result.stderr[-2000:]
    parser = _Phones()
    parser.feed(result.stdout)
    return parser.phones


@pytest.fixture(scope="module")
def phones(sandbox: SandboxProcess) -> dict[str, Any]:
    bundle = unique_bundle().replace("com.example.", "com.example.talk")
    key = sandbox.issue_p8([bundle])
    running = sandbox.create_device(bundle, "production", name="Running iPhone")
    quit_ = sandbox.create_device(bundle, "production", name="Force-quit iPhone")
    sandbox.request("PATCH", f"/sandbox/devices/{quit_}", {"appRunning": False})
    for device in (running, quit_):
        _send(
            sandbox,
            key,
            bundle,
            device,
            [
                _c2c_message("are you there?", 1),
                _group_message("release is green", 2, "https://cdn.example.com/alice.png"),
                _group_message("ship it", 3, "https://cdn.example.com/alice.png"),
                BADGE_1,  # read on the desktop: one unread left
                READ_G1,  # ... and the app may clear the group's notifications
            ],
        )
    return {"bundle": bundle, "running": running, "quit": quit_}


def test_a_communication_notification_shows_the_senders_initials_when_the_picture_is_not_offline(
    sandbox: SandboxProcess, phones: dict[str, Any], tmp_path: Path
) -> None:
    page = _dom(sandbox, tmp_path, phones["bundle"])[phones["quit"]]
    # The group's cards: Alice's initials (her picture is on the internet), the group's name
    assert page["initials"] == ["AL", "B"]  # newest first: the group stack, then Bob
    assert page["n-conversation"] == ["Dev team"]
    assert page["n-title"][0] == "Alice Liddell"
    assert not any(src.startswith("https://cdn.example.com") for src in page.get("img", []))


def test_a_picture_that_loads_offline_is_drawn(
    sandbox: SandboxProcess, phones: dict[str, Any], tmp_path: Path
) -> None:
    page = _dom(sandbox, tmp_path, phones["bundle"])[phones["quit"]]
    assert page["img"] == [DOT]  # Bob's picture is a data: URL
    assert "Bob" in page["n-title"]


def test_a_badge_only_push_sets_the_app_icons_badge(
    sandbox: SandboxProcess, phones: dict[str, Any], tmp_path: Path
) -> None:
    pages = _dom(sandbox, tmp_path, phones["bundle"])
    # The last message set 3; the badge-only push after it set 1
    assert pages[phones["running"]]["icon-badge"] == ["1"]
    assert pages[phones["quit"]]["icon-badge"] == ["1"]


def test_a_clearing_push_removes_the_conversations_notifications_when_the_app_runs(
    sandbox: SandboxProcess, phones: dict[str, Any], tmp_path: Path
) -> None:
    page = _dom(sandbox, tmp_path, phones["bundle"])[phones["running"]]
    bodies = page["n-body"]
    assert not any("release is green" in b or "ship it" in b for b in bodies)  # the group's two are gone
    assert "Bob:are you there?" in bodies  # the other conversation stays
    assert page["cleared-note"] == ["2 removed by the app (read elsewhere)"]
    assert page["running"] == ["checked"]


def test_a_force_quit_app_is_not_woken_so_nothing_is_removed(
    sandbox: SandboxProcess, phones: dict[str, Any], tmp_path: Path
) -> None:
    page = _dom(sandbox, tmp_path, phones["bundle"])[phones["quit"]]
    assert "Alice(Dev team):ship it" in page["n-body"]
    assert "cleared-note" not in page
    assert page["running"] == ["off"]
    assert any("app not running: not woken" in b for b in page["n-body"])


def test_the_read_sync_screenshot_is_drawn(
    sandbox: SandboxProcess, phones: dict[str, Any], tmp_path: Path
) -> None:
    shot = tmp_path / "read-sync.png"
    url = f"{sandbox.control_url}/?bundleId={phones['bundle']}"
    result = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=760,820", url)
    assert result.returncode == 0, result.stderr[-2000:]
    width, height, pixels = _read_png(shot.read_bytes())
    assert (width, height) == (760, 820)
    assert len({pixels[y][x] for y in range(0, height, 15) for x in range(0, width, 15)}) > 200
    keep = os.environ.get("APNS_SANDBOX_KEEP_READ_SYNC_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
