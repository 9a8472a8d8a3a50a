"""Measure the sandbox's ceiling with h2load (Debian package nghttp2-client).

    python -m apns_sandbox.bench                      # starts its own sandbox in a temp dir
    python -m apns_sandbox.bench --control-url http://127.0.0.1:8025 -n 200000 -c 4 -m 100

Sets up a p8 key and `--devices` devices (h2load sends to them in turn: one device alone would
soon reach the sandbox's per-device budget, APNS_SANDBOX_DEVICE_BURST/RATE, and get 429s as from
Apple), then runs h2load with a JWT header against the production endpoint, and checks the sandbox
counted every request.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Any

BUNDLE = "com.example.bench"


def _call(control_url: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(control_url + path, data=data, method=method)  # noqa: S310 - loopback
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        raw = resp.read()
    return json.loads(raw) if raw else None


def run_h2load(
    control_url: str, port: int, host: str, requests: int, clients: int, streams: int, devices: int = 100
) -> dict[str, Any]:
    import jwt  # PyJWT: a project dependency (requirements.txt)

    h2load = shutil.which("h2load")
    if h2load is None:
        sys.exit("h2load not found: apt-get install -y nghttp2-client")
    key = _call(control_url, "POST", "/sandbox/credentials/p8", {"bundleIds": [BUNDLE]})
    tokens = _call(
        control_url,
        "POST",
        "/sandbox/devices",
        {"bundleId": BUNDLE, "environment": "production", "count": devices},
    )["deviceTokens"]
    token = jwt.encode(
        {"iss": key["teamId"], "iat": int(time.time())},
        key["p8"],
        algorithm="ES256",
        headers={"kid": key["keyId"]},
    )
    before = _counted(control_url, tokens)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(
            {"aps": {"alert": {"title": "Bench", "body": "hello from h2load"}, "badge": 1}, "m": "bench"}, fh
        )
        payload = fh.name
    command = [
        h2load,
        "-n",
        str(requests),
        "-c",
        str(clients),
        "-m",
        str(streams),
        "-H",
        f"authorization: bearer {token}",
        "-H",
        f"apns-topic: {BUNDLE}",
        "-H",
        "apns-push-type: alert",
        "-d",
        payload,
        *(f"https://{host}:{port}/3/device/{t}" for t in tokens),
    ]
    shown = " ".join(command[: len(command) - len(tokens)]).replace(token, "<JWT>")
    shown += f" https://{host}:{port}/3/device/<token> ... ({len(tokens)} devices in turn)"
    out = subprocess.run(command, capture_output=True, text=True, check=False).stdout
    pathlib.Path(payload).unlink(missing_ok=True)
    finished = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    after = _counted(control_url, tokens)
    return {
        "command": shown,
        "seconds": float(finished.group(1)) if finished else None,
        "requestsPerSecond": float(finished.group(2)) if finished else None,
        "status2xx": int(codes.group(1)) if codes else None,
        "non2xx": sum(int(codes.group(i)) for i in (2, 3, 4)) if codes else None,
        "countedBySandbox": after - before,
        "h2loadOutput": out if not finished else None,
    }


def _counted(control_url: str, tokens: list[str]) -> int:
    by_device = _call(control_url, "GET", "/sandbox/stats")["byDevice"]
    return sum(by_device.get(t, 0) for t in tokens)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--control-url", help="a running sandbox (default: start one in a temp dir)")
    parser.add_argument("--port", type=int, help="its production port (default: from /sandbox/health)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("-n", "--requests", type=int, default=100_000)
    parser.add_argument("-c", "--clients", type=int, default=4)
    parser.add_argument("-m", "--streams", type=int, default=100, help="concurrent streams per connection")
    parser.add_argument("--devices", type=int, default=100, help="device tokens to send to in turn")
    args = parser.parse_args(argv)

    sandbox = None
    control_url = args.control_url
    if control_url is None:
        from .testing import start_sandbox

        sandbox = start_sandbox(pathlib.Path(tempfile.mkdtemp(prefix="apns-sandbox-bench-")))
        control_url = sandbox.control_url
    try:
        port = args.port or _call(control_url, "GET", "/sandbox/health")["ports"]["production"]
        result = run_h2load(
            control_url, port, args.host, args.requests, args.clients, args.streams, args.devices
        )
    finally:
        if sandbox is not None:
            sandbox.stop()
    print(json.dumps(result, indent=2))
    if result["requestsPerSecond"] is None or result["countedBySandbox"] != args.requests:
        sys.exit(1)


if __name__ == "__main__":
    main()
