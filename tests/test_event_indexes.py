"""Filtered replays are indexed queries (issue 12, sql/002_commit_time_ids.sql).

A staff poll whose filter matches nothing, from since_id=0 over 300,000
events, used to walk the whole log. With the filters in SQL it must be one
indexed query. The check counts the pages the executed plan touched (from
EXPLAIN ANALYZE BUFFERS), which does not depend on the machine's speed: a
walk of the log touches thousands, an index lookup a handful.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.fix_db import TABLES, execute

EVENTS = 300_000
#: Pages an indexed empty answer may touch (a walk of the log: ~10,000).
PAGE_BOUND = 50
APPOINTMENT_TOPICS = ["appointment.created", "appointment.updated", "appointment.rescheduled",
                      "appointment.cancelled", "appointment.trashed", "appointment.deleted"]

# One event in 100 is an availability event (half of them global: audience
# NULL); appointment events concern two of staff 1..50 and one of products 1..20.
LOAD = f"""
INSERT INTO sse_events (topic, resource, resource_id, payload, staff_ids, product_ids)
SELECT CASE WHEN g % 100 = 0 THEN 'availability.updated'
            ELSE (ARRAY['appointment.created', 'appointment.updated',
                        'appointment.rescheduled', 'appointment.cancelled'])[1 + g % 4] END,
       CASE WHEN g % 100 = 0 THEN 'availability' ELSE 'appointment' END,
       g, jsonb_build_object('id', g, 'status', 'paid'),
       CASE WHEN g % 200 = 0 THEN NULL
            WHEN g % 100 = 0 THEN ARRAY[1 + g % 50]::bigint[]
            ELSE ARRAY[1 + g % 50, 1 + g % 37]::bigint[] END,
       CASE WHEN g % 100 = 0 THEN NULL ELSE ARRAY[1 + g % 20]::bigint[] END
FROM generate_series(1, {EVENTS}) g
"""


@pytest.fixture(scope="module")
def big_log(pg_dsn: str) -> Iterator[str]:
    """The session database with 300,000 events and nothing else, loaded
    once for this module (without 300,000 NOTIFYs); emptied afterwards."""
    db = pg_dsn
    execute(db, f"TRUNCATE {TABLES} RESTART IDENTITY")
    with psycopg.connect(db) as conn:
        conn.execute("ALTER TABLE sse_events DISABLE TRIGGER sse_events_notify")
        try:
            conn.execute(LOAD)
        finally:
            conn.execute("ALTER TABLE sse_events ENABLE TRIGGER sse_events_notify")
        conn.commit()
    execute(db, "ANALYZE sse_events")
    yield db
    execute(db, f"TRUNCATE {TABLES} RESTART IDENTITY")


def executed_plan(dsn: str, where: str, params: tuple[Any, ...]) -> dict[str, Any]:
    """The executed plan of a replay page, ``id > 0 AND <where>`` LIMIT 500."""
    sql = ("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT id, topic, payload::text"
           f" FROM sse_events WHERE id > 0 AND {where} ORDER BY id LIMIT 500")
    [[plan]] = execute(dsn, sql, params)
    return (plan if isinstance(plan, list) else json.loads(plan))[0]["Plan"]


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def pages(plan: dict[str, Any]) -> int:
    return int(plan["Shared Hit Blocks"]) + int(plan["Shared Read Blocks"])


@pytest.mark.parametrize("where, params", [
    # A staff member's stream limited to appointment topics: the audience
    # arm alone (the availability arm cannot match these topics).
    ("topic = ANY(%s) AND staff_ids @> ARRAY[%s]::bigint[]", (APPOINTMENT_TOPICS, 999)),
    # An admin's stream filtered to a topic no event has.
    ("topic = ANY(%s)", (["availability.deleted"],)),
    # An admin's stream filtered to a staff member and a product with nothing.
    ("staff_ids @> ARRAY[%s]::bigint[] AND product_ids @> ARRAY[%s]::bigint[]", (999, 999)),
], ids=["staff-audience", "topic", "staff-and-product"])
def test_empty_filtered_replay_from_zero_is_an_indexed_lookup(
        big_log: str, where: str, params: tuple[Any, ...]) -> None:
    plan = executed_plan(big_log, where, params)
    assert plan["Actual Rows"] == 0
    scans = {n["Node Type"] for n in nodes(plan)}
    assert "Seq Scan" not in scans
    assert pages(plan) < PAGE_BOUND, json.dumps(plan, indent=1)


def test_control_a_filter_no_index_serves_walks_the_log(big_log: str) -> None:
    """The page count tells a walk from a lookup: a filter on the payload,
    which no index serves, reads the whole log for its empty answer."""
    plan = executed_plan(big_log, "payload->>'status' = %s", ("no-such-status",))
    assert plan["Actual Rows"] == 0
    assert pages(plan) > 20 * PAGE_BOUND
