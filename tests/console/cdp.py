"""A small driver for headless Chromium over the DevTools protocol: open a page, run JavaScript in it,
pick files for an <input type=file>, wait for a condition, take a screenshot. Enough to use the
console as a person would, without Selenium or Playwright (and their own browser downloads)."""

from __future__ import annotations

import base64
import itertools
import json
import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import websocket

from tests.chromium import CHROMIUM, chromium_command


class BrowserError(AssertionError):
    pass


class Browser:
    """One headless Chromium with one page; every console message and uncaught error is kept."""

    def __init__(self, profile_dir: Path) -> None:
        assert CHROMIUM, "chromium is required (apt-get install -y chromium)"
        self.proc = subprocess.Popen(
            chromium_command(
                profile_dir, "--remote-debugging-port=0", "--remote-allow-origins=*", "about:blank"
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        port = self._devtools_port()
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self._ids = itertools.count(1)
        self.console: list[str] = []  # "level: text" of console messages, CSP reports included
        self.errors: list[str] = []  # uncaught exceptions
        self.dialogs: list[str] = []  # confirm()/alert() texts, each accepted
        for domain in ("Page", "Runtime", "Log", "DOM"):
            self.send(f"{domain}.enable")

    def _devtools_port(self) -> int:
        assert self.proc.stderr is not None
        lines = []
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace")
            lines.append(line)
            found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if found:
                return int(found.group(1))
        raise BrowserError("chromium did not start:\n" + "".join(lines[-20:]))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait(10)

    # ---- protocol ----------------------------------------------------------------------------------

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == call_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self._event(message)

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append(f"{params.get('type')}: {text}")
        elif method == "Log.entryAdded":
            entry = params["entry"]
            self.console.append(f"{entry.get('level')}: {entry.get('text')}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.errors.append(str(details.get("exception", {}).get("description") or details.get("text")))
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(params.get("message", ""))
            # Answered without waiting: the call that opened the dialog answers only after this.
            self.ws.send(
                json.dumps(
                    {
                        "id": next(self._ids),
                        "method": "Page.handleJavaScriptDialog",
                        "params": {"accept": True},
                    }
                )
            )

    # ---- what a test uses --------------------------------------------------------------------------

    def open(self, url: str, width: int = 1200, height: int = 860) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.send("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", what=f"{url} to load")

    def js(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, condition: str, what: str, timeout_s: float = 30) -> Any:
        """Polls a JavaScript condition until it is truthy; the deadline is only a fail-safe."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.js(condition)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"waited {timeout_s} s for {what}; console: {self.console[-10:]}")
            time.sleep(0.1)

    def text(self, selector: str) -> str:
        return str(self.js(f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''"))

    def fill(self, selector: str, value: str) -> None:
        self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            f" e.focus(); e.value = {json.dumps(value)};"
            " e.dispatchEvent(new Event('input', {bubbles: true}));"
            " e.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )

    def click(self, selector: str) -> None:
        self.js(f"document.querySelector({json.dumps(selector)}).click()")

    def choose_file(self, selector: str, path: Path) -> None:
        root = self.send("DOM.getDocument")["root"]["nodeId"]
        node = self.send("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.send("DOM.setFileInputFiles", files=[str(path)], nodeId=node)

    def screenshot(self, path: Path) -> None:
        """The page down to the end of its content (at most one screen)."""
        width, height = self.js("[innerWidth, Math.min(innerHeight, document.body.scrollHeight + 16)]")
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        data = self.send("Page.captureScreenshot", format="png", clip=clip)["data"]
        path.write_bytes(base64.b64decode(data))
