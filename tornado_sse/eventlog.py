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

from .events import COLUMNS, TOPICS, Event
from .filters import Filter, topic_matches

#: Where a query runs: the request pool, or the listener's own connection
#: (which must never wait behind requests for a pooled one).
Source = AsyncConnectionPool | AsyncConnection[Any]

#: Above every id (a bigint), for "no upper bound" in one query shape.
MAX_ID = 2 ** 63 - 1

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
                       limit: int = 1000, matching: Filter | None = None) -> list[Event]:
    """Up to ``limit`` events with ``cursor < id [<= upto]``, in id order;
    with ``matching``, only those the filter admits, decided in SQL."""
    async with _connection(source) as conn:
        if matching is not None and not matching.everything:
            where, params = filter_sql(matching)
            cur = await conn.execute(
                f"SELECT {COLUMNS} FROM sse_events WHERE id > %s AND id <= %s AND {where}"
                " ORDER BY id LIMIT %s", (cursor, upto if upto is not None else MAX_ID, *params, limit))
        elif upto is None:
            cur = await conn.execute(_AFTER, (cursor, limit))
        else:
            cur = await conn.execute(_BETWEEN, (cursor, upto, limit))
        return [Event.from_row(r) for r in await cur.fetchall()]


def filter_sql(flt: Filter) -> tuple[str, list[Any]]:
    """``Filter.matches`` as a WHERE clause, in the shapes the indexes of
    sql/002 serve, so a filtered replay or poll, even an empty one, is one
    indexed query instead of a walk of the log in Python (issue 12)."""
    conds: list[str] = []
    params: list[Any] = []
    topics = [t for t in TOPICS if any(topic_matches(p, t) for p in flt.topics)] if flt.topics else None
    if topics is not None:
        conds.append("topic = ANY(%s)")
        params.append(topics)
    if flt.audience_staff_id is not None:
        if topics is not None and all(t.startswith("appointment.") for t in topics):
            # The other arm could match nothing, and it misleads the planner.
            conds.append("staff_ids @> ARRAY[%s::bigint]")
        else:
            conds.append("(resource <> 'appointment' OR staff_ids @> ARRAY[%s::bigint])")
        params.append(flt.audience_staff_id)
    if flt.staff_id is not None:
        conds.append("(staff_ids IS NULL OR staff_ids @> ARRAY[%s::bigint])")
        params.append(flt.staff_id)
    if flt.product_id is not None:
        conds.append("(product_ids IS NULL OR product_ids @> ARRAY[%s::bigint])")
        params.append(flt.product_id)
    return " AND ".join(conds) or "true", params


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
