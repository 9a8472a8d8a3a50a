"""The web inbox in real headless Chromium: one phone per device, notifications as a person sees them."""

from __future__ import annotations

import html.parser
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from apns_sandbox.testing import SandboxProcess
from tests.chromium import CHROMIUM, chromium_command

from .conftest import Creds, make_jwt, unique_bundle

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="headless chromium not installed (apt-get install -y chromium); required when CI is set",
    ),
]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM, "chromium is required in CI (apt-get install -y chromium)"
    command = chromium_command(tmp_path / "chromium-profile", *args)
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)


class _Cards(html.parser.HTMLParser):
    """Collects, per device section, the text of each notification card part."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: dict[str, dict[str, list[str]]] = {}
        self._device: str | None = None
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("data-device-token"):
            self._device = a["data-device-token"]
            self.devices[self._device] = {}
        classes = (a.get("class") or "").split()
        for name in ("n-title", "n-subtitle", "n-body", "app-name", "badge", "chip", "more", "env"):
            if name in classes:
                self._field = name

    def handle_data(self, data: str) -> None:
        if self._device and self._field:
            self.devices[self._device].setdefault(self._field, []).append(data.strip())
            self._field = None


def _push(sandbox: SandboxProcess, key: dict, bundle: str, device: str, payloads: list[dict]) -> None:
    import httpx

    with httpx.Client(http2=True, verify=sandbox.ssl_context()) as client:
        token = make_jwt(key)
        for payload in payloads:
            r = client.post(
                f"https://127.0.0.1:{sandbox.production_port}/3/device/{device}",
                headers={"authorization": f"bearer {token}", "apns-topic": bundle, "apns-push-type": "alert"},
                json=payload,
            )
            assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def phone(sandbox: SandboxProcess, creds: Creds) -> tuple[str, str]:
    bundle = unique_bundle().replace("com.example.", "com.example.messenger")
    key = sandbox.issue_p8([bundle])
    device = sandbox.create_device(bundle, "production", name="Browser iPhone")
    _push(
        sandbox,
        key,
        bundle,
        device,
        [
            {
                "aps": {
                    "alert": {"title": "Alice", "body": "Are we still on for lunch?"},
                    "thread-id": "c2c_alice",
                }
            },
            {
                "aps": {
                    "alert": {"title": "Alice", "body": "Booked a table for 12:30"},
                    "badge": 2,
                    "sound": "default",
                    "thread-id": "c2c_alice",
                },
                "m": "m-2",
            },
            {
                "aps": {
                    "alert": {
                        "title": "Dev team",
                        "subtitle": "Carol",
                        "body": "Release is green <b>ship</b>",
                    },
                    "badge": 3,
                    "sound": "chime.caf",
                    "thread-id": "g_dev",
                }
            },
        ],
    )
    return bundle, device


def test_inbox_draws_each_notification_on_the_devices_phone(sandbox: SandboxProcess, phone, tmp_path) -> None:
    bundle, device = phone

    result = _chromium(tmp_path, "--dump-dom", sandbox.control_url + "/")

    assert result.returncode == 0, result.stderr[-2000:]
    parser = _Cards()
    parser.feed(result.stdout)
    cards = parser.devices[device]
    assert cards["n-title"] == ["Dev team", "Alice"]  # newest first; Alice's thread stacked into one
    assert cards["n-subtitle"] == ["Carol"]
    assert cards["n-body"] == ["Release is green <b>ship</b>", "Booked a table for 12:30"]  # text, not HTML
    assert cards["badge"] == ["3", "2"]
    assert "♪ chime.caf" in cards["chip"]
    assert cards["more"] == ["1 more notification"]
    assert cards["env"] == ["production"]
    assert set(cards["app-name"]) == {bundle.rsplit(".", 1)[-1].capitalize()}


def test_inbox_screenshot_is_not_blank(sandbox: SandboxProcess, phone, tmp_path) -> None:
    bundle, _ = phone
    shot = tmp_path / "inbox.png"
    url = f"{sandbox.control_url}/?bundleId={bundle}"  # the inbox focused on one app's phones

    result = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", url)

    assert result.returncode == 0, result.stderr[-2000:]
    width, height, pixels = _read_png(shot.read_bytes())
    assert (width, height) == (1280, 900)
    colours = {pixels[y][x] for y in range(0, height, 15) for x in range(0, width, 15)}
    assert len(colours) > 200  # a drawn page: phones, wallpaper gradients, cards, text
    keep = os.environ.get("APNS_SANDBOX_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def _read_png(data: bytes) -> tuple[int, int, list[list[tuple[int, ...]]]]:
    """Minimal PNG decoder (8-bit RGB/RGBA, not interlaced) — enough to look at a screenshot."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunk)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += chunk
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[list[tuple[int, ...]]] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            upper_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - upper_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - upper_left)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else upper_left)
                line[i] = (line[i] + pred) & 255
        rows.append([tuple(line[x * channels : x * channels + 3]) for x in range(width)])
        previous = line
    return width, height, rows


# --- the inbox at scale: 2,000 phones --------------------------------------------------------------

CROWD = 2000


@pytest.fixture(scope="module")
def crowd(tmp_path_factory: pytest.TempPathFactory):
    """Its own sandbox, so the counts are exactly ours: 2,000 phones, one of them busy (40 pushes)."""
    from apns_sandbox.testing import start_sandbox

    sb = start_sandbox(tmp_path_factory.mktemp("apns-sandbox-crowd"))
    bundle = "com.example.crowd"
    tokens = sb.request("POST", "/sandbox/devices", {"bundleId": bundle, "count": CROWD})["deviceTokens"]
    key = sb.issue_p8([bundle])
    busy = tokens[CROWD // 2]
    _push(
        sb,
        key,
        bundle,
        busy,
        [{"aps": {"alert": {"title": f"T{i}", "body": "hello " * 20}}} for i in range(40)],
    )
    yield sb, tokens, busy
    sb.stop()


class _Page(html.parser.HTMLParser):
    """The inbox header's counters and, per phone, its token and whether its list overflows."""

    def __init__(self) -> None:
        super().__init__()
        self.text: dict[str, str] = {}
        self.hidden: set[str] = set()
        self.phones: list[str] = []
        self.overflowing: list[str] = []
        self.more_below_shown = 0
        self.older: list[str] = []
        self._id: str | None = None
        self._older = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id") in ("stat-devices", "stat-total", "page-range"):
            self._id = a["id"]
            if "hidden" in a:
                self.hidden.add(self._id)  # type: ignore[arg-type]
        if tag == "section" and a.get("data-device-token"):
            self.phones.append(a["data-device-token"] or "")
        classes = (a.get("class") or "").split()
        if "notifs" in classes and a.get("data-overflowing") == "true":
            self.overflowing.append(self.phones[-1])
        if "more-below" in classes and "hidden" not in a:
            self.more_below_shown += 1
        self._older = "older" in classes or (self._older and tag == "a")

    def handle_data(self, data: str) -> None:
        if self._id:
            self.text[self._id] = data.strip()
            self._id = None
        elif self._older and data.strip():
            self.older.append(data.strip())
            self._older = False


def _open(sandbox: SandboxProcess, tmp_path: Path, path: str) -> _Page:
    result = _chromium(tmp_path, "--dump-dom", "--window-size=1280,900", sandbox.control_url + path)
    assert result.returncode == 0, result.stderr[-2000:]
    page = _Page()
    page.feed(result.stdout)
    return page


def test_inbox_shows_a_page_of_the_newest_devices_out_of_2000(crowd, tmp_path) -> None:
    sandbox, _, busy = crowd

    page = _open(sandbox, tmp_path, "/")

    assert page.text["stat-devices"] == "24 of 2,000"
    assert "stat-total" in page.hidden  # no filter: nothing more to say
    assert page.text["page-range"] == "1\u201324"
    assert len(page.phones) == 24
    assert page.phones[0] == busy  # the most recently active phone first


def test_a_long_notification_list_scrolls_instead_of_being_clipped(crowd, tmp_path) -> None:
    sandbox, _, busy = crowd

    page = _open(sandbox, tmp_path, "/")

    assert page.overflowing == [busy]  # 30 cards do not fit the screen: it scrolls
    assert page.more_below_shown == 1  # ... and says so ("scroll for more")
    assert page.older == ["10 older not shown · show more"]  # 40 received, the newest 30 drawn


def test_inbox_pages_to_the_oldest_devices(crowd, tmp_path) -> None:
    sandbox, tokens, _ = crowd

    page = _open(sandbox, tmp_path, f"/?offset={CROWD - 8}")

    assert page.text["stat-devices"] == "8 of 2,000"
    assert page.text["page-range"] == "1,993\u20132,000"
    assert len(page.phones) == 8
    assert set(page.phones) <= set(tokens)


def test_inbox_filter_by_token_prefix_finds_one_device(crowd, tmp_path) -> None:
    sandbox, tokens, _ = crowd
    wanted = tokens[7]

    page = _open(sandbox, tmp_path, f"/?q={wanted[:12]}")

    assert page.phones == [wanted]
    assert page.text["stat-devices"] == "1 of 1"
    assert page.text["stat-total"] == "matching · 2,000 in all"
    assert "stat-total" not in page.hidden


def test_inbox_says_what_is_wrong_with_a_bad_page_address(crowd, tmp_path) -> None:
    sandbox, _, _ = crowd
    url = sandbox.control_url + "/?offset=-3&live=poll"  # the page fetches /sandbox/inbox itself: 400

    result = _chromium(tmp_path, "--dump-dom", "--virtual-time-budget=3000", url)

    assert result.returncode == 0, result.stderr[-2000:]
    assert '<div class="empty-state">offset must be 0 or more</div>' in result.stdout
