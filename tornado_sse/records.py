"""Calendar rows for the snapshot and write API: SQL only, no HTTP.

Snapshots are one statement, so the rows and ``last_event_id`` come from one
MVCC snapshot. Because event ids become visible in commit order (the
advisory lock in sql/001_schema.sql), the events visible to that snapshot
are exactly those with id <= its newest id, and a row change is visible
exactly when its event is: every change in the snapshot has an id <=
last_event_id and every later change an id > it (SPEC §5).

Writes go through plain SQL so the triggers fire as for any other writer;
the stream, not the write response, is what updates every calendar.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg import sql
from psycopg_pool import AsyncConnectionPool

_LAST_ID = ("(SELECT greatest(coalesce(max(id), 0), (SELECT pruned_through FROM sse_retention))"
            " FROM sse_events)")


@dataclass(frozen=True)
class Table:
    """What differs between the two resources."""

    name: str
    json_fn: str
    order: str
    soft_delete: bool  # DELETE sets status 'trash' unless forced


APPOINTMENTS = Table("appointments", "tornado_sse_appointment_json", "start_at, id", True)
AVAILABILITIES = Table("availabilities", "tornado_sse_availability_json", "ordering, priority, id", False)


async def snapshot(pool: AsyncConnectionPool, table: Table, where: list[str],
                   params: list[Any]) -> tuple[str, int]:
    """``(rows as a JSON array text, last_event_id)`` from one snapshot."""
    cond = " AND ".join(where) if where else "true"
    query = (f"SELECT {_LAST_ID}, coalesce(json_agg({table.json_fn}(t) ORDER BY {table.order}), '[]')::text"
             f" FROM {table.name} t WHERE {cond}")
    async with pool.connection() as conn:
        cur = await conn.execute(query, params)  # type: ignore[arg-type]
        row = await cur.fetchone()
    assert row is not None
    return row[1], int(row[0])


async def insert(pool: AsyncConnectionPool, table: Table, values: dict[str, Any]) -> dict[str, Any]:
    """Insert a row; return its payload."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in values)
    marks = sql.SQL(", ").join(sql.Placeholder(c) for c in values)
    query = sql.SQL("INSERT INTO {} AS t ({}) VALUES ({}) RETURNING {}(t)").format(
        sql.Identifier(table.name), cols, marks, sql.Identifier(table.json_fn))
    return await _one(pool, query, values)


async def update(pool: AsyncConnectionPool, table: Table, row_id: int,
                 values: dict[str, Any]) -> dict[str, Any] | None:
    """Update a row; its payload, or None when there is no such row."""
    sets = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in values)
    query = sql.SQL("UPDATE {} AS t SET {} WHERE id = {} RETURNING {}(t)").format(
        sql.Identifier(table.name), sets, sql.Placeholder("_id"), sql.Identifier(table.json_fn))
    return await _one(pool, query, {**values, "_id": row_id}, missing_ok=True)


async def delete(pool: AsyncConnectionPool, table: Table, row_id: int, *,
                 force: bool) -> dict[str, Any] | None:
    """Trash (appointments, unless forced) or delete a row; its last payload."""
    if table.soft_delete and not force:
        return await update(pool, table, row_id, {"status": "trash"})
    query = sql.SQL("DELETE FROM {} AS t WHERE id = {} RETURNING {}(t)").format(
        sql.Identifier(table.name), sql.Placeholder("_id"), sql.Identifier(table.json_fn))
    return await _one(pool, query, {"_id": row_id}, missing_ok=True)


async def _one(pool: AsyncConnectionPool, query: sql.Composable, params: dict[str, Any],
               missing_ok: bool = False) -> Any:
    async with pool.connection() as conn:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
    if row is None:
        if missing_ok:
            return None
        raise LookupError("no row returned")
    value = row[0]
    return json.loads(value) if isinstance(value, str) else value
