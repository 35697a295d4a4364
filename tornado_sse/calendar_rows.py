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
A write (SPEC §8) names its actor for the event triggers, locks the row it
changes before comparing versions (If-Match is race-free), runs the
caller's checks on the row as it will be, in the same transaction, and
reads the ids of the events it produced just before COMMIT (Event-Id).
Double booking is refused by PostgreSQL itself (sql/005); the refusal
becomes :class:`Conflict` naming the other appointments.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from .eventlog import NEWEST_ID_SQL
from .idempotency import Idempotency, claim, remember

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
async def transaction(pool: AsyncConnectionPool, limits: Limits, *,
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
        self._tx = transaction(self._pool, self._limits, snapshot=True)
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


# -- writes (SPEC §8) ------------------------------------------------------------


class PreconditionFailed(Exception):
    """If-Match named a version that is not the current one (412)."""

    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__("version mismatch")
        self.current = current


class Conflict(Exception):
    """The write would double-book a staff member (409); ``conflicts`` are
    the ids of the appointments it collides with."""

    def __init__(self, conflicts: list[int]) -> None:
        super().__init__("double booking")
        self.conflicts = conflicts


@dataclass(frozen=True)
class Writer:
    """Who writes and within which bounds."""

    #: JSON text the event triggers record as the event's actor (sql/004
    #: reads the transaction setting ``tornado_sse.actor``).
    actor: str
    limits: Limits


@dataclass(frozen=True)
class Written:
    """A write's answer: status, the row's payload, the highest event id
    the write produced (None: it produced none) and whether it is the
    remembered answer of an earlier request with the same key."""

    status: int
    row: dict[str, Any]
    event_id: int | None
    replayed: bool = False


#: Checks the row as it will be (column names; on update the current row
#: merged with the change) inside the write's transaction; raises to refuse.
#: Arguments: the connection, the current row (None on create), the new row.
Check = Callable[[AsyncConnection[Any], "dict[str, Any] | None", "dict[str, Any]"], Awaitable[None]]
#: Whether the current version lets the write go on (If-Match).
Expect = Callable[[int], bool]


@asynccontextmanager
async def _write(pool: AsyncConnectionPool, writer: Writer) -> AsyncIterator[AsyncConnection[Any]]:
    """A write transaction that names its actor for the event triggers."""
    async with transaction(pool, writer.limits) as conn:
        await conn.execute("SELECT set_config('tornado_sse.actor', %s, true)", (writer.actor,))
        yield conn


async def fetch(pool: AsyncConnectionPool, table: Table, row_id: int, limits: Limits, *,
                audience_staff_id: int | None = None) -> dict[str, Any] | None:
    """One row's payload; a staff member sees only their own appointments."""
    query = sql.SQL("SELECT {}(t) FROM {} t WHERE t.id = %s").format(
        sql.Identifier(table.json_fn), sql.Identifier(table.name))
    params: list[Any] = [row_id]
    if audience_staff_id is not None and table is APPOINTMENTS:
        query = sql.SQL("{} AND %s = ANY(t.staff_ids)").format(query)
        params.append(audience_staff_id)
    async with transaction(pool, limits) as conn:
        cur = await conn.execute(query, params)
        row = await cur.fetchone()
    return None if row is None else _payload(row[0])


async def create(pool: AsyncConnectionPool, table: Table, values: dict[str, Any], writer: Writer, *,
                 check: Check | None = None, idempotency: Idempotency | None = None) -> Written:
    """Insert a row after ``check``; with ``idempotency``, answer a repeat
    of the key with the first answer (or :class:`KeyReused`)."""
    try:
        async with _write(pool, writer) as conn:
            if idempotency is not None:
                earlier = await claim(conn, idempotency)
                if earlier is not None:
                    return Written(earlier.status, earlier.row, earlier.event_id, replayed=True)
            if check is not None:
                await check(conn, None, values)
            cols = sql.SQL(", ").join(sql.Identifier(c) for c in values)
            marks = sql.SQL(", ").join(sql.Placeholder(c) for c in values)
            row = await _returning(conn, sql.SQL("INSERT INTO {} AS t ({}) VALUES ({}) RETURNING {}(t)").format(
                sql.Identifier(table.name), cols, marks, sql.Identifier(table.json_fn)), values)
            assert row is not None
            event_id = await remember(conn, idempotency, 201, row)
    except psycopg.errors.ExclusionViolation:
        raise Conflict(await _conflicts(pool, 0, values, writer.limits)) from None
    return Written(201, row, event_id)


async def update(pool: AsyncConnectionPool, table: Table, row_id: int, values: dict[str, Any],
                 writer: Writer, *, check: Check | None = None,
                 expect: Expect | None = None) -> Written | None:
    """Update a row (locked first, so the version check and the checks see
    the row the UPDATE changes); None when there is no such row."""
    merged: dict[str, Any] = {}
    try:
        async with _write(pool, writer) as conn:
            current = await _lock(conn, table, row_id, expect)
            if current is None:
                return None
            merged = {**current, **values}
            if check is not None:
                await check(conn, current, merged)
            sets = sql.SQL(", ").join(
                sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(c)) for c in values)
            row = await _returning(conn, sql.SQL("UPDATE {} AS t SET {} WHERE id = {} RETURNING {}(t)").format(
                sql.Identifier(table.name), sets, sql.Placeholder("_id"), sql.Identifier(table.json_fn)),
                {**values, "_id": row_id})
            assert row is not None  # the row is locked: it is still there
            event_id = await remember(conn, None, 200, row)
    except psycopg.errors.ExclusionViolation:
        raise Conflict(await _conflicts(pool, row_id, merged, writer.limits)) from None
    return Written(200, row, event_id)


async def delete(pool: AsyncConnectionPool, table: Table, row_id: int, writer: Writer, *,
                 force: bool, expect: Expect | None = None) -> Written | None:
    """Trash (appointments, unless forced) or delete a row; its last payload."""
    if table.soft_delete and not force:
        return await update(pool, table, row_id, {"status": "trash"}, writer, expect=expect)
    async with _write(pool, writer) as conn:
        if await _lock(conn, table, row_id, expect) is None:
            return None
        row = await _returning(conn, sql.SQL("DELETE FROM {} AS t WHERE id = %s RETURNING {}(t)").format(
            sql.Identifier(table.name), sql.Identifier(table.json_fn)), [row_id])
        assert row is not None
        event_id = await remember(conn, None, 200, row)
    return Written(200, row, event_id)


async def _lock(conn: AsyncConnection[Any], table: Table, row_id: int,
                expect: Expect | None) -> dict[str, Any] | None:
    """The row's columns, locked until the transaction ends; raises
    :class:`PreconditionFailed` (with the current payload) when ``expect``
    refuses its version. The lock is what makes If-Match race-free: a
    concurrent write with the same If-Match waits here, then sees the new
    version and fails."""
    query = sql.SQL("SELECT t.*, {}(t) AS _payload FROM {} t WHERE t.id = %s FOR UPDATE").format(
        sql.Identifier(table.json_fn), sql.Identifier(table.name))
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, [row_id])
        current = await cur.fetchone()
    if current is None:
        return None
    payload = _payload(current.pop("_payload"))
    if expect is not None and not expect(int(current["version"])):
        raise PreconditionFailed(payload)
    return current


async def _conflicts(pool: AsyncConnectionPool, row_id: int, row: dict[str, Any], limits: Limits) -> list[int]:
    """The appointments that hold time ``row`` wants, for a staff member it
    has: read after the refused write rolled back, so what the other
    transaction committed is visible."""
    if not row.get("staff_ids") or row.get("start_at") is None or row.get("end_at") is None:
        return []
    async with transaction(pool, limits) as conn:
        cur = await conn.execute(
            "SELECT DISTINCT appointment_id FROM appointment_staff_times"
            " WHERE staff_id = ANY(%s) AND during && tstzrange(%s, %s) AND appointment_id <> %s"
            " ORDER BY 1", (list(row["staff_ids"]), row["start_at"], row["end_at"], row_id))
        return [int(r[0]) for r in await cur.fetchall()]


async def _returning(conn: AsyncConnection[Any], query: sql.Composed,
                     params: dict[str, Any] | list[Any]) -> dict[str, Any] | None:
    cur = await conn.execute(query, params)
    row = await cur.fetchone()
    return None if row is None else _payload(row[0])


def _payload(value: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
    return payload


# -- what the write checks read (SPEC §8) -------------------------------------------

#: Directory table of each reference field.
_DIRECTORY = {"staff_ids": "staff", "staff_id": "staff", "product_id": "products", "customer_id": "customers"}


async def unknown_references(conn: AsyncConnection[Any], refs: dict[str, Any]) -> dict[str, str]:
    """The fields of ``refs`` (field -> id, ids or None) naming ids the
    directory does not know, with the unknown ids (the directory is the
    reference for the API; psql may still write anything)."""
    errors: dict[str, str] = {}
    for field, value in refs.items():
        ids = [value] if isinstance(value, int) else list(value or [])
        if not ids:
            continue
        cur = await conn.execute(sql.SQL(
            "SELECT coalesce(array_agg(x ORDER BY x), '{{}}') FROM unnest(%s::bigint[]) AS x"
            " WHERE NOT EXISTS (SELECT 1 FROM {} AS d WHERE d.id = x)").format(
                sql.Identifier(_DIRECTORY[field])), (ids,))
        row = await cur.fetchone()
        missing = list(row[0]) if row is not None else []
        if missing:
            errors[field] = f"{field}: unknown id(s) {', '.join(map(str, missing))} (not in the directory)."
    return errors


async def availability_rules(conn: AsyncConnection[Any], *, product_id: int | None,
                             staff_ids: list[int] | None) -> tuple[str, float, list[dict[str, Any]]]:
    """The database's time zone (name and current UTC offset in seconds) and
    the rules over a booking of ``product_id`` with ``staff_ids`` (None:
    every staff member's rules)."""
    cur = await conn.execute("SELECT current_setting('TimeZone'), extract(timezone FROM now())::float8")
    zone = await cur.fetchone()
    assert zone is not None
    async with conn.cursor(row_factory=dict_row) as rcur:
        await rcur.execute(
            "SELECT id, scope, product_id, staff_id, title, range_type, from_range, to_range, appointable,"
            " priority, ordering, rrule FROM availabilities"
            " WHERE scope = 'global' OR (scope = 'product' AND product_id = %s)"
            " OR (scope = 'staff' AND (%s::bigint[] IS NULL OR staff_id = ANY(%s::bigint[])))",
            (product_id, staff_ids, staff_ids))
        rules = await rcur.fetchall()
    return str(zone[0]), float(zone[1]), rules


async def read_rules(pool: AsyncConnectionPool, limits: Limits, *, product_id: int | None,
                     staff_ids: list[int] | None) -> tuple[str, float, list[dict[str, Any]]]:
    """:func:`availability_rules` in a transaction of its own (for reads)."""
    async with transaction(pool, limits) as conn:
        return await availability_rules(conn, product_id=product_id, staff_ids=staff_ids)
