"""The calendar's rows (appointments, availabilities): snapshots and admin
writes, as typed functions. SQL lives here and nowhere in the handlers.

Snapshots (SPEC §5) run in one REPEATABLE READ transaction: its first
statement reads the newest event id, then a server-side cursor streams the
rows in pages. Both come from one MVCC snapshot, and because event ids
become visible in commit order (sql/), the events visible to it are exactly
those with id <= that newest id: every change in the snapshot has an id <=
``last_event_id`` and every later change an id > it. Streaming keeps the
server's memory per snapshot at one page whatever the range (issue 12).

Writes go through plain SQL so the triggers fire as for any other writer;
the stream, not the write response, is what updates every calendar. Each
runs in its own transaction with a lock wait and a statement time bound
(SPEC §7), so a row held by a forgotten ``psql`` session answers 503
instead of hanging, and a cancelled write (its client went away) rolls back.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from .eventlog import NEWEST_ID_SQL

#: Rows per page of a streamed snapshot (~250 bytes of JSON each).
PAGE_ROWS = 500


@dataclass(frozen=True)
class Table:
    """What differs between the two resources."""

    name: str
    singular: str
    json_fn: str
    order: str
    soft_delete: bool  # DELETE sets status 'trash' unless forced


APPOINTMENTS = Table("appointments", "appointment", "tornado_sse_appointment_json", "start_at, id", True)
AVAILABILITIES = Table("availabilities", "availability", "tornado_sse_availability_json",
                       "ordering, priority, id", False)


@dataclass(frozen=True)
class Limits:
    """Per-transaction bounds, seconds (0: none)."""

    lock_timeout: float = 3.0
    statement_timeout: float = 10.0


@dataclass(frozen=True)
class AppointmentRange:
    """Which appointments a snapshot holds: overlapping [start, end), not
    trashed, narrowed by the caller's scope and filters."""

    start: dt.datetime
    end: dt.datetime
    audience_staff_id: int | None = None  # a staff token sees its own only
    staff_id: int | None = None
    product_id: int | None = None

    def where(self) -> tuple[sql.Composable, list[Any]]:
        # Trashed appointments are gone from a calendar's point of view.
        conds = [sql.SQL("t.start_at < %s"), sql.SQL("t.end_at > %s"), sql.SQL("t.status <> 'trash'")]
        params: list[Any] = [self.end, self.start]
        for staff in (self.audience_staff_id, self.staff_id):
            if staff is not None:
                conds.append(sql.SQL("%s = ANY(t.staff_ids)"))
                params.append(staff)
        if self.product_id is not None:
            conds.append(sql.SQL("t.product_id = %s"))
            params.append(self.product_id)
        return sql.SQL(" AND ").join(conds), params


@dataclass(frozen=True)
class AvailabilityScope:
    """Which availability rules a snapshot holds: every global rule, and the
    product and staff rules of the given ids (all when None)."""

    staff_id: int | None = None
    product_id: int | None = None

    def where(self) -> tuple[sql.Composable, list[Any]]:
        conds: list[sql.Composable] = [sql.SQL("true")]
        params: list[Any] = []
        if self.staff_id is not None:
            conds.append(sql.SQL("(t.scope <> 'staff' OR t.staff_id = %s)"))
            params.append(self.staff_id)
        if self.product_id is not None:
            conds.append(sql.SQL("(t.scope <> 'product' OR t.product_id = %s)"))
            params.append(self.product_id)
        return sql.SQL(" AND ").join(conds), params


@asynccontextmanager
async def _transaction(pool: AsyncConnectionPool, limits: Limits, *,
                       snapshot: bool = False) -> AsyncIterator[AsyncConnection[Any]]:
    """A pooled connection in a transaction with ``limits`` set locally
    (they end with it, so the pooled connection keeps its defaults)."""
    async with pool.connection() as conn:
        try:
            async with conn.transaction():
                if snapshot:
                    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                for name, seconds in (("lock_timeout", limits.lock_timeout),
                                      ("statement_timeout", limits.statement_timeout)):
                    await conn.execute(sql.SQL("SELECT set_config({}, {}, true)").format(
                        sql.Literal(name), sql.Literal(f"{int(seconds * 1000)}ms")))
                yield conn
        except psycopg.errors.ReadOnlySqlTransaction:
            # A session opened while the database was read-only keeps
            # default_transaction_read_only for life: closed, the pool
            # replaces it, so writes work again as soon as the database
            # does (SPEC §7; the client gets 503 read_only meanwhile).
            await conn.close()
            raise


class Snapshot:
    """A snapshot being read: ``last_event_id`` first, then pages of rows as
    JSON text, all from one MVCC snapshot. Use as ``async with``."""

    def __init__(self, pool: AsyncConnectionPool, table: Table, where: sql.Composable,
                 params: list[Any], limits: Limits) -> None:
        self._pool, self._table, self._where, self._params = pool, table, where, params
        self._limits = limits
        self._tx: Any = None
        self._conn: AsyncConnection[Any] | None = None
        self.last_event_id = 0

    async def __aenter__(self) -> Snapshot:
        self._tx = _transaction(self._pool, self._limits, snapshot=True)
        self._conn = await self._tx.__aenter__()
        cur = await self._conn.execute(sql.SQL("SELECT {}").format(sql.SQL(NEWEST_ID_SQL)))
        row = await cur.fetchone()
        assert row is not None
        self.last_event_id = int(row[0])
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._tx.__aexit__(*exc)

    async def pages(self) -> AsyncGenerator[list[str], None]:
        """The rows' JSON texts in calendar order, ``PAGE_ROWS`` at a time."""
        assert self._conn is not None
        t = self._table
        query = sql.SQL("SELECT {}(t)::text FROM {} t WHERE {} ORDER BY {}").format(
            sql.Identifier(t.json_fn), sql.Identifier(t.name), self._where, sql.SQL(t.order))
        async with self._conn.cursor(name="tornado_sse_snapshot") as cur:
            await cur.execute(query, self._params)
            while rows := await cur.fetchmany(PAGE_ROWS):
                yield [r[0] for r in rows]


def appointments(pool: AsyncConnectionPool, rng: AppointmentRange, limits: Limits) -> Snapshot:
    where, params = rng.where()
    return Snapshot(pool, APPOINTMENTS, where, params, limits)


def availabilities(pool: AsyncConnectionPool, scope: AvailabilityScope, limits: Limits) -> Snapshot:
    where, params = scope.where()
    return Snapshot(pool, AVAILABILITIES, where, params, limits)


async def insert(pool: AsyncConnectionPool, table: Table, values: dict[str, Any],
                 limits: Limits) -> dict[str, Any]:
    """Insert a row; return its payload."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in values)
    marks = sql.SQL(", ").join(sql.Placeholder(c) for c in values)
    query = sql.SQL("INSERT INTO {} AS t ({}) VALUES ({}) RETURNING {}(t)").format(
        sql.Identifier(table.name), cols, marks, sql.Identifier(table.json_fn))
    row = await _one(pool, query, values, limits)
    if row is None:
        raise LookupError("INSERT returned no row")
    return row


async def update(pool: AsyncConnectionPool, table: Table, row_id: int,
                 values: dict[str, Any], limits: Limits) -> dict[str, Any] | None:
    """Update a row; its payload, or None when there is no such row."""
    sets = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in values)
    query = sql.SQL("UPDATE {} AS t SET {} WHERE id = {} RETURNING {}(t)").format(
        sql.Identifier(table.name), sets, sql.Placeholder("_id"), sql.Identifier(table.json_fn))
    return await _one(pool, query, {**values, "_id": row_id}, limits)


async def delete(pool: AsyncConnectionPool, table: Table, row_id: int, *,
                 force: bool, limits: Limits) -> dict[str, Any] | None:
    """Trash (appointments, unless forced) or delete a row; its last payload."""
    if table.soft_delete and not force:
        return await update(pool, table, row_id, {"status": "trash"}, limits)
    query = sql.SQL("DELETE FROM {} AS t WHERE id = {} RETURNING {}(t)").format(
        sql.Identifier(table.name), sql.Placeholder("_id"), sql.Identifier(table.json_fn))
    return await _one(pool, query, {"_id": row_id}, limits)


async def _one(pool: AsyncConnectionPool, query: sql.Composed, params: dict[str, Any],
               limits: Limits) -> dict[str, Any] | None:
    async with _transaction(pool, limits) as conn:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
    if row is None:
        return None
    value = row[0]
    payload: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return payload
