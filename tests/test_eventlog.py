"""The event log's filters in SQL (tornado_sse/eventlog.py): exactly what
Filter.matches admits, decided by PostgreSQL, so a filtered replay or poll
reads what it returns rather than the whole history (issue 12)."""

from __future__ import annotations

import itertools
import random

import psycopg
import pytest

from tornado_sse.eventlog import events_after
from tornado_sse.events import COLUMNS, TOPICS, Event
from tornado_sse.filters import Filter, parse_topics

PATTERNS = ["", "appointment.*", "availability.*", "appointment.created,availability.deleted",
            "appointment.rescheduled", "*"]


def load_random_events(dsn: str, n: int, seed: int) -> None:
    """Events of every shape: appointments with 0-2 staff, availability rules
    global (no audience) or scoped, products or none."""
    rng = random.Random(seed)
    rows = []
    for i in range(1, n + 1):
        topic = rng.choice(TOPICS)
        resource = topic.split(".")[0]
        if resource == "appointment":
            staff: list[int] | None = rng.sample([1, 2, 3, 4], rng.randint(0, 2))
            products: list[int] | None = [rng.choice([10, 11])]
        else:
            staff = rng.choice([None, [rng.choice([1, 2, 3])]])
            products = rng.choice([None, [10]])
        rows.append((topic, resource, i, "{}", staff, products))
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO sse_events (topic, resource, resource_id, payload, staff_ids, product_ids)"
                        " VALUES (%s, %s, %s, %s::jsonb, %s::bigint[], %s::bigint[])", rows)


@pytest.mark.gen_test(timeout=60)
async def test_sql_filters_admit_exactly_what_filter_matches_admits(db):
    load_random_events(db, 600, seed=11)
    with psycopg.connect(db) as conn:
        everything = [Event.from_row(r) for r in conn.execute(f"SELECT {COLUMNS} FROM sse_events ORDER BY id")]
    filters = [Filter(topics=parse_topics(p) if p else (), staff_id=s, product_id=pr, audience_staff_id=a)
               for p, s, pr, a in itertools.product(PATTERNS, [None, 2], [None, 10], [None, 1, 3])]
    async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
        for flt in filters:
            expected = [e.id for e in everything if flt.matches(e)]
            got: list[int] = []
            cursor = 0
            while True:  # in pages, as a replay reads
                page = await events_after(conn, cursor, upto=550, limit=37, matching=flt)
                got += [e.id for e in page]
                if len(page) < 37:
                    break
                cursor = page[-1].id
            assert got == [i for i in expected if i <= 550], flt
