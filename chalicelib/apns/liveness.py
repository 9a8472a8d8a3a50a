"""Dead APNs connections found fast, and never used again.

A connection can die without a word: a NAT drops its mapping, a Lambda container is frozen
between invocations and APNs gives up on it; no FIN, no RST, and every request sent on it waits
for its whole timeout. So (mixed into the aioapns protocol, ``client.protocol_class``):

- before a request goes out on a connection that has heard nothing for ``idle_ping_s``, an
  HTTP/2 PING must be answered within ``ping_timeout_s``; one that is not is killed and the
  request goes out on another (a fresh one if need be): the first push after a freeze costs one
  PING deadline, not a request timeout;
- after a request times out, the connection is PINGed the same way (a server merely slow to
  answer keeps its connection: closing it would resend what is in flight on it);
- a connection that is closing (GOAWAY, aioapns' idle close, a failed PING) leaves the pool at
  once and is aborted: aioapns kept it pooled until TLS shutdown ended (up to 30 s against a
  silent peer), wrote new requests into it, and a second ``close()`` made asyncio's SSL
  transport drop its protocol, so the next write raised ``AttributeError`` inside the client
  ("ConnectionError:AttributeError");
- a request that could not be written (the connection already dead or ended by GOAWAY) is
  raised as ``ConnectionClosed`` before anything left, so aioapns sends it on another connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from typing import Any

from aioapns.exceptions import ConnectionClosed
from h2.connection import ConnectionState
from h2.exceptions import ProtocolError

log = logging.getLogger(__name__)


class LivenessMixin:
    """Goes before aioapns' protocol class in the MRO (``client.protocol_class``)."""

    idle_ping_s: float = 5.0
    ping_timeout_s: float = 1.0
    transport: Any
    conn: Any
    requests: dict[str, Any]
    on_connection_lost: Any

    def connection_made(self, transport: Any) -> None:
        self.last_heard = time.monotonic()
        self.dead = False
        self._pooled = True
        self._ping: asyncio.Future[None] | None = None
        self._check: asyncio.Task[bool] | None = None
        super().connection_made(transport)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        self.last_heard = time.monotonic()
        super().data_received(data)  # type: ignore[misc]

    def on_ping_ack(self) -> None:
        if self._ping is not None and not self._ping.done():
            self._ping.set_result(None)

    @property
    def usable(self) -> bool:
        return (
            not self.dead
            and self.transport is not None
            and not self.transport.is_closing()
            and self.conn.state_machine.state != ConnectionState.CLOSED
        )

    async def alive(self) -> bool:
        """Answers a PING within ``ping_timeout_s``, else it is killed. One check at a time, in its
        own task: a request whose timeout cancels its wait does not cancel the check."""
        if not self.usable:
            self.kill("closing")
            return False
        if self._check is None or self._check.done():
            self._check = asyncio.get_running_loop().create_task(self._ping_check())
        return await asyncio.shield(self._check)

    async def _ping_check(self) -> bool:
        self._ping = asyncio.get_running_loop().create_future()
        self.conn.ping(os.urandom(8))
        self.transport.write(self.conn.data_to_send())
        try:
            await asyncio.wait_for(self._ping, self.ping_timeout_s)
        except TimeoutError:
            self.kill(f"no PING answer within {self.ping_timeout_s:g} s")
            return False
        if not self.usable:  # ended (GOAWAY, closed) while the PING was out
            self.kill("closed while pinged")
            return False
        return True

    def kill(self, why: str) -> None:
        """Out of the pool now, and the socket aborted (no TLS goodbye to a peer that is not there)."""
        if not self.dead:
            self.dead = True
            log.warning("APNs connection dropped: %s", why)
        self._leave_pool()
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        """aioapns' idle timer, a GOAWAY and ``pool.close()`` end up here: once, and out of the pool."""
        self._leave_pool()
        self._end_ping()
        if self.transport is not None and not self.transport.is_closing():
            super().close()  # type: ignore[misc]

    def _leave_pool(self) -> None:
        if self._pooled and self.on_connection_lost is not None:
            self._pooled = False
            with contextlib.suppress(ValueError):  # not in the pool (yet)
                self.on_connection_lost(self)  # the pool's discard_connection

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._pooled:  # discarded already: aioapns would discard (and fail on) it again
            self.on_connection_lost = None
        self.dead = True
        self._end_ping()
        super().connection_lost(exc)  # type: ignore[misc]

    def _end_ping(self) -> None:
        """A PING still out gets no answer now: whoever waits for it learns at once (``usable``)."""
        if self._ping is not None and not self._ping.done():
            self._ping.set_result(None)

    async def send_notification(self, request: Any) -> Any:
        checking = self._check is not None and not self._check.done()  # e.g. after a timeout
        if self.usable and (checking or time.monotonic() - self.last_heard > self.idle_ping_s):
            await self.alive()
        if not self.usable:
            self.kill("closing")
            raise ConnectionClosed("connection no longer usable; nothing was sent on it")
        try:
            return await super().send_notification(request)  # type: ignore[misc]
        except ProtocolError as exc:  # h2 refused to write it (the connection ended meanwhile)
            self.kill(f"HTTP/2 refused the request: {exc!r}")
            raise ConnectionClosed("connection ended; nothing was sent on it") from exc
        except asyncio.CancelledError:
            # Timed out (the caller's wait_for): is the connection dead, or the server slow?
            if self.usable and (self._check is None or self._check.done()):
                self._check = asyncio.get_running_loop().create_task(self._ping_check())
            raise
