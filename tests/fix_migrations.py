"""Databases at a chosen migration, for tests of an upgrade in place.

``schema_db("001_schema.sql")`` creates an empty database on the test
server, applies the migrations up to and including that file (as a
deployment that has not seen the later ones yet) and drops it at teardown.
``migrate(dsn)`` then upgrades it as a server start would.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo

from tornado_sse.migrate import migrate, migration_files


def migrate_upto(dsn: str, last: str) -> list[str]:
    """Apply the migrations up to and including ``last``, recording them as
    migrate() does, so a later migrate() applies only the newer ones."""
    names = [p.name for p in migration_files()]
    if last not in names:
        raise ValueError(f"no migration named {last!r}")
    with tempfile.TemporaryDirectory(prefix="tsse-sql-") as tmp:
        for path in migration_files()[: names.index(last) + 1]:
            (Path(tmp) / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        return migrate(dsn, Path(tmp))


@pytest.fixture
def schema_db(pg_server_dsn: str) -> Iterator[Callable[[str], str]]:
    """Factory: a new database migrated up to the given file; its DSN."""
    created: list[str] = []

    def make(last: str) -> str:
        name = "tsse_schema_" + uuid.uuid4().hex[:10]
        with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        created.append(name)
        dsn = conninfo.make_conninfo(pg_server_dsn, dbname=name)
        migrate_upto(dsn, last)
        return dsn

    yield make
    with psycopg.connect(pg_server_dsn, autocommit=True) as conn:
        for name in created:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
