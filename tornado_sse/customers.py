"""Customers for the front desk: type-ahead search, create, and one customer
with their appointments (issue 23, sql/006_customers.sql). SQL lives here.

A desk types a few letters of a name, an e-mail or a phone number and picks
from a short list, instead of scrolling a list of every customer; the
search is bounded (``limit``) and indexed (a trigram index on
``customers.search``). Staff tokens see only the customers of appointments
they can see: appointments that name them in ``staff_ids`` and are not in
the trash, as their calendar shows them (SPEC §4 scopes staff to their own
appointments; a customer list is the same information).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypedDict, cast

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from .calendar_rows import Limits, transaction
from .idempotency import Idempotency, claim, remember

DEFAULT_LIMIT = 20
MAX_LIMIT = 50
#: Longest search text: a name is at most 200 characters, but nobody types
#: more than this into a search box, and a long LIKE pattern costs.
MAX_QUERY = 100
#: A query this long or longer matches anywhere ("erg" finds "Berg");
#: shorter ones match the start of a word, which the trigram index can
#: still answer ("b" would otherwise be every row with a b).
SUBSTRING_FROM = 3
#: How many past and how many upcoming appointments a customer's card shows.
PAST, UPCOMING = 10, 10

#: What a search by phone looks like: digits and the usual separators.
_PHONE_LIKE = re.compile(r"^[0-9+()./\s-]+$")

#: A staff member's customers: of appointments naming them, not trashed.
#: ``@>`` rather than ``= ANY``: the GIN index on staff_ids answers it.
_STAFF_CUSTOMERS = ("SELECT a.customer_id FROM appointments a"
                    " WHERE a.staff_ids @> ARRAY[%(staff)s]::bigint[] AND a.status <> 'trash'"
                    " AND a.customer_id IS NOT NULL")


class Customer(TypedDict):
    id: int
    name: str
    phone: str | None
    email: str | None


@dataclass(frozen=True)
class Search:
    """LIKE patterns for one search text, against ``customers.search``
    (" name email phone-digits", lower case)."""

    match: str  # which customers match
    name_prefix: str  # ranked first: the name starts with the text
    word_prefix: str  # ranked second: a word starts with it

    @classmethod
    def of(cls, text: str) -> Search:
        """Lower case, runs of spaces as one; a phone-like text as its
        digits, as the column holds the phone ("+49 30 123" finds
        "+49-30-123...")."""
        q = " ".join(text.lower().split())
        if _PHONE_LIKE.match(q) and any(c.isdigit() for c in q):
            q = re.sub(r"[^0-9]", "", q)
        esc = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        word = f"% {esc}%"
        return cls(match=f"%{esc}%" if len(q) >= SUBSTRING_FROM else word,
                   name_prefix=f" {esc}%", word_prefix=word)


SEARCH_SQL = f"""
SELECT c.id, c.name, c.phone, c.email FROM customers c
WHERE c.search LIKE %(match)s
  AND (%(staff)s::bigint IS NULL OR c.id IN ({_STAFF_CUSTOMERS}))
ORDER BY CASE WHEN c.search LIKE %(name_prefix)s THEN 0 WHEN c.search LIKE %(word_prefix)s THEN 1 ELSE 2 END,
         lower(c.name), c.id
LIMIT %(limit)s
"""


async def search(pool: AsyncConnectionPool, text: str, *, limit: int, staff_id: int | None,
                 limits: Limits) -> list[Customer]:
    """Customers matching ``text``: names starting with it first, then names
    with a word starting with it, then the rest; by name within each."""
    s = Search.of(text)
    params = {"match": s.match, "name_prefix": s.name_prefix, "word_prefix": s.word_prefix,
              "staff": staff_id, "limit": limit}
    async with transaction(pool, limits) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(SEARCH_SQL, params)
        found: list[Any] = await cur.fetchall()
    return found


#: Attempts at a free id: API creates take turns (sql/006), but a shop or
#: psql writing a customer at the same moment may take the id first.
_CREATE_ATTEMPTS = 3


async def create(pool: AsyncConnectionPool, values: dict[str, Any], limits: Limits, *,
                 idempotency: Idempotency | None = None) -> tuple[Customer, bool]:
    """Insert a customer with the next free id (sql/006); with
    ``idempotency``, a repeat of the key gets the first answer (True: this
    is it) instead of a second customer, or :class:`KeyReused`. Raises
    ``UniqueViolation`` only if others took the id every time."""
    params = {"name": values["name"], "phone": values.get("phone"), "email": values.get("email")}
    attempt = 1
    while True:
        try:
            async with transaction(pool, limits) as conn:
                if idempotency is not None:
                    earlier = await claim(conn, idempotency)
                    if earlier is not None:
                        return cast(Customer, earlier.row), True
                cur = conn.cursor(row_factory=dict_row)
                await cur.execute(
                    "INSERT INTO customers (id, name, phone, email)"
                    " VALUES (tornado_sse_next_customer_id(), %(name)s, %(phone)s, %(email)s)"
                    " RETURNING id, name, phone, email", params)
                row: Any = await cur.fetchone()
                if idempotency is not None:
                    await remember(conn, idempotency, 201, row)
            return row, False
        except psycopg.errors.UniqueViolation:
            if attempt >= _CREATE_ATTEMPTS:
                raise
            attempt += 1


_APPOINTMENT = ("json_build_object('id', a.id, 'start', floor(extract(epoch FROM a.start_at))::bigint,"
                " 'end', floor(extract(epoch FROM a.end_at))::bigint, 'status', a.status,"
                " 'staff_ids', a.staff_ids, 'product_id', a.product_id)")

_ONE = f"""
SELECT c.id, c.name, c.phone, c.email, (
    SELECT coalesce(json_agg(x.j ORDER BY x.start_at, x.id), '[]')
    FROM (
        (SELECT a.id, a.start_at, {_APPOINTMENT} AS j FROM appointments a
         WHERE a.customer_id = c.id AND a.start_at < now() AND a.status <> 'trash'
           AND (%(staff)s::bigint IS NULL OR a.staff_ids @> ARRAY[%(staff)s]::bigint[])
         ORDER BY a.start_at DESC LIMIT {PAST})
        UNION ALL
        (SELECT a.id, a.start_at, {_APPOINTMENT} FROM appointments a
         WHERE a.customer_id = c.id AND a.start_at >= now() AND a.status <> 'trash'
           AND (%(staff)s::bigint IS NULL OR a.staff_ids @> ARRAY[%(staff)s]::bigint[])
         ORDER BY a.start_at LIMIT {UPCOMING})
    ) x) AS appointments
FROM customers c
WHERE c.id = %(id)s AND (%(staff)s::bigint IS NULL OR c.id IN ({_STAFF_CUSTOMERS}))
"""


async def one(pool: AsyncConnectionPool, customer_id: int, *, staff_id: int | None,
              limits: Limits) -> dict[str, Any] | None:
    """A customer and their last past and next upcoming appointments (a
    staff member's own only); None when there is none, or not theirs."""
    async with transaction(pool, limits) as conn:
        cur = conn.cursor(row_factory=dict_row)
        await cur.execute(_ONE, {"id": customer_id, "staff": staff_id})
        row: dict[str, Any] | None = await cur.fetchone()
    return row


#: The directory's customers (tornado_sse/directory.py): all of them for an
#: admin, a staff member's own for a staff token.
VISIBLE = f"(%(staff)s::bigint IS NULL OR id IN ({_STAFF_CUSTOMERS}))"
