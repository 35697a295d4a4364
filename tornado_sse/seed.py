"""Demo data for a fresh database, so a first ``python run.py`` shows a calendar.

Only a database with no appointments and no availability rules is seeded:
one that holds real rows (or rows a user emptied on purpose from one table
only) is never touched. The check and the inserts share one transaction under
an advisory lock, so servers starting together on one database seed it once.
"""

from __future__ import annotations

import logging

import psycopg

from tornado_sse.sqlfiles import sql_file

log = logging.getLogger("tornado_sse.seed")

SEED_FILE = sql_file("seed.sql")
# An arbitrary constant: the lock that serialises seeding across servers.
_LOCK_KEY = 0x7453_5345_5345  # "tSSESE"


def seed_if_empty(dsn: str) -> bool:
    """Apply ``sql/seed.sql`` if both tables are empty; return whether it did."""
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        has_rows = conn.execute("SELECT EXISTS (SELECT FROM appointments)"
                                " OR EXISTS (SELECT FROM availabilities)").fetchone()
        if has_rows != (False,):
            return False
        conn.execute(SEED_FILE.read_text(encoding="utf-8"))
    log.info("seeded the empty database with a demo week (%s)", SEED_FILE.name)
    return True
