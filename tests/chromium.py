"""Headless Chromium as the browser tests start it: the one list of flags (no GPU, no sandbox as root,
nothing that would reach the network on its own: this machine has none)."""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def chromium_command(profile_dir: Path, *args: str) -> list[str]:
    assert CHROMIUM, "chromium is required (apt-get install -y chromium)"
    return [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile_dir}",
        *args,
    ]
