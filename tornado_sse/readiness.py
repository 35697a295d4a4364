"""Whether this server should be sent traffic: ``GET /readyz`` (SPEC §6).

Ready means the database is reachable and takes writes, the listener is
connected (so streams get events) and the server is not shutting down. A
readiness probe takes a server out of a load balancer while that is not so;
unlike ``/livez`` it must never restart it.

The database check runs at most once per ``every`` seconds whatever the
number of probes (a probe storm costs one query), bounded by ``timeout``
(below Kubernetes' default probe timeout of 1 s),
and answers in generic words: connection details (host, port, the server's
FATAL text) go to the log, once per change, never to the anonymous caller
(issue 19).
"""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from .hub import Hub
from .listener import Listener, State

log = logging.getLogger("tornado_sse.readiness")

OK = "ok"
#: What each check may say besides "ok".
READ_ONLY = "read-only"
UNREACHABLE = "unreachable"
BUSY = "busy"
SHUTTING_DOWN = "shutting down"
_LISTENER_WORDS = {State.STARTING: "connecting", State.DISCONNECTED: "disconnected",
                   State.STOPPED: "stopped"}

# A standby (failover in progress) and a session with
# default_transaction_read_only both refuse writes with SQLSTATE 25006.
_WRITABLE_SQL = "SELECT NOT (pg_is_in_recovery() OR current_setting('transaction_read_only')::bool)"


class Readiness:
    """The checks behind /readyz, with the database's answer cached."""

    def __init__(self, pool: AsyncConnectionPool, listener: Listener, hub: Hub, *,
                 every: float = 1.0, timeout: float = 0.8) -> None:
        self._pool, self._listener, self._hub = pool, listener, hub
        self._every, self._timeout = every, timeout
        self._database = UNREACHABLE
        self._checked_at = -float("inf")
        self._running: asyncio.Future[str] | None = None

    async def checks(self) -> dict[str, str]:
        """Each check's word: ``ok`` or what is wrong."""
        return {
            "database": await self.database(),
            "listener": OK if self._listener.connected else _LISTENER_WORDS.get(self._listener.state, "down"),
            "shutdown": SHUTTING_DOWN if self._hub.closed else OK,
        }

    async def database(self) -> str:
        """Reachable and writable (cached for ``every`` seconds)."""
        if time.monotonic() - self._checked_at < self._every:
            return self._database
        if self._running is None or self._running.done():
            self._running = asyncio.ensure_future(self._check())
        return await asyncio.shield(self._running)

    async def _check(self) -> str:
        detail = ""
        try:
            async with self._pool.connection(timeout=self._timeout) as conn:
                cur = await asyncio.wait_for(conn.execute(_WRITABLE_SQL), self._timeout)
                row = await cur.fetchone()
                word = OK if row is not None and row[0] else READ_ONLY
                if word == READ_ONLY:
                    # Maybe a session opened while the database was read-only
                    # (it keeps that for life): a fresh one answers next time.
                    await conn.close()
        except (PoolTimeout, asyncio.TimeoutError):
            # The listener has connections of its own: while they work the
            # database answers and the pool is merely taken (busy).
            word = BUSY if self._listener.connected else UNREACHABLE
            detail = f"no connection or answer within {self._timeout:.1f} s"
        except psycopg.Error as exc:
            word, detail = UNREACHABLE, (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if word != self._database:
            log.log(logging.INFO if word == OK else logging.WARNING, "readiness: database %s%s",
                    word, f" ({detail})" if detail else "")
        self._database, self._checked_at = word, time.monotonic()
        return word
