"""Apply the numbered SQL migrations in ``sql/`` (``tornado_sse.sql`` when installed).

Files named ``NNN_name.sql`` run in order, each once per database (recorded
in ``tornado_sse_migrations``), inside one transaction that holds an advisory
lock, so several servers starting at once against one database do not race.
The files are idempotent as well, so a lost record does no harm.
"""

from __future__ import annotations

import logging
import re

import psycopg

from tornado_sse.sqlfiles import Traversable, sql_dir

log = logging.getLogger("tornado_sse.migrate")

SQL_DIR = sql_dir()
_MIGRATION = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")
# An arbitrary constant: the lock that serialises migrations across servers.
_LOCK_KEY = 0x7453_5345_4D49  # "tSSEMI"


def migration_files(sql_dir: Traversable = SQL_DIR) -> list[Traversable]:
    """The migration files, in the order they apply."""
    return sorted((p for p in sql_dir.iterdir() if _MIGRATION.match(p.name)), key=lambda p: p.name)


def migrate(dsn: str, sql_dir: Traversable = SQL_DIR) -> list[str]:
    """Apply pending migrations; return the names applied now."""
    applied: list[str] = []
    with psycopg.connect(dsn) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS tornado_sse_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r[0] for r in conn.execute("SELECT name FROM tornado_sse_migrations")}
        for path in migration_files(sql_dir):
            if path.name in done:
                continue
            conn.execute(path.read_text(encoding="utf-8"))
            conn.execute("INSERT INTO tornado_sse_migrations (name) VALUES (%s)", (path.name,))
            applied.append(path.name)
            log.info("applied migration %s", path.name)
    return applied
