"""Runs the whole sandbox in one asyncio loop: the production and development provider
endpoints (HTTP/2 + TLS) and the control API + web inbox (hypercorn).
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from .auth import TokenVerifier
from .config import READY_MARKER, SandboxConfig
from .control import ControlApp
from .h2server import ProviderEndpoint, make_server_ssl_context
from .pki import write_private_file
from .state import SandboxState

log = logging.getLogger("apns_sandbox")

# Names the TLS certificate covers, so clients may also reach the sandbox under Apple's host
# names (e.g. via /etc/hosts) as long as they trust the sandbox CA.
SERVER_NAMES = [
    "localhost",
    "api.push.apple.com",
    "api.sandbox.push.apple.com",
    "api.development.push.apple.com",
]


async def run(config: SandboxConfig, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    state = SandboxState(
        config.state_dir,
        max_notifications=config.max_notifications,
        device_burst=config.device_burst,
        device_rate=config.device_rate,
    )
    cert_pem, key_pem = state.ca.issue_server_certificate([config.host, *SERVER_NAMES])
    cert_path, key_path = config.state_dir / "server.pem", config.state_dir / "server-key.pem"
    cert_path.write_bytes(cert_pem + state.ca.cert_pem)
    write_private_file(key_path, key_pem)
    ssl_context = make_server_ssl_context(str(cert_path), str(key_path), state.ca.cert_pem)
    verifier = TokenVerifier(state.keys, max_age_s=config.token_max_age_s)

    endpoints = {
        env: ProviderEndpoint(
            env,
            state,
            verifier,
            ssl_context,
            max_concurrent_streams=config.max_concurrent_streams,
            token_update_min_interval_s=config.token_update_min_interval_s,
            token_update_lockout_s=config.token_update_lockout_s,
        )
        for env in ("production", "development")
    }
    ports: dict[str, int] = {}
    ports["production"] = await endpoints["production"].start(config.host, config.production_port)
    ports["development"] = await endpoints["development"].start(config.host, config.development_port)

    app = ControlApp(state, ports)
    hc = HypercornConfig()
    # Bind here (not in hypercorn) so a busy port fails loudly and port 0 works.
    ui_socket = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM)
    ui_socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ui_socket.bind((config.host, config.ui_port))
    ui_socket.listen(128)
    ui_port = int(ui_socket.getsockname()[1])
    hc.bind = [f"fd://{ui_socket.fileno()}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    hc.graceful_timeout = 1.0
    hc.keep_alive_timeout = 75
    ui_stopped = asyncio.Event()

    async def shutdown_trigger() -> None:
        await stop.wait()

    async def serve_ui() -> None:
        try:
            await serve(app, hc, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]
        finally:
            ui_stopped.set()

    ui_task = asyncio.create_task(serve_ui())
    await _wait_for_port(config.host, ui_port, ui_task)
    ports["ui"] = ui_port

    host = _bracket(config.host)
    info = {
        "productionPort": ports["production"],
        "developmentPort": ports["development"],
        "uiPort": ui_port,
        "host": config.host,
        "caPath": str((config.state_dir / "ca.pem").resolve()),
        "stateDir": str(config.state_dir.resolve()),
    }
    print(f"APNs sandbox (state in {info['stateDir']})", flush=True)
    print(f"  production endpoint   https://{host}:{ports['production']}  (HTTP/2, TLS)", flush=True)
    print(f"  development endpoint  https://{host}:{ports['development']}  (HTTP/2, TLS)", flush=True)
    print(f"  web inbox + control   http://{host}:{ui_port}/", flush=True)
    print(
        f"  trust this CA         {info['caPath']}  (also at http://{host}:{ui_port}/sandbox/ca.pem)",
        flush=True,
    )
    print(READY_MARKER + json.dumps(info), flush=True)

    await stop.wait()
    for endpoint in endpoints.values():
        await endpoint.stop()
    try:
        await asyncio.wait_for(ui_stopped.wait(), 5)
    except TimeoutError:
        ui_task.cancel()


async def _wait_for_port(host: str, port: int, task: asyncio.Task[None]) -> int:
    """Hypercorn gives no ready callback: wait until it accepts on the socket bound above."""
    for _ in range(200):
        if task.done():
            task.result()
            raise RuntimeError("control API server stopped during start-up")
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        return port
    raise RuntimeError(f"control API did not start listening on {host}:{port}")


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = SandboxConfig.from_env()

    async def amain() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(config, stop)

    asyncio.run(amain())
    print("APNs sandbox stopped.", flush=True)
