"""An asyncio-native DynamoDB client for the send path's hot writes (badge increments, checkpoints).

boto3 costs ~1.0 ms of client CPU per call on these machines, plus a thread
hop from the event loop; aiodynamo on aiohttp ~0.4 ms, on the loop itself
(FINDINGS: "DynamoDB client CPU per call"). With one badge increment per
pushed recipient, that is the send function's largest cost after APNs. The
requests are plain DynamoDB JSON built by the repositories (which alone know
key and attribute shapes), so this module only carries them.

Hooks (``before_call`` / ``after_call``) mirror botocore's events, so the
benchmark can meter these calls like boto3's. Each call is retried by the
store's one policy (``retry``), as boto3's are; aiodynamo's own retries are off.
"""

from __future__ import annotations

import asyncio
import atexit
import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chalicelib.settings import Settings
from chalicelib.store import retry

Hook = Callable[[str, dict[str, Any], dict[str, Any] | None], None]
# Connections to DynamoDB per container. Calls beyond it wait their turn here, not in aiohttp's pool,
# whose wait counts against the connect timeout (a chunk's 250 badge increments at once timed out).
MAX_CONNECTIONS = 64


@dataclass
class AsyncDynamo:
    settings: Settings
    before_call: list[Hook] = field(default_factory=list)
    after_call: list[Hook] = field(default_factory=list)
    _client: Any = field(default=None, init=False, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, init=False, repr=False)
    _slots: asyncio.Semaphore | None = field(default=None, init=False, repr=False)

    async def call(self, action: str, payload: dict[str, Any], *, binary: bool = False) -> dict[str, Any]:
        """One DynamoDB API call (``UpdateItem``, ``PutItem`` ...) with a DynamoDB-JSON payload;
        ``binary``: it holds bytes values (sent base64-encoded, as botocore does)."""
        client = await self._get()
        for hook in self.before_call:
            hook(action, payload, None)
        wire = _wire(payload) if binary else payload
        assert self._slots is not None
        async with self._slots:
            response: dict[str, Any] = await retry.call_async(
                client.send_request, action=action, payload=wire
            )
        for hook in self.after_call:
            hook(action, payload, response)
        return response

    async def _get(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import aiohttp
            from aiodynamo.client import Client
            from aiodynamo.credentials import Credentials
            from aiodynamo.http.aiohttp import AIOHTTP
            from yarl import URL

            endpoint = self.settings.aws_endpoint_url
            session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=10, connect=3),
                connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS, keepalive_timeout=60),
            )
            atexit.register(_close_at_exit, loop, session)
            self._client = Client(
                AIOHTTP(session),
                Credentials.auto(),
                self.settings.region,
                endpoint=URL(endpoint) if endpoint else None,
                numeric_type=int,
                throttle_config=retry.single_attempt(),
            )
            self._loop = loop
            self._slots = asyncio.Semaphore(MAX_CONNECTIONS)
        return self._client


def _close_at_exit(loop: asyncio.AbstractEventLoop, session: Any) -> None:
    """Tools and tests end their process; Lambda never does. Close quietly if the loop allows."""
    if not session.closed and not loop.is_closed() and not loop.is_running():
        loop.run_until_complete(session.close())


def _wire(value: Any) -> Any:
    """Binary attribute values as the wire wants them (base64 text), as botocore does for blobs."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_wire(v) for v in value]
    return value
