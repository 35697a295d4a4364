"""Helpers for the calendar page's browser tests: links, times in the shown
week, rows written with SQL (as a shop or psql would), the pinned demo week."""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg

from tests.fix_db import execute, insert_appointment
from tests.fix_server import admin_token
from tornado_sse.seed import SEED_FILE

HOUR = 3600
DAY = 24 * HOUR

# The demo week as `python run.py` seeds it, seen on a Wednesday afternoon.
# Pinned (seed and browser clock) so that pictures only change when the
# page or the seed does.
SCREENSHOT_NOW = dt.datetime(2026, 11, 18, 14, 30, tzinfo=dt.timezone.utc)


def calendar_url(server: Any, token: str | None = None) -> str:
    """The link ``python run.py`` prints: the calendar with a token (default: admin)."""
    return f"{server.url}/?token={token or admin_token()}"


def at(week_start: int, day: int, hour: float) -> dt.datetime:
    """A time in the shown week: ``day`` 0 is its Monday, in UTC (the pages' zone)."""
    return dt.datetime.fromtimestamp(week_start + day * DAY + int(hour * HOUR), dt.timezone.utc)


def book(dsn: str, week_start: int, day: int, hour: float, hours: float = 1, **cols: Any) -> int:
    """An appointment inserted with SQL, as a web shop or psql would."""
    return insert_appointment(dsn, start_at=at(week_start, day, hour),
                              end_at=at(week_start, day, hour + hours), **cols)


def event_ids(dsn: str, after: int = 0) -> list[int]:
    return [r[0] for r in execute(dsn, "SELECT id FROM sse_events WHERE id > %s ORDER BY id", (after,))]


def row(dsn: str, appointment_id: int) -> tuple[Any, ...] | None:
    """``(status, customer_status)`` of an appointment, or None when it is gone."""
    rows = execute(dsn, "SELECT status, customer_status FROM appointments WHERE id = %s", (appointment_id,))
    return rows[0] if rows else None


def seed_demo_week(dsn: str, now: dt.datetime = SCREENSHOT_NOW) -> None:
    """``sql/seed.sql`` (directory included) with its clock, ``now()``, pinned."""
    sql = SEED_FILE.read_text(encoding="utf-8")
    pinned = sql.replace("now()", f"'{now.isoformat()}'::timestamptz")
    assert pinned != sql, "seed.sql no longer uses now(): pin its clock another way"
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        conn.execute(pinned)


async def choose_customer(page: Any, typed: str, name: str) -> None:
    """In the open booking form, type ``typed`` into the customer search
    (customers.js) and pick ``name`` from the server's answer."""
    await page.fill("#book-customer", "")
    await page.type("#book-customer", typed)
    option = page.locator("#book-customer-list [role=option]", has_text=name)
    await option.first.wait_for(timeout=5000)
    await option.first.dispatch_event("mousedown")
    await page.wait_for_function("n => document.getElementById('book-customer').value === n", arg=name,
                                 timeout=5000)
