"""The event log queries, shared by the listener and the resume paths.

Reads go through the async pool; the listener's LISTEN connection is never
used for queries (STYLE §6).
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from .events import COLUMNS, Event

_AFTER = f"SELECT {COLUMNS} FROM sse_events WHERE id > %s ORDER BY id LIMIT %s"
_BETWEEN = f"SELECT {COLUMNS} FROM sse_events WHERE id > %s AND id <= %s ORDER BY id LIMIT %s"


async def events_after(pool: AsyncConnectionPool, cursor: int, *, upto: int | None = None,
                       limit: int = 1000) -> list[Event]:
    """Up to ``limit`` events with ``cursor < id [<= upto]``, in id order."""
    async with pool.connection() as conn:
        if upto is None:
            cur = await conn.execute(_AFTER, (cursor, limit))
        else:
            cur = await conn.execute(_BETWEEN, (cursor, upto, limit))
        return [Event.from_row(r) for r in await cur.fetchall()]


async def log_bounds(pool: AsyncConnectionPool) -> tuple[int, int]:
    """``(pruned_through, newest_id)``: ids <= pruned_through may be gone;
    newest_id is the highest committed event id (0 when there is none)."""
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT pruned_through FROM sse_retention),"
            " coalesce((SELECT max(id) FROM sse_events), 0)")
        row = await cur.fetchone()
    assert row is not None
    pruned, newest = row
    # After a prune of everything, max(id) is empty but ids up to
    # pruned_through did exist.
    return int(pruned or 0), max(int(newest), int(pruned or 0))
