"""Helpers for test suites: start the sandbox as a subprocess (its own process and GIL, as in real
use) on free ports, and talk to its control API.

    sandbox = start_sandbox(tmp_path / "apns")
    try:
        key = sandbox.issue_p8(["com.example.chat"])
        device = sandbox.create_device("com.example.chat", "production")
        ...  # point the client at 127.0.0.1:sandbox.production_port, trusting sandbox.ca_path
    finally:
        sandbox.stop()
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pathlib
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from .config import READY_MARKER
from .pki import p12_to_pem

__all__ = ["SandboxProcess", "free_port", "start_sandbox"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class SandboxProcess:
    process: subprocess.Popen[bytes]
    state_dir: pathlib.Path
    host: str
    production_port: int
    development_port: int
    ui_port: int
    log_path: pathlib.Path
    _pem_files: list[pathlib.Path] = field(default_factory=list)

    @property
    def ca_path(self) -> pathlib.Path:
        return self.state_dir / "ca.pem"

    @property
    def control_url(self) -> str:
        return f"http://{self.host}:{self.ui_port}"

    def endpoint(self, environment: str) -> tuple[str, int]:
        """(host, port) of the production or development provider endpoint."""
        port = self.production_port if environment == "production" else self.development_port
        return self.host, port

    def service_env(self) -> dict[str, str]:
        """The service's settings (chalicelib/settings.py) that point its APNs client at this sandbox."""
        return {
            "APNS_PRODUCTION_HOST": self.host,
            "APNS_PRODUCTION_PORT": str(self.production_port),
            "APNS_DEVELOPMENT_HOST": self.host,
            "APNS_DEVELOPMENT_PORT": str(self.development_port),
            "APNS_EXTRA_CA_FILE": str(self.ca_path),
        }

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context that trusts the sandbox CA (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca_path))

    # --- control API (stdlib only, usable from any test) ---------------------------------------
    def request(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.control_url + path, data=data, method=method)  # noqa: S310
        req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback URL
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(
                f"{method} {path} -> {exc.code}: {exc.read().decode(errors='replace')}"
            ) from exc
        return json.loads(raw) if raw else None

    def issue_p8(self, bundle_ids: list[str], team_id: str | None = None, **extra: Any) -> dict[str, Any]:
        """{keyId, teamId, p8, bundleIds}: a signing key the sandbox trusts for those topics."""
        body: dict[str, Any] = {"bundleIds": bundle_ids, **extra}
        if team_id:
            body["teamId"] = team_id
        return dict(self.request("POST", "/sandbox/credentials/p8", body))

    def issue_p12(
        self,
        bundle_id: str,
        environment: str,
        password: str | None = "sandbox",  # noqa: S107 - a throwaway sandbox credential
        **extra: Any,
    ) -> dict[str, Any]:
        """{p12 (base64), password, ...}: a push certificate issued by the sandbox CA."""
        body = {"bundleId": bundle_id, "environment": environment, "password": password, **extra}
        return dict(self.request("POST", "/sandbox/credentials/p12", body))

    def issue_client_pem(self, bundle_id: str, environment: str, **extra: Any) -> pathlib.Path:
        """A PEM file (certificate + unencrypted key, 0600) as aioapns's `client_cert=` wants."""
        issued = self.issue_p12(bundle_id, environment, "pem-export", **extra)
        pem = p12_to_pem(base64.b64decode(issued["p12"]), "pem-export")
        path = self.state_dir / f"client-{bundle_id}-{environment}-{len(self._pem_files)}.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        self._pem_files.append(path)
        return path

    def create_device(
        self,
        bundle_id: str,
        environment: str = "production",
        name: str | None = None,
        device_type: str = "alert",
    ) -> str:
        """A new simulated device (``device_type`` "voip": a PushKit token); returns its token."""
        body: dict[str, Any] = {"bundleId": bundle_id, "environment": environment, "type": device_type}
        if name:
            body["name"] = name
        return str(self.request("POST", "/sandbox/devices", body)["deviceToken"])

    def uninstall(self, device_token: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/sandbox/devices/{device_token}"))

    def notifications(
        self, device_token: str | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        query = []
        if device_token:
            query.append(f"deviceToken={device_token}")
        if limit is not None:
            query.append(f"limit={limit}")
        path = "/sandbox/notifications" + ("?" + "&".join(query) if query else "")
        return list(self.request("GET", path)["items"])

    def stats(self) -> dict[str, Any]:
        return dict(self.request("GET", "/sandbox/stats"))

    def add_fault(self, **spec: Any) -> dict[str, Any]:
        """e.g. add_fault(status=503, count=5) / add_fault(action="goaway") / add_fault(latencyMs=200)."""
        return dict(self.request("PUT", "/sandbox/faults", spec))

    def clear_faults(self) -> None:
        self.request("DELETE", "/sandbox/faults")

    def reset(self) -> None:
        """Forget received notifications, counters, faults and device budgets (devices and keys stay)."""
        self.request("POST", "/sandbox/reset")

    # --- lifecycle -----------------------------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> None:
        """Ctrl-C the sandbox and wait; kill it if it does not stop in time."""
        for path in self._pem_files:
            with contextlib.suppress(OSError):
                path.unlink()
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_sandbox(
    state_dir: pathlib.Path,
    *,
    production_port: int = 0,
    development_port: int = 0,
    ui_port: int = 0,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    timeout: float = 20.0,
    python: str = sys.executable,
) -> SandboxProcess:
    """Start `python -m apns_sandbox` as a subprocess and wait until all three listeners are up.

    Ports left at 0 are picked free by the sandbox itself (no race) and read back from its ready
    line. `env` adds variables (e.g. APNS_SANDBOX_MAX_CONCURRENT_STREAMS).
    The sandbox's output goes to `<state_dir>/sandbox.log`.
    """
    state_dir = pathlib.Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = state_dir / "sandbox.log"
    last_error = ""
    for _ in range(2):
        ports = {
            "APNS_SANDBOX_PRODUCTION_PORT": production_port,
            "APNS_SANDBOX_DEVELOPMENT_PORT": development_port,
            "APNS_SANDBOX_UI_PORT": ui_port,
        }
        child_env = {
            **os.environ,
            **(env or {}),
            **{k: str(v) for k, v in ports.items()},
            "APNS_SANDBOX_HOST": host,
            "APNS_SANDBOX_STATE_DIR": str(state_dir),
            "PYTHONUNBUFFERED": "1",
        }
        package_root = str(pathlib.Path(__file__).resolve().parent.parent)
        child_env["PYTHONPATH"] = os.pathsep.join(
            p for p in [package_root, child_env.get("PYTHONPATH", "")] if p
        )
        with log_path.open("ab") as log:
            log.write(b"\n--- starting apns_sandbox ---\n")
            log.flush()
            offset = log.tell()
            process = subprocess.Popen(
                [python, "-m", "apns_sandbox"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env,
                start_new_session=True,
            )
        info = _wait_ready(process, log_path, offset, timeout)
        if info is not None:
            return SandboxProcess(
                process=process,
                state_dir=state_dir,
                host=host,
                production_port=int(info["productionPort"]),
                development_port=int(info["developmentPort"]),
                ui_port=int(info["uiPort"]),
                log_path=log_path,
            )
        if process.poll() is None:
            process.kill()
            process.wait(5)
        last_error = log_path.read_bytes()[offset:].decode(errors="replace")[-3000:]
    raise RuntimeError(f"APNs sandbox did not start; its output:\n{last_error}")


def _wait_ready(
    process: subprocess.Popen[bytes], log_path: pathlib.Path, offset: int, timeout: float
) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    marker = READY_MARKER.encode()
    while time.monotonic() < deadline:
        output = log_path.read_bytes()[offset:]
        for line in output.splitlines():
            if line.startswith(marker):
                return dict(json.loads(line[len(marker) :]))
        if process.poll() is not None:
            return None
        time.sleep(0.05)
    return None
