"""The event log (``sse_events``): every query the server runs on it.

Typed functions over a pool: the listener's catch-up, the resume paths'
replay and bounds, the snapshot's ``last_event_id`` and retention. The
listener's LISTEN connection is never used for queries (STYLE §6).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from .events import COLUMNS, Event

#: Where a query runs: the request pool, or the listener's own connection
#: (which must never wait behind requests for a pooled one).
Source = AsyncConnectionPool | AsyncConnection[Any]

_AFTER = f"SELECT {COLUMNS} FROM sse_events WHERE id > %s ORDER BY id LIMIT %s"
_BETWEEN = f"SELECT {COLUMNS} FROM sse_events WHERE id > %s AND id <= %s ORDER BY id LIMIT %s"

#: The newest event id as a scalar subquery, for statements that must read
#: it in the same MVCC snapshot as other rows (the calendar snapshots).
#: After a prune of everything max(id) is empty, but ids up to
#: pruned_through did exist.
NEWEST_ID_SQL = ("(SELECT greatest(coalesce(max(id), 0), (SELECT pruned_through FROM sse_retention))"
                 " FROM sse_events)")


@asynccontextmanager
async def _connection(source: Source) -> AsyncIterator[AsyncConnection[Any]]:
    if isinstance(source, AsyncConnection):
        yield source
    else:
        async with source.connection() as conn:
            yield conn


async def events_after(source: Source, cursor: int, *, upto: int | None = None,
                       limit: int = 1000) -> list[Event]:
    """Up to ``limit`` events with ``cursor < id [<= upto]``, in id order."""
    async with _connection(source) as conn:
        if upto is None:
            cur = await conn.execute(_AFTER, (cursor, limit))
        else:
            cur = await conn.execute(_BETWEEN, (cursor, upto, limit))
        return [Event.from_row(r) for r in await cur.fetchall()]


async def bounds(source: Source) -> tuple[int, int]:
    """``(pruned_through, newest_id)``: ids <= pruned_through may be gone;
    newest_id is the highest committed event id (0 when there is none)."""
    async with _connection(source) as conn:
        cur = await conn.execute(f"SELECT (SELECT pruned_through FROM sse_retention), {NEWEST_ID_SQL}")
        row = await cur.fetchone()
    assert row is not None
    pruned, newest = row
    return int(pruned or 0), int(newest)


async def prune_due(pool: AsyncConnectionPool, *, keep_seconds: float,
                    every_seconds: float) -> int | None:
    """Delete events older than ``keep_seconds`` if no server of this
    database did so in the last ``every_seconds`` (claimed in SQL, so one
    server per period runs it); the number deleted, or None when not due."""
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT tornado_sse_prune_due(%s::interval, %s::interval)",
                                 (f"{keep_seconds:.0f} seconds", f"{every_seconds:.0f} seconds"))
        row = await cur.fetchone()
    return None if row is None or row[0] is None else int(row[0])
