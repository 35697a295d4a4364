"""The request pool, with connections checked before they are handed out.

After a failover, a database restart or ``pg_terminate_backend``, every
idle pooled connection is dead, and psycopg only finds out when a query is
sent on one: the request that drew it got a 503 (issue 19; SPEC §7: a dead
pooled connection is never a client's error). So each checkout first sends
an empty query (one round trip, no parsing on the server) and a dead
connection is discarded and the next one drawn at once, rather than through
psycopg_pool's own ``check=`` loop, which sleeps a second or more between
attempts and so turned "all ten idle connections are dead" into a 503 busy.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout


class CheckedPool(AsyncConnectionPool):
    """An :class:`AsyncConnectionPool` (autocommit connections) whose
    ``getconn`` (and so ``connection()``) never hands out a dead one.

    ``lent`` counts the connections handed out and not yet given back, so
    shutdown can wait for a handler still reading (a snapshot whose client
    hung up) instead of closing the pool under it, which left its
    connection idle in transaction, holding its locks.
    """

    lent: int = 0

    async def getconn(self, timeout: float | None = None) -> psycopg.AsyncConnection[Any]:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        # Every idle connection may be dead, plus the one being opened.
        for _ in range(self.max_size + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            failures = self.get_stats().get("connections_errors", 0)
            try:
                conn = await super().getconn(left)
            except PoolTimeout:
                if self.get_stats().get("connections_errors", 0) > failures:
                    # Not busy: the pool tried to connect meanwhile and could
                    # not (SPEC §4: say "unreachable", not "busy").
                    raise psycopg.OperationalError("no connection to the database could be opened") \
                        from None
                raise
            try:
                await conn.execute("")
            except (psycopg.OperationalError, psycopg.InterfaceError):
                await super().putconn(conn)  # broken: the pool closes it and opens another
                continue
            except BaseException:
                # Cancelled (a poll whose client hung up): give it back, or
                # the pool would count it as lent out for ever.
                await super().putconn(conn)
                raise
            self.lent += 1
            return conn
        raise PoolTimeout(f"no working connection within {self.timeout:.1f} s")

    async def putconn(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.lent -= 1
        await super().putconn(conn)
