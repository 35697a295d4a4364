"""Idempotency-Key for POSTs (SPEC §8): a retried create answers with the
first answer instead of creating twice.

A receptionist's double click, a browser retrying after a timeout, a proxy
replaying a request: each sends the same POST again. The key is claimed
inside the create's own transaction (a row in ``api_idempotency``,
sql/005), so two racing requests with one key end in one row: the second
waits on the first's claim and then reads its answer, or claims the key
itself if the first rolled back. Used by appointments and availability
rules (calendar_rows.py) and customers (customers.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection


class KeyReused(Exception):
    """An Idempotency-Key came back with a different request (422)."""


@dataclass(frozen=True)
class Idempotency:
    """A POST's Idempotency-Key, scoped to the token's subject, and a hash
    of the request (method, path, body) it first came with."""

    subject: str
    key: str
    request_hash: str


@dataclass(frozen=True)
class Remembered:
    """The answer an earlier request with the same key got."""

    status: int
    row: dict[str, Any]
    event_id: int | None


async def claim(conn: AsyncConnection[Any], idem: Idempotency) -> Remembered | None:
    """Claim the key for this transaction (None), or the answer it got.

    The INSERT waits for a concurrent transaction holding the same key; if
    that one commits, the key's row is there and its answer is returned, if
    it rolls back (its create failed), this one claims the key. Keys older
    than 24 hours are forgotten first, as if pruned already. Raises
    :class:`KeyReused` when the key came with another request.
    """
    await conn.execute("DELETE FROM api_idempotency WHERE subject = %s AND key = %s"
                       " AND created_at < now() - interval '24 hours'", (idem.subject, idem.key))
    cur = await conn.execute(
        "INSERT INTO api_idempotency (subject, key, request_hash, status, body)"
        " VALUES (%s, %s, %s, 0, '') ON CONFLICT DO NOTHING RETURNING 1",
        (idem.subject, idem.key, idem.request_hash))
    if await cur.fetchone() is not None:
        return None
    cur = await conn.execute("SELECT request_hash, status, body, event_id FROM api_idempotency"
                             " WHERE subject = %s AND key = %s", (idem.subject, idem.key))
    row = await cur.fetchone()
    assert row is not None
    if row[0] != idem.request_hash:
        raise KeyReused()
    return Remembered(int(row[1]), json.loads(row[2]), None if row[3] is None else int(row[3]))


async def remember(conn: AsyncConnection[Any], idem: Idempotency | None, status: int,
                   row: dict[str, Any]) -> int | None:
    """The highest event id this transaction produced (and, with a key, the
    answer remembered for it), in one statement right before COMMIT: it
    fires the commit-time event triggers early (sql/005), which takes the
    event-ordering lock from here to COMMIT, one round trip."""
    if idem is None:
        cur = await conn.execute("SELECT tornado_sse_xact_event_id()")
    else:
        cur = await conn.execute(
            "UPDATE api_idempotency SET status = %s, body = %s, event_id = tornado_sse_xact_event_id()"
            " WHERE subject = %s AND key = %s RETURNING event_id",
            (status, json.dumps(row, separators=(",", ":")), idem.subject, idem.key))
    found = await cur.fetchone()
    return None if found is None or found[0] is None else int(found[0])
