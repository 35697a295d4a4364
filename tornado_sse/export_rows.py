"""The appointments an export holds, with the names it shows (issue 23).

One statement: the range's appointments (not trashed), narrowed to one
staff member when asked, with the service, customer and staff names from
the directory (sql/003), oldest first. Bounded: more than ``MAX_ROWS``
appointments is refused (:class:`TooMany`), so one request never builds an
unbounded file in memory.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from .calendar_rows import Limits, transaction
from .ical import Entry

#: The most appointments one export holds.
MAX_ROWS = 5000


class TooMany(Exception):
    """The range holds more than MAX_ROWS appointments."""


_QUERY = """
SELECT a.id, a.start_at, a.end_at, a.status, a.version, a.updated_at,
       coalesce(p.name, 'Appointment') AS service, c.name AS customer,
       ARRAY(SELECT coalesce(s.name, '#' || x.id) FROM unnest(a.staff_ids) WITH ORDINALITY AS x(id, n)
             LEFT JOIN staff s ON s.id = x.id ORDER BY x.n) AS staff
FROM appointments a
LEFT JOIN products p ON p.id = a.product_id
LEFT JOIN customers c ON c.id = a.customer_id
WHERE a.start_at < %(end)s AND a.end_at > %(start)s AND a.status <> 'trash'
  AND (%(staff)s::bigint IS NULL OR a.staff_ids @> ARRAY[%(staff)s]::bigint[])
ORDER BY a.start_at, a.id
LIMIT %(limit)s
"""


async def export(pool: AsyncConnectionPool, *, start: dt.datetime, end: dt.datetime,
                 staff_id: int | None, limits: Limits) -> tuple[str | None, list[Entry]]:
    """The staff member's name (None: no staff_id, or not in the
    directory) and the appointments overlapping [start, end) as entries."""
    async with transaction(pool, limits) as conn:
        name: str | None = None
        if staff_id is not None:
            cur = await conn.execute("SELECT name FROM staff WHERE id = %s", (staff_id,))
            row = await cur.fetchone()
            name = None if row is None else str(row[0])
        rows = conn.cursor(row_factory=dict_row)
        await rows.execute(_QUERY, {"start": start, "end": end, "staff": staff_id, "limit": MAX_ROWS + 1})
        found: list[dict[str, Any]] = await rows.fetchall()
    if len(found) > MAX_ROWS:
        raise TooMany()
    return name, [Entry(id=r["id"], start=r["start_at"], end=r["end_at"], status=r["status"],
                        service=r["service"], customer=r["customer"], staff=r["staff"],
                        version=r["version"], updated=r["updated_at"]) for r in found]
