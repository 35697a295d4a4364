"""The directory: names for the ids that appointments carry (sql/003_directory.sql).

Event payloads stay ids (SPEC §2), so a calendar needs these names to say
"Anna Berg · Haircut 45 min · Jonas". They change rarely and are not
calendar events, so a page loads them beside its snapshot (and again after a
reset) rather than from the stream. One statement, so the three lists come
from one MVCC snapshot.

A staff token's directory names only the customers of appointments that
staff member can see (issue 23: every staff token could read the whole
customer list); staff and products are for everyone.
"""

from __future__ import annotations

import json
from typing import TypedDict

from psycopg_pool import AsyncConnectionPool

from .customers import VISIBLE


class StaffMember(TypedDict):
    id: int
    name: str


class Product(TypedDict):
    """A bookable service: what a booking form needs to prefill its end and cost."""

    id: int
    name: str
    duration_minutes: int
    price: str  # two decimals, like an appointment's cost (SPEC §2)


class Customer(TypedDict):
    id: int
    name: str


class Directory(TypedDict):
    staff: list[StaffMember]
    products: list[Product]
    customers: list[Customer]


_QUERY = f"""
SELECT json_build_object(
    'staff', (SELECT coalesce(json_agg(json_build_object('id', id, 'name', name) ORDER BY name, id),
                              '[]') FROM staff),
    'products', (SELECT coalesce(json_agg(json_build_object(
                                   'id', id, 'name', name, 'duration_minutes', duration_minutes,
                                   'price', to_char(price, 'FM9999999999990.00'))
                                 ORDER BY name, id), '[]') FROM products),
    'customers', (SELECT coalesce(json_agg(json_build_object('id', id, 'name', name)
                                           ORDER BY name, id), '[]')
                  FROM customers WHERE {VISIBLE})
)::text
"""


async def load(pool: AsyncConnectionPool, *, staff_id: int | None = None) -> Directory:
    """Every staff member, product and customer (a staff member's own
    customers only, given ``staff_id``), each list sorted by name."""
    async with pool.connection() as conn:
        cur = await conn.execute(_QUERY, {"staff": staff_id})
        row = await cur.fetchone()
    assert row is not None  # an aggregate without GROUP BY always answers one row
    directory: Directory = json.loads(row[0])
    return directory
